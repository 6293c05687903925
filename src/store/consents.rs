//! Consents: which scopes a user approved for a client.

use super::{Store, StoreError, read, write};

/// One remembered consent.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ConsentRow {
    /// The client.
    pub client_id: String,
    /// The client's name.
    pub client_name: String,
    /// Space-separated scopes approved.
    pub scope: String,
    /// First approved.
    pub created_at: i64,
    /// Last widened.
    pub updated_at: i64,
}

/// The scopes `user_id` approved for `client_id`, space-separated.
pub async fn scope(
    store: &Store,
    user_id: &str,
    client_id: &str,
) -> Result<Option<String>, StoreError> {
    const SQL: &str = "SELECT scope FROM consents WHERE user_id = $1 AND client_id = $2";
    Ok(read!(store, |pool| sqlx::query_scalar(SQL)
        .bind(user_id)
        .bind(client_id)
        .fetch_optional(pool)
        .await)?)
}

/// Remembers that `user_id` approved `scope` (already merged with what was approved before).
pub async fn upsert(
    store: &Store,
    user_id: &str,
    client_id: &str,
    scope: &str,
    now: i64,
) -> Result<(), StoreError> {
    const SQL: &str = "INSERT INTO consents (user_id, client_id, scope, created_at, updated_at) \
        VALUES ($1, $2, $3, $4, $4) \
        ON CONFLICT (user_id, client_id) DO UPDATE SET scope = $3, updated_at = $4";
    write!(store, |pool| sqlx::query(SQL)
        .bind(user_id)
        .bind(client_id)
        .bind(scope)
        .bind(now)
        .execute(pool)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// Every consent of a user, newest first.
pub async fn list(store: &Store, user_id: &str) -> Result<Vec<ConsentRow>, StoreError> {
    const SQL: &str = "SELECT g.client_id, c.name AS client_name, g.scope, g.created_at, g.updated_at \
        FROM consents g JOIN clients c ON c.id = g.client_id WHERE g.user_id = $1 \
        ORDER BY g.updated_at DESC, g.client_id";
    Ok(read!(store, |pool| sqlx::query_as(SQL)
        .bind(user_id)
        .fetch_all(pool)
        .await)?)
}

/// Forgets a consent; false if there was none.
pub async fn delete(store: &Store, user_id: &str, client_id: &str) -> Result<bool, StoreError> {
    const SQL: &str = "DELETE FROM consents WHERE user_id = $1 AND client_id = $2";
    let n = write!(store, |pool| sqlx::query(SQL)
        .bind(user_id)
        .bind(client_id)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(n > 0)
}
