//! The audit log, filtered and paged.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{Admin, AdminErrors};
use crate::error::{ApiError, Problem};
use crate::http::extract::ApiQuery;
use crate::http::state::AppState;
use crate::store;

/// Filters and paging of the audit log.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// Only this event (`sign_in`, `consent`, `device.decision`, `token.issued`,
    /// `token.revoked`, `refresh.reuse_detected`, `grant.revoked`, `key.rotated`,
    /// `admin.client.created`, …).
    pub event: Option<String>,
    /// Only events concerning this client.
    pub client_id: Option<String>,
    /// Only events concerning this user (id).
    pub user_id: Option<String>,
    /// `success` or `failure`.
    pub outcome: Option<String>,
    /// At or after this RFC 3339 instant.
    pub since: Option<String>,
    /// Before this RFC 3339 instant.
    pub until: Option<String>,
    /// Events per page, 1 to 200 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One audit event.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEvent {
    /// Increasing id.
    pub id: i64,
    /// When (RFC 3339).
    #[serde(serialize_with = "crate::clock::as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: i64,
    /// What happened.
    pub event: String,
    /// `success` or `failure`.
    pub outcome: String,
    /// Who acted: `user:ID`, `client:ID` or `system`.
    pub actor: String,
    /// The client concerned.
    pub client_id: Option<String>,
    /// The user concerned.
    pub user_id: Option<String>,
    /// The caller's address.
    pub address: Option<String>,
    /// The request (its `x-request-id`), to find it in the logs.
    pub request_id: Option<String>,
    /// Particulars of the event.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

/// A page of audit events, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// The events.
    pub events: Vec<AuditEvent>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// The audit log: sign-ins, consent and device decisions, tokens issued (by grant),
/// revocations, refresh-token reuse, key rotations and admin changes, newest first.
#[utoipa::path(get, path = "/admin/v1/audit", tag = "admin", security(("bearer" = []), ("oauth2" = ["admin"])),
    params(AuditParams),
    responses((status = 200, body = AuditPage),
        (status = 422, description = "A filter is invalid (named in `errors`)", body = Problem, content_type = "application/problem+json"),
        AdminErrors))]
pub async fn list_audit_events(
    _: Admin,
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<AuditParams>,
) -> Result<Json<AuditPage>, ApiError> {
    let mut errors = crate::fields::FieldErrors::new();
    let since = errors.instant("since", params.since.as_deref());
    let until = errors.instant("until", params.until.as_deref());
    let limit = crate::paging::limit(&mut errors, params.limit, 50, 200);
    let before_id = match params.cursor.as_deref().map(str::parse::<i64>) {
        None => None,
        Some(Ok(id)) if id > 0 => Some(id),
        Some(_) => {
            errors.fail(
                "cursor",
                "invalid",
                "must be a next_cursor this endpoint returned",
            );
            None
        }
    };
    if let Some(outcome) = &params.outcome
        && !matches!(outcome.as_str(), "success" | "failure")
    {
        errors.fail("outcome", "invalid", "must be success or failure");
    }
    errors.finish().map_err(ApiError::Validation)?;
    let filter = store::audit::AuditFilter {
        event: params.event,
        client_id: params.client_id,
        user_id: params.user_id,
        outcome: params.outcome,
        since,
        until,
        before_id,
    };
    let mut rows = store::audit::list(&state.store, &filter, limit + 1).await?;
    let next_cursor = crate::paging::next_cursor(&mut rows, limit, |r| r.id.to_string());
    let events = rows
        .into_iter()
        .map(|r| AuditEvent {
            id: r.id,
            at: r.at,
            event: r.event,
            outcome: r.outcome,
            actor: r.actor,
            client_id: r.client_id,
            user_id: r.user_id,
            address: r.address,
            request_id: r.request_id,
            detail: serde_json::from_str(&r.detail).unwrap_or(serde_json::Value::Null),
        })
        .collect();
    Ok(Json(AuditPage {
        events,
        next_cursor,
    }))
}
