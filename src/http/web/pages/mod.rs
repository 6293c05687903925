//! The sign-in, consent and sign-out pages (form contract in DESIGN.md: `username`,
//! `password`, `decision=approve|deny`, and a `csrf_token` in every form).

mod consent;
mod sign_in;
mod sign_out;

pub use consent::*;
pub use sign_in::*;
pub use sign_out::*;

use axum_extra::extract::CookieJar;

use super::error::WebError;
use super::session;
use crate::http::state::AppState;

/// The signed-in user and their sign-in time, `None` without a session.
pub(super) async fn signed_in_user(
    state: &AppState,
    jar: &CookieJar,
) -> Result<Option<(crate::model::User, i64)>, WebError> {
    Ok(session::current_user(state, jar).await?)
}
