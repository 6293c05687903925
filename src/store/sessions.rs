//! Signed-in browser sessions (the cookie's SHA-256 is the key) and sign-in throttling.

use super::{Store, StoreError, write};

/// A stored session.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    /// The user signed in.
    pub user_id: String,
    /// When they entered their password (OpenID Connect `auth_time`).
    pub auth_time: i64,
    /// When the session ends.
    pub expires_at: i64,
    /// The session's id towards clients (OpenID Connect `sid`): random, and unlike the
    /// cookie's value no secret.
    pub sid: String,
}

/// Stores a new session and ends the one it replaces (rotation at sign-in), atomically.
/// The same user signing in again before it expired continues the session under its
/// `sid`, which this returns; a different user ends it, and its clients are told.
pub async fn insert(
    store: &Store,
    id_hash: &[u8; 32],
    replaces: Option<&[u8; 32]>,
    row: &SessionRow,
    now: i64,
) -> Result<String, StoreError> {
    const DELETE: &str =
        "DELETE FROM sessions WHERE id_hash = $1 RETURNING user_id, sid, expires_at";
    const INSERT: &str = "INSERT INTO sessions (id_hash, user_id, auth_time, created_at, expires_at, sid) \
        VALUES ($1, $2, $3, $4, $5, $6)";
    let mut tx = store.begin().await?;
    let mut sid = row.sid.clone();
    if let Some(old) = replaces {
        let ended: Option<(String, String, i64)> =
            super::in_tx!(&mut tx, |c| sqlx::query_as(DELETE)
                .bind(old.as_slice())
                .fetch_optional(&mut *c)
                .await)?;
        match ended {
            Some((user_id, old_sid, expires_at)) if user_id == row.user_id && expires_at > now => {
                sid = old_sid;
            }
            // An expired session ended silently (cleanup forgets its clients).
            Some((_, _, expires_at)) if expires_at <= now => {}
            Some((_, old_sid, _)) => {
                super::logouts::ended(&mut tx, &[old_sid], now).await?;
            }
            None => {}
        }
    }
    super::in_tx!(&mut tx, |c| sqlx::query(INSERT)
        .bind(id_hash.as_slice())
        .bind(&row.user_id)
        .bind(row.auth_time)
        .bind(now)
        .bind(row.expires_at)
        .bind(&sid)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
    tx.commit().await?;
    Ok(sid)
}

/// The live session with this hash, if any (an expired one counts as absent).
pub async fn get(
    store: &Store,
    id_hash: &[u8; 32],
    now: i64,
) -> Result<Option<SessionRow>, StoreError> {
    const SQL: &str = "SELECT s.user_id, s.auth_time, s.expires_at, s.sid FROM sessions s \
        JOIN users u ON u.id = s.user_id WHERE s.id_hash = $1 AND s.expires_at > $2 AND u.enabled";
    Ok(super::read!(store, |pool| sqlx::query_as(SQL)
        .bind(id_hash.as_slice())
        .bind(now)
        .fetch_optional(pool)
        .await)?)
}

/// Ends every session of a user (or, with `sid`, that one), inside `tx`, and queues the
/// logout tokens their clients are owed. Returns the sessions ended.
pub async fn delete_for_user(
    tx: &mut super::Tx,
    user_id: &str,
    sid: Option<&str>,
    now: i64,
) -> Result<u64, StoreError> {
    const ALL: &str = "DELETE FROM sessions WHERE user_id = $1 RETURNING sid";
    const ONE: &str = "DELETE FROM sessions WHERE user_id = $1 AND sid = $2 RETURNING sid";
    let sids: Vec<String> = super::in_tx!(tx, |c| match sid {
        None =>
            sqlx::query_scalar(ALL)
                .bind(user_id)
                .fetch_all(&mut *c)
                .await,
        Some(sid) => {
            sqlx::query_scalar(ONE)
                .bind(user_id)
                .bind(sid)
                .fetch_all(&mut *c)
                .await
        }
    })?;
    super::logouts::ended(tx, &sids, now).await?;
    Ok(sids.len() as u64)
}

/// Ends a session, and queues the logout tokens its clients are owed.
pub async fn delete(store: &Store, id_hash: &[u8; 32], now: i64) -> Result<(), StoreError> {
    const SQL: &str = "DELETE FROM sessions WHERE id_hash = $1 RETURNING sid";
    let mut tx = store.begin().await?;
    let sids: Vec<String> = super::in_tx!(&mut tx, |c| sqlx::query_scalar(SQL)
        .bind(id_hash.as_slice())
        .fetch_all(&mut *c)
        .await)?;
    super::logouts::ended(&mut tx, &sids, now).await?;
    tx.commit().await
}

/// A user's live sessions, newest first.
pub async fn for_user(
    store: &Store,
    user_id: &str,
    now: i64,
) -> Result<Vec<SessionRow>, StoreError> {
    const SQL: &str = "SELECT user_id, auth_time, expires_at, sid FROM sessions \
        WHERE user_id = $1 AND expires_at > $2 ORDER BY auth_time DESC, sid";
    Ok(super::read!(store, |pool| sqlx::query_as(SQL)
        .bind(user_id)
        .bind(now)
        .fetch_all(pool)
        .await)?)
}

/// The state of one throttle key.
#[derive(Debug, Clone, Copy, Default, sqlx::FromRow)]
pub struct Throttle {
    /// Failures in the current window.
    pub failures: i64,
    /// Start of the window.
    pub window_start: i64,
    /// Locked until then (no attempt is checked before).
    pub locked_until: Option<i64>,
}

/// The throttle states of `keys` (absent keys are left out).
pub async fn throttles(
    store: &Store,
    keys: &[&str],
) -> Result<Vec<(String, Throttle)>, StoreError> {
    const SQL: &str = "SELECT failures, window_start, locked_until FROM login_failures \
        WHERE throttle_key = $1";
    let mut found = Vec::with_capacity(keys.len());
    for key in keys {
        let row: Option<Throttle> = super::read!(store, |pool| sqlx::query_as(SQL)
            .bind(*key)
            .fetch_optional(pool)
            .await)?;
        if let Some(row) = row {
            found.push(((*key).to_owned(), row));
        }
    }
    Ok(found)
}

/// Counts one attempt for each `(key, lock_after)` (a failure until it is refunded): a
/// window older than `window`, or one whose lock has ended, starts over; reaching
/// `lock_after` locks the key until `now + lock_secs`. Returns each key's new state, in the
/// order given.
///
/// All keys are counted in one transaction that takes their rows in one global order
/// (sorted by key), so that concurrent attempts on every replica see every key's count
/// in the same sequence: the n-th attempt is the n-th of each key it shares. Counted one
/// by one, two attempts could each be past the limit of a different key, and fewer than
/// the limit would be checked.
pub async fn record_failures(
    store: &Store,
    keys: &[(&str, i64)],
    now: i64,
    window: i64,
    lock_secs: i64,
) -> Result<Vec<Throttle>, StoreError> {
    const SQL: &str = "INSERT INTO login_failures AS f (throttle_key, failures, window_start, locked_until) \
        VALUES ($1, 1, $2, CASE WHEN 1 >= $4 THEN $2 + $5 ELSE NULL END) \
        ON CONFLICT (throttle_key) DO UPDATE SET \
          failures = CASE WHEN f.window_start <= $2 - $3 OR f.locked_until <= $2 THEN 1 \
                     ELSE f.failures + 1 END, \
          window_start = CASE WHEN f.window_start <= $2 - $3 OR f.locked_until <= $2 THEN $2 \
                         ELSE f.window_start END, \
          locked_until = CASE WHEN f.window_start <= $2 - $3 OR f.locked_until <= $2 THEN \
                           CASE WHEN 1 >= $4 THEN $2 + $5 ELSE NULL END \
                         WHEN f.failures + 1 >= $4 AND f.locked_until IS NULL THEN $2 + $5 \
                         ELSE f.locked_until END \
        RETURNING failures, window_start, locked_until";
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by_key(|&i| keys[i].0);
    let mut counted = vec![Throttle::default(); keys.len()];
    let mut tx = store.begin().await?;
    for i in order {
        let (key, lock_after) = keys[i];
        counted[i] = super::in_tx!(&mut tx, |c| sqlx::query_as(SQL)
            .bind(key)
            .bind(now)
            .bind(window)
            .bind(lock_after)
            .bind(lock_secs)
            .fetch_one(c)
            .await)?;
    }
    tx.commit().await?;
    Ok(counted)
}

/// Takes back one attempt of `key` that turned out right (it was counted beforehand).
pub async fn refund(store: &Store, key: &str) -> Result<(), StoreError> {
    const SQL: &str = "UPDATE login_failures SET failures = failures - 1 \
        WHERE throttle_key = $1 AND failures > 0";
    write!(store, |pool| sqlx::query(SQL)
        .bind(key)
        .execute(pool)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// Forgets the failures of `key` (after a successful sign-in).
pub async fn clear_failures(store: &Store, key: &str) -> Result<(), StoreError> {
    const SQL: &str = "DELETE FROM login_failures WHERE throttle_key = $1";
    write!(store, |pool| sqlx::query(SQL)
        .bind(key)
        .execute(pool)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// Deletes stale throttle rows (expired sessions are pruned by `store::prune`).
pub async fn forget_throttles(
    store: &Store,
    now: i64,
    stale_before: i64,
) -> Result<u64, StoreError> {
    const THROTTLES: &str = "DELETE FROM login_failures WHERE window_start < $1 \
        AND (locked_until IS NULL OR locked_until < $2)";
    Ok(write!(store, |pool| sqlx::query(THROTTLES)
        .bind(stale_before)
        .bind(now)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?)
}
