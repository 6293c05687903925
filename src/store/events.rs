//! The change-event log: events appended inside the transaction of the change they
//! describe, read in replay order, pruned from the oldest end.
//!
//! Positions (`seq`) come from the `last_seq` counter, taken by [`append`] as the last
//! statement before COMMIT. The counter's row lock is held until the transaction ends, so
//! a later writer takes its positions only after the earlier one committed (or rolled
//! back, returning its positions with it): positions are dense and become visible in
//! order. A reader that has seen position N never sees a new event below N appear later.

use sqlx::QueryBuilder;

use super::{Store, StoreError, Tx, in_tx, read, write};

/// An event to append: everything but its position.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// `case.created`, `case.updated` or `case.line_items_added`.
    pub event_type: &'static str,
    /// The kind of record (`case`).
    pub entity: &'static str,
    /// The record's id.
    pub record_id: String,
    /// `CREATE` or `UPDATE`.
    pub change_type: &'static str,
    /// The changed fields, as a JSON array.
    pub changed_fields: String,
    /// Unix milliseconds.
    pub committed_at: i64,
    /// Shared by the events of one transaction.
    pub transaction_key: String,
    /// 1, 2, … within the transaction.
    pub sequence_number: i64,
    /// The subject of the token that made the change.
    pub commit_user: String,
    /// The client that made the change.
    pub client_id: String,
    /// The record's owner (who may read the event).
    pub owner_id: Option<String>,
    /// The client that created the record (who may read the event).
    pub created_by: String,
    /// The record after the change, as JSON.
    pub data: String,
}

/// An event as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    /// Position in the log.
    pub seq: i64,
    /// The event type.
    #[sqlx(rename = "type")]
    pub event_type: String,
    /// The kind of record.
    pub entity: String,
    /// The record's id.
    pub record_id: String,
    /// `CREATE` or `UPDATE`.
    pub change_type: String,
    /// A JSON array.
    pub changed_fields: String,
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

const COLUMNS: &str = "seq, type, entity, record_id, change_type, changed_fields, \
    committed_at, transaction_key, sequence_number, commit_user, client_id, data";

/// Appends `events` in order inside `tx` and returns the position of the last one. Call
/// it last, just before COMMIT: from here until the transaction ends, every other writer
/// of events waits.
pub async fn append(tx: &mut Tx, events: &[NewEvent]) -> Result<i64, StoreError> {
    let n =
        i64::try_from(events.len()).map_err(|_| StoreError::Corrupt("too many events".into()))?;
    const TAKE: &str =
        "UPDATE event_counters SET value = value + $1 WHERE name = 'last_seq' RETURNING value";
    let last: i64 = in_tx!(tx, |c| sqlx::query_scalar(TAKE)
        .bind(n)
        .fetch_one(&mut *c)
        .await)?;
    if n == 0 {
        return Ok(last);
    }
    let first = last - n + 1;
    const HEAD: &str = "INSERT INTO change_events (seq, type, entity, record_id, change_type, \
        changed_fields, committed_at, transaction_key, sequence_number, commit_user, client_id, \
        owner_id, created_by, data) ";
    // 14 values a row, within both backends' limits on bound values.
    for (k, chunk) in events.chunks(2_000).enumerate() {
        let base = first + (k * 2_000) as i64;
        in_tx!(tx, |c| {
            let mut query = QueryBuilder::new(HEAD);
            query.push_values(chunk.iter().enumerate(), |mut row, (i, e)| {
                row.push_bind(base + i as i64)
                    .push_bind(e.event_type)
                    .push_bind(e.entity)
                    .push_bind(&e.record_id)
                    .push_bind(e.change_type)
                    .push_bind(&e.changed_fields)
                    .push_bind(e.committed_at)
                    .push_bind(&e.transaction_key)
                    .push_bind(e.sequence_number)
                    .push_bind(&e.commit_user)
                    .push_bind(&e.client_id)
                    .push_bind(&e.owner_id)
                    .push_bind(&e.created_by)
                    .push_bind(&e.data);
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
    let sql =
        format!("SELECT {COLUMNS} FROM change_events WHERE seq > $1{filter} ORDER BY seq LIMIT $2");
    Ok(read!(store, |pool| {
        // Built from constants: nothing from a request.
        let query = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(after)
            .bind(limit);
        let query = match who {
            Some(who) => query.bind(who),
            None => query,
        };
        query.fetch_all(pool).await
    })?)
}

/// Up to `limit` events after position `after` whose type is one of `types` (every type
/// when empty), whoever they belong to: the fan-out to webhooks and the publisher.
pub async fn after_of_types(
    store: &Store,
    after: i64,
    types: &[String],
    limit: i64,
) -> Result<Vec<EventRow>, StoreError> {
    Ok(read!(store, |pool| {
        let mut query =
            QueryBuilder::new(format!("SELECT {COLUMNS} FROM change_events WHERE seq > "));
        query.push_bind(after);
        if !types.is_empty() {
            query.push(" AND type IN (");
            let mut list = query.separated(", ");
            for t in types {
                list.push_bind(t.as_str());
            }
            query.push(")");
        }
        query.push(" ORDER BY seq LIMIT ").push_bind(limit);
        query.build_query_as().fetch_all(pool).await
    })?)
}

/// The events at some positions, whoever they belong to (those pruned are missing).
pub async fn by_seq(store: &Store, seqs: &[i64]) -> Result<Vec<EventRow>, StoreError> {
    if seqs.is_empty() {
        return Ok(Vec::new());
    }
    Ok(read!(store, |pool| {
        let mut query = QueryBuilder::new(format!(
            "SELECT {COLUMNS} FROM change_events WHERE seq IN ("
        ));
        let mut list = query.separated(", ");
        for seq in seqs {
            list.push_bind(*seq);
        }
        query.push(")");
        query.build_query_as().fetch_all(pool).await
    })?)
}

/// One event by position, whoever it belongs to.
pub async fn get(store: &Store, seq: i64) -> Result<Option<EventRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM change_events WHERE seq = $1");
    Ok(read!(store, |pool| sqlx::query_as(sqlx::AssertSqlSafe(
        sql.as_str()
    ))
    .bind(seq)
    .fetch_optional(pool)
    .await)?)
}

/// Deletes the oldest events committed before `cutoff_ms` (Unix milliseconds), at most
/// `batch` of them, and never one at or after `keep_from` (an event a webhook delivery or
/// the publisher still needs). Only a prefix of the log goes, so that `pruned_through`
/// says exactly which positions are gone. Returns how many went.
pub async fn prune_once(
    store: &Store,
    cutoff_ms: i64,
    keep_from: Option<i64>,
    batch: i64,
) -> Result<u64, StoreError> {
    const OLDEST: &str = "SELECT seq, committed_at FROM change_events ORDER BY seq LIMIT $1";
    let oldest: Vec<(i64, i64)> = read!(store, |pool| sqlx::query_as(OLDEST)
        .bind(batch)
        .fetch_all(pool)
        .await)?;
    let through = oldest
        .iter()
        .take_while(|(seq, at)| *at < cutoff_ms && keep_from.is_none_or(|k| *seq < k))
        .map(|(seq, _)| *seq)
        .last();
    let Some(through) = through else {
        return Ok(0);
    };
    let mut tx = store.begin().await?;
    const DELETE: &str = "DELETE FROM change_events WHERE seq <= $1";
    const MARK: &str = "UPDATE event_counters SET value = $1 \
        WHERE name = 'pruned_through' AND value < $1";
    let deleted = in_tx!(&mut tx, |c| {
        let deleted = sqlx::query(DELETE).bind(through).execute(&mut *c).await?;
        sqlx::query(MARK).bind(through).execute(&mut *c).await?;
        Ok::<_, sqlx::Error>(deleted.rows_affected())
    })?;
    tx.commit().await?;
    Ok(deleted)
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
