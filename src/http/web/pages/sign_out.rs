//! The sign-out page: asks first, then ends the session.

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum_extra::extract::CookieJar;
use serde::Deserialize;

use crate::http::state::AppState;
use crate::http::web::error::{PageResult, WebError};
use crate::http::web::{MessagePage, page, session};

#[derive(Template)]
#[template(path = "logout.html", config = "src/http/web/askama.toml")]
pub(super) struct LogoutPage<'a> {
    username: Option<&'a str>,
    csrf_token: &'a str,
}

/// GET /logout: asks before signing out (a link alone must not sign anyone out).
pub async fn logout_page(State(state): State<AppState>, jar: CookieJar) -> PageResult {
    let user = session::current_user(&state, &jar).await?.map(|(u, _)| u);
    let (jar, csrf_token) = session::csrf_token(&state, jar);
    let template = LogoutPage {
        username: user.as_ref().map(|u| u.username.as_str()),
        csrf_token: &csrf_token,
    };
    Ok((jar, page(StatusCode::OK, &template)).into_response())
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
) -> PageResult {
    if !session::csrf_valid(&state, &jar, &form.csrf_token) {
        return Err(WebError::Page(
            StatusCode::FORBIDDEN,
            "This form has expired. Please try again.",
        ));
    }
    let jar = session::end(&state, jar).await?;
    Ok((
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
        .into_response())
}
