//! The email outbox: rows written by the transactions that need an email, claimed and
//! marked by the dispatcher. A claim pushes `next_attempt_at` past a lease, so a row whose
//! dispatcher died comes due again (at least once); on PostgreSQL `FOR UPDATE SKIP LOCKED`
//! keeps two replicas from claiming one row at the same moment.

use super::delivery::Queue;

use super::{Db, Store, StoreError, write};

/// A claimed email, with the attempt this claim counts as.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DueEmail {
    /// Outbox row id.
    pub id: String,
    /// The case it tells about.
    pub case_id: Option<String>,
    /// Recipient address.
    pub recipient: String,
    /// Template name.
    pub template: String,
    /// The Message-ID of every attempt.
    pub message_id: String,
    /// Attempts including this one.
    pub attempts: i64,
    /// When it was queued.
    pub created_at: i64,
}

/// Claims up to `limit` due emails until `lease_until`.
pub async fn claim_due(
    store: &Store,
    now: i64,
    lease_until: i64,
    limit: i64,
) -> Result<Vec<DueEmail>, StoreError> {
    const SQLITE: &str = "UPDATE email_outbox SET attempts = attempts + 1, next_attempt_at = $2 \
        WHERE id IN (SELECT id FROM email_outbox WHERE status = 'queued' AND next_attempt_at <= $1 \
          ORDER BY next_attempt_at, id LIMIT $3) \
        RETURNING id, case_id, recipient, template, message_id, attempts, created_at";
    const POSTGRES: &str = "UPDATE email_outbox SET attempts = attempts + 1, next_attempt_at = $2 \
        WHERE id IN (SELECT id FROM email_outbox WHERE status = 'queued' AND next_attempt_at <= $1 \
          ORDER BY next_attempt_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) \
        RETURNING id, case_id, recipient, template, message_id, attempts, created_at";
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

/// The outbox as a delivery queue.
const QUEUE: Queue = Queue {
    table: "email_outbox",
    key: "id",
};

/// Marks emails delivered.
pub async fn mark_sent(store: &Store, ids: &[String], now: i64) -> Result<(), StoreError> {
    QUEUE.mark_sent(store, ids, now).await
}

/// Records a failed attempt: retried at `next_attempt_at`, or, with `None`, given up.
pub async fn mark_failed_attempt(
    store: &Store,
    id: &str,
    next_attempt_at: Option<i64>,
    error: &str,
) -> Result<(), StoreError> {
    QUEUE
        .mark_failed_attempt(store, id, next_attempt_at, error)
        .await
}

/// Emails waiting or retrying.
pub async fn queued(store: &Store) -> Result<i64, StoreError> {
    QUEUE.queued(store).await
}

/// Takes one of the day's `limit` notifications of a caller (a client and a subject):
/// false when they are spent. One statement, so that concurrent requests on every replica
/// never take more than `limit`.
pub async fn take_mail_quota(
    store: &Store,
    client_id: &str,
    subject: &str,
    day: i64,
    limit: i64,
) -> Result<bool, StoreError> {
    const SQL: &str = "INSERT INTO mail_quota AS q (client_id, subject, day, queued) \
        VALUES ($1, $2, $3, 1) ON CONFLICT (client_id, subject, day) \
        DO UPDATE SET queued = q.queued + 1 WHERE q.queued < $4 RETURNING queued";
    let taken: Option<i64> = write!(store, |pool| sqlx::query_scalar(SQL)
        .bind(client_id)
        .bind(subject)
        .bind(day)
        .bind(limit)
        .fetch_optional(pool)
        .await)?;
    Ok(taken.is_some_and(|n| n <= limit))
}

/// Forgets the notification counts of days before `day`.
pub async fn forget_mail_quota(store: &Store, day: i64) -> Result<u64, StoreError> {
    const SQL: &str = "DELETE FROM mail_quota WHERE day < $1";
    Ok(write!(store, |pool| sqlx::query(SQL)
        .bind(day)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?)
}
