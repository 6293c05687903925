//! The sign-in, consent and sign-out pages (form contract in DESIGN.md: `username`,
//! `password`, `decision=approve|deny`, and a `csrf_token` in every form).

use askama::Template;
use axum::Form;
use axum::extract::{Query, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use secrecy::SecretString;
use serde::Deserialize;

use super::authorize::{login_location, reject};
use super::{
    MessagePage, describe_scope, error_page, page, see_other, session, try_again_in,
    with_retry_after,
};
use crate::audit::Event;
use crate::http::ratelimit::ClientAddr;
use crate::http::state::AppState;
use crate::oauth::authorize::{self, AuthorizationRequest, AuthorizeErrorCode};
use crate::oauth::login::{self, LoginError};

/// The audit event of a refused sign-in.
fn failed_sign_in(address: &str, username: &str, reason: &str) -> Event {
    Event::new("sign_in")
        .failed()
        .address(address)
        .detail("username", username)
        .detail("reason", reason)
}

/// The longest username the sign-in form takes (its input's `maxlength`).
const MAX_USERNAME: usize = 64;

/// The typed username, bounded before it is counted, logged or shown again: at most
/// [`MAX_USERNAME`] characters, control characters dropped. A longer or altered one ends in
/// `…`, which no username contains, so it can never sign in as the account it was cut to.
fn bounded_username(typed: &str) -> String {
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
fn safe_return(return_to: &str) -> Option<&str> {
    const ALLOWED: &[&str] = &["/oauth2/authorize?", "/activate"];
    ALLOWED
        .iter()
        .any(|prefix| return_to.starts_with(prefix))
        .then_some(return_to)
}

#[derive(Template)]
#[template(path = "login.html", config = "src/http/web/askama.toml")]
struct LoginPage<'a> {
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
async fn client_name(state: &AppState, return_to: &str) -> Option<String> {
    let query = return_to.split_once('?')?.1;
    let client_id = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "client_id")?
        .1
        .into_owned();
    let client = state.oauth().client(&client_id).await.ok()??;
    Some(client.name.clone())
}

async fn render_login(
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
) -> Response {
    if !session::csrf_valid(&state, &jar, &form.csrf_token) {
        return render_login(
            &state,
            jar,
            StatusCode::FORBIDDEN,
            Some("This form has expired. Please sign in again."),
            &form.return_to,
            &bounded_username(&form.username),
        )
        .await;
    }
    let username = bounded_username(&form.username);
    match login::authenticate(&state.oauth(), &username, form.password, &address).await {
        Ok(user) => {
            let jar = match session::start(&state, jar, &user.id).await {
                Ok(jar) => jar,
                Err(e) => {
                    tracing::error!(error = %e, "session start failed");
                    return error_page(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "Signing in failed; try again.",
                    );
                }
            };
            state
                .audit
                .record(Event::new("sign_in").user(&user.id).address(&address))
                .await;
            match safe_return(&form.return_to) {
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
            }
        }
        Err(LoginError::Invalid) => {
            state
                .audit
                .record(failed_sign_in(&address, &username, "invalid_credentials"))
                .await;
            render_login(
                &state,
                jar,
                StatusCode::UNAUTHORIZED,
                Some("The username or password is incorrect."),
                &form.return_to,
                &username,
            )
            .await
        }
        Err(LoginError::Locked(retry_after)) => {
            state
                .audit
                .record(failed_sign_in(&address, &username, "locked"))
                .await;
            let text = format!("Too many failed attempts. {}", try_again_in(retry_after));
            let response = render_login(
                &state,
                jar,
                StatusCode::TOO_MANY_REQUESTS,
                Some(&text),
                &form.return_to,
                &username,
            )
            .await;
            with_retry_after(response, retry_after)
        }
        Err(LoginError::Internal(e)) => {
            tracing::error!(error = %e, "sign-in failed inside");
            error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Signing in failed; try again.",
            )
        }
    }
}

#[derive(Template)]
#[template(path = "consent.html", config = "src/http/web/askama.toml")]
struct ConsentPage<'a> {
    client_name: &'a str,
    username: &'a str,
    scopes: Vec<(&'static str, &'static str)>,
    redirect_host: &'a str,
    request: &'a str,
    csrf_token: &'a str,
}

/// GET /consent?<the authorization request>.
pub async fn consent_page(
    State(state): State<AppState>,
    jar: CookieJar,
    RawQuery(query): RawQuery,
) -> Response {
    let query = query.unwrap_or_default();
    let request = match AuthorizationRequest::parse(&state.oauth(), &query).await {
        Ok(r) => r,
        Err(rejection) => return reject(rejection),
    };
    // Consent is only asked of a sign-in that may answer the request (`prompt=login`,
    // `max_age`), also when the browser comes here directly.
    let now = state.clock.unix();
    let user = match signed_in_user(&state, &jar).await {
        Ok(Some((user, auth_time))) if request.sign_in_satisfies(auth_time, now) => user,
        Ok(_) => return see_other(&login_location(&request, &query)),
        Err(response) => return response,
    };
    let (jar, csrf_token) = session::csrf_token(&state, jar);
    let scopes = request
        .scope
        .iter()
        .map(|s| (s.as_str(), describe_scope(s)))
        .collect();
    let template = ConsentPage {
        client_name: &request.client.name,
        username: user.username.as_str(),
        scopes,
        redirect_host: request
            .redirect_url
            .host_str()
            .unwrap_or(request.redirect_url.scheme()),
        request: &query,
        csrf_token: &csrf_token,
    };
    (jar, page(StatusCode::OK, &template)).into_response()
}

/// The consent form.
#[derive(Default, Deserialize)]
#[serde(default)]
pub struct ConsentForm {
    request: String,
    decision: String,
    csrf_token: String,
}

/// POST /consent.
pub async fn consent_submit(
    State(state): State<AppState>,
    jar: CookieJar,
    Form(form): Form<ConsentForm>,
) -> Response {
    if !session::csrf_valid(&state, &jar, &form.csrf_token) {
        return error_page(
            StatusCode::FORBIDDEN,
            "This form has expired. Go back to the application and try again.",
        );
    }
    let request = match AuthorizationRequest::parse(&state.oauth(), &form.request).await {
        Ok(r) => r,
        Err(rejection) => return reject(rejection),
    };
    let now = state.clock.unix();
    let (user, auth_time) = match signed_in_user(&state, &jar).await {
        Ok(Some((user, auth_time))) if request.sign_in_satisfies(auth_time, now) => {
            (user, auth_time)
        }
        Ok(_) => return see_other(&login_location(&request, &form.request)),
        Err(response) => return response,
    };
    let deny = |code, text: &str| see_other(request.error(&state.issuer, code, text).as_str());
    if request.client.admin_approved_only
        && !request.client.pre_authorized_users.contains(&user.username)
    {
        return deny(
            AuthorizeErrorCode::AccessDenied,
            "this user is not approved for this application",
        );
    }
    match form.decision.as_str() {
        "approve" => {}
        "deny" => {
            state
                .audit
                .record(
                    Event::new("consent")
                        .failed()
                        .user(&user.id)
                        .client(request.client.client_id.as_str())
                        .detail("scope", request.scope.to_string())
                        .detail("decision", "deny"),
                )
                .await;
            return deny(
                AuthorizeErrorCode::AccessDenied,
                "the user denied the request",
            );
        }
        _ => return error_page(StatusCode::BAD_REQUEST, "Choose Allow or Deny."),
    }
    let issued = async {
        authorize::record_consent(&state.oauth(), &request, &user.id).await?;
        authorize::issue_code(&state.oauth(), &request, &user.id, auth_time).await
    }
    .await;
    match issued {
        Ok(None) => see_other(&login_location(&request, &form.request)),
        Ok(Some(location)) => {
            state
                .audit
                .record(
                    Event::new("consent")
                        .user(&user.id)
                        .client(request.client.client_id.as_str())
                        .detail("scope", request.scope.to_string())
                        .detail("decision", "approve"),
                )
                .await;
            see_other(location.as_str())
        }
        Err(e) => {
            tracing::error!(error = %e, "issuing a code failed");
            deny(
                AuthorizeErrorCode::ServerError,
                "the server failed; try again",
            )
        }
    }
}

/// The signed-in user and their sign-in time, `None` without a session, or an error page.
async fn signed_in_user(
    state: &AppState,
    jar: &CookieJar,
) -> Result<Option<(crate::model::User, i64)>, Response> {
    session::current_user(state, jar).await.map_err(|e| {
        tracing::error!(error = %e, "session lookup failed");
        error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "The server failed; try again.",
        )
    })
}

#[derive(Template)]
#[template(path = "logout.html", config = "src/http/web/askama.toml")]
struct LogoutPage<'a> {
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
