//! Routers and the middleware stack. Handlers only parse, call the domain and shape answers.

pub mod admin;
pub mod api;
pub mod cors;
pub mod docs;
pub mod extract;
pub mod guard;
pub mod health;
pub mod oauth;
pub mod observe;
pub mod ratelimit;
pub mod state;
pub mod web;

use std::any::Any;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tower::ServiceBuilder;
use tower::layer::layer_fn;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::Problem;
use crate::http::state::AppState;

/// The documented routes only the management listener serves.
pub fn management_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(health::get_metrics))
}

/// The management listener's router (never exposed on the public listener): metrics, and
/// the health checks again, so that one port serves an orchestrator's probes and the
/// scraper.
pub fn management_router(state: AppState) -> Router {
    let (routes, _) = management_routes().split_for_parts();
    routes
        .route("/healthz", axum::routing::get(health::get_health))
        .route("/readyz", axum::routing::get(health::get_readiness))
        .fallback(not_found)
        .layer(CatchPanicLayer::custom(panic_response))
        .with_state(state)
}

/// The complete application: routes, docs and the middleware stack.
pub fn router(state: AppState) -> Router {
    let (routes, spec) = crate::routes().split_for_parts();
    let limit = state.config.body_limit_bytes;
    let timeout = Duration::from_secs(state.config.request_timeout_secs);
    let limits = state.clone();
    let observe_config = observe::ObserveConfig {
        traced: crate::telemetry::tracing_exported(),
    };
    routes
        .merge(docs::swagger_ui(docs::complete(spec)))
        .fallback(not_found)
        .layer(
            // Outermost first: every answer below, panics and timeouts included, passes
            // through `observe` and leaves with its request id, metrics and error shape.
            ServiceBuilder::new()
                .layer(layer_fn(move |inner| {
                    observe::Observe::new(inner, observe_config)
                }))
                .layer(CatchPanicLayer::custom(panic_response))
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    timeout,
                ))
                .layer(cors::layer(state.cors_origins.clone()))
                .layer(layer_fn(move |inner| {
                    ratelimit::RateLimit::new(inner, limits.clone())
                }))
                .layer(CompressionLayer::new().compress_when(worth_compressing()))
                .layer(RequestBodyLimitLayer::new(limit))
                .layer(DefaultBodyLimit::max(limit)),
        )
        .with_state(state)
}

/// Compress only bodies of 1 KiB or more (the spec, the docs' assets, metrics, lists):
/// for a small JSON answer, setting up a brotli or gzip stream costs far more than the
/// bytes it saves. HTML is never compressed: the sign-in, consent and activation pages
/// carry a CSRF token next to what the request reflected (BREACH).
fn worth_compressing() -> impl tower_http::compression::Predicate {
    use tower_http::compression::Predicate as _;
    use tower_http::compression::predicate::{NotForContentType, SizeAbove};
    SizeAbove::new(1024)
        .and(NotForContentType::GRPC)
        .and(NotForContentType::IMAGES)
        .and(NotForContentType::SSE)
        .and(NotForContentType::const_new("text/html"))
}

async fn not_found() -> Problem {
    Problem::new(StatusCode::NOT_FOUND, None, "no such endpoint")
}

fn panic_response(_: Box<dyn Any + Send + 'static>) -> Response {
    tracing::error!(request_id = %crate::telemetry::request_id(), "a handler panicked");
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        None,
        "an internal error occurred; the request id in x-request-id identifies it in the logs",
    )
    .into_response()
}
