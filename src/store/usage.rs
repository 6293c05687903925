//! Daily API call counts per client and subject.

use sqlx::QueryBuilder;

use super::{Store, StoreError, read, write};

/// One client's (or one of its subjects') calls on one UTC day.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DayCount {
    /// The client.
    pub client_id: String,
    /// The token subject counted apart (`""`: the client as a whole).
    pub subject: String,
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    /// Calls counted.
    pub calls: i64,
}

/// Adds each count to the stored one; returns the new totals (every process's calls).
pub async fn add(store: &Store, counts: &[DayCount]) -> Result<Vec<DayCount>, StoreError> {
    if counts.is_empty() {
        return Ok(Vec::new());
    }
    let mut totals = Vec::with_capacity(counts.len());
    for chunk in counts.chunks(1000) {
        let rows: Vec<DayCount> = write!(store, |pool| {
            let mut query =
                QueryBuilder::new("INSERT INTO api_usage (client_id, subject, day, calls) ");
            query.push_values(chunk, |mut row, c| {
                row.push_bind(&c.client_id)
                    .push_bind(&c.subject)
                    .push_bind(&c.day)
                    .push_bind(c.calls);
            });
            query.push(
                " ON CONFLICT (client_id, subject, day) DO UPDATE \
                 SET calls = api_usage.calls + excluded.calls \
                 RETURNING client_id, subject, day, calls",
            );
            query.build_query_as().fetch_all(pool).await
        })?;
        totals.extend(rows);
    }
    Ok(totals)
}

/// A client's counts (all its subjects together) on `since` (`YYYY-MM-DD`) and later,
/// newest first.
pub async fn for_client(
    store: &Store,
    client_id: &str,
    since: &str,
) -> Result<Vec<DayCount>, StoreError> {
    const SQL: &str = "SELECT client_id, '' AS subject, day, CAST(SUM(calls) AS BIGINT) AS calls FROM api_usage \
        WHERE client_id = $1 AND day >= $2 GROUP BY client_id, day ORDER BY day DESC";
    Ok(read!(store, |pool| sqlx::query_as(SQL)
        .bind(client_id)
        .bind(since)
        .fetch_all(pool)
        .await)?)
}
