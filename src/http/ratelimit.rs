//! The rate-limit layer: counts the per-address limits of the sign-in, activation, token
//! and device endpoints before they run (with a shared limiter, the token and device ones
//! together with the endpoint's per-client check, see [`crate::ratelimit::defer`]), and
//! turns every decision a request met (those and the per-client ones the domain checks)
//! into response headers (IETF draft-ietf-httpapi-ratelimit-headers):
//!
//! ```text
//! RateLimit-Policy: "token-address";q=3000;w=60, "token-client";q=6000;w=60
//! RateLimit: "token-address";r=2999;t=1, "token-client";r=5999;t=1
//! ```
//!
//! A refused request also gets `Retry-After`.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{ConnectInfo, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::future::{BoxFuture, Either};
use tower::Service;

use crate::error::{ApiError, OAuthError};
use crate::http::state::AppState;
use crate::ratelimit::{self, Decision, Outcome, Policy, Report};

/// The per-address limit of each path that has one, and whether the endpoint goes on to
/// count a per-client limit (then a shared address limit is counted with it, in one round
/// trip).
fn address_policy(path: &str) -> Option<(Policy, bool)> {
    match path {
        // A pushed request authenticates the client as the token endpoint does, and counts
        // in the same limits.
        "/oauth2/token" | "/oauth2/par" => Some((Policy::TokenAddress, true)),
        "/oauth2/device_authorization" => Some((Policy::DeviceAddress, true)),
        "/login" => Some((Policy::LoginAddress, false)),
        "/activate" => Some((Policy::ActivateAddress, false)),
        _ => None,
    }
}

/// The rate-limit service (outside the handlers, inside request id and timeout).
#[derive(Clone)]
pub struct RateLimit<S> {
    inner: S,
    state: AppState,
}

impl<S> RateLimit<S> {
    /// `inner`, counted against the limiter of `state`.
    pub fn new(inner: S, state: AppState) -> Self {
        Self { inner, state }
    }
}

type Answer = Result<Response, Infallible>;

impl<S, B> Service<Request> for RateLimit<S>
where
    S: Service<Request, Response = axum::http::Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<WithHeaders<S::Future>, BoxFuture<'static, Answer>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // Most requests (the API, discovery, pages without a per-address limit) only need
        // their report turned into headers: a future of its own, not a boxed one.
        let Some((policy, deferred)) = address_policy(request.uri().path()) else {
            return Either::Left(WithHeaders {
                inner: ratelimit::report_on(self.inner.call(request)),
            });
        };
        let ready = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, ready);
        Either::Right(Box::pin(limited(
            self.state.clone(),
            inner,
            request,
            policy,
            deferred,
        )))
    }
}

pin_project_lite::pin_project! {
    /// A request's answer, with its report as headers.
    pub struct WithHeaders<F: Future> {
        #[pin]
        inner: ratelimit::Reported<F>,
    }
}

impl<F, B> Future for WithHeaders<F>
where
    F: Future<Output = Result<axum::http::Response<B>, Infallible>>,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Output = Answer;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Answer> {
        let mut inner = self.project().inner;
        let Ok(response) = std::task::ready!(inner.as_mut().poll(cx));
        let response = response.map(Body::new);
        Poll::Ready(Ok(with_headers(response, &ratelimit::take_report(inner))))
    }
}

/// A request to a path with a per-address limit: counted before it runs.
async fn limited<S, B>(
    state: AppState,
    mut inner: S,
    request: Request,
    policy: Policy,
    deferred: bool,
) -> Answer
where
    S: Service<Request, Response = axum::http::Response<B>, Error = Infallible>,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let path = request.uri().path().to_owned();
    let address = client_address(
        request.headers(),
        request.extensions(),
        &state.config.trusted_proxies,
    );
    let address = match crate::ratelimit::address_bucket(&address) {
        std::borrow::Cow::Owned(bucket) => bucket,
        std::borrow::Cow::Borrowed(_) => address,
    };
    let (response, report) = ratelimit::reporting(async {
        // Counting in memory costs nothing: only a shared limit is worth deferring.
        let decision = if deferred && state.limiter.is_shared() {
            let known = state.limiter.known_refusal(policy, &address);
            if known.is_none() {
                ratelimit::defer(policy, address);
            }
            known
        } else {
            state.limiter.check(policy, &address).await
        };
        if let Some(decision) = decision
            && decision.refused()
        {
            return refusal(&path, &decision);
        }
        let Ok(response) = inner.call(request).await;
        let response = response.map(Body::new);
        // The endpoint ended before its per-client check took the address along.
        match state.limiter.check_deferred().await {
            Some(decision) if decision.refused() => refusal(&path, &decision),
            _ => response,
        }
    })
    .await;
    Ok(with_headers(response, &report))
}

/// The answer to a request an address limit refused, in the shape of its endpoint.
fn refusal(path: &str, decision: &Decision) -> Response {
    if path.starts_with("/oauth2/") {
        OAuthError::rate_limited(decision).into_response()
    } else {
        let (status, text) = match decision.outcome {
            Outcome::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "This page cannot be served right now. Try again in a moment.".to_owned(),
            ),
            _ => (
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "Too many requests from your network. Try again in {} seconds.",
                    decision.retry_after_secs
                ),
            ),
        };
        crate::http::web::error_page(status, &text)
    }
}

static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
static GATEHOUSE_LIMIT_INFO: HeaderName = HeaderName::from_static("gatehouse-limit-info");

/// Adds `RateLimit-Policy`, `RateLimit`, `Gatehouse-Limit-Info` and, when refused,
/// `Retry-After`.
fn with_headers(mut response: Response, report: &Report) -> Response {
    if let Some(usage) = report.usage {
        let info = if usage.limit > 0 {
            format!("api-usage={}/{}", usage.used, usage.limit)
        } else {
            format!("api-usage={}", usage.used)
        };
        if let Ok(value) = HeaderValue::from_maybe_shared(Bytes::from(info)) {
            response
                .headers_mut()
                .insert(GATEHOUSE_LIMIT_INFO.clone(), value);
        }
        if let Some(secs) = usage.refused_for_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
    }
    let decisions = &report.decisions;
    if decisions.is_empty() {
        return response;
    }
    let mut policies = String::with_capacity(40 * decisions.len());
    let mut limits = String::with_capacity(40 * decisions.len());
    for (i, d) in decisions.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        let name = d.policy.name();
        let _ = write!(
            policies,
            "{sep}\"{name}\";q={};w={}",
            d.quota, d.window_secs
        );
        let _ = write!(
            limits,
            "{sep}\"{name}\";r={};t={}",
            d.remaining, d.reset_secs
        );
    }
    let headers = response.headers_mut();
    for (name, value) in [(&RATELIMIT_POLICY, policies), (&RATELIMIT, limits)] {
        if let Ok(value) = HeaderValue::from_maybe_shared(Bytes::from(value)) {
            headers.insert(name.clone(), value);
        }
    }
    if let Some(retry) = decisions
        .iter()
        .filter(|d| d.refused())
        .map(|d| d.retry_after_secs)
        .max()
    {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(retry));
    }
    response
}

/// The client's address: the connection's peer or, when the peer is a trusted proxy, the
/// rightmost address in `X-Forwarded-For` that is not one.
pub fn client_address(
    headers: &HeaderMap,
    extensions: &axum::http::Extensions,
    trusted: &[ipnet::IpNet],
) -> String {
    let Some(peer) = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
    else {
        return "unknown".to_owned();
    };
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer.to_string();
    }
    let mut client = peer;
    for value in headers.get_all("x-forwarded-for").iter().rev() {
        let Ok(value) = value.to_str() else { break };
        for hop in value.rsplit(',') {
            let Ok(ip) = hop.trim().parse::<IpAddr>() else {
                return client.to_string();
            };
            client = ip;
            if !is_trusted(&ip) {
                return client.to_string();
            }
        }
    }
    client.to_string()
}

/// The client's address (see [`client_address`]), as an extractor.
pub struct ClientAddr(pub String);

impl axum::extract::FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(client_address(
            &parts.headers,
            &parts.extensions,
            &state.config.trusted_proxies,
        )))
    }
}

impl OAuthError {
    /// A request a rate limit refused: 429 (503 when the limiter could not answer and the
    /// server fails closed), `temporarily_unavailable`.
    pub fn rate_limited(decision: &Decision) -> Self {
        let description = decision.describe();
        let status = match decision.outcome {
            Outcome::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::TOO_MANY_REQUESTS,
        };
        OAuthError::new(
            crate::error::OAuthErrorCode::TemporarilyUnavailable,
            description,
        )
        .with_status(status)
    }
}

impl ApiError {
    /// A request a rate limit refused (429, or 503 when failing closed).
    pub fn rate_limited(decision: &Decision) -> Self {
        match decision.outcome {
            Outcome::Unavailable => ApiError::Unavailable,
            _ => ApiError::RateLimited(decision.describe()),
        }
    }
}
