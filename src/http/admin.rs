//! The admin API (/admin/v1, scope `admin`): clients, users and signing keys, mirroring the CLI.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{ApiJson, ApiQuery};
use crate::api::guard::{AdminScope, Caller};
use crate::audit::{Event, token_actor};
use crate::error::{ApiError, Problem};
use crate::oauth::clients::{self, Client, ClientKey, NewClient};
use crate::oauth::keys::{self, KeyInfo};
use crate::oauth::users::{self, NewUser, User};
use crate::state::AppState;
use crate::store;

type Admin = Caller<AdminScope>;

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

/// Registering a user.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    /// Login name (kept in lower case).
    pub username: String,
    /// Email address.
    pub email: String,
    /// Display name.
    pub display_name: Option<String>,
    /// Initial password, 8 to 1024 characters.
    #[schema(format = Password)]
    pub password: String,
}

/// All users.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    /// The users, by username.
    pub users: Vec<User>,
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
}

/// Answers every admin endpoint may give besides its own.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum AdminErrors {
    /// No token, or an invalid, expired or revoked one (`WWW-Authenticate: Bearer`).
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// The token lacks scope `admin` (`WWW-Authenticate: Bearer error="insufficient_scope"`).
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
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
    let created = clients::create(
        &state.store,
        state.clock.as_ref(),
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
        },
    )
    .await?;
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
    state.client_changed(&id);
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
    state.client_changed(&id);
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
    state.client_changed(&id);
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
    state.client_changed(&id);
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

/// Lists users.
#[utoipa::path(get, path = "/admin/v1/users", tag = "admin", security(("bearer" = []), ("oauth2" = ["admin"])),
    responses((status = 200, body = UserList), AdminErrors))]
pub async fn list_users(
    _: Admin,
    State(state): State<AppState>,
) -> Result<Json<UserList>, ApiError> {
    Ok(Json(UserList {
        users: store::users::list(&state.store).await?,
    }))
}

/// Creates a user.
#[utoipa::path(post, path = "/admin/v1/users", tag = "admin", security(("bearer" = []), ("oauth2" = ["admin"])),
    request_body = CreateUserRequest,
    responses((status = 201, body = User, headers(("location" = String, description = "The new user"))),
        (status = 409, description = "Username taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"), AdminErrors))]
pub async fn create_user(
    admin: Admin,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateUserRequest>,
) -> Result<Response, ApiError> {
    let user = users::create(
        &state.store,
        state.clock.as_ref(),
        &state.passwords,
        NewUser {
            username: body.username,
            email: body.email,
            display_name: body.display_name,
            password: SecretString::from(body.password),
        },
    )
    .await?;
    state
        .audit
        .record(by(&admin, "admin.user.created").user(user.id.as_str()))
        .await;
    let location = format!("/admin/v1/users/{}", user.username);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(user),
    )
        .into_response())
}

/// Shows a user.
#[utoipa::path(get, path = "/admin/v1/users/{username}", tag = "admin", security(("bearer" = []), ("oauth2" = ["admin"])),
    params(("username" = String, Path)),
    responses((status = 200, body = User), (status = 404, body = Problem, content_type = "application/problem+json"), AdminErrors))]
pub async fn get_user(
    _: Admin,
    State(state): State<AppState>,
    Path(username): Path<String>,
) -> Result<Json<User>, ApiError> {
    Ok(Json(users::find(&state.store, &username).await?))
}

/// The apps a user has granted access to.
#[utoipa::path(get, path = "/admin/v1/users/{username}/grants", tag = "admin", security(("bearer" = []), ("oauth2" = ["admin"])),
    params(("username" = String, Path)),
    responses((status = 200, body = crate::api::grants::GrantList), (status = 404, body = Problem, content_type = "application/problem+json"), AdminErrors))]
pub async fn list_user_grants(
    _: Admin,
    State(state): State<AppState>,
    Path(username): Path<String>,
) -> Result<Json<crate::api::grants::GrantList>, ApiError> {
    let user = users::find(&state.store, &username).await?;
    Ok(Json(crate::api::grants::GrantList {
        grants: crate::oauth::user_grants::list(&state, &user.id).await?,
    }))
}

/// Withdraws an app's access to a user's account (consent forgotten, tokens revoked).
#[utoipa::path(delete, path = "/admin/v1/users/{username}/grants/{client_id}", tag = "admin", security(("bearer" = []), ("oauth2" = ["admin"])),
    params(("username" = String, Path), ("client_id" = String, Path)),
    responses((status = 204, description = "Withdrawn"), (status = 404, body = Problem, content_type = "application/problem+json"), AdminErrors))]
pub async fn revoke_user_grant(
    admin: Admin,
    State(state): State<AppState>,
    Path((username, client_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let user = users::find(&state.store, &username).await?;
    if crate::oauth::user_grants::revoke(&state, &user.id, &client_id).await? {
        state
            .audit
            .record(
                by(&admin, "grant.revoked")
                    .user(user.id.as_str())
                    .client(client_id.as_str()),
            )
            .await;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound)
    }
}

/// Disables a user: they can no longer sign in.
#[utoipa::path(post, path = "/admin/v1/users/{username}/disable", tag = "admin", security(("bearer" = []), ("oauth2" = ["admin"])),
    params(("username" = String, Path)),
    responses((status = 200, body = User), (status = 404, body = Problem, content_type = "application/problem+json"), AdminErrors))]
pub async fn disable_user(
    admin: Admin,
    State(state): State<AppState>,
    Path(username): Path<String>,
) -> Result<Json<User>, ApiError> {
    set_user_enabled(&admin, &state, &username, false).await
}

/// Enables a disabled user.
#[utoipa::path(post, path = "/admin/v1/users/{username}/enable", tag = "admin", security(("bearer" = []), ("oauth2" = ["admin"])),
    params(("username" = String, Path)),
    responses((status = 200, body = User), (status = 404, body = Problem, content_type = "application/problem+json"), AdminErrors))]
pub async fn enable_user(
    admin: Admin,
    State(state): State<AppState>,
    Path(username): Path<String>,
) -> Result<Json<User>, ApiError> {
    set_user_enabled(&admin, &state, &username, true).await
}

/// Lists signing keys and their states.
#[utoipa::path(get, path = "/admin/v1/keys", tag = "admin", security(("bearer" = []), ("oauth2" = ["admin"])),
    responses((status = 200, body = KeyList), AdminErrors))]
pub async fn list_keys(_: Admin, State(state): State<AppState>) -> Result<Json<KeyList>, ApiError> {
    Ok(Json(KeyList {
        keys: keys::list(&state.store, state.clock.as_ref()).await?,
    }))
}

/// Rotates the signing key: the new key is published now and signs after
/// `key_publish_secs` (or at once with `immediately=true`).
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
        state.config.signing_alg,
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
    let revoked = keys::revoke(
        &state.store,
        state.clock.as_ref(),
        ring.master(),
        state.config.signing_alg,
        &kid,
    )
    .await?;
    ring.refresh(&state.store).await?;
    let event = revoked.audit_event().actor(token_actor(&admin.claims));
    state.audit.record(event).await;
    Ok(Json(revoked))
}

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
    let mut errors = Vec::new();
    let since = crate::error::FieldError::instant(&mut errors, "since", params.since.as_deref());
    let until = crate::error::FieldError::instant(&mut errors, "until", params.until.as_deref());
    let limit = params.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        errors.push(crate::error::FieldError::new(
            "limit",
            "out_of_range",
            "must be between 1 and 200",
        ));
    }
    let before_id = match params.cursor.as_deref().map(str::parse::<i64>) {
        None => None,
        Some(Ok(id)) if id > 0 => Some(id),
        Some(_) => {
            errors.push(crate::error::FieldError::new(
                "cursor",
                "invalid",
                "must be a next_cursor this endpoint returned",
            ));
            None
        }
    };
    if let Some(outcome) = &params.outcome
        && !matches!(outcome.as_str(), "success" | "failure")
    {
        errors.push(crate::error::FieldError::new(
            "outcome",
            "invalid",
            "must be success or failure",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
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
    let more = rows.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    let next_cursor = more
        .then(|| rows.last().map(|r| r.id.to_string()))
        .flatten();
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

/// The audit event of an administrator's change.
fn by(admin: &Admin, event: &'static str) -> Event {
    Event::new(event).actor(token_actor(&admin.claims))
}

async fn set_client_enabled(
    admin: &Admin,
    state: &AppState,
    id: &str,
    enabled: bool,
) -> Result<Json<Client>, ApiError> {
    let client = clients::set_enabled(&state.store, state.clock.as_ref(), id, enabled).await?;
    state.client_changed(id);
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

async fn set_user_enabled(
    admin: &Admin,
    state: &AppState,
    username: &str,
    enabled: bool,
) -> Result<Json<User>, ApiError> {
    let user = users::set_enabled(&state.store, state.clock.as_ref(), username, enabled).await?;
    state
        .tokens
        .cutoffs
        .sync(&state.store, state.clock.unix())
        .await?;
    let event = if enabled {
        "admin.user.enabled"
    } else {
        "admin.user.disabled"
    };
    state
        .audit
        .record(by(admin, event).user(user.id.as_str()))
        .await;
    Ok(Json(user))
}
