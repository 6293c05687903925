//! The change-event log: events appended inside the transaction of the change they
//! describe, read in replay order, pruned from the oldest end.
//!
//! Positions (`seq`) come from the `last_seq` counter, taken by [`append`] as the last
//! statement before COMMIT. The counter's row lock is held until the transaction ends, so
//! a later writer takes its positions only after the earlier one committed (or rolled
//! back, returning its positions with it): positions are dense and become visible in
//! order. A reader that has seen position N never sees a new event below N appear later.
//!
//! One row of `change_log` holds a transaction's events about one record (a composite
//! create's `case.created` and `case.line_items_added`): they share the record after the
//! change, which is stored once. The row is keyed by the position of its last event; the
//! readers here hand out single events.

use serde::{Deserialize, Serialize};
use sqlx::QueryBuilder;

use super::{Store, StoreError, Tx, in_tx, read, write};

/// One event of a change: what sets it apart from the change's other events.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Part {
    /// `case.created`, `case.updated` or `case.line_items_added`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// `CREATE` or `UPDATE`.
    pub change_type: String,
    /// The fields the event changed.
    pub changed_fields: Vec<String>,
}

/// A transaction's events about one record, to append: everything but their positions.
#[derive(Debug, Clone)]
pub struct NewChange {
    /// The events, in order (numbered 1, 2, … within the transaction).
    pub events: Vec<Part>,
    /// The kind of record (`case`).
    pub entity: &'static str,
    /// The record's id.
    pub record_id: String,
    /// Unix milliseconds.
    pub committed_at: i64,
    /// Shared by the events of one transaction.
    pub transaction_key: String,
    /// The subject of the token that made the change.
    pub commit_user: String,
    /// The client that made the change.
    pub client_id: String,
    /// The record's owner (who may read the events).
    pub owner_id: Option<String>,
    /// The client that created the record (who may read the events).
    pub created_by: String,
    /// The record after the change, as JSON.
    pub data: String,
}

/// An event as read back from the log.
#[derive(Debug, Clone)]
pub struct EventRow {
    /// Position in the log.
    pub seq: i64,
    /// The event type.
    pub event_type: String,
    /// The kind of record.
    pub entity: String,
    /// The record's id.
    pub record_id: String,
    /// `CREATE` or `UPDATE`.
    pub change_type: String,
    /// The fields the event changed.
    pub changed_fields: Vec<String>,
    /// Unix milliseconds.
    pub committed_at: i64,
    /// The transaction's key.
    pub transaction_key: String,
    /// Order within the transaction.
    pub sequence_number: i64,
    /// Who made the change.
    pub commit_user: String,
    /// Through which client.
    pub client_id: String,
    /// The record after the change (JSON).
    pub data: String,
}

/// A stored row: the events at positions `first_seq..=last_seq`.
#[derive(Debug, sqlx::FromRow)]
struct ChangeRow {
    last_seq: i64,
    first_seq: i64,
    first_number: i64,
    events: String,
    entity: String,
    record_id: String,
    committed_at: i64,
    transaction_key: String,
    commit_user: String,
    client_id: String,
    data: String,
}

impl ChangeRow {
    /// The row's events at positions for which `keep` holds, in order.
    fn expand(self, keep: impl Fn(i64) -> bool) -> Result<Vec<EventRow>, StoreError> {
        let parts = parts(&self.events, self.last_seq)?;
        let count = i64::try_from(parts.len()).unwrap_or(i64::MAX);
        if count != self.last_seq - self.first_seq + 1 {
            return Err(StoreError::Corrupt(format!(
                "change {} holds {count} events for positions {}..={}",
                self.last_seq, self.first_seq, self.last_seq
            )));
        }
        Ok((self.first_seq..)
            .zip(self.first_number..)
            .zip(parts)
            .filter(|((seq, _), _)| keep(*seq))
            .map(|((seq, number), part)| EventRow {
                seq,
                event_type: part.event_type,
                entity: self.entity.clone(),
                record_id: self.record_id.clone(),
                change_type: part.change_type,
                changed_fields: part.changed_fields,
                committed_at: self.committed_at,
                transaction_key: self.transaction_key.clone(),
                sequence_number: number,
                commit_user: self.commit_user.clone(),
                client_id: self.client_id.clone(),
                data: self.data.clone(),
            })
            .collect())
    }
}

/// A row's `events` column; `at` names the row in the error.
fn parts(events: &str, at: i64) -> Result<Vec<Part>, StoreError> {
    serde_json::from_str(events)
        .map_err(|e| StoreError::Corrupt(format!("change at {at} has invalid events: {e}")))
}

/// The events of `rows` at positions after `after`, at most `limit`, in order.
fn events_after(rows: Vec<ChangeRow>, after: i64, limit: i64) -> Result<Vec<EventRow>, StoreError> {
    let limit = usize::try_from(limit).unwrap_or(0);
    let mut events = Vec::new();
    for row in rows {
        if events.len() >= limit {
            break;
        }
        events.extend(row.expand(|seq| seq > after)?);
    }
    events.truncate(limit);
    Ok(events)
}

/// Which events a reader may see.
#[derive(Debug, Clone)]
pub enum EventScope {
    /// Every event (an integration the operator allows, or an administrator).
    All,
    /// Events of the cases this user owns.
    Owner(String),
    /// Events of the cases this client created.
    CreatedBy(String),
}

const COLUMNS: &str = "last_seq, first_seq, first_number, events, entity, record_id, \
    committed_at, transaction_key, commit_user, client_id, data";

/// Appends `changes` in order inside `tx` and returns the position of the last event.
/// Call it last, just before COMMIT: from here until the transaction ends, every other
/// writer of events waits.
pub async fn append(tx: &mut Tx, changes: &[NewChange]) -> Result<i64, StoreError> {
    let total: usize = changes.iter().map(|c| c.events.len()).sum();
    let n = i64::try_from(total).map_err(|_| StoreError::Corrupt("too many events".into()))?;
    const TAKE: &str =
        "UPDATE event_counters SET value = value + $1 WHERE name = 'last_seq' RETURNING value";
    let last: i64 = in_tx!(tx, |c| sqlx::query_scalar(TAKE)
        .bind(n)
        .fetch_one(&mut *c)
        .await)?;
    if n == 0 {
        return Ok(last);
    }
    // Each change's positions, in order: the first takes the first `len` after the
    // positions before this transaction's.
    let mut next = last - n + 1;
    let mut rows = Vec::with_capacity(changes.len());
    for change in changes.iter().filter(|c| !c.events.is_empty()) {
        let len = i64::try_from(change.events.len()).unwrap_or(i64::MAX);
        let events = serde_json::to_string(&change.events)
            .map_err(|e| StoreError::Corrupt(format!("events do not serialize: {e}")))?;
        rows.push((next, next + len - 1, events, change));
        next += len;
    }
    const HEAD: &str = "INSERT INTO change_log (last_seq, first_seq, first_number, events, \
        entity, record_id, committed_at, transaction_key, commit_user, client_id, owner_id, \
        created_by, data) ";
    // 13 values a row, within both backends' limits on bound values.
    for chunk in rows.chunks(2_000) {
        in_tx!(tx, |c| {
            let mut query = QueryBuilder::new(HEAD);
            query.push_values(chunk, |mut row, (first, last, events, change)| {
                row.push_bind(*last)
                    .push_bind(*first)
                    .push_bind(1_i64)
                    .push_bind(events)
                    .push_bind(change.entity)
                    .push_bind(&change.record_id)
                    .push_bind(change.committed_at)
                    .push_bind(&change.transaction_key)
                    .push_bind(&change.commit_user)
                    .push_bind(&change.client_id)
                    .push_bind(&change.owner_id)
                    .push_bind(&change.created_by)
                    .push_bind(&change.data);
            });
            query.build().execute(&mut *c).await.map(|_| ())
        })?;
    }
    Ok(last)
}

/// The log's bounds: the newest position taken and the newest position pruned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// The newest position (0: no event yet).
    pub last_seq: i64,
    /// Every position up to this one is gone (0: nothing pruned).
    pub pruned_through: i64,
}

/// The log's current bounds.
pub async fn bounds(store: &Store) -> Result<Bounds, StoreError> {
    const SQL: &str = "SELECT name, value FROM event_counters";
    let rows: Vec<(String, i64)> = read!(store, |pool| sqlx::query_as(SQL).fetch_all(pool).await)?;
    let value = |name: &str| {
        rows.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
            .ok_or_else(|| StoreError::Corrupt(format!("event counter {name} is missing")))
    };
    Ok(Bounds {
        last_seq: value("last_seq")?,
        pruned_through: value("pruned_through")?,
    })
}

/// Up to `limit` events after position `after` that `scope` may see, oldest first.
pub async fn after(
    store: &Store,
    scope: &EventScope,
    after: i64,
    limit: i64,
) -> Result<Vec<EventRow>, StoreError> {
    let (filter, who) = match scope {
        EventScope::All => ("", None),
        EventScope::Owner(user) => (" AND owner_id = $3", Some(user.as_str())),
        EventScope::CreatedBy(client) => (" AND created_by = $3", Some(client.as_str())),
    };
    // Every row holds at least one event: `limit` rows hold at least `limit` events.
    let sql = format!(
        "SELECT {COLUMNS} FROM change_log WHERE last_seq > $1{filter} ORDER BY last_seq LIMIT $2"
    );
    let rows: Vec<ChangeRow> = read!(store, |pool| {
        // Built from constants: nothing from a request.
        let query = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(after)
            .bind(limit);
        let query = match who {
            Some(who) => query.bind(who),
            None => query,
        };
        query.fetch_all(pool).await
    })?;
    events_after(rows, after, limit)
}

/// Up to `limit` events after position `after`, whoever they belong to (the publisher).
pub async fn after_all(store: &Store, from: i64, limit: i64) -> Result<Vec<EventRow>, StoreError> {
    after(store, &EventScope::All, from, limit).await
}

/// The positions after `after` and their event types, in order, from at most `rows` rows
/// of the log read in `tx` (the fan-out to webhooks).
pub async fn types_after(
    tx: &mut Tx,
    after: i64,
    rows: i64,
) -> Result<Vec<(i64, String)>, StoreError> {
    const SQL: &str = "SELECT first_seq, events FROM change_log WHERE last_seq > $1 \
        ORDER BY last_seq LIMIT $2";
    let rows: Vec<(i64, String)> = in_tx!(tx, |c| sqlx::query_as(SQL)
        .bind(after)
        .bind(rows)
        .fetch_all(&mut *c)
        .await)?;
    let mut out = Vec::new();
    for (first, events) in rows {
        let parts = parts(&events, first)?;
        out.extend(
            (first..)
                .zip(parts)
                .filter(|(seq, _)| *seq > after)
                .map(|(seq, part)| (seq, part.event_type)),
        );
    }
    Ok(out)
}

/// The events at some positions, whoever they belong to (those pruned are missing).
pub async fn by_seq(store: &Store, seqs: &[i64]) -> Result<Vec<EventRow>, StoreError> {
    if seqs.is_empty() {
        return Ok(Vec::new());
    }
    let mut wanted = seqs.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    let mut events = Vec::with_capacity(wanted.len());
    // The row holding position p is the first whose last position is at least p.
    for chunk in wanted.chunks(500) {
        let rows: Vec<ChangeRow> = read!(store, |pool| {
            let mut query = QueryBuilder::new(format!(
                "SELECT {COLUMNS} FROM change_log WHERE last_seq IN ("
            ));
            let mut list = query.separated(", ");
            for seq in chunk {
                list.push("(SELECT MIN(last_seq) FROM change_log WHERE last_seq >= ")
                    .push_bind_unseparated(*seq)
                    .push_unseparated(")");
            }
            query.push(")");
            query.build_query_as().fetch_all(pool).await
        })?;
        for row in rows {
            events.extend(row.expand(|seq| chunk.binary_search(&seq).is_ok())?);
        }
    }
    Ok(events)
}

/// One event by position, whoever it belongs to.
pub async fn get(store: &Store, seq: i64) -> Result<Option<EventRow>, StoreError> {
    Ok(by_seq(store, &[seq]).await?.into_iter().next())
}

/// Deletes the oldest events committed before `cutoff_ms` (Unix milliseconds), the
/// changes of at most `batch` rows, and never one at or after `keep_from` (an event a webhook
/// delivery or the publisher still needs). Only a prefix of the log goes, a change's
/// events together, so that `pruned_through` says exactly which positions are gone.
/// Returns how many rows (changes) went.
pub async fn prune_once(
    store: &Store,
    cutoff_ms: i64,
    keep_from: Option<i64>,
    batch: i64,
) -> Result<u64, StoreError> {
    const OLDEST: &str =
        "SELECT first_seq, last_seq, committed_at FROM change_log ORDER BY last_seq LIMIT $1";
    let oldest: Vec<(i64, i64, i64)> = read!(store, |pool| sqlx::query_as(OLDEST)
        .bind(batch)
        .fetch_all(pool)
        .await)?;
    let gone: Vec<&(i64, i64, i64)> = oldest
        .iter()
        .take_while(|(_, last, at)| *at < cutoff_ms && keep_from.is_none_or(|k| *last < k))
        .collect();
    let Some(through) = gone.last().map(|(_, last, _)| *last) else {
        return Ok(0);
    };
    let mut tx = store.begin().await?;
    const DELETE: &str = "DELETE FROM change_log WHERE last_seq <= $1";
    const MARK: &str = "UPDATE event_counters SET value = $1 \
        WHERE name = 'pruned_through' AND value < $1";
    in_tx!(&mut tx, |c| {
        sqlx::query(DELETE).bind(through).execute(&mut *c).await?;
        sqlx::query(MARK).bind(through).execute(&mut *c).await?;
        Ok::<_, sqlx::Error>(())
    })?;
    tx.commit().await?;
    Ok(gone.len() as u64)
}

/// The position relay `name` has published through and its lease (holder, until), if it
/// is registered; a read.
pub async fn relay(
    store: &Store,
    name: &str,
) -> Result<Option<(i64, Option<String>, Option<i64>)>, StoreError> {
    const SQL: &str = "SELECT last_seq, holder, held_until FROM event_relays WHERE name = $1";
    Ok(read!(store, |pool| sqlx::query_as(SQL)
        .bind(name)
        .fetch_optional(pool)
        .await)?)
}

/// The position a relay (a publisher) has published through, creating its row at the
/// log's current end when it has none: a relay configured today starts with today's events.
pub async fn relay_position(store: &Store, name: &str, now: i64) -> Result<i64, StoreError> {
    const INSERT: &str = "INSERT INTO event_relays (name, last_seq, updated_at) \
        SELECT $1, value, $2 FROM event_counters WHERE name = 'last_seq' \
        ON CONFLICT (name) DO NOTHING";
    const GET: &str = "SELECT last_seq FROM event_relays WHERE name = $1";
    Ok(write!(store, |pool| {
        sqlx::query(INSERT)
            .bind(name)
            .bind(now)
            .execute(pool)
            .await?;
        sqlx::query_scalar(GET).bind(name).fetch_one(pool).await
    })?)
}

/// Records that relay `name` published through `seq` (never moving it back).
pub async fn advance_relay(
    store: &Store,
    name: &str,
    seq: i64,
    now: i64,
) -> Result<(), StoreError> {
    const SQL: &str = "UPDATE event_relays SET last_seq = $2, updated_at = $3 \
        WHERE name = $1 AND last_seq < $2";
    write!(store, |pool| sqlx::query(SQL)
        .bind(name)
        .bind(seq)
        .bind(now)
        .execute(pool)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// The lowest position any relay still has to publish, if there is a relay.
pub async fn relays_need_from(store: &Store) -> Result<Option<i64>, StoreError> {
    const SQL: &str = "SELECT MIN(last_seq) + 1 FROM event_relays";
    Ok(read!(store, |pool| sqlx::query_scalar(SQL)
        .fetch_one(pool)
        .await)?)
}

/// Takes (or keeps) relay `name` for `holder` until `until`, unless another holder's
/// lease is still running at `now`; true when `holder` has it.
pub async fn hold_relay(
    store: &Store,
    name: &str,
    holder: &str,
    now: i64,
    until: i64,
) -> Result<bool, StoreError> {
    const SQL: &str = "UPDATE event_relays SET holder = $2, held_until = $4 \
        WHERE name = $1 AND (holder IS NULL OR holder = $2 OR held_until < $3)";
    let n = write!(store, |pool| sqlx::query(SQL)
        .bind(name)
        .bind(holder)
        .bind(now)
        .bind(until)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(n > 0)
}
