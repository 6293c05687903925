//! Back-channel logout (OpenID Connect Back-Channel Logout 1.0): which clients received an
//! ID token in a live session, and the logout tokens owed to them once it ends. A delivery
//! row is written by the transaction that ends the session, at most one per session and
//! client (the primary key), and claimed by any process's dispatcher as email is: a claim
//! pushes `next_attempt_at` past a lease, and on PostgreSQL `FOR UPDATE SKIP LOCKED` keeps
//! two replicas from claiming one row at once.

use super::delivery::Queue;

use super::{Db, Store, StoreError, Tx, in_tx, read, write};

/// A claimed delivery, with the attempt this claim counts as.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DueLogout {
    /// The session that ended.
    pub sid: String,
    /// The client to tell.
    pub client_id: String,
    /// The session's user (the token's `sub`).
    pub user_id: String,
    /// The logout token's `jti`, the same in every attempt.
    pub jti: String,
    /// Attempts including this one.
    pub attempts: i64,
    /// When the session ended.
    pub created_at: i64,
}

/// Records, inside the transaction that issues an ID token of session `sid` to
/// `client_id`, that the client is to be told when the session ends. A session that has
/// already ended (it ended while the code was on its way) is told at once.
///
/// A client already recorded needs nothing more: a session ending meanwhile finds it and
/// tells it. Otherwise, on PostgreSQL, the session's row is share-locked (`FOR KEY SHARE`,
/// which only an ending's `DELETE` waits for), so that an ending either committed before
/// and is seen here, or comes after and sees this client. Redemptions of one session do
/// not wait for each other.
pub async fn joined(
    tx: &mut Tx,
    sid: &str,
    client_id: &str,
    user_id: &str,
    now: i64,
) -> Result<(), StoreError> {
    const KNOWN: &str = "SELECT 1 FROM session_clients WHERE sid = $1 AND client_id = $2";
    const LIVE_SQLITE: &str = "SELECT 1 FROM sessions WHERE sid = $1 AND expires_at > $2";
    const LIVE_POSTGRES: &str =
        "SELECT 1 FROM sessions WHERE sid = $1 AND expires_at > $2 FOR KEY SHARE";
    const JOIN: &str = "INSERT INTO session_clients (sid, client_id, user_id, created_at) \
        VALUES ($1, $2, $3, $4) ON CONFLICT (sid, client_id) DO NOTHING";
    let known: Option<i32> = in_tx!(tx, |c| sqlx::query_scalar(KNOWN)
        .bind(sid)
        .bind(client_id)
        .fetch_optional(&mut *c)
        .await)?;
    if known.is_some() {
        return Ok(());
    }
    let live_sql = match tx {
        Tx::Sqlite(_) => LIVE_SQLITE,
        Tx::Postgres(_) => LIVE_POSTGRES,
    };
    let live: Option<i32> = in_tx!(tx, |c| sqlx::query_scalar(live_sql)
        .bind(sid)
        .bind(now)
        .fetch_optional(&mut *c)
        .await)?;
    if live.is_some() {
        in_tx!(tx, |c| sqlx::query(JOIN)
            .bind(sid)
            .bind(client_id)
            .bind(user_id)
            .bind(now)
            .execute(&mut *c)
            .await
            .map(|_| ()))?;
        return Ok(());
    }
    owe(tx, sid, &[(client_id.to_owned(), user_id.to_owned())], now).await
}

/// Queues, inside the transaction that ends sessions `sids`, a logout token for each
/// client that received an ID token in one of them and registered a back-channel logout
/// URI. Returns how many were queued.
pub async fn ended(tx: &mut Tx, sids: &[String], now: i64) -> Result<usize, StoreError> {
    const CLIENTS: &str = "SELECT s.client_id, s.user_id FROM session_clients s \
        JOIN clients c ON c.id = s.client_id \
        WHERE s.sid = $1 AND c.backchannel_logout_uri IS NOT NULL";
    const FORGET: &str = "DELETE FROM session_clients WHERE sid = $1";
    let mut queued = 0;
    for sid in sids {
        let clients: Vec<(String, String)> = in_tx!(tx, |c| sqlx::query_as(CLIENTS)
            .bind(sid)
            .fetch_all(&mut *c)
            .await)?;
        queued += clients.len();
        owe(tx, sid, &clients, now).await?;
        in_tx!(tx, |c| sqlx::query(FORGET)
            .bind(sid)
            .execute(&mut *c)
            .await
            .map(|_| ()))?;
    }
    Ok(queued)
}

/// A delivery for each `(client_id, user_id)` of `sid` whose client has a back-channel
/// logout URI; one that exists already stays as it is (at most once per session and
/// client).
async fn owe(
    tx: &mut Tx,
    sid: &str,
    clients: &[(String, String)],
    now: i64,
) -> Result<(), StoreError> {
    const SQL: &str = "INSERT INTO logout_deliveries \
        (sid, client_id, user_id, jti, next_attempt_at, created_at) \
        SELECT $1, c.id, $3, $4, $5, $5 FROM clients c \
        WHERE c.id = $2 AND c.backchannel_logout_uri IS NOT NULL \
        ON CONFLICT (sid, client_id) DO NOTHING";
    for (client_id, user_id) in clients {
        in_tx!(tx, |c| sqlx::query(SQL)
            .bind(sid)
            .bind(client_id)
            .bind(user_id)
            .bind(crate::oauth::secret::token_id())
            .bind(now)
            .execute(&mut *c)
            .await
            .map(|_| ()))?;
    }
    Ok(())
}

/// The clients that received an ID token in each session of `user_id`: `(sid,
/// client_id)`, by client id.
pub async fn clients_of_user(
    store: &Store,
    user_id: &str,
) -> Result<Vec<(String, String)>, StoreError> {
    const SQL: &str =
        "SELECT sid, client_id FROM session_clients WHERE user_id = $1 ORDER BY client_id";
    Ok(read!(store, |pool| sqlx::query_as(SQL)
        .bind(user_id)
        .fetch_all(pool)
        .await)?)
}

/// Claims up to `limit` due deliveries until `lease_until`.
pub async fn claim_due(
    store: &Store,
    now: i64,
    lease_until: i64,
    limit: i64,
) -> Result<Vec<DueLogout>, StoreError> {
    const SQLITE: &str = "UPDATE logout_deliveries SET attempts = attempts + 1, next_attempt_at = $2 \
        WHERE (sid, client_id) IN (SELECT sid, client_id FROM logout_deliveries \
          WHERE status = 'queued' AND next_attempt_at <= $1 ORDER BY next_attempt_at LIMIT $3) \
        RETURNING sid, client_id, user_id, jti, attempts, created_at";
    const POSTGRES: &str = "UPDATE logout_deliveries SET attempts = attempts + 1, next_attempt_at = $2 \
        WHERE (sid, client_id) IN (SELECT sid, client_id FROM logout_deliveries \
          WHERE status = 'queued' AND next_attempt_at <= $1 ORDER BY next_attempt_at LIMIT $3 \
          FOR UPDATE SKIP LOCKED) \
        RETURNING sid, client_id, user_id, jti, attempts, created_at";
    let sql = match store.db {
        Db::Sqlite { .. } => SQLITE,
        Db::Postgres(_) => POSTGRES,
    };
    Ok(write!(store, |pool| sqlx::query_as(sql)
        .bind(now)
        .bind(lease_until)
        .bind(limit)
        .fetch_all(pool)
        .await)?)
}

/// The deliveries as a queue, a row named by its token's `jti`.
const QUEUE: Queue = Queue {
    table: "logout_deliveries",
    key: "jti",
};

/// Marks deliveries done (the client answered 2xx).
pub async fn mark_sent(store: &Store, jtis: &[&str], now: i64) -> Result<(), StoreError> {
    QUEUE.mark_sent(store, jtis, now).await
}

/// Records a failed attempt: retried at `next_attempt_at`, or, with `None`, given up.
pub async fn mark_failed_attempt(
    store: &Store,
    jti: &str,
    next_attempt_at: Option<i64>,
    error: &str,
) -> Result<(), StoreError> {
    QUEUE
        .mark_failed_attempt(store, jti, next_attempt_at, error)
        .await
}

/// Deliveries waiting or retrying.
pub async fn queued(store: &Store) -> Result<i64, StoreError> {
    QUEUE.queued(store).await
}

/// Forgets the clients of sessions that are gone (expired ones: an expiry is not told).
/// Finished deliveries are pruned by `store::prune`.
pub async fn forget_orphans(store: &Store) -> Result<u64, StoreError> {
    const ORPHANS: &str = "DELETE FROM session_clients WHERE NOT EXISTS \
        (SELECT 1 FROM sessions s WHERE s.sid = session_clients.sid)";
    Ok(write!(store, |pool| sqlx::query(ORPHANS)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?)
}
