//! The audit log: security-relevant events, each written to the structured log at once
//! (target `audit`; a token's issue at DEBUG, everything else at INFO) and to the database
//! by one writer task that gathers events for up to 50 ms and writes them with one
//! multi-row INSERT, so that a burst of token requests costs a few statements a second, not
//! one each.
//!
//! An event is in the database at most a moment after it happened: a process that is
//! killed loses at most the events of the batch being gathered or written (their log lines
//! were already emitted). A graceful shutdown writes everything queued first.

use std::time::Duration;

use serde_json::Value;

use tokio::sync::{mpsc, oneshot};

use crate::clock::SharedClock;
use crate::store::Store;
use crate::store::audit::AuditRow;

/// One event, built where it happens.
#[derive(Debug, Clone)]
pub struct Event {
    event: &'static str,
    success: bool,
    actor: Option<String>,
    client_id: Option<String>,
    user_id: Option<String>,
    address: Option<String>,
    detail: Value,
}

impl Event {
    /// A successful `event` (`sign_in`, `token.issued`, `admin.client.created`, …).
    pub fn new(event: &'static str) -> Self {
        Self {
            event,
            success: true,
            actor: None,
            client_id: None,
            user_id: None,
            address: None,
            detail: Value::Object(serde_json::Map::new()),
        }
    }

    /// Marks the event a failure.
    pub fn failed(mut self) -> Self {
        self.success = false;
        self
    }

    /// Who acted, when not the user or client concerned (an administrator's token).
    pub fn actor(mut self, actor: String) -> Self {
        self.actor = Some(clean(actor));
        self
    }

    /// The client concerned.
    pub fn client(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(clean(client_id.into()));
        self
    }

    /// The user concerned.
    pub fn user(mut self, user_id: impl Into<String>) -> Self {
        self.user_id = Some(clean(user_id.into()));
        self
    }

    /// The caller's address.
    pub fn address(mut self, address: impl Into<String>) -> Self {
        self.address = Some(clean(address.into()));
        self
    }

    /// Adds a particular (never a secret).
    pub fn detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        let value = match value.into() {
            Value::String(text) => Value::String(clean(text)),
            other => other,
        };
        if let Value::Object(map) = &mut self.detail {
            map.insert(key.to_owned(), value);
        }
        self
    }
}

/// Longest text an event keeps of one value (a caller may send more).
pub const MAX_TEXT: usize = 256;

/// `text` as an event may hold it: at most [`MAX_TEXT`] characters, no control character
/// (no CR or LF can forge a log line or split an audit row), each replaced by `�`.
pub fn clean(text: String) -> String {
    if text.len() <= MAX_TEXT && !text.chars().any(char::is_control) {
        return text;
    }
    text.chars()
        .take(MAX_TEXT)
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

/// The actor string of an access token's caller: its user, else its client.
pub fn token_actor(claims: &crate::oauth::tokens::AccessClaims) -> String {
    if claims.sub == claims.client_id {
        format!("client:{}", claims.client_id)
    } else {
        format!("user:{}", claims.sub)
    }
}

enum Message {
    Event(AuditRow),
    Flush(oneshot::Sender<()>),
}

/// Events waiting for the writer; the writer takes up to this many per batch.
const BATCH: usize = 512;
/// How long the writer lets a batch gather after its first event. Without it, under load
/// the writer woke for every few events and each batch paid a transaction's commit for
/// them; with it, a busy second costs about twenty INSERTs. A flush ends the wait.
const LINGER: Duration = Duration::from_millis(50);

/// The process's audit log.
pub struct Audit {
    tx: mpsc::Sender<Message>,
    clock: SharedClock,
}

impl Audit {
    /// Starts the writer on `store`.
    pub fn spawn(store: &Store, clock: SharedClock) -> Self {
        let (tx, mut rx) = mpsc::channel::<Message>(16 * BATCH);
        let store = store.clone();
        tokio::spawn(async move {
            let mut messages = Vec::with_capacity(BATCH);
            while rx.recv_many(&mut messages, BATCH).await > 0 {
                gather(&mut rx, &mut messages).await;
                let mut rows = Vec::with_capacity(messages.len());
                let mut flushed = Vec::new();
                for message in messages.drain(..) {
                    match message {
                        Message::Event(row) => rows.push(row),
                        Message::Flush(done) => flushed.push(done),
                    }
                }
                if rows.is_empty() {
                    // Only flushes: nothing to write.
                } else if let Err(e) = crate::store::audit::insert_many(&store, &rows).await {
                    metrics::counter!("gatehouse_audit_write_errors_total").increment(1);
                    tracing::error!(error = %e, events = rows.len(), "audit events not stored");
                } else {
                    metrics::counter!("gatehouse_audit_batches_total").increment(1);
                    metrics::counter!("gatehouse_audit_events_stored_total")
                        .increment(rows.len() as u64);
                }
                for done in flushed {
                    let _ = done.send(());
                }
            }
        });
        Self { tx, clock }
    }

    /// Records `event`: logged now, stored with the next batch. Waits only when the
    /// writer is far behind (never drops an event).
    pub async fn record(&self, event: Event) {
        let row = event.into_row(self.clock.unix());
        log(&row);
        if self.tx.send(Message::Event(row)).await.is_err() {
            tracing::error!("the audit writer has stopped; event not stored");
        }
    }

    /// Waits until every event recorded before this call is stored.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

/// Adds to `messages` what arrives within [`LINGER`], up to [`BATCH`], unless they hold a
/// flush (whose caller is waiting) or the channel closed. The writer sleeps meanwhile: a
/// recorded event does not wake it.
async fn gather(rx: &mut mpsc::Receiver<Message>, messages: &mut Vec<Message>) {
    let waiting = |messages: &[Message]| messages.iter().any(|m| matches!(m, Message::Flush(_)));
    if messages.len() >= BATCH || waiting(messages) {
        return;
    }
    let deadline = tokio::time::Instant::now() + LINGER;
    loop {
        tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + LINGER / 10)).await;
        while messages.len() < BATCH {
            match rx.try_recv() {
                Ok(message) => messages.push(message),
                Err(_) => break,
            }
        }
        if messages.len() >= BATCH || waiting(messages) || tokio::time::Instant::now() >= deadline {
            return;
        }
    }
}

/// Records `event` at once, without a writer task (the CLI).
pub async fn record_now(
    store: &Store,
    at: i64,
    event: Event,
) -> Result<(), crate::store::StoreError> {
    let row = event.into_row(at);
    log(&row);
    crate::store::audit::insert_many(store, &[row]).await
}

impl Event {
    fn into_row(self, at: i64) -> AuditRow {
        AuditRow {
            id: 0,
            at,
            event: self.event.to_owned(),
            outcome: if self.success { "success" } else { "failure" }.to_owned(),
            actor: self
                .actor
                .unwrap_or_else(|| match (&self.user_id, &self.client_id) {
                    (Some(user), _) => format!("user:{user}"),
                    (None, Some(client)) => format!("client:{client}"),
                    (None, None) => "system".to_owned(),
                }),
            client_id: self.client_id,
            user_id: self.user_id,
            address: self.address,
            request_id: Some(crate::telemetry::request_id()).filter(|id| id != "-"),
            detail: self.detail.to_string(),
        }
    }
}

/// Events that come with the traffic itself, one per token a client asks for. Their log
/// line is at DEBUG: at INFO it was a line per token (tens of thousands a second under
/// load), which cost a sixth of the token endpoint's throughput and floods whatever ships
/// the log. Their rows are stored like every other event's, and `log = "info,audit=debug"`
/// puts their lines back in the log.
const TRAFFIC_EVENTS: &[&str] = &["token.issued"];

/// The event as a structured log line (target `audit`): at INFO, or DEBUG for a successful
/// traffic event (see [`TRAFFIC_EVENTS`]).
fn log(row: &AuditRow) {
    macro_rules! line {
        ($level:expr) => {
            tracing::event!(
                target: "audit",
                $level,
                event = %row.event,
                outcome = %row.outcome,
                actor = %row.actor,
                client_id = row.client_id.as_deref(),
                user_id = row.user_id.as_deref(),
                address = row.address.as_deref(),
                detail = %row.detail,
                "audit"
            )
        };
    }
    if row.outcome == "success" && TRAFFIC_EVENTS.contains(&row.event.as_str()) {
        line!(tracing::Level::DEBUG);
    } else {
        line!(tracing::Level::INFO);
    }
}
