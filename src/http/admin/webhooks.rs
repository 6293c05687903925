//! Admin endpoints for webhooks: endpoints, their secrets, their deliveries.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;

use super::{Admin, AdminErrors, by};
use crate::error::{ApiError, Problem};
use crate::events::endpoints::{
    self, DeliveryList, Endpoint, EndpointList, EndpointWithSecret, NewEndpoint,
};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::state::AppState;

/// Registers a webhook endpoint. Its signing secret is in this answer only; deliveries
/// start with the next event committed.
#[utoipa::path(post, path = "/admin/v1/webhooks", tag = "admin", security(("bearer" = []), ("oauth2" = ["admin"])),
    request_body = NewEndpoint,
    responses((status = 201, body = EndpointWithSecret),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid URL (or a refused private target), unknown event type", body = Problem, content_type = "application/problem+json"),
        AdminErrors))]
pub async fn create_webhook(
    admin: Admin,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<NewEndpoint>,
) -> Result<(StatusCode, Json<EndpointWithSecret>), ApiError> {
    let created = endpoints::create(&state.events(), state.tokens.ring.master(), body).await?;
    state
        .audit
        .record(
            by(&admin, "admin.webhook.created")
                .detail("webhook", created.endpoint.id.clone())
                .detail("url", created.endpoint.url.clone()),
        )
        .await;
    state.webhook_wakeup.notify_one();
    Ok((StatusCode::CREATED, Json(created)))
}

/// Lists webhook endpoints (never their secrets).
#[utoipa::path(get, path = "/admin/v1/webhooks", tag = "admin", security(("bearer" = []), ("oauth2" = ["admin"])),
    responses((status = 200, body = EndpointList), AdminErrors))]
pub async fn list_webhooks(
    _: Admin,
    State(state): State<AppState>,
) -> Result<Json<EndpointList>, ApiError> {
    Ok(Json(endpoints::list(&state.events()).await?))
}

/// One webhook endpoint.
#[utoipa::path(get, path = "/admin/v1/webhooks/{id}", tag = "admin", security(("bearer" = []), ("oauth2" = ["admin"])),
    params(("id" = String, Path)),
    responses((status = 200, body = Endpoint), (status = 404, body = Problem, content_type = "application/problem+json"), AdminErrors))]
pub async fn get_webhook(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Endpoint>, ApiError> {
    Ok(Json(endpoints::get(&state.events(), &id).await?))
}

/// Deletes a webhook endpoint and its deliveries.
#[utoipa::path(delete, path = "/admin/v1/webhooks/{id}", tag = "admin", security(("bearer" = []), ("oauth2" = ["admin"])),
    params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json"), AdminErrors))]
pub async fn delete_webhook(
    admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    endpoints::delete(&state.events(), &id).await?;
    state
        .audit
        .record(by(&admin, "admin.webhook.deleted").detail("webhook", id))
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Disables a webhook endpoint: its deliveries wait (and still queue) until it is enabled.
#[utoipa::path(post, path = "/admin/v1/webhooks/{id}/disable", tag = "admin", security(("bearer" = []), ("oauth2" = ["admin"])),
    params(("id" = String, Path)),
    responses((status = 200, body = Endpoint), (status = 404, body = Problem, content_type = "application/problem+json"), AdminErrors))]
pub async fn disable_webhook(
    admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Endpoint>, ApiError> {
    set_enabled(admin, state, id, false).await
}

/// Enables a disabled webhook endpoint (after a 410, or an administrator's disable): what
/// queued meanwhile goes out.
#[utoipa::path(post, path = "/admin/v1/webhooks/{id}/enable", tag = "admin", security(("bearer" = []), ("oauth2" = ["admin"])),
    params(("id" = String, Path)),
    responses((status = 200, body = Endpoint), (status = 404, body = Problem, content_type = "application/problem+json"), AdminErrors))]
pub async fn enable_webhook(
    admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Endpoint>, ApiError> {
    set_enabled(admin, state, id, true).await
}

async fn set_enabled(
    admin: Admin,
    state: AppState,
    id: String,
    enabled: bool,
) -> Result<Json<Endpoint>, ApiError> {
    let endpoint = endpoints::set_enabled(&state.events(), &id, enabled).await?;
    let event = if enabled {
        "admin.webhook.enabled"
    } else {
        "admin.webhook.disabled"
    };
    state
        .audit
        .record(by(&admin, event).detail("webhook", id))
        .await;
    state.webhook_wakeup.notify_one();
    Ok(Json(endpoint))
}

/// Replaces the signing secret (shown in this answer only). For 24 hours deliveries carry
/// two signatures, one per secret, so that the receiver can switch without a gap.
#[utoipa::path(post, path = "/admin/v1/webhooks/{id}/rotate-secret", tag = "admin", security(("bearer" = []), ("oauth2" = ["admin"])),
    params(("id" = String, Path)),
    responses((status = 200, body = EndpointWithSecret), (status = 404, body = Problem, content_type = "application/problem+json"), AdminErrors))]
pub async fn rotate_webhook_secret(
    admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<EndpointWithSecret>, ApiError> {
    let rotated =
        endpoints::rotate_secret(&state.events(), state.tokens.ring.master(), &id).await?;
    state
        .audit
        .record(by(&admin, "admin.webhook.secret_rotated").detail("webhook", id))
        .await;
    Ok(Json(rotated))
}

/// Query of the deliveries list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeliveryParams {
    /// Only deliveries in this state: `queued`, `sent` or `failed`.
    pub status: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// An endpoint's deliveries, newest first, each with every attempt (time, HTTP status or
/// error, duration).
#[utoipa::path(get, path = "/admin/v1/webhooks/{id}/deliveries", tag = "admin", security(("bearer" = []), ("oauth2" = ["admin"])),
    params(("id" = String, Path), DeliveryParams),
    responses((status = 200, body = DeliveryList),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid status or limit", body = Problem, content_type = "application/problem+json"),
        AdminErrors))]
pub async fn list_webhook_deliveries(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<DeliveryParams>,
) -> Result<Json<DeliveryList>, ApiError> {
    Ok(Json(
        endpoints::deliveries(
            &state.events(),
            &id,
            params.status.as_deref(),
            params.cursor.as_deref(),
            params.limit,
        )
        .await?,
    ))
}

/// Sends a delivery again (delivered, given up or waiting): it is due at once, with the
/// same `webhook-id`.
#[utoipa::path(post, path = "/admin/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver", tag = "admin", security(("bearer" = []), ("oauth2" = ["admin"])),
    params(("id" = String, Path), ("delivery_id" = String, Path)),
    responses((status = 202, description = "Queued"), (status = 404, body = Problem, content_type = "application/problem+json"), AdminErrors))]
pub async fn redeliver_webhook(
    admin: Admin,
    State(state): State<AppState>,
    Path((id, delivery_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    endpoints::redeliver(&state.events(), &id, &delivery_id).await?;
    state
        .audit
        .record(
            by(&admin, "admin.webhook.redelivered")
                .detail("webhook", id)
                .detail("delivery", delivery_id),
        )
        .await;
    state.webhook_wakeup.notify_one();
    Ok(StatusCode::ACCEPTED)
}
