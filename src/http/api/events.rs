//! `GET /api/v1/events`: the change events the caller may read, as Server-Sent Events or
//! as a JSON page.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::OwnedSemaphorePermit;

use crate::error::{ApiError, Problem};
use crate::events::{self, DEFAULT_PAGE, Event, EventPage, MAX_PAGE, Start};
use crate::fields::FieldErrors;
use crate::http::extract::ApiQuery;
use crate::http::guard::{Caller, ScopePolicy};
use crate::http::state::AppState;
use crate::model::Scope;
use crate::oauth::tokens::AccessClaims;
use crate::store::Store;
use crate::store::cases::Visibility;
use crate::store::events::EventScope;

/// Reading change events: `events.read`.
pub struct EventsRead;
impl ScopePolicy for EventsRead {
    const ANY_OF: &'static [Scope] = &[Scope::EventsRead];
}

/// How the events are sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Server-Sent Events (`text/event-stream`), open until the token expires.
    #[default]
    Sse,
    /// One page of events (`application/json`).
    Json,
}

/// Where to start without a replay id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StartAt {
    /// The oldest event still kept (the default of the JSON page).
    Earliest,
    /// The next event committed (the default of the stream).
    Latest,
}

/// Query of `GET /api/v1/events`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventParams {
    /// `sse` (the default) or `json`.
    pub format: Option<Format>,
    /// Start after this replay id (an event's `id`). A `Last-Event-ID` header wins over it,
    /// so that a reconnecting EventSource resumes where it stopped.
    #[param(pattern = "^[0-9a-f]{16}$")]
    pub after: Option<String>,
    /// Without a replay id: `earliest` (the JSON page's default) or `latest` (the stream's).
    pub from: Option<StartAt>,
    /// Events per JSON page, 1 to 1000 (default 100); not for the stream.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// The bearer-guard answers of the events route.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum GuardErrors {
    /// Missing, invalid, expired or revoked token.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// The token lacks events.read.
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
}

/// The change events of the cases the caller may read, oldest first: a user's token sees
/// its user's cases, a client-credentials token the cases its client created, and a client
/// the operator registered with `may_read_all_events` every case.
///
/// As a stream (the default): each event is `id:` (its replay id), `event:` (its type) and
/// `data:` (the event as JSON); an idle stream sends a `: heartbeat` comment every
/// `events_heartbeat_secs`. The stream ends when the token expires or is revoked:
/// reconnect with a new token and `Last-Event-ID`, and nothing is missed. With `format=json`, one page.
///
/// Resuming from a replay id older than the retention window (`events_retention_hours`)
/// is refused with 410, never answered with a silent gap.
#[utoipa::path(get, path = "/api/v1/events", tag = "events",
    security(("bearer" = ["events.read"]), ("oauth2" = ["events.read"])),
    params(EventParams,
        ("Last-Event-ID" = Option<String>, Header, nullable = false, pattern = "^[0-9a-f]{16}$",
            description = "Resume after this replay id (sent by a reconnecting EventSource); wins over `after` and `from`")),
    responses(
        (status = 200, description = "A stream of events (`text/event-stream`), or with `format=json` a page of them",
            content(
                (String = "text/event-stream", example = "id: 000000000000002a\nevent: case.updated\ndata: {\"id\":\"000000000000002a\",\"type\":\"case.updated\",…}\n\n"),
                (EventPage = "application/json"),
            )),
        (status = 400, description = "Unknown or malformed query parameter", body = Problem, content_type = "application/problem+json"),
        GuardErrors,
        (status = 410, description = "The replay id is older than the retention window: the events after it are gone; start again with `from=earliest`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid `limit`, a malformed replay id, one this server never issued, or both `after` and `from`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "This process holds `events_max_streams` streams (Retry-After)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn events(
    State(state): State<AppState>,
    caller: Caller<EventsRead>,
    headers: HeaderMap,
    ApiQuery(params): ApiQuery<EventParams>,
) -> Result<Response, ApiError> {
    let format = params.format.unwrap_or_default();
    let mut errors = FieldErrors::new();
    let limit = match format {
        Format::Json => crate::paging::limit(&mut errors, params.limit, DEFAULT_PAGE, MAX_PAGE),
        Format::Sse => {
            if params.limit.is_some() {
                errors.fail("limit", "not_allowed", "limit applies to format=json only");
            }
            0
        }
    };
    let start = start(&headers, &params, format, &mut errors);
    errors.finish().map_err(ApiError::Validation)?;
    let Some((start, field)) = start else {
        return Err(ApiError::Internal(anyhow::anyhow!("no start and no error")));
    };
    let scope = scope_of(&state, &caller.claims).await?;
    let after = events::resolve(&state.store, start, field).await?;
    match format {
        Format::Json => {
            let page = events::page(&state.store, &scope, after, limit).await?;
            Ok(axum::Json::<EventPage>(page).into_response())
        }
        Format::Sse => {
            let permit = state
                .event_streams
                .clone()
                .try_acquire_owned()
                .map_err(|_| ApiError::StreamsFull)?;
            Ok(stream(&state, scope, after, caller.claims.clone(), permit).into_response())
        }
    }
}

/// Where the caller starts, and the parameter that said so (for its error).
fn start(
    headers: &HeaderMap,
    params: &EventParams,
    format: Format,
    errors: &mut FieldErrors,
) -> Option<(Start, &'static str)> {
    let replay =
        |errors: &mut FieldErrors, field: &'static str, id: &str| match events::parse_replay_id(id)
        {
            Some(seq) => Some((Start::After(seq), field)),
            None => {
                errors.fail(
                    field,
                    "invalid",
                    "a replay id is an event's id: 16 hex digits",
                );
                None
            }
        };
    if let Some(value) = headers.get("last-event-id") {
        let id = value.to_str().unwrap_or_default().trim();
        return replay(errors, "Last-Event-ID", id);
    }
    match (&params.after, params.from) {
        (Some(_), Some(_)) => {
            errors.fail("from", "not_allowed", "give after or from, not both");
            None
        }
        (Some(id), None) => replay(errors, "after", id),
        (None, Some(StartAt::Earliest)) => Some((Start::Earliest, "from")),
        (None, Some(StartAt::Latest)) => Some((Start::Latest, "from")),
        (None, None) if format == Format::Json => Some((Start::Earliest, "from")),
        (None, None) => Some((Start::Latest, "from")),
    }
}

/// Which events the caller's token may read: its user's cases, or its client's, or — for
/// a client registered with `may_read_all_events` — every case's.
async fn scope_of(state: &AppState, claims: &AccessClaims) -> Result<EventScope, ApiError> {
    let client = state.oauth().client(&claims.client_id).await?;
    if client.is_some_and(|c| c.may_read_all_events) {
        return Ok(EventScope::All);
    }
    let actor = crate::cases::Actor {
        client_id: &claims.client_id,
        subject: &claims.sub,
    };
    Ok(match actor.visibility() {
        Visibility::Owner(user) => EventScope::Owner(user),
        Visibility::CreatedBy(client) => EventScope::CreatedBy(client),
    })
}

/// Events fetched per query of a stream.
const STREAM_BATCH: i64 = 500;

/// A subscriber's stream: what it has read, what wakes it, and the token it holds.
struct Subscriber {
    state: AppState,
    claims: Arc<AccessClaims>,
    store: Store,
    scope: EventScope,
    after: i64,
    pending: VecDeque<Event>,
    wake: tokio::sync::watch::Receiver<u64>,
    poll: Duration,
    ends_at: tokio::time::Instant,
    done: bool,
    _permit: OwnedSemaphorePermit,
}

fn stream(
    state: &AppState,
    scope: EventScope,
    after: i64,
    claims: Arc<AccessClaims>,
    permit: OwnedSemaphorePermit,
) -> Sse<impl futures::Stream<Item = Result<SseEvent, Infallible>> + use<>> {
    let left = u64::try_from(claims.exp - state.clock.unix()).unwrap_or(0);
    let subscriber = Subscriber {
        state: state.clone(),
        claims,
        store: state.store.clone(),
        scope,
        after,
        pending: VecDeque::new(),
        wake: state.events.subscribe(),
        poll: Duration::from_millis(state.config.events_poll_ms),
        ends_at: tokio::time::Instant::now() + Duration::from_secs(left),
        done: false,
        _permit: permit,
    };
    let events = futures::stream::unfold(subscriber, |mut s| async move {
        loop {
            if let Some(event) = s.pending.pop_front() {
                return Some((Ok(sse_event(&event)), s));
            }
            // A token revoked (or cut off) while its stream is open ends the stream.
            let tokens = &s.state.tokens;
            if s.done || tokens.revoked.contains(&s.claims.jti) || tokens.cutoffs.refuses(&s.claims)
            {
                return None;
            }
            // Marked seen before the query: a commit during it wakes the next wait.
            s.wake.borrow_and_update();
            match events::read_after(&s.store, &s.scope, s.after, STREAM_BATCH).await {
                Ok((batch, _)) if !batch.is_empty() => {
                    if let Some(last) = batch.last().and_then(|e| events::parse_replay_id(&e.id)) {
                        s.after = last;
                    }
                    s.pending.extend(batch);
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    s.done = true;
                    return Some((Ok(error_event(e)), s));
                }
            }
            tokio::select! {
                _ = s.wake.changed() => tokio::time::sleep(events::WAKE_GATHER).await,
                () = tokio::time::sleep(s.poll) => {}
                () = tokio::time::sleep_until(s.ends_at) => return None,
            }
        }
    });
    Sse::new(events).keep_alive(
        KeepAlive::new()
            .interval(Duration::from_secs(state.config.events_heartbeat_secs))
            .text("heartbeat"),
    )
}

fn sse_event(event: &Event) -> SseEvent {
    let data = serde_json::to_string(event).unwrap_or_default();
    SseEvent::default()
        .id(event.id.clone())
        .event(event.event_type.clone())
        .data(data)
}

/// A failure inside an open stream: an `error` event with the problem document, then the
/// end of the stream (the subscriber reconnects with its `Last-Event-ID`).
fn error_event(e: ApiError) -> SseEvent {
    let problem = match &e {
        ApiError::ReplayExpired(detail) => Problem::new(
            axum::http::StatusCode::GONE,
            Some("replay-expired"),
            detail.clone(),
        ),
        _ => {
            tracing::warn!(error = %e, "an event stream failed");
            Problem::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                Some("unavailable"),
                "the event log could not be read; reconnect with Last-Event-ID",
            )
        }
    };
    SseEvent::default()
        .event("error")
        .data(serde_json::to_string(&problem).unwrap_or_default())
}
