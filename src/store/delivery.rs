//! What the email outbox and the logout deliveries share: a table of rows `queued` until
//! they are `sent` or, after their last attempt, `failed`, each with its attempts,
//! `next_attempt_at`, `last_error` and `sent_at`. Claiming stays with each table (what a
//! claim returns differs).

use sqlx::QueryBuilder;

use super::{Store, StoreError, read, write};

/// A delivery table and the column that names one of its rows.
pub(super) struct Queue {
    /// The table.
    pub table: &'static str,
    /// A unique column of it.
    pub key: &'static str,
}

impl Queue {
    /// Marks the rows `keys` delivered at `now`.
    pub async fn mark_sent(
        &self,
        store: &Store,
        keys: &[impl AsRef<str>],
        now: i64,
    ) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        write!(store, |pool| {
            let mut query = QueryBuilder::new(format!(
                "UPDATE {} SET status = 'sent', last_error = NULL, sent_at = ",
                self.table
            ));
            query
                .push_bind(now)
                .push(format!(" WHERE status = 'queued' AND {} IN (", self.key));
            let mut list = query.separated(", ");
            for key in keys {
                list.push_bind(key.as_ref().to_owned());
            }
            query.push(")");
            query.build().execute(pool).await.map(|_| ())
        })?;
        Ok(())
    }

    /// Records a failed attempt of row `key`: retried at `next_attempt_at`, or, with
    /// `None`, given up.
    pub async fn mark_failed_attempt(
        &self,
        store: &Store,
        key: &str,
        next_attempt_at: Option<i64>,
        error: &str,
    ) -> Result<(), StoreError> {
        let (table, column) = (self.table, self.key);
        // Built from the static table and column names: nothing from a request.
        let sql = match next_attempt_at {
            Some(_) => format!(
                "UPDATE {table} SET next_attempt_at = $2, last_error = $3 \
                 WHERE {column} = $1 AND status = 'queued'"
            ),
            None => format!(
                "UPDATE {table} SET status = 'failed', last_error = $2 \
                 WHERE {column} = $1 AND status = 'queued'"
            ),
        };
        write!(store, |pool| {
            let query = sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(key);
            let query = match next_attempt_at {
                Some(at) => query.bind(at),
                None => query,
            };
            query.bind(error).execute(pool).await.map(|_| ())
        })?;
        Ok(())
    }

    /// Rows waiting or retrying.
    pub async fn queued(&self, store: &Store) -> Result<i64, StoreError> {
        let sql = format!(
            "SELECT COUNT(*) FROM {} WHERE status = 'queued'",
            self.table
        );
        Ok(read!(store, |pool| sqlx::query_scalar(
            sqlx::AssertSqlSafe(sql.as_str())
        )
        .fetch_one(pool)
        .await)?)
    }
}
