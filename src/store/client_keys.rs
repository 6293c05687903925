//! Public keys clients sign assertions with.

use super::{Store, StoreError, read, write};

/// A registered client key.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClientKeyRow {
    /// Key id: base64url SHA-256 of the SubjectPublicKeyInfo.
    pub kid: String,
    /// Owner.
    pub client_id: String,
    /// `RSA`, `EC` or `OKP`.
    pub kty: String,
    /// The public key, PEM.
    pub public_pem: String,
    /// When it was added.
    pub created_at: i64,
}

/// Adds a key; the same key twice is a conflict.
pub async fn insert(store: &Store, key: &ClientKeyRow) -> Result<(), StoreError> {
    const SQL: &str = "INSERT INTO client_keys (kid, client_id, kty, public_pem, created_at) VALUES ($1, $2, $3, $4, $5)";
    write!(store, |pool| {
        sqlx::query(SQL)
            .bind(&key.kid)
            .bind(&key.client_id)
            .bind(&key.kty)
            .bind(&key.public_pem)
            .bind(key.created_at)
            .execute(pool)
            .await
            .map(|_| ())
    })
    .map_err(|e| StoreError::on_unique(e, "this key is already registered"))
}

/// A client's keys, oldest first.
pub async fn for_client(store: &Store, client_id: &str) -> Result<Vec<ClientKeyRow>, StoreError> {
    const SQL: &str = "SELECT kid, client_id, kty, public_pem, created_at FROM client_keys \
        WHERE client_id = $1 ORDER BY created_at, kid";
    Ok(read!(store, |pool| sqlx::query_as(SQL)
        .bind(client_id)
        .fetch_all(pool)
        .await)?)
}
