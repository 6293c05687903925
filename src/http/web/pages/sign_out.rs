//! Signing out: the sign-out page, which asks first, and RP-initiated logout (OpenID
//! Connect RP-Initiated Logout 1.0), which asks unless the request proves who asks.

use askama::Template;
use axum::Form;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use serde::Deserialize;

use crate::http::state::AppState;
use crate::http::web::authorize::{as_get_without_session, posted_form};
use crate::http::web::error::{PageResult, WebError};
use crate::http::web::{MessagePage, page, see_other, session};
use crate::oauth::logout::LogoutRequest;
use crate::oauth::params::Params;

#[derive(Template)]
#[template(path = "logout.html", config = "src/http/web/askama.toml")]
pub(super) struct LogoutPage<'a> {
    username: Option<&'a str>,
    client_name: Option<&'a str>,
    request: &'a str,
    csrf_token: &'a str,
}

/// GET /logout: asks before signing out (a link alone must not sign anyone out).
pub async fn logout_page(State(state): State<AppState>, jar: CookieJar) -> PageResult {
    ask(&state, jar, None, "").await
}

/// The sign-out question for this browser's user (`request`: the logout request it
/// answers, if one).
async fn ask(
    state: &AppState,
    jar: CookieJar,
    request: Option<&LogoutRequest>,
    raw: &str,
) -> PageResult {
    let user = session::current_user(state, &jar).await?.map(|(u, _)| u);
    let (jar, csrf_token) = session::csrf_token(state, jar);
    let template = LogoutPage {
        username: user.as_ref().map(|u| u.username.as_str()),
        client_name: request
            .and_then(|r| r.client.as_ref())
            .map(|c| c.name.as_str()),
        request: raw,
        csrf_token: &csrf_token,
    };
    Ok((jar, page(StatusCode::OK, &template)).into_response())
}

/// The sign-out form (`request`: the RP-initiated logout it answers, if one).
#[derive(Default, Deserialize)]
#[serde(default)]
pub struct LogoutForm {
    csrf_token: String,
    request: String,
}

/// POST /logout: signs out, then back to the client that asked, if one did.
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
    let request = match form.request.as_str() {
        "" => None,
        raw => Some(parse(&state, raw).await?),
    };
    let jar = session::end(&state, jar).await?;
    Ok((jar, signed_out(request.as_ref())).into_response())
}

/// GET /oauth2/logout: the end-session endpoint.
#[utoipa::path(get, path = "/oauth2/logout", tag = "oauth",
    params(
        ("id_token_hint" = Option<String>, Query, description = "An ID token this server issued to the client (an expired one too): proves who asks, so the user is not asked"),
        ("client_id" = Option<String>, Query, description = "The client (the hint's audience when both are given)"),
        ("post_logout_redirect_uri" = Option<String>, Query, description = "One of the client's registered `post_logout_redirect_uris`, exactly"),
        ("state" = Option<String>, Query, description = "Returned with the redirect (at most 2048 characters)"),
        ("logout_hint" = Option<String>, Query, description = "Username of who should be signed out"),
        ("ui_locales" = Option<String>, Query, description = "Accepted, ignored (the pages are in English)"),
    ),
    responses(
        (status = 200, description = "The question (Sign out?), or the signed-out page", body = String, content_type = "text/html"),
        (status = 303, description = "Signed out (or nobody was): to `post_logout_redirect_uri` with `state`"),
        (status = 400, description = "HTML error page: an id_token_hint not from this server, an unregistered post_logout_redirect_uri, a client_id that is not the hint's audience", body = String, content_type = "text/html"),
    ))]
pub async fn end_session(
    State(state): State<AppState>,
    jar: CookieJar,
    RawQuery(query): RawQuery,
) -> PageResult {
    let raw = query.unwrap_or_default();
    let request = parse(&state, &raw).await?;
    let Some((user, _)) = session::current_user(&state, &jar).await? else {
        return Ok(signed_out(Some(&request)));
    };
    if request.proves(&user.id, user.username.as_str()) {
        let jar = session::end(&state, jar).await?;
        return Ok((jar, signed_out(Some(&request))).into_response());
    }
    ask(&state, jar, Some(&request), &raw).await
}

/// POST /oauth2/logout: the same with a form body. Without a session cookie (a cross-site
/// POST brings no `SameSite=Lax` cookie) the browser goes on to the same request as a
/// GET, which brings it.
#[utoipa::path(post, path = "/oauth2/logout", tag = "oauth",
    request_body(content = EndSessionForm, content_type = "application/x-www-form-urlencoded",
        description = "The parameters of GET /oauth2/logout, form-encoded"),
    responses(
        (status = 200, description = "As for GET", body = String, content_type = "text/html"),
        (status = 303, description = "As for GET, or on to the GET when no session cookie came"),
        (status = 400, description = "As for GET, or parameters in the URL, or a body that is not UTF-8", body = String, content_type = "text/html"),
        (status = 413, description = "HTML error page: the body is over the limit", body = String, content_type = "text/html"),
        (status = 415, description = "HTML error page: the body is not form-encoded", body = String, content_type = "text/html"),
    ))]
pub async fn end_session_post(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> PageResult {
    let raw = posted_form(&headers, query.as_deref(), body)?;
    parse(&state, &raw).await?;
    if let Some(get) = as_get_without_session(&state, &jar, "/oauth2/logout", &raw) {
        return Ok(get);
    }
    end_session(State(state), jar, RawQuery(Some(raw))).await
}

/// The form of a POSTed logout request, for the OpenAPI document: the body is read as raw
/// parameters, exactly as GET's query.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct EndSessionForm {
    /// An ID token this server issued to the client.
    id_token_hint: Option<String>,
    /// The client.
    client_id: Option<String>,
    /// One of the client's registered `post_logout_redirect_uris`.
    post_logout_redirect_uri: Option<String>,
    /// Returned with the redirect.
    state: Option<String>,
    /// Username of who should be signed out.
    logout_hint: Option<String>,
    /// Accepted, ignored.
    ui_locales: Option<String>,
}

async fn parse(state: &AppState, raw: &str) -> Result<LogoutRequest, WebError> {
    let params = Params::parse(raw.as_bytes())
        .map_err(|_| WebError::bad_request("The logout request is malformed."))?;
    LogoutRequest::parse(&state.oauth(), &params)
        .await
        .map_err(|text| {
            WebError::reply(crate::http::web::error_page(StatusCode::BAD_REQUEST, &text))
        })
}

/// After signing out: back to the client that asked, or the signed-out page.
fn signed_out(request: Option<&LogoutRequest>) -> Response {
    if let Some(url) = request.and_then(|r| r.back_to.as_ref()) {
        return see_other(url.as_str());
    }
    page(
        StatusCode::OK,
        &MessagePage {
            title: "Signed out",
            text: "You are signed out.",
            is_error: false,
        },
    )
}
