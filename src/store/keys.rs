//! The server's signing keys (private parts sealed under the master key).

use sqlx::types::Json;

use super::{Store, StoreError, Tx, in_tx, read, write};

/// A signing key as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KeyRow {
    /// Key id (RFC 7638 thumbprint).
    pub kid: String,
    /// `ES256`, `EdDSA` or `RS256`.
    pub alg: String,
    /// The public JWK.
    pub public_jwk: Json<serde_json::Value>,
    /// Sealed PKCS#8 private key.
    pub private_key: Vec<u8>,
    /// When the key was made.
    pub created_at: i64,
    /// When it starts signing.
    pub activate_at: i64,
    /// When it stops signing, once a successor exists.
    pub retire_at: Option<i64>,
}

/// Serializes key-ring changes across processes for the rest of the transaction.
pub async fn lock(tx: &mut Tx) -> Result<(), StoreError> {
    match tx {
        // BEGIN IMMEDIATE already holds SQLite's one write lock.
        Tx::Sqlite(_) => {}
        Tx::Postgres(tx) => {
            sqlx::query("SELECT pg_advisory_xact_lock(727301)")
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

/// The key of `alg`'s line that signs now or next (not yet retired): its kid and
/// activation time.
pub async fn current(tx: &mut Tx, alg: &str) -> Result<Option<(String, i64)>, StoreError> {
    const SQL: &str = "SELECT kid, activate_at FROM signing_keys WHERE alg = $1 \
        AND retire_at IS NULL ORDER BY activate_at DESC LIMIT 1";
    Ok(in_tx!(tx, |c| sqlx::query_as(SQL)
        .bind(alg)
        .fetch_optional(&mut *c)
        .await)?)
}

/// Ends the signing period of every unretired key of `alg`'s line at `at` (or at its own
/// start if later).
pub async fn retire_line(tx: &mut Tx, alg: &str, at: i64) -> Result<(), StoreError> {
    const SQL: &str = "UPDATE signing_keys SET retire_at = \
        CASE WHEN activate_at > $1 THEN activate_at ELSE $1 END \
        WHERE alg = $2 AND retire_at IS NULL";
    in_tx!(tx, |c| sqlx::query(SQL)
        .bind(at)
        .bind(alg)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// Inserts a new key.
pub async fn insert(tx: &mut Tx, key: &KeyRow) -> Result<(), StoreError> {
    const SQL: &str = "INSERT INTO signing_keys (kid, alg, public_jwk, private_key, created_at, \
        activate_at, retire_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";
    in_tx!(tx, |c| {
        sqlx::query(SQL)
            .bind(&key.kid)
            .bind(&key.alg)
            .bind(&key.public_jwk)
            .bind(&key.private_key)
            .bind(key.created_at)
            .bind(key.activate_at)
            .bind(key.retire_at)
            .execute(&mut *c)
            .await
            .map(|_| ())
    })
    .map_err(|e| StoreError::on_unique(e, "a key with this kid exists"))
}

/// Every stored key, oldest first.
pub async fn list(store: &Store) -> Result<Vec<KeyRow>, StoreError> {
    const SQL: &str = "SELECT kid, alg, public_jwk, private_key, created_at, activate_at, retire_at \
        FROM signing_keys ORDER BY activate_at, kid";
    Ok(read!(store, |pool| sqlx::query_as(SQL)
        .fetch_all(pool)
        .await)?)
}

/// Deletes one key (a revocation); its algorithm, or `None` if there was no such kid.
pub async fn delete(tx: &mut Tx, kid: &str) -> Result<Option<String>, StoreError> {
    const SQL: &str = "DELETE FROM signing_keys WHERE kid = $1 RETURNING alg";
    Ok(in_tx!(tx, |c| sqlx::query_scalar(SQL)
        .bind(kid)
        .fetch_optional(&mut *c)
        .await)?)
}

/// Whether some key of `alg`'s line signs at `now` and goes on signing (no successor has
/// retired it).
pub async fn signs_on(tx: &mut Tx, alg: &str, now: i64) -> Result<bool, StoreError> {
    const SQL: &str = "SELECT COUNT(*) FROM signing_keys WHERE alg = $2 AND activate_at <= $1 \
        AND retire_at IS NULL";
    let n: i64 = in_tx!(tx, |c| sqlx::query_scalar(SQL)
        .bind(now)
        .bind(alg)
        .fetch_one(&mut *c)
        .await)?;
    Ok(n > 0)
}

/// Deletes keys retired before `before` (their last token has expired).
pub async fn delete_retired_before(store: &Store, before: i64) -> Result<u64, StoreError> {
    const SQL: &str = "DELETE FROM signing_keys WHERE retire_at IS NOT NULL AND retire_at < $1";
    Ok(write!(store, |pool| sqlx::query(SQL)
        .bind(before)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?)
}
