//! Admin endpoints for clients: registration, secrets, enabling, assertion keys, usage.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{Admin, AdminErrors, by};
use crate::error::{ApiError, Problem};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::state::AppState;
use crate::model::Client;
use crate::oauth::clients::{self, ClientKey, NewClient};
use crate::store;

/// Registering a client.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Partner backend", "type": "confidential", "grant_types": ["client_credentials"], "scopes": ["cases.read"]}))]
pub struct CreateClientRequest {
    /// Name shown to users.
    pub name: String,
    /// `public` or `confidential`.
    #[serde(rename = "type")]
    pub client_type: String,
    /// Redirect URIs (at most 32), matched exactly.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// Grant types; default by type (see the README).
    #[serde(default)]
    pub grant_types: Vec<String>,
    /// Allowed scopes; default by grants.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// `client_secret_basic`, `client_secret_post`, `private_key_jwt` or `none`.
    pub token_endpoint_auth_method: Option<String>,
    /// Allowed browser origins.
    #[serde(default)]
    pub cors_origins: Vec<String>,
    /// Usernames to pre-authorize.
    #[serde(default)]
    pub pre_authorized_users: Vec<String>,
    /// Only pre-authorized users may use the client.
    #[serde(default)]
    pub admin_approved_only: bool,
    /// Access token lifetime override, seconds.
    pub access_token_ttl_secs: Option<i64>,
    /// Refresh token lifetime override, seconds (0 = until revoked).
    pub refresh_token_ttl_secs: Option<i64>,
    /// Refresh token idle timeout override, seconds.
    pub refresh_token_idle_secs: Option<i64>,
    /// Algorithm of the client's ID tokens: `RS256`, `PS256`, `ES256` or `EdDSA`;
    /// default: the server's `id_token_signing_alg` (RS256).
    pub id_token_signed_response_alg: Option<String>,
    /// A resource server: may introspect tokens issued to any client (confidential
    /// clients only).
    #[serde(default)]
    pub may_introspect: bool,
    /// An integration (a warehouse sync): its tokens read every case's change events
    /// (`GET /api/v1/events`), not only its own (confidential clients only).
    #[serde(default)]
    pub may_read_all_events: bool,
    /// Every token request must carry a DPoP proof (RFC 9449 §5.2), and the access tokens
    /// are bound to its key.
    #[serde(default)]
    pub dpop_bound_access_tokens: bool,
    /// The client's DPoP proofs must carry a server nonce (RFC 9449 §8).
    #[serde(default)]
    pub require_dpop_nonce: bool,
    /// The client must push its authorization requests to `/oauth2/par` (RFC 9126 §6).
    #[serde(default)]
    pub require_pushed_authorization_requests: bool,
    /// `fapi2`: hold the client to the FAPI 2.0 Security Profile (confidential,
    /// `private_key_jwt`, PAR, PKCE S256, DPoP-bound tokens, ID tokens not in RS256, no
    /// refresh-token rotation).
    pub profile: Option<String>,
    /// Where RP-initiated logout may send the browser back to (at most 32), matched
    /// exactly.
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// Where to POST logout tokens when a session the client took part in ends (OpenID
    /// Connect Back-Channel Logout 1.0): `https`, or `http` on a loopback host.
    pub backchannel_logout_uri: Option<String>,
}

/// A client, with its secret when it was just created or rotated (shown once).
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientWithSecret {
    /// The client.
    #[serde(flatten)]
    pub client: Client,
    /// The plain secret: store it now, it is never shown again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

fn with_secret(client: Client, secret: Option<SecretString>) -> ClientWithSecret {
    ClientWithSecret {
        client,
        client_secret: secret.map(|s| s.expose_secret().to_owned()),
    }
}

/// All clients.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientList {
    /// The clients, oldest first.
    pub clients: Vec<Client>,
}

/// A PEM public key or X.509 certificate for client assertions.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddClientKeyRequest {
    /// `-----BEGIN PUBLIC KEY-----` … or `-----BEGIN CERTIFICATE-----` … (RSA, EC P-256
    /// or Ed25519; a certificate's subject key is taken).
    pub pem: String,
}

/// A client's assertion keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientKeyList {
    /// The keys, oldest first.
    pub keys: Vec<ClientKey>,
}

/// Lists clients.
#[utoipa::path(get, path = "/admin/v1/clients", tag = "admin", security(("bearer" = []), ("oauth2" = ["admin"])),
    responses((status = 200, body = ClientList), AdminErrors))]
pub async fn list_clients(
    _: Admin,
    State(state): State<AppState>,
) -> Result<Json<ClientList>, ApiError> {
    Ok(Json(ClientList {
        clients: store::clients::list(&state.store).await?,
    }))
}

/// Registers a client; a confidential client's secret is in the answer, once.
#[utoipa::path(post, path = "/admin/v1/clients", tag = "admin", security(("bearer" = []), ("oauth2" = ["admin"])),
    request_body = CreateClientRequest,
    responses((status = 201, body = ClientWithSecret, headers(("location" = String, description = "The new client"))),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, each named", body = Problem, content_type = "application/problem+json"),
        AdminErrors))]
pub async fn create_client(
    admin: Admin,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateClientRequest>,
) -> Result<Response, ApiError> {
    let ring = &state.tokens.ring;
    let created = clients::register(
        &state.store,
        state.clock.as_ref(),
        ring.master(),
        NewClient {
            name: body.name,
            client_type: body.client_type,
            redirect_uris: body.redirect_uris,
            grant_types: body.grant_types,
            scopes: body.scopes,
            auth_method: body.token_endpoint_auth_method,
            cors_origins: body.cors_origins,
            pre_authorize: body.pre_authorized_users,
            admin_approved_only: body.admin_approved_only,
            access_token_ttl_secs: body.access_token_ttl_secs,
            refresh_token_ttl_secs: body.refresh_token_ttl_secs,
            refresh_token_idle_secs: body.refresh_token_idle_secs,
            id_token_alg: body.id_token_signed_response_alg,
            may_introspect: body.may_introspect,
            may_read_all_events: body.may_read_all_events,
            dpop_bound_access_tokens: body.dpop_bound_access_tokens,
            require_dpop_nonce: body.require_dpop_nonce,
            require_pushed_authorization_requests: body.require_pushed_authorization_requests,
            profile: body.profile,
            post_logout_redirect_uris: body.post_logout_redirect_uris,
            backchannel_logout_uri: body.backchannel_logout_uri,
        },
    )
    .await?;
    if created.client.id_token_signed_response_alg.is_some() {
        ring.refresh(&state.store).await?;
    }
    state
        .audit
        .record(by(&admin, "admin.client.created").client(created.client.client_id.as_str()))
        .await;
    let location = format!("/admin/v1/clients/{}", created.client.client_id);
    let body = with_secret(created.client, created.secret);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(body),
    )
        .into_response())
}

/// Shows a client.
#[utoipa::path(get, path = "/admin/v1/clients/{client_id}", tag = "admin", security(("bearer" = []), ("oauth2" = ["admin"])),
    params(("client_id" = String, Path)),
    responses((status = 200, body = Client), (status = 404, body = Problem, content_type = "application/problem+json"), AdminErrors))]
pub async fn get_client(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Client>, ApiError> {
    Ok(Json(clients::find(&state.store, &id).await?))
}

/// Replaces a client's secret; the old one stops working at once.
#[utoipa::path(post, path = "/admin/v1/clients/{client_id}/rotate-secret", tag = "admin", security(("bearer" = []), ("oauth2" = ["admin"])),
    params(("client_id" = String, Path)),
    responses((status = 200, body = ClientWithSecret), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The client has no secret", body = Problem, content_type = "application/problem+json"), AdminErrors))]
pub async fn rotate_client_secret(
    admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ClientWithSecret>, ApiError> {
    let rotated = clients::rotate_secret(&state.store, state.clock.as_ref(), &id).await?;
    state.clients.changed(&id);
    state
        .audit
        .record(by(&admin, "admin.client.secret_rotated").client(id.as_str()))
        .await;
    Ok(Json(with_secret(rotated.client, rotated.secret)))
}

/// Disables a client: it can no longer authenticate or obtain tokens.
#[utoipa::path(post, path = "/admin/v1/clients/{client_id}/disable", tag = "admin", security(("bearer" = []), ("oauth2" = ["admin"])),
    params(("client_id" = String, Path)),
    responses((status = 200, body = Client), (status = 404, body = Problem, content_type = "application/problem+json"), AdminErrors))]
pub async fn disable_client(
    admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Client>, ApiError> {
    set_client_enabled(&admin, &state, &id, false).await
}

/// Enables a disabled client.
#[utoipa::path(post, path = "/admin/v1/clients/{client_id}/enable", tag = "admin", security(("bearer" = []), ("oauth2" = ["admin"])),
    params(("client_id" = String, Path)),
    responses((status = 200, body = Client), (status = 404, body = Problem, content_type = "application/problem+json"), AdminErrors))]
pub async fn enable_client(
    admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Client>, ApiError> {
    set_client_enabled(&admin, &state, &id, true).await
}

/// Registers a public key the client signs assertions with (private_key_jwt, JWT bearer
/// grant): a PEM public key or an X.509 certificate. Keys overlap: register the next key,
/// move the partner to it, then remove the old one.
#[utoipa::path(post, path = "/admin/v1/clients/{client_id}/keys", tag = "admin", security(("bearer" = []), ("oauth2" = ["admin"])),
    params(("client_id" = String, Path)), request_body = AddClientKeyRequest,
    responses((status = 201, body = ClientKey), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Key already registered", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"), AdminErrors))]
pub async fn add_client_key(
    admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AddClientKeyRequest>,
) -> Result<(StatusCode, Json<ClientKey>), ApiError> {
    let key = clients::add_key(&state.store, state.clock.as_ref(), &id, &body.pem).await?;
    state.clients.changed(&id);
    state
        .audit
        .record(
            by(&admin, "admin.client.key_added")
                .client(id.as_str())
                .detail("kid", key.kid.clone()),
        )
        .await;
    Ok((StatusCode::CREATED, Json(key)))
}

/// Registers every key of a JWKS document (RFC 7517; at most 20 keys; public keys with
/// `use` absent or `sig`), all or none. Kids are the document's own (unique per client).
#[utoipa::path(post, path = "/admin/v1/clients/{client_id}/jwks", tag = "admin", security(("bearer" = []), ("oauth2" = ["admin"])),
    params(("client_id" = String, Path)),
    request_body(content = Object, description = "A JWKS document: `{\"keys\": [{\"kty\": \"EC\", \"crv\": \"P-256\", \"x\": …, \"y\": …, \"kid\": …}]}`"),
    responses((status = 201, body = ClientKeyList), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A kid is already registered for this client", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A key is invalid (named by its index)", body = Problem, content_type = "application/problem+json"), AdminErrors))]
pub async fn add_client_jwks(
    admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<(StatusCode, Json<ClientKeyList>), ApiError> {
    let keys =
        clients::add_jwks(&state.store, state.clock.as_ref(), &id, &body.to_string()).await?;
    state.clients.changed(&id);
    state
        .audit
        .record(
            by(&admin, "admin.client.key_added")
                .client(id.as_str())
                .detail(
                    "kids",
                    keys.iter().map(|k| k.kid.clone()).collect::<Vec<_>>(),
                ),
        )
        .await;
    Ok((StatusCode::CREATED, Json(ClientKeyList { keys })))
}

/// Lists a client's assertion keys.
#[utoipa::path(get, path = "/admin/v1/clients/{client_id}/keys", tag = "admin", security(("bearer" = []), ("oauth2" = ["admin"])),
    params(("client_id" = String, Path)),
    responses((status = 200, body = ClientKeyList), (status = 404, body = Problem, content_type = "application/problem+json"), AdminErrors))]
pub async fn list_client_keys(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ClientKeyList>, ApiError> {
    let keys = clients::list_keys(&state.store, &id).await?;
    Ok(Json(ClientKeyList { keys }))
}

/// Removes one of a client's assertion keys; assertions signed with it stop verifying on
/// every replica within a sync interval.
#[utoipa::path(delete, path = "/admin/v1/clients/{client_id}/keys/{kid}", tag = "admin", security(("bearer" = []), ("oauth2" = ["admin"])),
    params(("client_id" = String, Path), ("kid" = String, Path)),
    responses((status = 204, description = "Removed"), (status = 404, body = Problem, content_type = "application/problem+json"), AdminErrors))]
pub async fn remove_client_key(
    admin: Admin,
    State(state): State<AppState>,
    Path((id, kid)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    clients::remove_key(&state.store, &id, &kid).await?;
    state.clients.changed(&id);
    state
        .audit
        .record(
            by(&admin, "admin.client.key_removed")
                .client(id.as_str())
                .detail("kid", kid.as_str()),
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// How many days of usage to show.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UsageParams {
    /// Days back from today (UTC), 1 to 366 (default 30).
    pub days: Option<i64>,
}

/// A client's API calls on one UTC day.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageDay {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    /// Calls with the client's tokens (every replica's, as of its last sync interval).
    pub calls: i64,
}

/// A client's daily API usage.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientUsage {
    /// The client.
    pub client_id: String,
    /// `api_daily_limit` (0 = none).
    pub daily_limit: u64,
    /// Days with calls, newest first.
    pub days: Vec<UsageDay>,
}

/// A client's daily API call counts (what its callers see in `Gatehouse-Limit-Info`).
#[utoipa::path(get, path = "/admin/v1/clients/{client_id}/usage", tag = "admin", security(("bearer" = []), ("oauth2" = ["admin"])),
    params(("client_id" = String, Path), UsageParams),
    responses((status = 200, body = ClientUsage), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`days` out of range", body = Problem, content_type = "application/problem+json"), AdminErrors))]
pub async fn get_client_usage(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<UsageParams>,
) -> Result<Json<ClientUsage>, ApiError> {
    let days = params.days.unwrap_or(30);
    if !(1..=366).contains(&days) {
        return Err(ApiError::Validation(vec![crate::error::FieldError::new(
            "days",
            "out_of_range",
            "must be between 1 and 366",
        )]));
    }
    let client = clients::find(&state.store, &id).await?;
    let since = crate::usage::day_of(state.clock.unix() - (days - 1) * 86_400);
    let counts = store::usage::for_client(&state.store, &id, &since).await?;
    Ok(Json(ClientUsage {
        client_id: client.client_id.to_string(),
        daily_limit: state.config.api_daily_limit,
        days: counts
            .into_iter()
            .map(|c| UsageDay {
                day: c.day,
                calls: c.calls,
            })
            .collect(),
    }))
}

async fn set_client_enabled(
    admin: &Admin,
    state: &AppState,
    id: &str,
    enabled: bool,
) -> Result<Json<Client>, ApiError> {
    let client = clients::set_enabled(&state.store, state.clock.as_ref(), id, enabled).await?;
    state.clients.changed(id);
    // This process honours the cut-off at once; the others at their next sync.
    state
        .tokens
        .cutoffs
        .sync(&state.store, state.clock.unix())
        .await?;
    let event = if enabled {
        "admin.client.enabled"
    } else {
        "admin.client.disabled"
    };
    state.audit.record(by(admin, event).client(id)).await;
    Ok(Json(client))
}
