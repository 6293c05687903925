//! Routers and the middleware stack. Handlers only parse, call the domain and shape answers.

pub mod admin;
pub mod cors;
pub mod docs;
pub mod extract;
pub mod health;
pub mod oauth;
pub mod observe;
pub mod ratelimit;

use std::any::Any;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
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
        .routes(routes!(crate::web::authorize::authorize))
        .routes(routes!(oauth::issue_token))
        .routes(routes!(oauth::device_authorization))
        .routes(routes!(oauth::introspect_token))
        .routes(routes!(oauth::revoke_token))
        .routes(routes!(oauth::get_userinfo, oauth::post_userinfo))
        .routes(routes!(oauth::get_jwks))
        .routes(routes!(oauth::get_openid_configuration))
        .routes(routes!(oauth::get_authorization_server_metadata))
        .routes(routes!(crate::api::me::get_me))
        .routes(routes!(
            crate::api::cases::create_case,
            crate::api::cases::list_cases
        ))
        .routes(routes!(
            crate::api::cases::get_case,
            crate::api::cases::update_case
        ))
        .routes(routes!(crate::api::cases::append_line_items))
        .routes(routes!(crate::api::grants::list_my_grants))
        .routes(routes!(crate::api::grants::revoke_my_grant))
        .routes(routes!(admin::list_clients, admin::create_client))
        .routes(routes!(admin::get_client))
        .routes(routes!(admin::rotate_client_secret))
        .routes(routes!(admin::disable_client))
        .routes(routes!(admin::enable_client))
        .routes(routes!(admin::add_client_key, admin::list_client_keys))
        .routes(routes!(admin::add_client_jwks))
        .routes(routes!(admin::remove_client_key))
        .routes(routes!(admin::list_users, admin::create_user))
        .routes(routes!(admin::get_user))
        .routes(routes!(admin::list_user_grants))
        .routes(routes!(admin::revoke_user_grant))
        .routes(routes!(admin::disable_user))
        .routes(routes!(admin::enable_user))
        .routes(routes!(admin::list_keys))
        .routes(routes!(admin::rotate_keys))
        .routes(routes!(admin::revoke_key))
        .routes(routes!(admin::list_audit_events))
        .routes(routes!(admin::get_client_usage))
}

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
    let (routes, spec) = api_routes().split_for_parts();
    let limit = state.config.body_limit_bytes;
    let timeout = Duration::from_secs(state.config.request_timeout_secs);
    let observe_config = observe::ObserveConfig {
        traced: crate::telemetry::tracing_exported(),
    };
    routes
        .merge(docs::swagger_ui(docs::complete(spec)))
        .merge(crate::web::routes())
        .fallback(not_found)
        .layer(
            // Outermost first: every answer below, panics and timeouts included, passes
            // through `observe` and leaves with its request id, metrics and error shape.
            ServiceBuilder::new()
                .layer(middleware::from_fn(move |request, next| {
                    observe::observe(observe_config, request, next)
                }))
                .layer(CatchPanicLayer::custom(panic_response))
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    timeout,
                ))
                .layer(cors::layer(state.cors_origins.clone()))
                .layer(middleware::from_fn_with_state(
                    state.clone(),
                    ratelimit::layer,
                ))
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
