//! Device authorization requests (RFC 8628): created by the device, approved or denied by
//! a user on /activate, redeemed once by the device's polling.

use super::{Store, StoreError, Tx, in_tx, read, write};

/// A device authorization request.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeviceRow {
    /// The client that asked.
    pub client_id: String,
    /// The user code, without its hyphen.
    pub user_code: String,
    /// The scope asked for.
    pub scope: String,
    /// pending, approved, denied or issued.
    pub status: String,
    /// Who approved or denied it.
    pub user_id: Option<String>,
    /// When that user had signed in.
    pub auth_time: Option<i64>,
    /// Seconds the device must wait between polls.
    pub poll_interval: i64,
    /// The device's last poll.
    pub last_polled_at: Option<i64>,
    /// Unix seconds.
    pub expires_at: i64,
}

const COLUMNS: &str = "client_id, user_code, scope, status, user_id, auth_time, poll_interval, \
    last_polled_at, expires_at";

/// A new request; false when the user code is taken (draw another).
pub async fn insert(
    store: &Store,
    device_code_hash: &[u8; 32],
    row: &DeviceRow,
    now: i64,
) -> Result<bool, StoreError> {
    const SQL: &str = "INSERT INTO device_codes (device_code_hash, user_code, client_id, scope, \
        poll_interval, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
        ON CONFLICT (user_code) DO NOTHING";
    let n = write!(store, |pool| sqlx::query(SQL)
        .bind(device_code_hash.as_slice())
        .bind(&row.user_code)
        .bind(&row.client_id)
        .bind(&row.scope)
        .bind(row.poll_interval)
        .bind(now)
        .bind(row.expires_at)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// The live, pending request with this user code.
pub async fn pending_by_user_code(
    store: &Store,
    user_code: &str,
    now: i64,
) -> Result<Option<DeviceRow>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM device_codes WHERE user_code = $1 AND status = 'pending' \
         AND expires_at >= $2"
    );
    Ok(read!(store, |pool| sqlx::query_as(sqlx::AssertSqlSafe(
        sql.clone()
    ))
    .bind(user_code)
    .bind(now)
    .fetch_optional(pool)
    .await)?)
}

/// Records the user's decision on a live, pending request; false when it was already
/// decided or has expired (a code is approved at most once).
pub async fn decide(
    store: &Store,
    user_code: &str,
    approve: bool,
    user_id: &str,
    auth_time: i64,
    now: i64,
) -> Result<bool, StoreError> {
    const SQL: &str = "UPDATE device_codes SET status = $2, user_id = $3, auth_time = $4 \
        WHERE user_code = $1 AND status = 'pending' AND expires_at >= $5";
    let status = if approve { "approved" } else { "denied" };
    let n = write!(store, |pool| sqlx::query(SQL)
        .bind(user_code)
        .bind(status)
        .bind(user_id)
        .bind(auth_time)
        .bind(now)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// The request of a device code, read without taking the writer.
pub async fn by_device_code(
    store: &Store,
    device_code_hash: &[u8; 32],
) -> Result<Option<DeviceRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM device_codes WHERE device_code_hash = $1");
    Ok(read!(store, |pool| sqlx::query_as(sqlx::AssertSqlSafe(
        sql.clone()
    ))
    .bind(device_code_hash.as_slice())
    .fetch_optional(pool)
    .await)?)
}

/// Records a poll at `now`, with the interval the device must keep from now on: one
/// statement, no transaction (a pending poll is the common case and must stay cheap).
pub async fn record_poll(
    store: &Store,
    device_code_hash: &[u8; 32],
    now: i64,
    poll_interval: i64,
) -> Result<(), StoreError> {
    const SQL: &str = "UPDATE device_codes SET last_polled_at = $2, poll_interval = $3 \
        WHERE device_code_hash = $1";
    write!(store, |pool| sqlx::query(SQL)
        .bind(device_code_hash.as_slice())
        .bind(now)
        .bind(poll_interval)
        .execute(pool)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// Claims an approved, live request for issuance inside `tx` (its tokens are written in
/// the same transaction); false when another poll claimed it first or it expired.
pub async fn claim_approved(
    tx: &mut Tx,
    device_code_hash: &[u8; 32],
    now: i64,
) -> Result<bool, StoreError> {
    const SQL: &str = "UPDATE device_codes SET status = 'issued', last_polled_at = $2 \
        WHERE device_code_hash = $1 AND status = 'approved' AND expires_at >= $2";
    let n = in_tx!(tx, |c| sqlx::query(SQL)
        .bind(device_code_hash.as_slice())
        .bind(now)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}
