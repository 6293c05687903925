//! Retention: the tables that grow with traffic are pruned in bounded batches, so that a
//! backlog of a million rows never holds the database (SQLite's one writer above all) for
//! longer than one small statement: each batch deletes at most [`BATCH`] rows by key, then
//! the pruner pauses and writers go first.

use std::time::Duration;

use super::{Store, StoreError, write};

/// Rows deleted per statement.
pub const BATCH: i64 = 1000;
/// The pause between two batches.
const PAUSE: Duration = Duration::from_millis(5);

/// One table's retention rule: rows that match `expired` (`$1` = the rule's cut-off) go.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// The table.
    pub table: &'static str,
    /// The columns of its primary key.
    pub key: &'static str,
    /// Which rows have outlived their use, given the cut-off `$1`.
    pub expired: &'static str,
}

/// Audit events older than `audit_retention_days`.
pub const AUDIT: Rule = Rule {
    table: "audit_events",
    key: "id",
    expired: "at < $1",
};
/// Delivered or given-up email older than `mail_retention_days`.
pub const EMAIL: Rule = Rule {
    table: "email_outbox",
    key: "id",
    expired: "status <> 'queued' AND created_at < $1",
};
/// Daily API usage of days (`YYYY-MM-DD`) before `usage_retention_days`.
pub const USAGE: Rule = Rule {
    table: "api_usage",
    key: "client_id, subject, day",
    expired: "day < $1",
};
/// Authorization codes a day after they expired (a late replay is still recognised).
pub const CODES: Rule = Rule {
    table: "authorization_codes",
    key: "code_hash",
    expired: "expires_at < $1",
};
/// Refresh-token families (and, by cascade, their tokens) a day after they were revoked
/// or ended.
pub const FAMILIES: Rule = Rule {
    table: "refresh_families",
    key: "id",
    expired: "revoked_at < $1 OR (expires_at IS NOT NULL AND expires_at < $1)",
};
/// Browser sessions once expired.
pub const SESSIONS: Rule = Rule {
    table: "sessions",
    key: "id_hash",
    expired: "expires_at <= $1",
};
/// Revoked access tokens once they would have expired anyway.
pub const REVOCATIONS: Rule = Rule {
    table: "revoked_tokens",
    key: "jti",
    expired: "expires_at < $1",
};
/// Device codes a day after they expired (a late poll still hears why).
pub const DEVICE_CODES: Rule = Rule {
    table: "device_codes",
    key: "device_code_hash",
    expired: "expires_at < $1",
};
/// Pushed authorization requests once expired (RFC 9126).
pub const PUSHED_REQUESTS: Rule = Rule {
    table: "pushed_requests",
    key: "uri_hash",
    expired: "expires_at < $1",
};
/// Idempotency keys once expired (an unfinished one only once its claim lapsed too).
pub const IDEMPOTENCY: Rule = Rule {
    table: "idempotency_keys",
    key: "client_id, subject, idempotency_key",
    expired: "expires_at <= $1 AND (status IS NOT NULL OR claimed_until <= $1)",
};
/// Finished back-channel logout deliveries a day after the session ended (a late code of
/// that session finds the row, and no second token is sent).
pub const LOGOUTS: Rule = Rule {
    table: "logout_deliveries",
    key: "sid, client_id",
    expired: "status <> 'queued' AND created_at < $1",
};

/// Delivered or given-up webhook deliveries (and, by cascade, their attempts) once their
/// events are past retention.
pub const WEBHOOK_DELIVERIES: Rule = Rule {
    table: "webhook_deliveries",
    key: "id",
    expired: "status <> 'queued' AND created_at < $1",
};

/// A rule's cut-off: a Unix time, or a day for the tables that count by day.
#[derive(Debug, Clone)]
pub enum Cutoff {
    /// Unix seconds.
    Unix(i64),
    /// A UTC day, `YYYY-MM-DD`.
    Day(String),
}

/// Deletes the rows `rule` lets go before `cutoff`, `batch` at a time, pausing between
/// batches; returns how many went.
pub async fn prune(
    store: &Store,
    rule: &Rule,
    cutoff: &Cutoff,
    batch: i64,
) -> Result<u64, StoreError> {
    let sql = format!(
        "DELETE FROM {table} WHERE ({key}) IN \
         (SELECT {key} FROM {table} WHERE {expired} LIMIT {batch})",
        table = rule.table,
        key = rule.key,
        expired = rule.expired,
    );
    let mut total = 0;
    loop {
        let deleted = write!(store, |pool| {
            // Built from the static rule and a number: nothing from a request.
            let query = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
            let query = match cutoff {
                Cutoff::Unix(at) => query.bind(*at),
                Cutoff::Day(day) => query.bind(day.as_str()),
            };
            query.execute(pool).await.map(|r| r.rows_affected())
        })?;
        total += deleted;
        if deleted < u64::try_from(batch).unwrap_or(u64::MAX) {
            return Ok(total);
        }
        tokio::time::sleep(PAUSE).await;
    }
}
