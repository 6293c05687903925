//! The audit log: append-only rows, written in batches, read newest first.

use sqlx::QueryBuilder;

use super::{Store, StoreError, read, write};

/// One stored event.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRow {
    /// Increasing id (the paging cursor).
    pub id: i64,
    /// Unix seconds.
    pub at: i64,
    /// What happened (`sign_in`, `token.issued`, `admin.client.created`, …).
    pub event: String,
    /// `success` or `failure`.
    pub outcome: String,
    /// Who acted: `user:ID`, `client:ID` or `system`.
    pub actor: String,
    /// The client concerned.
    pub client_id: Option<String>,
    /// The user concerned.
    pub user_id: Option<String>,
    /// The caller's address.
    pub address: Option<String>,
    /// The request that did it.
    pub request_id: Option<String>,
    /// A JSON object of particulars.
    pub detail: String,
}

/// What a query selects.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this event.
    pub event: Option<String>,
    /// Only events concerning this client.
    pub client_id: Option<String>,
    /// Only events concerning this user.
    pub user_id: Option<String>,
    /// Only this outcome.
    pub outcome: Option<String>,
    /// At or after (unix seconds).
    pub since: Option<i64>,
    /// Before (unix seconds).
    pub until: Option<i64>,
    /// Ids below this (the previous page's last id).
    pub before_id: Option<i64>,
}

const COLUMNS: &str = "at, event, outcome, actor, client_id, user_id, address, request_id, detail";
/// Rows per INSERT: 9 binds each, well inside both backends' bind limits.
const ROWS_PER_STATEMENT: usize = 500;

/// Appends `rows` (their `id` is ignored and assigned by the database).
pub async fn insert_many(store: &Store, rows: &[AuditRow]) -> Result<(), StoreError> {
    let head = format!("INSERT INTO audit_events ({COLUMNS}) ");
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        write!(store, |pool| {
            let mut query = QueryBuilder::new(head.as_str());
            query.push_values(chunk, |mut row, e| {
                row.push_bind(e.at)
                    .push_bind(&e.event)
                    .push_bind(&e.outcome)
                    .push_bind(&e.actor)
                    .push_bind(&e.client_id)
                    .push_bind(&e.user_id)
                    .push_bind(&e.address)
                    .push_bind(&e.request_id)
                    .push_bind(&e.detail);
            });
            query.build().execute(pool).await.map(|_| ())
        })?;
    }
    Ok(())
}

/// Up to `limit` events matching `filter`, newest first.
pub async fn list(
    store: &Store,
    filter: &AuditFilter,
    limit: i64,
) -> Result<Vec<AuditRow>, StoreError> {
    Ok(read!(store, |pool| {
        let mut query = QueryBuilder::new(format!(
            "SELECT id, {COLUMNS} FROM audit_events WHERE 1 = 1"
        ));
        for (column, value) in [
            ("event", &filter.event),
            ("client_id", &filter.client_id),
            ("user_id", &filter.user_id),
            ("outcome", &filter.outcome),
        ] {
            if let Some(value) = value {
                query.push(format!(" AND {column} = ")).push_bind(value);
            }
        }
        if let Some(since) = filter.since {
            query.push(" AND at >= ").push_bind(since);
        }
        if let Some(until) = filter.until {
            query.push(" AND at < ").push_bind(until);
        }
        if let Some(before) = filter.before_id {
            query.push(" AND id < ").push_bind(before);
        }
        query.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
        query.build_query_as().fetch_all(pool).await
    })?)
}
