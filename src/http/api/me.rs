//! GET /api/v1/me: the caller as its token says.

use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::Problem;
use crate::http::guard::Caller;

/// Who the caller is, according to its access token.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"sub": "01935c1e-7f3a-7c2b-9d41-3c1f0e8a2b7d", "client_id": "gatehouse-demo", "scope": "openid api", "exp": 1790000600}))]
pub struct Me {
    /// The user, or the client for client-credentials tokens.
    pub sub: String,
    /// The client the token was issued to.
    pub client_id: String,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// Expiry, Unix seconds.
    pub exp: i64,
}

/// The caller as its token says: partners use it to check their setup.
#[utoipa::path(get, path = "/api/v1/me", tag = "api",
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "The caller", body = Me),
        (status = 401, description = "Missing, invalid, expired or revoked token (WWW-Authenticate: Bearer)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_me(caller: Caller) -> Json<Me> {
    let c = &caller.claims;
    Json(Me {
        sub: c.sub.clone(),
        client_id: c.client_id.clone(),
        scope: c.scope.clone(),
        exp: c.exp,
    })
}
