//! Admin endpoints for signing keys: listing, rotation, revocation.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{Admin, AdminErrors, by};
use crate::audit::token_actor;
use crate::error::{ApiError, Problem};
use crate::http::extract::ApiQuery;
use crate::http::state::AppState;
use crate::model::SigningAlg;
use crate::oauth::keys::{self, KeyInfo};

/// All signing keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    /// The keys, oldest first.
    pub keys: Vec<KeyInfo>,
}

/// Options of a key rotation.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RotateKeysParams {
    /// Sign with the new key at once instead of after `key_publish_secs` (for a
    /// compromised key; verifiers that cached the old JWKS reject new tokens until they refresh).
    #[serde(default)]
    #[param(required = false)]
    pub immediately: bool,
    /// The line of keys to rotate; default: the access tokens' (`signing_alg`).
    #[param(required = false)]
    pub alg: Option<SigningAlg>,
}

/// Lists signing keys and their states.
#[utoipa::path(get, path = "/admin/v1/keys", tag = "admin", security(("bearer" = []), ("oauth2" = ["admin"])),
    responses((status = 200, body = KeyList), AdminErrors))]
pub async fn list_keys(_: Admin, State(state): State<AppState>) -> Result<Json<KeyList>, ApiError> {
    Ok(Json(KeyList {
        keys: keys::list(&state.store, state.clock.as_ref()).await?,
    }))
}

/// Rotates one line of signing keys (one algorithm): the new key is published now and
/// signs after `key_publish_secs` (or at once with `immediately=true`).
#[utoipa::path(post, path = "/admin/v1/keys/rotate", tag = "admin", security(("bearer" = []), ("oauth2" = ["admin"])),
    params(RotateKeysParams),
    responses((status = 201, body = KeyInfo), AdminErrors))]
pub async fn rotate_keys(
    admin: Admin,
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<RotateKeysParams>,
) -> Result<(StatusCode, Json<KeyInfo>), ApiError> {
    let publish = if params.immediately {
        0
    } else {
        state.config.key_publish_secs
    };
    let ring = &state.tokens.ring;
    let key = keys::rotate(
        &state.store,
        state.clock.as_ref(),
        ring.master(),
        params.alg.unwrap_or(state.config.signing_alg),
        publish,
    )
    .await?;
    ring.refresh(&state.store).await?;
    state
        .audit
        .record(by(&admin, "key.rotated").detail("kid", key.kid.clone()))
        .await;
    Ok((StatusCode::CREATED, Json(key)))
}

/// Revokes a compromised signing key: it leaves JWKS and verification at once (every
/// replica within a sync interval), tokens it signed stop verifying, and when it was the
/// key that signed, a new key signs at once in its place.
#[utoipa::path(delete, path = "/admin/v1/keys/{kid}", tag = "admin", security(("bearer" = []), ("oauth2" = ["admin"])),
    params(("kid" = String, Path, description = "The key")),
    responses((status = 200, body = keys::Revoked),
        (status = 404, description = "No such key", body = Problem, content_type = "application/problem+json"),
        AdminErrors))]
pub async fn revoke_key(
    admin: Admin,
    State(state): State<AppState>,
    Path(kid): Path<String>,
) -> Result<Json<keys::Revoked>, ApiError> {
    let ring = &state.tokens.ring;
    let revoked = keys::revoke(&state.store, state.clock.as_ref(), ring.master(), &kid).await?;
    ring.refresh(&state.store).await?;
    let event = revoked.audit_event().actor(token_actor(&admin.claims));
    state.audit.record(event).await;
    Ok(Json(revoked))
}
