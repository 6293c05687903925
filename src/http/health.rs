//! Liveness, readiness and Prometheus metrics.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::Problem;
use crate::http::state::AppState;

/// How long readiness waits for the database before it says no.
const READINESS_DEADLINE: Duration = Duration::from_secs(2);

/// A health answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` (liveness) or `ready` (readiness).
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// Liveness: the process serves HTTP. Touches nothing else.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process is alive", body = Health)))]
pub async fn get_health() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness: the database answers and its schema is current. 503 otherwise.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready to serve", body = Health),
        (status = 503, description = "The database is unreachable or not migrated", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn get_readiness(State(state): State<AppState>) -> Response {
    match tokio::time::timeout(READINESS_DEADLINE, state.store.readiness()).await {
        Ok(Ok(())) => Json(Health { status: "ready" }).into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "not ready");
            not_ready("the database is unreachable or its schema is not current")
        }
        Err(_) => {
            tracing::warn!("not ready: the database did not answer in time");
            not_ready("the database did not answer in time")
        }
    }
}

fn not_ready(detail: &str) -> Response {
    Problem::new(StatusCode::SERVICE_UNAVAILABLE, Some("not-ready"), detail).into_response()
}

/// Prometheus text exposition of request counts and latencies. Served only on the
/// management listener (`management_listen`, default 127.0.0.1:9090), not on the public one.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", body = String,
        content_type = "text/plain; version=0.0.4")))]
pub async fn get_metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// The health checks on the public listener (metrics only on the management listener).
pub fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    utoipa_axum::router::OpenApiRouter::new()
        .routes(utoipa_axum::routes!(get_health))
        .routes(utoipa_axum::routes!(get_readiness))
}
