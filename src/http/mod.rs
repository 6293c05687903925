//! Routers and the middleware stack. Handlers only parse, call the domain and shape answers.

pub mod admin;
pub mod docs;
pub mod extract;
pub mod health;
pub mod oauth;

use std::any::Any;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::Problem;
use crate::state::AppState;

/// Every documented route. The OpenAPI document is generated from this same value, so a
/// route cannot exist without its documentation.
pub fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(docs::base())
        .routes(routes!(health::get_health))
        .routes(routes!(health::get_readiness))
        .routes(routes!(health::get_metrics))
        .routes(routes!(oauth::issue_token))
        .routes(routes!(oauth::introspect_token))
        .routes(routes!(oauth::revoke_token))
        .routes(routes!(oauth::get_jwks))
        .routes(routes!(oauth::get_openid_configuration))
        .routes(routes!(oauth::get_authorization_server_metadata))
        .routes(routes!(crate::api::me::get_me))
        .routes(routes!(admin::list_clients, admin::create_client))
        .routes(routes!(admin::get_client))
        .routes(routes!(admin::rotate_client_secret))
        .routes(routes!(admin::disable_client))
        .routes(routes!(admin::enable_client))
        .routes(routes!(admin::add_client_key))
        .routes(routes!(admin::list_users, admin::create_user))
        .routes(routes!(admin::get_user))
        .routes(routes!(admin::disable_user))
        .routes(routes!(admin::enable_user))
        .routes(routes!(admin::list_keys))
        .routes(routes!(admin::rotate_keys))
}

/// The complete application: routes, docs and the middleware stack.
pub fn router(state: AppState) -> Router {
    let (routes, spec) = api_routes().split_for_parts();
    let limit = state.config.body_limit_bytes;
    let timeout = Duration::from_secs(state.config.request_timeout_secs);
    routes
        .merge(docs::swagger_ui(spec))
        .fallback(not_found)
        .layer(middleware::from_fn(crate::telemetry::track_requests))
        .layer(
            // Outermost first: the request id exists before the span that records it, and
            // every answer below, panics and timeouts included, goes out with it.
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(TraceLayer::new_for_http().make_span_with(request_span))
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(middleware::from_fn(problem_for_bare_errors))
                .layer(CatchPanicLayer::custom(panic_response))
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    timeout,
                ))
                .layer(CompressionLayer::new())
                .layer(RequestBodyLimitLayer::new(limit))
                .layer(DefaultBodyLimit::max(limit)),
        )
        .with_state(state)
}

fn request_span(request: &Request<Body>) -> tracing::Span {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::info_span!(
        "request",
        otel.name = %format_args!("{} {}", request.method(), request.uri().path()),
        method = %request.method(),
        path = %request.uri().path(),
        request_id,
    )
}

async fn not_found() -> Problem {
    Problem::new(StatusCode::NOT_FOUND, None, "no such endpoint")
}

fn panic_response(_: Box<dyn Any + Send + 'static>) -> Response {
    tracing::error!("a handler panicked");
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        None,
        "an internal error occurred; the request id in x-request-id identifies it in the logs",
    )
    .into_response()
}

/// Gives error answers produced by the framework or middleware (405, 408, 413, 415 …),
/// which carry no body or plain text, the documented problem+json shape.
async fn problem_for_bare_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
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
