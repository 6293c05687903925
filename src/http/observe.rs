//! One middleware for what every request needs around it: its request id (kept from the
//! caller or made here, echoed in the answer and available to log lines), its span, its
//! metrics, and the problem+json shape for error answers the framework produced bare.
//!
//! Doing this in one place instead of four stacked layers matters on this hot path: the
//! stack of separate layers (request id, propagation, trace span, metrics) cost about a
//! third of the throughput of a cheap endpoint; see benches/foundation.sh. It is a tower
//! service with a future of its own rather than an `axum::middleware::from_fn`, which
//! boxes every request's future and clones the inner service for it.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::task::futures::TaskLocalFuture;
use tower::Service;
use tracing::Instrument as _;
use tracing::instrument::Instrumented;

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

/// The service; see the module documentation.
#[derive(Clone)]
pub struct Observe<S> {
    inner: S,
    config: ObserveConfig,
}

impl<S> Observe<S> {
    /// `inner`, observed as `config` says.
    pub fn new(inner: S, config: ObserveConfig) -> Self {
        Self { inner, config }
    }
}

impl<S, B> Service<Request> for Observe<S>
where
    S: Service<Request, Response = axum::http::Response<B>, Error = Infallible>,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Observed<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
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
        let span = span(self.config, &request, &method, route.as_ref(), &id);
        let inner = telemetry::REQUEST_ID.sync_scope(id.clone(), || {
            let _entered = span.enter();
            self.inner.call(request)
        });
        Observed {
            inner: telemetry::REQUEST_ID.scope(id.clone(), inner.instrument(span)),
            done: Some(Done {
                started,
                method,
                route,
                id,
            }),
        }
    }
}

/// The request's span: INFO when traces are exported (it names the trace); otherwise
/// DEBUG, which costs nothing unless someone asks for debug logs. Log lines find the
/// request id through the task-local either way.
fn span(
    config: ObserveConfig,
    request: &Request,
    method: &Method,
    route: Option<&MatchedPath>,
    id: &HeaderValue,
) -> tracing::Span {
    let request_id = id.to_str().unwrap_or("-");
    if config.traced {
        tracing::info_span!(
            "request",
            otel.name = %format_args!("{} {}", method, route.map_or("unmatched", |r| r.as_str())),
            method = %method,
            path = %request.uri().path(),
            request_id,
        )
    } else {
        tracing::debug_span!("request", method = %method, path = %request.uri().path(), request_id)
    }
}

/// What the answer needs from its request.
struct Done {
    started: Instant,
    method: Method,
    route: Option<MatchedPath>,
    id: HeaderValue,
}

pin_project_lite::pin_project! {
    /// A request's answer, observed.
    pub struct Observed<F: Future> {
        #[pin]
        inner: TaskLocalFuture<HeaderValue, Instrumented<F>>,
        done: Option<Done>,
    }
}

impl<F, B> Future for Observed<F>
where
    F: Future<Output = Result<axum::http::Response<B>, Infallible>>,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(response) = std::task::ready!(this.inner.poll(cx));
        let response = response.map(Body::new);
        let Some(done) = this.done.take() else {
            return Poll::Ready(Ok(response));
        };
        Poll::Ready(Ok(answer(response, done)))
    }
}

/// The answer as it leaves: the problem shape, the request id, the metrics.
fn answer(response: Response, done: Done) -> Response {
    let mut response = bare_errors_as_problems(response);
    let status = response.status();
    let route = done.route.as_ref().map_or("unmatched", |r| r.as_str());
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!(request_id = %done.id.to_str().unwrap_or("-"), method = %done.method,
            route, status = status.as_u16(), "request failed");
    }
    response.headers_mut().insert(X_REQUEST_ID.clone(), done.id);
    telemetry::record_request(&done.method, done.route.as_ref(), status, done.started);
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
