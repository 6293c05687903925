//! The resource API: the bearer-token guard and the endpoints it protects.

pub mod cases;
pub mod events;
pub mod grants;
pub mod idempotency;
pub mod me;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::state::AppState;

/// The resource API's routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(me::get_me))
        .routes(routes!(cases::create_case, cases::list_cases))
        .routes(routes!(cases::get_case, cases::update_case))
        .routes(routes!(cases::append_line_items))
        .routes(routes!(events::events))
        .routes(routes!(grants::list_my_grants))
        .routes(routes!(grants::revoke_my_grant))
}
