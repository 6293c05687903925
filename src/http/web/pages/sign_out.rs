//! The sign-out page: asks first, then ends the session.

use crate::http::state::AppState;
use crate::http::web::{MessagePage, error_page, page, session};
use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use serde::Deserialize;

use super::*;

#[derive(Template)]
#[template(path = "logout.html", config = "src/http/web/askama.toml")]
pub(super) struct LogoutPage<'a> {
    username: Option<&'a str>,
    csrf_token: &'a str,
}

/// GET /logout: asks before signing out (a link alone must not sign anyone out).
pub async fn logout_page(State(state): State<AppState>, jar: CookieJar) -> Response {
    let user = match signed_in_user(&state, &jar).await {
        Ok(found) => found.map(|(u, _)| u),
        Err(response) => return response,
    };
    let (jar, csrf_token) = session::csrf_token(&state, jar);
    let template = LogoutPage {
        username: user.as_ref().map(|u| u.username.as_str()),
        csrf_token: &csrf_token,
    };
    (jar, page(StatusCode::OK, &template)).into_response()
}

/// The sign-out form.
#[derive(Default, Deserialize)]
#[serde(default)]
pub struct LogoutForm {
    csrf_token: String,
}

/// POST /logout.
pub async fn logout_submit(
    State(state): State<AppState>,
    jar: CookieJar,
    Form(form): Form<LogoutForm>,
) -> Response {
    if !session::csrf_valid(&state, &jar, &form.csrf_token) {
        return error_page(
            StatusCode::FORBIDDEN,
            "This form has expired. Please try again.",
        );
    }
    match session::end(&state, jar).await {
        Ok(jar) => (
            jar,
            page(
                StatusCode::OK,
                &MessagePage {
                    title: "Signed out",
                    text: "You are signed out.",
                    is_error: false,
                },
            ),
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "sign-out failed");
            error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Signing out failed; try again.",
            )
        }
    }
}
