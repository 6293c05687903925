//! One middleware for what every request needs around it: its request id (kept from the
//! caller or made here, echoed in the answer and available to log lines), its span, its
//! metrics, and the problem+json shape for error answers the framework produced bare.
//!
//! Doing this in one place instead of four stacked layers matters on this hot path: the
//! stack of separate layers (request id, propagation, trace span, metrics) cost about a
//! third of the throughput of a cheap endpoint; see benches/foundation.sh.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument as _;

use crate::error::Problem;
use crate::telemetry;

/// The request id header.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Longest caller-supplied request id kept; a longer one is replaced.
const MAX_REQUEST_ID: usize = 64;

/// Whether request spans are exported, and so worth naming in full.
#[derive(Clone, Copy)]
pub struct ObserveConfig {
    /// Traces go to an OTLP endpoint.
    pub traced: bool,
}

/// The middleware; see the module documentation.
pub async fn observe(config: ObserveConfig, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = match request.headers().get(&X_REQUEST_ID) {
        Some(v) if looks_like_request_id(v) => v.clone(),
        _ => {
            let id = new_request_id();
            request
                .headers_mut()
                .insert(X_REQUEST_ID.clone(), id.clone());
            id
        }
    };
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let request_id = id.to_str().unwrap_or("-");
    // An INFO span when traces are exported (it names the trace); otherwise DEBUG, which
    // costs nothing unless someone asks for debug logs. Log lines find the request id
    // through the task-local either way.
    let span = if config.traced {
        tracing::info_span!(
            "request",
            otel.name = %format_args!("{} {}", method, route.as_ref().map_or("unmatched", |r| r.as_str())),
            method = %method,
            path = %request.uri().path(),
            request_id,
        )
    } else {
        tracing::debug_span!("request", method = %method, path = %request.uri().path(), request_id)
    };
    let response = telemetry::REQUEST_ID
        .scope(id.clone(), next.run(request).instrument(span))
        .await;
    let mut response = bare_errors_as_problems(response);
    let status = response.status();
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!(request_id = %id.to_str().unwrap_or("-"), %method,
            route = route.as_ref().map_or("unmatched", |r| r.as_str()), status = status.as_u16(), "request failed");
    }
    response.headers_mut().insert(X_REQUEST_ID.clone(), id);
    telemetry::record_request(&method, route.as_ref(), status, started);
    response
}

/// A caller's request id is kept only when it looks like one: 1 to 64 characters of
/// `A-Z a-z 0-9 . _ -`. Anything else (spaces, quotes, control characters, a kilobyte)
/// never reaches a log line or an audit row: the request gets a fresh id instead.
fn looks_like_request_id(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    (1..=MAX_REQUEST_ID).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(b))
}

fn new_request_id() -> HeaderValue {
    let mut buf = uuid::Uuid::encode_buffer();
    let text = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf);
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// Gives error answers that carry no body or plain text (405, 408, 413, 415 … from the
/// framework and middleware) the documented problem+json shape.
fn bare_errors_as_problems(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let bare = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|ct| ct.starts_with("text/plain"));
    if !bare {
        return response;
    }
    let detail = match status {
        StatusCode::PAYLOAD_TOO_LARGE => {
            "the request body is larger than this endpoint accepts".to_owned()
        }
        StatusCode::REQUEST_TIMEOUT => "the request took longer than the server allows".to_owned(),
        StatusCode::METHOD_NOT_ALLOWED => "this endpoint does not accept this method".to_owned(),
        other => other.canonical_reason().unwrap_or("error").to_owned(),
    };
    let (parts, _) = response.into_parts();
    let mut problem = Problem::new(status, None, detail).into_response();
    for name in [header::ALLOW, header::WWW_AUTHENTICATE, header::RETRY_AFTER] {
        if let Some(value) = parts.headers.get(&name) {
            problem.headers_mut().insert(name, value.clone());
        }
    }
    problem
}
