//! Pushed authorization requests (RFC 9126): their parameters, by the SHA-256 of their
//! `request_uri`.

use super::{Store, StoreError, write};

/// A pushed request as the authorization endpoint opens it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Pushed {
    /// The client that pushed it.
    pub client_id: String,
    /// Its parameters, form-encoded (never the client's credentials).
    pub params: String,
}

/// Stores a pushed request until `expires_at`.
pub async fn insert(
    store: &Store,
    uri_hash: &[u8; 32],
    client_id: &str,
    params: &str,
    now: i64,
    expires_at: i64,
) -> Result<(), StoreError> {
    const SQL: &str = "INSERT INTO pushed_requests (uri_hash, client_id, params, created_at, expires_at) \
        VALUES ($1, $2, $3, $4, $5)";
    write!(store, |pool| sqlx::query(SQL)
        .bind(uri_hash.as_slice())
        .bind(client_id)
        .bind(params)
        .bind(now)
        .bind(expires_at)
        .execute(pool)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// Opens a pushed request of `client_id` that has not expired at `now`. The first opening gives it
/// `interaction_secs` more (for the user to sign in and consent); later ones change
/// nothing. `None` when there is no such request, or it expired.
pub async fn open(
    store: &Store,
    uri_hash: &[u8; 32],
    client_id: &str,
    now: i64,
    interaction_secs: i64,
) -> Result<Option<Pushed>, StoreError> {
    const SQL: &str = "UPDATE pushed_requests SET \
        expires_at = CASE WHEN opened_at IS NULL THEN $2 + $3 ELSE expires_at END, \
        opened_at = COALESCE(opened_at, $2) \
        WHERE uri_hash = $1 AND client_id = $4 AND expires_at >= $2 RETURNING client_id, params";
    Ok(write!(store, |pool| sqlx::query_as(SQL)
        .bind(uri_hash.as_slice())
        .bind(now)
        .bind(interaction_secs)
        .bind(client_id)
        .fetch_optional(pool)
        .await)?)
}

/// Replaces a pushed request's parameters (the way back from a sign-in drops `prompt`
/// and `max_age`, which that sign-in satisfies).
pub async fn set_params(
    store: &Store,
    uri_hash: &[u8; 32],
    params: &str,
) -> Result<(), StoreError> {
    const SQL: &str = "UPDATE pushed_requests SET params = $2 WHERE uri_hash = $1";
    write!(store, |pool| sqlx::query(SQL)
        .bind(uri_hash.as_slice())
        .bind(params)
        .execute(pool)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// Deletes a pushed request: a code answered it.
pub async fn delete(store: &Store, uri_hash: &[u8; 32]) -> Result<(), StoreError> {
    const SQL: &str = "DELETE FROM pushed_requests WHERE uri_hash = $1";
    write!(store, |pool| sqlx::query(SQL)
        .bind(uri_hash.as_slice())
        .execute(pool)
        .await
        .map(|_| ()))?;
    Ok(())
}
