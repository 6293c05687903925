//! The sign-in page: the form, the throttled password check, the session it starts.

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use secrecy::SecretString;
use serde::Deserialize;

use crate::audit::Event;
use crate::http::ratelimit::ClientAddr;
use crate::http::state::AppState;
use crate::http::web::error::{PageResult, WebError};
use crate::http::web::{MessagePage, page, see_other, session, try_again_in, with_retry_after};
use crate::oauth::login::{self, LoginError};

/// The audit event of a refused sign-in.
pub(super) fn failed_sign_in(address: &str, username: &str, reason: &str) -> Event {
    Event::new("sign_in")
        .failed()
        .address(address)
        .detail("username", username)
        .detail("reason", reason)
}

/// The longest username the sign-in form takes (its input's `maxlength`).
pub(super) const MAX_USERNAME: usize = 64;

/// The typed username, bounded before it is counted, logged or shown again: at most
/// [`MAX_USERNAME`] characters, control characters dropped. A longer or altered one ends in
/// `…`, which no username contains, so it can never sign in as the account it was cut to.
pub(super) fn bounded_username(typed: &str) -> String {
    let typed = typed.trim();
    let mut kept: String = typed
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_USERNAME)
        .collect();
    if kept.len() != typed.len() {
        kept.push('…');
    }
    kept
}

/// Where a sign-in may continue: only back into a flow of this server, never elsewhere
/// (no open redirect).
pub(super) fn safe_return(return_to: &str) -> Option<&str> {
    const ALLOWED: &[&str] = &["/oauth2/authorize?", "/activate"];
    ALLOWED
        .iter()
        .any(|prefix| return_to.starts_with(prefix))
        .then_some(return_to)
}

#[derive(Template)]
#[template(path = "login.html", config = "src/http/web/askama.toml")]
pub(super) struct LoginPage<'a> {
    client_name: Option<String>,
    error: Option<&'a str>,
    csrf_token: &'a str,
    return_to: &'a str,
    username: &'a str,
}

/// Query of GET /login.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LoginQuery {
    return_to: String,
    login_hint: String,
}

/// The client an authorization request in `return_to` names, for "to continue to …".
pub(super) async fn client_name(state: &AppState, return_to: &str) -> Option<String> {
    let query = return_to.split_once('?')?.1;
    let client_id = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "client_id")?
        .1
        .into_owned();
    let client = state.oauth().client(&client_id).await.ok()??;
    Some(client.name.clone())
}

pub(super) async fn render_login(
    state: &AppState,
    jar: CookieJar,
    status: StatusCode,
    error: Option<&str>,
    return_to: &str,
    username: &str,
) -> Response {
    let (jar, csrf_token) = session::csrf_token(state, jar);
    let return_to = safe_return(return_to).unwrap_or("");
    let client_name = client_name(state, return_to).await;
    let template = LoginPage {
        client_name,
        error,
        csrf_token: &csrf_token,
        return_to,
        username,
    };
    (jar, page(status, &template)).into_response()
}

/// GET /login.
pub async fn login_page(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(query): Query<LoginQuery>,
) -> Response {
    render_login(
        &state,
        jar,
        StatusCode::OK,
        None,
        &query.return_to,
        &query.login_hint,
    )
    .await
}

/// The sign-in form.
#[derive(Default, Deserialize)]
#[serde(default)]
pub struct LoginForm {
    username: String,
    password: SecretString,
    csrf_token: String,
    return_to: String,
}

/// POST /login.
pub async fn login_submit(
    State(state): State<AppState>,
    ClientAddr(address): ClientAddr,
    jar: CookieJar,
    Form(form): Form<LoginForm>,
) -> PageResult {
    let username = bounded_username(&form.username);
    if !session::csrf_valid(&state, &jar, &form.csrf_token) {
        return Ok(render_login(
            &state,
            jar,
            StatusCode::FORBIDDEN,
            Some("This form has expired. Please sign in again."),
            &form.return_to,
            &username,
        )
        .await);
    }
    let (status, text, retry_after) =
        match login::authenticate(&state.oauth(), &username, form.password, &address).await {
            Ok(user) => return signed_in(&state, jar, &user, &address, &form.return_to).await,
            Err(LoginError::Internal(e)) => return Err(WebError::Internal(e)),
            Err(LoginError::Invalid) => (
                StatusCode::UNAUTHORIZED,
                "The username or password is incorrect.".to_owned(),
                None,
            ),
            Err(LoginError::Locked(retry_after)) => (
                StatusCode::TOO_MANY_REQUESTS,
                format!("Too many failed attempts. {}", try_again_in(retry_after)),
                Some(retry_after),
            ),
        };
    let reason = if retry_after.is_some() {
        "locked"
    } else {
        "invalid_credentials"
    };
    state
        .audit
        .record(failed_sign_in(&address, &username, reason))
        .await;
    let response = render_login(&state, jar, status, Some(&text), &form.return_to, &username).await;
    Ok(match retry_after {
        Some(seconds) => with_retry_after(response, seconds),
        None => response,
    })
}

/// After a right password: starts the session and continues the flow (or says so).
async fn signed_in(
    state: &AppState,
    jar: CookieJar,
    user: &crate::model::User,
    address: &str,
    return_to: &str,
) -> PageResult {
    let jar = session::start(state, jar, &user.id).await?;
    state
        .audit
        .record(Event::new("sign_in").user(&user.id).address(address))
        .await;
    Ok(match safe_return(return_to) {
        Some(to) => (jar, see_other(to)).into_response(),
        None => (
            jar,
            page(
                StatusCode::OK,
                &MessagePage {
                    title: "Signed in",
                    text: &format!("You are signed in as {}.", user.username),
                    is_error: false,
                },
            ),
        )
            .into_response(),
    })
}
