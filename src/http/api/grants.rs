//! A user's own grants: which apps may act for them, and withdrawing that access. Every
//! app sees and may withdraw its own grant; only a token with scope `grants` (an account
//! portal the user trusts with that) reaches the user's other apps.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, Problem};
use crate::http::guard::Caller;
use crate::http::state::AppState;
use crate::model::Scope;
use crate::oauth::connected_apps::{self, Grant};

/// The apps a user has granted access to.
#[derive(Debug, Serialize, ToSchema)]
pub struct GrantList {
    /// Newest first.
    pub grants: Vec<Grant>,
}

/// Lists the apps the token's user has approved: all of them with scope `grants`, else
/// only the token's own app (a client-credentials token has no user and gets an empty
/// list).
#[utoipa::path(get, path = "/api/v1/me/grants", tag = "api",
    security(("bearer" = []), ("oauth2" = ["grants"])),
    responses(
        (status = 200, description = "The user's grants", body = GrantList),
        (status = 401, description = "Missing, invalid, expired or revoked token", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_my_grants(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<GrantList>, ApiError> {
    let mut grants = connected_apps::list(&state.oauth(), &caller.claims.sub).await?;
    if !caller.has_scope(Scope::Grants) {
        grants.retain(|g| g.client_id == caller.claims.client_id);
    }
    Ok(Json(GrantList { grants }))
}

/// Withdraws an app's access: its consent is forgotten and every refresh and access
/// token it holds for the user is revoked (on every replica within the sync interval).
/// Any token may withdraw its own app's grant; another app's needs scope `grants`.
#[utoipa::path(delete, path = "/api/v1/me/grants/{client_id}", tag = "api",
    security(("bearer" = []), ("oauth2" = ["grants"])),
    params(("client_id" = String, Path, description = "The app")),
    responses(
        (status = 204, description = "Withdrawn"),
        (status = 404, description = "The app holds no grant of this user", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid, expired or revoked token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Another app's grant, and the token lacks scope `grants`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn revoke_my_grant(
    State(state): State<AppState>,
    caller: Caller,
    Path(client_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if client_id != caller.claims.client_id && !caller.has_scope(Scope::Grants) {
        return Err(ApiError::insufficient_scope(&[Scope::Grants]));
    }
    if connected_apps::revoke(&state.oauth(), &caller.claims.sub, &client_id).await? {
        state
            .audit
            .record(
                crate::audit::Event::new("grant.revoked")
                    .user(caller.claims.sub.as_str())
                    .client(client_id.as_str()),
            )
            .await;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound)
    }
}
