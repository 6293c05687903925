//! Change events: one event per committed change to a case, written in the change's own
//! transaction (`store::events`), read back in replay order by subscribers (the SSE stream
//! and the JSON page of `GET /api/v1/events`), pushed to webhooks and published to NATS
//! JetStream, and pruned after `events_retention_hours`.
//!
//! A replay id is an event's position in the log, written as 16 hex digits: opaque to
//! clients, totally ordered (as strings too), dense. Positions become visible in order
//! (see `store::events`), so "the events after id N" never misses one that commits later.

pub mod endpoints;
pub mod nats;
pub mod webhooks;

use serde::Serialize;
use serde_json::value::RawValue;
use tokio::sync::watch;
use utoipa::ToSchema;

use crate::clock::SharedClock;
use crate::config::Config;
use crate::error::{ApiError, FieldError};
use crate::store::Store;
use crate::store::events::{self as log, EventRow, EventScope, NewChange, Part};

/// The event types, in the order a composite create emits them.
pub const TYPES: [&str; 3] = ["case.created", "case.updated", "case.line_items_added"];
/// Events per JSON page unless `limit` says otherwise.
pub const DEFAULT_PAGE: i64 = 100;
/// The most events one JSON page holds.
pub const MAX_PAGE: i64 = 1000;

/// An event's replay id: its position as 16 lower-case hex digits.
pub fn replay_id(seq: i64) -> String {
    format!("{seq:016x}")
}

/// The position a replay id names; `None` if it is not one this server wrote.
pub fn parse_replay_id(id: &str) -> Option<i64> {
    if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    i64::from_str_radix(id, 16).ok().filter(|seq| *seq >= 0)
}

/// A change event as subscribers receive it (SSE `data:`, JSON pages, webhook bodies, NATS
/// messages): the change-data-capture header, then the record after the change.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"id": "000000000000002a", "type": "case.updated", "entity": "case",
    "record_id": "0193a5b2-7c1e-7d33-9a52-4f0c7e8d9b10", "change_type": "UPDATE",
    "changed_fields": ["status"], "commit_timestamp": "2026-12-06T09:30:12.345Z",
    "transaction_key": "0193a5b2-8f00-7a11-b3c4-1d2e3f405162", "sequence_number": 1,
    "commit_user": "0193a5a0-0000-7000-8000-000000000001", "client_id": "field-service",
    "data": {"id": "0193a5b2-7c1e-7d33-9a52-4f0c7e8d9b10", "status": "Working"}}))]
pub struct Event {
    /// The replay id: resume after it with `after=` or `Last-Event-ID`.
    pub id: String,
    /// `case.created`, `case.updated` or `case.line_items_added`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The kind of record: `case`.
    pub entity: String,
    /// The record's id.
    pub record_id: String,
    /// `CREATE` or `UPDATE`.
    pub change_type: String,
    /// The fields the change set (for a create, every field it set).
    pub changed_fields: Vec<String>,
    /// When the change was committed (RFC 3339, milliseconds, UTC).
    pub commit_timestamp: String,
    /// Shared by every event of one transaction (a composite create is one).
    pub transaction_key: String,
    /// 1, 2, … within the transaction.
    pub sequence_number: i64,
    /// The subject (`sub`) of the token that made the change.
    pub commit_user: String,
    /// The client that made the change.
    pub client_id: String,
    /// The record after the change, as `GET /api/v1/cases/{id}` answers it.
    #[schema(value_type = Object)]
    pub data: Box<RawValue>,
}

impl TryFrom<EventRow> for Event {
    type Error = ApiError;

    fn try_from(row: EventRow) -> Result<Self, ApiError> {
        let corrupt = |what: &str, e: &dyn std::fmt::Display| {
            ApiError::Internal(anyhow::anyhow!(
                "event {} has an invalid {what}: {e}",
                row.seq
            ))
        };
        let data = RawValue::from_string(row.data.clone()).map_err(|e| corrupt("data", &e))?;
        let at = time::OffsetDateTime::from_unix_timestamp_nanos(
            i128::from(row.committed_at) * 1_000_000,
        )
        .map_err(|e| corrupt("commit time", &e))?;
        Ok(Event {
            id: replay_id(row.seq),
            commit_timestamp: rfc3339_millis(at),
            event_type: row.event_type,
            entity: row.entity,
            record_id: row.record_id,
            change_type: row.change_type,
            changed_fields: row.changed_fields,
            transaction_key: row.transaction_key,
            sequence_number: row.sequence_number,
            commit_user: row.commit_user,
            client_id: row.client_id,
            data,
        })
    }
}

/// `2026-12-06T09:30:12.345Z`.
fn rfc3339_millis(at: time::OffsetDateTime) -> String {
    let f = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    at.format(&f).unwrap_or_default()
}

/// A page of events, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    /// Events after the requested position that the caller may see.
    pub items: Vec<Event>,
    /// Pass as `after` for the next page; absent when this page reached the log's end
    /// (poll again with the last item's `id`).
    pub next_cursor: Option<String>,
}

/// After a wake, how long a reader of the log lets further commits gather before it reads:
/// under load every request commits, and a read per commit per reader would cost more than
/// the writes it follows.
pub const WAKE_GATHER: std::time::Duration = std::time::Duration::from_millis(10);

/// Wakes this process's subscribers when it commits events. Events written by other
/// replicas are found by polling (`events_poll_ms`).
#[derive(Debug)]
pub struct Hub(watch::Sender<u64>);

impl Default for Hub {
    fn default() -> Self {
        Self(watch::Sender::new(0))
    }
}

impl Hub {
    /// This process committed events.
    pub fn committed(&self) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that wakes at each commit.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }
}

/// The parts of the server the event log works with.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    /// The database.
    pub store: &'a Store,
    /// The only source of wall time.
    pub clock: &'a SharedClock,
    /// Retention, polling and limits.
    pub config: &'a Config,
    /// This process's commits.
    pub hub: &'a Hub,
}

/// Where a subscriber starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// After this position (a replay id it holds).
    After(i64),
    /// With the oldest event still kept.
    Earliest,
    /// With the next event committed.
    Latest,
}

/// The position a subscriber reads after: refused if the replay id was never issued here,
/// or if events after it have been pruned (a resume from it would hide a gap).
pub async fn resolve(store: &Store, start: Start, field: &str) -> Result<i64, ApiError> {
    let bounds = log::bounds(store).await?;
    match start {
        Start::Earliest => Ok(bounds.pruned_through),
        Start::Latest => Ok(bounds.last_seq),
        Start::After(seq) if seq > bounds.last_seq => {
            Err(ApiError::Validation(vec![FieldError::new(
                field,
                "unknown",
                "no event has this replay id: it was issued by another server, or the log was reset",
            )]))
        }
        Start::After(seq) => {
            expired(bounds.pruned_through, seq)?;
            Ok(seq)
        }
    }
}

fn expired(pruned_through: i64, after: i64) -> Result<(), ApiError> {
    if after < pruned_through {
        return Err(ApiError::ReplayExpired(format!(
            "events after this replay id are past the retention window and gone; \
             start again with from=earliest (the oldest kept is after {})",
            replay_id(pruned_through)
        )));
    }
    Ok(())
}

/// Up to `limit` events after `after` that `scope` may see, and whether more may follow.
/// Fails if the retention window passed `after` while this read ran.
pub async fn read_after(
    store: &Store,
    scope: &EventScope,
    after: i64,
    limit: i64,
) -> Result<(Vec<Event>, bool), ApiError> {
    let fetch = limit.saturating_add(1);
    let mut rows = log::after(store, scope, after, fetch).await?;
    // Read after the events: a prune that took some of them has moved the mark by now.
    expired(log::bounds(store).await?.pruned_through, after)?;
    let more = rows.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let events = rows
        .into_iter()
        .map(Event::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    Ok((events, more))
}

/// A JSON page of events after `after`.
pub async fn page(
    store: &Store,
    scope: &EventScope,
    after: i64,
    limit: i64,
) -> Result<EventPage, ApiError> {
    let (items, more) = read_after(store, scope, after, limit).await?;
    let next_cursor = more.then(|| items.last().map(|e| e.id.clone())).flatten();
    Ok(EventPage { items, next_cursor })
}

/// Who made a change, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Author {
    /// The token's subject.
    pub commit_user: String,
    /// The token's client.
    pub client_id: String,
    /// Unix milliseconds.
    pub at_ms: i64,
}

/// One transaction's events about one record, numbered in order: one row of the log.
#[derive(Debug)]
pub struct TxEvents(NewChange);

/// What a case event says about the case (who may read it, and the case itself).
pub struct CaseState<'a> {
    /// The case id.
    pub id: &'a str,
    /// Its owner.
    pub owner_id: Option<&'a str>,
    /// The client that created it.
    pub created_by: &'a str,
    /// The case as the API answers it (JSON).
    pub json: &'a str,
}

impl TxEvents {
    /// No events yet about `case`, as changed by `author` in a new transaction.
    pub fn new(case: &CaseState<'_>, author: &Author) -> Self {
        Self(NewChange {
            events: Vec::new(),
            entity: "case",
            record_id: case.id.to_owned(),
            committed_at: author.at_ms,
            transaction_key: uuid::Uuid::now_v7().to_string(),
            commit_user: author.commit_user.clone(),
            client_id: author.client_id.clone(),
            owner_id: case.owner_id.map(str::to_owned),
            created_by: case.created_by.to_owned(),
            data: case.json.to_owned(),
        })
    }

    /// Adds an event of `event_type` that changed `changed_fields`.
    pub fn push(&mut self, event_type: &'static str, changed_fields: &[&str]) {
        let change_type = if event_type == "case.created" {
            "CREATE"
        } else {
            "UPDATE"
        };
        self.0.events.push(Part {
            event_type: event_type.to_owned(),
            change_type: change_type.to_owned(),
            changed_fields: changed_fields.iter().map(|f| (*f).to_owned()).collect(),
        });
    }

    /// The change to append.
    pub fn into_change(self) -> NewChange {
        self.0
    }
}

/// Deletes events older than the retention window, oldest first, in batches; never one a
/// webhook delivery or the NATS publisher still needs. Returns how many rows of the log
/// (changes) went.
pub async fn prune(ctx: &Ctx<'_>) -> Result<u64, crate::store::StoreError> {
    let hours = ctx.config.events_retention_hours;
    if hours == 0 {
        return Ok(0);
    }
    let cutoff_ms = (ctx.clock.unix() - hours * 3600) * 1000;
    let mut keep_from = crate::store::webhooks::oldest_queued_event(ctx.store).await?;
    if ctx.config.nats_url.is_some()
        && let Some(relay) = log::relays_need_from(ctx.store).await?
    {
        keep_from = Some(keep_from.map_or(relay, |k| k.min(relay)));
    }
    let mut total = 0;
    loop {
        let n =
            log::prune_once(ctx.store, cutoff_ms, keep_from, crate::store::prune::BATCH).await?;
        total += n;
        if n < crate::store::prune::BATCH as u64 {
            return Ok(total);
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}
