//! Webhook endpoints, their deliveries (at most one per event and endpoint: the unique
//! key) and every attempt. Deliveries are queued by a fan-out that walks the event log
//! from each endpoint's cursor, and claimed, retried and marked as the email outbox is;
//! on PostgreSQL `FOR UPDATE SKIP LOCKED` keeps two replicas off one endpoint's fan-out
//! and off one delivery.

use sqlx::QueryBuilder;

use super::{Db, Store, StoreError, Tx, in_tx, read, write};

/// An endpoint as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EndpointRow {
    /// Id (UUIDv7).
    pub id: String,
    /// Where deliveries are POSTed.
    pub url: String,
    /// What it is for.
    pub description: Option<String>,
    /// A JSON array of event types (empty: every type).
    pub event_types: String,
    /// The signing secret, sealed under the master key.
    pub secret_sealed: Vec<u8>,
    /// The previous secret during a rotation.
    pub previous_secret_sealed: Option<Vec<u8>>,
    /// Until when the previous secret signs too (Unix seconds).
    pub previous_secret_until: Option<i64>,
    /// `active` or `disabled`.
    pub status: String,
    /// Why it was disabled.
    pub disabled_reason: Option<String>,
    /// The last event fanned out to it.
    pub cursor_seq: i64,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

const ENDPOINT_COLUMNS: &str = "id, url, description, event_types, secret_sealed, \
    previous_secret_sealed, previous_secret_until, status, disabled_reason, cursor_seq, \
    created_at, updated_at";

/// Registers an endpoint whose deliveries start with the next event committed.
pub async fn insert(store: &Store, e: &EndpointRow) -> Result<EndpointRow, StoreError> {
    let sql = format!(
        "INSERT INTO webhook_endpoints ({ENDPOINT_COLUMNS}) \
         SELECT $1, $2, $3, $4, $5, NULL, NULL, 'active', NULL, value, $6, $6 \
         FROM event_counters WHERE name = 'last_seq' RETURNING {ENDPOINT_COLUMNS}"
    );
    Ok(write!(store, |pool| sqlx::query_as(sqlx::AssertSqlSafe(
        sql.as_str()
    ))
    .bind(&e.id)
    .bind(&e.url)
    .bind(&e.description)
    .bind(&e.event_types)
    .bind(&e.secret_sealed)
    .bind(e.created_at)
    .fetch_one(pool)
    .await)?)
}

/// Every endpoint, oldest first.
pub async fn list(store: &Store) -> Result<Vec<EndpointRow>, StoreError> {
    let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints ORDER BY created_at, id");
    Ok(read!(store, |pool| sqlx::query_as(sqlx::AssertSqlSafe(
        sql.as_str()
    ))
    .fetch_all(pool)
    .await)?)
}

/// One endpoint.
pub async fn get(store: &Store, id: &str) -> Result<Option<EndpointRow>, StoreError> {
    let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1");
    Ok(read!(store, |pool| sqlx::query_as(sqlx::AssertSqlSafe(
        sql.as_str()
    ))
    .bind(id)
    .fetch_optional(pool)
    .await)?)
}

/// Disables (with a reason) or enables an endpoint; false if there is none. An endpoint
/// enabled again resumes where its deliveries stopped: what queued while it was disabled
/// goes out.
pub async fn set_status(
    store: &Store,
    id: &str,
    reason: Option<&str>,
    now: i64,
) -> Result<bool, StoreError> {
    const SQL: &str = "UPDATE webhook_endpoints SET status = $2, disabled_reason = $3, \
        updated_at = $4 WHERE id = $1";
    let status = if reason.is_some() {
        "disabled"
    } else {
        "active"
    };
    let n = write!(store, |pool| sqlx::query(SQL)
        .bind(id)
        .bind(status)
        .bind(reason)
        .bind(now)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(n > 0)
}

/// Replaces the signing secret; the previous one keeps signing until `previous_until`.
pub async fn rotate_secret(
    store: &Store,
    id: &str,
    sealed: &[u8],
    previous_until: i64,
    now: i64,
) -> Result<bool, StoreError> {
    const SQL: &str = "UPDATE webhook_endpoints SET previous_secret_sealed = secret_sealed, \
        previous_secret_until = $3, secret_sealed = $2, updated_at = $4 WHERE id = $1";
    let n = write!(store, |pool| sqlx::query(SQL)
        .bind(id)
        .bind(sealed)
        .bind(previous_until)
        .bind(now)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(n > 0)
}

/// Deletes an endpoint with its deliveries; false if there is none.
pub async fn delete(store: &Store, id: &str) -> Result<bool, StoreError> {
    const SQL: &str = "DELETE FROM webhook_endpoints WHERE id = $1";
    let n = write!(store, |pool| sqlx::query(SQL)
        .bind(id)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(n > 0)
}

/// Events fanned out per endpoint per round.
const FAN_OUT: i64 = 500;

/// What a fan-out round found and did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FanOut {
    /// Active endpoints (0: there is nothing to fan out to until one is registered).
    pub active: i64,
    /// Deliveries queued.
    pub queued: usize,
}

/// Queues a delivery of each new event to each active endpoint that wants its type, and
/// moves the endpoints' cursors past the events read.
/// `wanted` says whether an endpoint (its `event_types` JSON) wants an event type.
pub async fn fan_out(
    store: &Store,
    now: i64,
    wanted: impl Fn(&str, &str) -> bool,
) -> Result<FanOut, StoreError> {
    // A read first: with nothing to fan out (the usual case between commits, and always
    // without endpoints) no write transaction is opened, which on SQLite would hold the
    // one writer the requests need.
    const BEHIND: &str = "SELECT COUNT(*), COALESCE(SUM(CASE WHEN cursor_seq < \
        (SELECT value FROM event_counters WHERE name = 'last_seq') THEN 1 ELSE 0 END), 0) \
        FROM webhook_endpoints WHERE status = 'active'";
    let (active, behind): (i64, i64) =
        read!(store, |pool| sqlx::query_as(BEHIND).fetch_one(pool).await)?;
    if behind == 0 {
        return Ok(FanOut { active, queued: 0 });
    }
    let mut tx = store.begin().await?;
    let lock = match store.db {
        Db::Sqlite { .. } => "",
        Db::Postgres(_) => " FOR UPDATE SKIP LOCKED",
    };
    let sql = format!(
        "SELECT id, event_types, cursor_seq FROM webhook_endpoints \
         WHERE status = 'active' AND cursor_seq < \
           (SELECT value FROM event_counters WHERE name = 'last_seq') \
         ORDER BY id{lock}"
    );
    let endpoints: Vec<(String, String, i64)> = in_tx!(&mut tx, |c| sqlx::query_as(
        sqlx::AssertSqlSafe(sql.as_str())
    )
    .fetch_all(&mut *c)
    .await)?;
    let mut queued = 0;
    for (id, types, cursor) in endpoints {
        let events = super::events::types_after(&mut tx, cursor, FAN_OUT).await?;
        let Some(last) = events.last().map(|(seq, _)| *seq) else {
            continue;
        };
        let due: Vec<&(i64, String)> = events.iter().filter(|(_, t)| wanted(&types, t)).collect();
        for chunk in due.chunks(500) {
            in_tx!(&mut tx, |c| {
                let mut query = QueryBuilder::new(
                    "INSERT INTO webhook_deliveries (id, endpoint_id, event_seq, event_type, \
                     status, attempts, next_attempt_at, created_at) ",
                );
                query.push_values(chunk, |mut row, (seq, event_type)| {
                    row.push_bind(uuid::Uuid::now_v7().to_string())
                        .push_bind(&id)
                        .push_bind(*seq)
                        .push_bind(event_type)
                        .push("'queued'")
                        .push("0")
                        .push_bind(now)
                        .push_bind(now);
                });
                query.push(" ON CONFLICT (endpoint_id, event_seq) DO NOTHING");
                query.build().execute(&mut *c).await.map(|_| ())
            })?;
        }
        queued += due.len();
        const MOVE: &str = "UPDATE webhook_endpoints SET cursor_seq = $2 WHERE id = $1";
        in_tx!(&mut tx, |c| sqlx::query(MOVE)
            .bind(&id)
            .bind(last)
            .execute(&mut *c)
            .await
            .map(|_| ()))?;
    }
    tx.commit().await?;
    Ok(FanOut { active, queued })
}

/// A claimed delivery, with the attempt this claim counts as.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DueDelivery {
    /// Delivery id.
    pub id: String,
    /// The endpoint.
    pub endpoint_id: String,
    /// The event.
    pub event_seq: i64,
    /// Attempts including this one.
    pub attempts: i64,
    /// When it was queued.
    pub created_at: i64,
}

/// Claims up to `limit` due deliveries of active endpoints until `lease_until`.
pub async fn claim_due(
    store: &Store,
    now: i64,
    lease_until: i64,
    limit: i64,
) -> Result<Vec<DueDelivery>, StoreError> {
    // A read first, so that an idle relay never takes the writer (see `fan_out`).
    const ANY: &str = "SELECT COUNT(*) FROM (SELECT 1 FROM webhook_deliveries \
        WHERE status = 'queued' AND next_attempt_at <= $1 LIMIT 1) due";
    let any: i64 = read!(store, |pool| sqlx::query_scalar(ANY)
        .bind(now)
        .fetch_one(pool)
        .await)?;
    if any == 0 {
        return Ok(Vec::new());
    }
    let lock = match store.db {
        Db::Sqlite { .. } => "",
        Db::Postgres(_) => " FOR UPDATE OF d SKIP LOCKED",
    };
    let sql = format!(
        "UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_at = $2 \
         WHERE id IN (SELECT d.id FROM webhook_deliveries d \
           JOIN webhook_endpoints e ON e.id = d.endpoint_id \
           WHERE d.status = 'queued' AND d.next_attempt_at <= $1 AND e.status = 'active' \
           ORDER BY d.next_attempt_at, d.event_seq LIMIT $3{lock}) \
         RETURNING id, endpoint_id, event_seq, attempts, created_at"
    );
    Ok(write!(store, |pool| sqlx::query_as(sqlx::AssertSqlSafe(
        sql.as_str()
    ))
    .bind(now)
    .bind(lease_until)
    .bind(limit)
    .fetch_all(pool)
    .await)?)
}

/// What an attempt came to, for its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered.
    Sent,
    /// Failed; tried again at this time.
    Retry(i64),
    /// Failed for the last time.
    GiveUp,
}

/// One attempt as recorded.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AttemptRow {
    /// The delivery.
    pub delivery_id: String,
    /// 1, 2, …
    pub attempt: i64,
    /// Unix seconds.
    pub at: i64,
    /// The endpoint's HTTP status, if it answered.
    pub status_code: Option<i64>,
    /// What went wrong.
    pub error: Option<String>,
    /// How long it took.
    pub duration_ms: i64,
}

/// Records a round's attempts and what each came to, in one transaction: the attempts in
/// one statement, the delivered ones in another, a retry or a give-up each in its own.
pub async fn record_attempts(
    store: &Store,
    attempts: &[(AttemptRow, Outcome)],
) -> Result<(), StoreError> {
    if attempts.is_empty() {
        return Ok(());
    }
    let mut tx: Tx = store.begin().await?;
    for chunk in attempts.chunks(500) {
        in_tx!(&mut tx, |c| {
            let mut query = QueryBuilder::new(
                "INSERT INTO webhook_attempts (delivery_id, attempt, at, status_code, error, \
                 duration_ms) ",
            );
            query.push_values(chunk, |mut row, (a, _)| {
                row.push_bind(&a.delivery_id)
                    .push_bind(a.attempt)
                    .push_bind(a.at)
                    .push_bind(a.status_code)
                    .push_bind(&a.error)
                    .push_bind(a.duration_ms);
            });
            query.push(" ON CONFLICT (delivery_id, attempt) DO NOTHING");
            query.build().execute(&mut *c).await.map(|_| ())
        })?;
    }
    let sent: Vec<&AttemptRow> = attempts
        .iter()
        .filter(|(_, o)| *o == Outcome::Sent)
        .map(|(a, _)| a)
        .collect();
    for chunk in sent.chunks(500) {
        in_tx!(&mut tx, |c| {
            let mut query = QueryBuilder::new(
                "UPDATE webhook_deliveries SET status = 'sent', last_error = NULL, sent_at = ",
            );
            query.push_bind(chunk[0].at);
            query.push(" WHERE status = 'queued' AND id IN (");
            let mut list = query.separated(", ");
            for a in chunk {
                list.push_bind(a.delivery_id.as_str());
            }
            query.push(")");
            query.build().execute(&mut *c).await.map(|_| ())
        })?;
    }
    for (a, outcome) in attempts {
        let (sql, next) = match outcome {
            Outcome::Sent => continue,
            Outcome::Retry(at) => (
                "UPDATE webhook_deliveries SET next_attempt_at = $2, last_error = $3 \
                 WHERE id = $1 AND status = 'queued'",
                *at,
            ),
            Outcome::GiveUp => (
                "UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = $2, \
                 last_error = $3 WHERE id = $1 AND status = 'queued'",
                a.at,
            ),
        };
        in_tx!(&mut tx, |c| sqlx::query(sql)
            .bind(&a.delivery_id)
            .bind(next)
            .bind(&a.error)
            .execute(&mut *c)
            .await
            .map(|_| ()))?;
    }
    tx.commit().await?;
    Ok(())
}

/// A delivery as the admin API shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeliveryRow {
    /// Id.
    pub id: String,
    /// The endpoint.
    pub endpoint_id: String,
    /// The event's position.
    pub event_seq: i64,
    /// The event's type.
    pub event_type: String,
    /// queued, sent or failed.
    pub status: String,
    /// Attempts so far.
    pub attempts: i64,
    /// When the next attempt is due (queued).
    pub next_attempt_at: i64,
    /// The last failure.
    pub last_error: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// When it was delivered.
    pub sent_at: Option<i64>,
}

const DELIVERY_COLUMNS: &str = "id, endpoint_id, event_seq, event_type, status, attempts, \
    next_attempt_at, last_error, created_at, sent_at";

/// An endpoint's deliveries, newest first, `limit` after the delivery id `before`.
pub async fn deliveries(
    store: &Store,
    endpoint_id: &str,
    status: Option<&str>,
    before: Option<&str>,
    limit: i64,
) -> Result<Vec<DeliveryRow>, StoreError> {
    Ok(read!(store, |pool| {
        let mut query = QueryBuilder::new(format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE endpoint_id = "
        ));
        query.push_bind(endpoint_id);
        if let Some(status) = status {
            query.push(" AND status = ").push_bind(status);
        }
        if let Some(before) = before {
            query.push(" AND id < ").push_bind(before);
        }
        query.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
        query.build_query_as().fetch_all(pool).await
    })?)
}

/// The attempts of some deliveries, in order.
pub async fn attempts(store: &Store, ids: &[String]) -> Result<Vec<AttemptRow>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(read!(store, |pool| {
        let mut query = QueryBuilder::new(
            "SELECT delivery_id, attempt, at, status_code, error, duration_ms \
             FROM webhook_attempts WHERE delivery_id IN (",
        );
        let mut list = query.separated(", ");
        for id in ids {
            list.push_bind(id.as_str());
        }
        query.push(") ORDER BY delivery_id, attempt");
        query.build_query_as().fetch_all(pool).await
    })?)
}

/// Queues a delivery of an endpoint again, due now (whatever its state); false if the
/// endpoint has no such delivery.
pub async fn redeliver(
    store: &Store,
    endpoint_id: &str,
    delivery_id: &str,
    now: i64,
) -> Result<bool, StoreError> {
    const SQL: &str = "UPDATE webhook_deliveries SET status = 'queued', next_attempt_at = $3, \
        sent_at = NULL WHERE id = $1 AND endpoint_id = $2";
    let n = write!(store, |pool| sqlx::query(SQL)
        .bind(delivery_id)
        .bind(endpoint_id)
        .bind(now)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(n > 0)
}

/// The oldest event a queued delivery still needs (retention keeps it and everything after).
pub async fn oldest_queued_event(store: &Store) -> Result<Option<i64>, StoreError> {
    const SQL: &str = "SELECT MIN(event_seq) FROM webhook_deliveries WHERE status = 'queued'";
    Ok(read!(store, |pool| sqlx::query_scalar(SQL)
        .fetch_one(pool)
        .await)?)
}

/// Deliveries waiting or retrying.
pub async fn queued(store: &Store) -> Result<i64, StoreError> {
    const SQL: &str = "SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'queued'";
    Ok(read!(store, |pool| sqlx::query_scalar(SQL)
        .fetch_one(pool)
        .await)?)
}
