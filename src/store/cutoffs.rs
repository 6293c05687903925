//! Token cut-offs: every access token of a user, a client or one user's grant to a client
//! that was issued at or before an instant is refused.

use super::{Store, StoreError, Tx, in_tx, read, write};

/// Whose tokens a cut-off ends; an empty field matches every user or every client.
#[derive(Debug, Clone, PartialEq, Eq, Hash, sqlx::FromRow)]
pub struct Cutoff {
    /// The user (`""`: every user of the client).
    pub user_id: String,
    /// The client (`""`: every client of the user).
    pub client_id: String,
    /// Tokens issued at or before this instant are refused.
    pub cut_at: i64,
}

/// Records a cut-off inside `tx`; a later one replaces an earlier one.
pub async fn insert(tx: &mut Tx, cutoff: &Cutoff) -> Result<(), StoreError> {
    const SQL: &str = "INSERT INTO token_cutoffs (user_id, client_id, cut_at) VALUES ($1, $2, $3) \
        ON CONFLICT (user_id, client_id) DO UPDATE SET cut_at = excluded.cut_at \
        WHERE token_cutoffs.cut_at < excluded.cut_at";
    in_tx!(tx, |c| sqlx::query(SQL)
        .bind(&cutoff.user_id)
        .bind(&cutoff.client_id)
        .bind(cutoff.cut_at)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// Cut-offs made at or after `since`.
pub async fn since(store: &Store, since: i64) -> Result<Vec<Cutoff>, StoreError> {
    const SQL: &str = "SELECT user_id, client_id, cut_at FROM token_cutoffs WHERE cut_at >= $1";
    Ok(read!(store, |pool| sqlx::query_as(SQL)
        .bind(since)
        .fetch_all(pool)
        .await)?)
}

/// Forgets cut-offs made before `before` (no token they could refuse is still valid).
pub async fn delete_before(store: &Store, before: i64) -> Result<u64, StoreError> {
    const SQL: &str = "DELETE FROM token_cutoffs WHERE cut_at < $1";
    Ok(write!(store, |pool| sqlx::query(SQL)
        .bind(before)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?)
}
