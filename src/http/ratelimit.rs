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

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, OAuthError};
use crate::http::state::AppState;
use crate::ratelimit::{self, Decision, Outcome, Policy, Report};

/// The per-address limit of each path that has one, and whether the endpoint goes on to
/// count a per-client limit (then a shared address limit is counted with it, in one round
/// trip).
fn address_policy(path: &str) -> Option<(Policy, bool)> {
    match path {
        "/oauth2/token" => Some((Policy::TokenAddress, true)),
        "/oauth2/device_authorization" => Some((Policy::DeviceAddress, true)),
        "/login" => Some((Policy::LoginAddress, false)),
        "/activate" => Some((Policy::ActivateAddress, false)),
        _ => None,
    }
}

/// The middleware (outside the handlers, inside request id and timeout).
pub async fn layer(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let limit = address_policy(&path).map(|(policy, deferred)| {
        let address = client_address(
            request.headers(),
            request.extensions(),
            &state.config.trusted_proxies,
        );
        let address = match crate::ratelimit::address_bucket(&address) {
            std::borrow::Cow::Owned(bucket) => bucket,
            std::borrow::Cow::Borrowed(_) => address,
        };
        (policy, address, deferred)
    });
    let (response, report) = ratelimit::reporting(async {
        if let Some((policy, address, deferred)) = limit {
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
        }
        let response = next.run(request).await;
        // The endpoint ended before its per-client check took the address along.
        match state.limiter.check_deferred().await {
            Some(decision) if decision.refused() => refusal(&path, &decision),
            _ => response,
        }
    })
    .await;
    with_headers(response, &report)
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

/// Adds `RateLimit-Policy`, `RateLimit`, `Gatehouse-Limit-Info` and, when refused,
/// `Retry-After`.
fn with_headers(mut response: Response, report: &Report) -> Response {
    if let Some(usage) = report.usage {
        let info = if usage.limit > 0 {
            format!("api-usage={}/{}", usage.used, usage.limit)
        } else {
            format!("api-usage={}", usage.used)
        };
        if let Ok(value) = HeaderValue::from_str(&info) {
            response.headers_mut().insert("gatehouse-limit-info", value);
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
    let policies = decisions
        .iter()
        .map(|d| format!("\"{}\";q={};w={}", d.policy.name(), d.quota, d.window_secs))
        .collect::<Vec<_>>()
        .join(", ");
    let limits = decisions
        .iter()
        .map(|d| {
            format!(
                "\"{}\";r={};t={}",
                d.policy.name(),
                d.remaining,
                d.reset_secs
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let headers = response.headers_mut();
    for (name, value) in [("ratelimit-policy", policies), ("ratelimit", limits)] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
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
