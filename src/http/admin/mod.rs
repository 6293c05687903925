//! The admin API (/admin/v1, scope `admin`): clients, users, signing keys and webhooks,
//! mirroring the CLI.

mod audit;
mod clients;
mod keys;
mod users;
mod webhooks;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::audit::{Event, token_actor};
use crate::error::Problem;
use crate::http::guard::{AdminScope, Caller};
use crate::http::state::AppState;

/// The caller of an admin endpoint: a token with scope `admin`.
type Admin = Caller<AdminScope>;

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

/// The audit event of an administrator's change.
fn by(admin: &Admin, event: &'static str) -> Event {
    Event::new(event).actor(token_actor(&admin.claims))
}

/// The admin API's routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(clients::list_clients, clients::create_client))
        .routes(routes!(clients::get_client))
        .routes(routes!(clients::rotate_client_secret))
        .routes(routes!(clients::disable_client))
        .routes(routes!(clients::enable_client))
        .routes(routes!(clients::add_client_key, clients::list_client_keys))
        .routes(routes!(clients::add_client_jwks))
        .routes(routes!(clients::remove_client_key))
        .routes(routes!(users::list_users, users::create_user))
        .routes(routes!(users::get_user))
        .routes(routes!(users::list_user_grants))
        .routes(routes!(users::revoke_user_grant))
        .routes(routes!(users::list_user_sessions, users::end_user_sessions))
        .routes(routes!(users::end_user_session))
        .routes(routes!(users::disable_user))
        .routes(routes!(users::enable_user))
        .routes(routes!(keys::list_keys))
        .routes(routes!(keys::rotate_keys))
        .routes(routes!(keys::revoke_key))
        .routes(routes!(audit::list_audit_events))
        .routes(routes!(clients::get_client_usage))
        .routes(routes!(webhooks::list_webhooks, webhooks::create_webhook))
        .routes(routes!(webhooks::get_webhook, webhooks::delete_webhook))
        .routes(routes!(webhooks::disable_webhook))
        .routes(routes!(webhooks::enable_webhook))
        .routes(routes!(webhooks::rotate_webhook_secret))
        .routes(routes!(webhooks::list_webhook_deliveries))
        .routes(routes!(webhooks::redeliver_webhook))
}
