//! Public keys clients sign assertions with.

use super::{Store, StoreError, in_tx, read, write};

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

/// Adds keys, all or none; a kid the client already has is a conflict.
pub async fn insert_all(store: &Store, keys: &[ClientKeyRow]) -> Result<(), StoreError> {
    const SQL: &str = "INSERT INTO client_keys (kid, client_id, kty, public_pem, created_at) VALUES ($1, $2, $3, $4, $5)";
    let mut tx = store.begin().await?;
    for key in keys {
        in_tx!(&mut tx, |c| sqlx::query(SQL)
            .bind(&key.kid)
            .bind(&key.client_id)
            .bind(&key.kty)
            .bind(&key.public_pem)
            .bind(key.created_at)
            .execute(&mut *c)
            .await
            .map(|_| ()))
        .map_err(|e| StoreError::on_unique(e, &format!("key {} is already registered", key.kid)))?;
    }
    tx.commit().await
}

/// Removes a client's key; false when it has no such key.
pub async fn delete(store: &Store, client_id: &str, kid: &str) -> Result<bool, StoreError> {
    const SQL: &str = "DELETE FROM client_keys WHERE client_id = $1 AND kid = $2";
    let n = write!(store, |pool| sqlx::query(SQL)
        .bind(client_id)
        .bind(kid)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(n == 1)
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
