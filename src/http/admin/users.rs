//! Admin endpoints for users: accounts, their grants, enabling.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Admin, AdminErrors, by};
use crate::error::{ApiError, Problem};
use crate::http::extract::ApiJson;
use crate::http::state::AppState;
use crate::model::User;
use crate::oauth::users::{self, NewUser};
use crate::store;

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
    responses((status = 200, body = crate::http::api::grants::GrantList), (status = 404, body = Problem, content_type = "application/problem+json"), AdminErrors))]
pub async fn list_user_grants(
    _: Admin,
    State(state): State<AppState>,
    Path(username): Path<String>,
) -> Result<Json<crate::http::api::grants::GrantList>, ApiError> {
    let user = users::find(&state.store, &username).await?;
    Ok(Json(crate::http::api::grants::GrantList {
        grants: crate::oauth::connected_apps::list(&state.oauth(), &user.id).await?,
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
    if crate::oauth::connected_apps::revoke(&state.oauth(), &user.id, &client_id).await? {
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

/// A browser session of a user.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionInfo {
    /// The session's id towards clients: the `sid` of its ID tokens and logout tokens.
    pub sid: String,
    /// When the user signed in.
    #[serde(serialize_with = "crate::clock::as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub auth_time: i64,
    /// When the session expires.
    #[serde(serialize_with = "crate::clock::as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: i64,
    /// The clients that received an ID token in it (told when it ends, if they registered
    /// a `backchannel_logout_uri`).
    pub clients: Vec<String>,
}

/// A user's live browser sessions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    /// Newest first.
    pub sessions: Vec<SessionInfo>,
}

/// Lists a user's live browser sessions.
#[utoipa::path(get, path = "/admin/v1/users/{username}/sessions", tag = "admin", security(("bearer" = []), ("oauth2" = ["admin"])),
    params(("username" = String, Path)),
    responses((status = 200, body = SessionList), (status = 404, body = Problem, content_type = "application/problem+json"), AdminErrors))]
pub async fn list_user_sessions(
    _: Admin,
    State(state): State<AppState>,
    Path(username): Path<String>,
) -> Result<Json<SessionList>, ApiError> {
    let user = users::find(&state.store, &username).await?;
    let rows = store::sessions::for_user(&state.store, &user.id, state.clock.unix()).await?;
    let joined = store::logouts::clients_of_user(&state.store, &user.id).await?;
    let sessions = rows
        .into_iter()
        .map(|row| SessionInfo {
            clients: joined
                .iter()
                .filter(|(sid, _)| *sid == row.sid)
                .map(|(_, client)| client.clone())
                .collect(),
            sid: row.sid,
            auth_time: row.auth_time,
            expires_at: row.expires_at,
        })
        .collect();
    Ok(Json(SessionList { sessions }))
}

/// Signs a user out of every browser: each client that received an ID token in one of
/// the sessions is sent a back-channel logout token.
#[utoipa::path(delete, path = "/admin/v1/users/{username}/sessions", tag = "admin", security(("bearer" = []), ("oauth2" = ["admin"])),
    params(("username" = String, Path)),
    responses((status = 204, description = "Every session ended"), (status = 404, body = Problem, content_type = "application/problem+json"), AdminErrors))]
pub async fn end_user_sessions(
    admin: Admin,
    State(state): State<AppState>,
    Path(username): Path<String>,
) -> Result<StatusCode, ApiError> {
    end_sessions(&admin, &state, &username, None).await
}

/// Ends one browser session of a user (its clients are told as above).
#[utoipa::path(delete, path = "/admin/v1/users/{username}/sessions/{sid}", tag = "admin", security(("bearer" = []), ("oauth2" = ["admin"])),
    params(("username" = String, Path), ("sid" = String, Path, description = "The session's `sid`")),
    responses((status = 204, description = "Ended"), (status = 404, description = "No such user, or no live session of theirs with this sid", body = Problem, content_type = "application/problem+json"), AdminErrors))]
pub async fn end_user_session(
    admin: Admin,
    State(state): State<AppState>,
    Path((username, sid)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    end_sessions(&admin, &state, &username, Some(&sid)).await
}

async fn end_sessions(
    admin: &Admin,
    state: &AppState,
    username: &str,
    sid: Option<&str>,
) -> Result<StatusCode, ApiError> {
    let (user, ended) =
        users::end_sessions(&state.store, state.clock.as_ref(), username, sid).await?;
    state.logout_wakeup.notify_one();
    state
        .audit
        .record(
            by(admin, "admin.user.signed_out")
                .user(user.id.as_str())
                .detail("sessions", ended),
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
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

async fn set_user_enabled(
    admin: &Admin,
    state: &AppState,
    username: &str,
    enabled: bool,
) -> Result<Json<User>, ApiError> {
    let user = users::set_enabled(&state.store, state.clock.as_ref(), username, enabled).await?;
    state.logout_wakeup.notify_one();
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
