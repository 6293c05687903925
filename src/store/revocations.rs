//! Revoked access tokens (kept until they would have expired) and used assertion ids.

use super::{Store, StoreError, read, write};

/// Records a revocation; revoking twice is harmless.
pub async fn insert(
    store: &Store,
    jti: &str,
    client_id: &str,
    expires_at: i64,
    now: i64,
) -> Result<(), StoreError> {
    const SQL: &str = "INSERT INTO revoked_tokens (jti, client_id, expires_at, revoked_at) \
        VALUES ($1, $2, $3, $4) ON CONFLICT (jti) DO NOTHING";
    write!(store, |pool| {
        sqlx::query(SQL)
            .bind(jti)
            .bind(client_id)
            .bind(expires_at)
            .bind(now)
            .execute(pool)
            .await
            .map(|_| ())
    })?;
    Ok(())
}

/// Revocations recorded at or after `since` that have not expired by `now`: (jti, expires_at).
pub async fn since(store: &Store, since: i64, now: i64) -> Result<Vec<(String, i64)>, StoreError> {
    const SQL: &str =
        "SELECT jti, expires_at FROM revoked_tokens WHERE revoked_at >= $1 AND expires_at >= $2";
    Ok(read!(store, |pool| sqlx::query_as(SQL)
        .bind(since)
        .bind(now)
        .fetch_all(pool)
        .await)?)
}

/// Forgets revocations of tokens that expired before `before`, and used assertion ids
/// likewise.
pub async fn delete_expired(store: &Store, before: i64) -> Result<(), StoreError> {
    const TOKENS: &str = "DELETE FROM revoked_tokens WHERE expires_at < $1";
    const ASSERTIONS: &str = "DELETE FROM used_assertions WHERE expires_at < $1";
    write!(store, |pool| sqlx::query(TOKENS)
        .bind(before)
        .execute(pool)
        .await
        .map(|_| ()))?;
    write!(store, |pool| sqlx::query(ASSERTIONS)
        .bind(before)
        .execute(pool)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// Marks an assertion id as used; false when it was used before (a replay).
pub async fn use_assertion(
    store: &Store,
    client_id: &str,
    jti: &str,
    expires_at: i64,
) -> Result<bool, StoreError> {
    const SQL: &str = "INSERT INTO used_assertions (client_id, jti, expires_at) VALUES ($1, $2, $3) \
        ON CONFLICT (client_id, jti) DO NOTHING";
    let inserted = write!(store, |pool| {
        sqlx::query(SQL)
            .bind(client_id)
            .bind(jti)
            .bind(expires_at)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
    })?;
    Ok(inserted == 1)
}
