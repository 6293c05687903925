//! GET /oauth2/authorize: validate, then sign in, consent and redirect with a code.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum_extra::extract::CookieJar;

use super::error::PageResult;
use super::{error_page, see_other, session, with_page_headers};
use crate::http::state::AppState;
use crate::model::User;
use crate::oauth::authorize::{self, AuthorizationRequest, AuthorizeErrorCode, Rejection};
use crate::store;

/// The authorization endpoint (RFC 6749 §4.1.1, OpenID Connect Core §3.1.2). A browser is
/// sent to `/login` and `/consent` as needed and comes back to the client's redirect URI
/// with `code`, `state` and `iss` — or with `error`, once the client and redirect URI are
/// trusted. Until then errors are shown as a page and never redirected.
#[utoipa::path(get, path = "/oauth2/authorize", tag = "oauth",
    params(
        ("response_type" = String, Query, description = "`code`"),
        ("client_id" = String, Query, description = "The client"),
        ("redirect_uri" = Option<String>, Query, description = "One of the client's registered URIs, exactly (a loopback IP URI may differ in port, RFC 8252 §7.3); may be left out when exactly one is registered"),
        ("scope" = Option<String>, Query, description = "Space-separated scopes; default: every user scope the client may have. `refresh_token` is an alias of `offline_access`"),
        ("state" = Option<String>, Query, description = "Returned untouched (at most 2048 characters)"),
        ("code_challenge" = Option<String>, Query, description = "PKCE (RFC 7636): base64url SHA-256 of the verifier; required for public clients"),
        ("code_challenge_method" = Option<String>, Query, description = "`S256` (plain is refused)"),
        ("nonce" = Option<String>, Query, description = "Echoed in the ID token"),
        ("prompt" = Option<String>, Query, description = "`none`, `login`, `consent` (space-separated)"),
        ("max_age" = Option<i64>, Query, description = "Seconds since the last sign-in after which the user must sign in again"),
        ("login_hint" = Option<String>, Query, description = "Username to pre-fill"),
    ),
    responses(
        (status = 302, description = "To the client's redirect URI with `code` (or `error`), `state` and `iss`; or to /login or /consent"),
        (status = 400, description = "HTML error page: unknown client or unregistered redirect URI (never redirected)", body = String, content_type = "text/html"),
    ))]
pub async fn authorize(
    State(state): State<AppState>,
    jar: CookieJar,
    RawQuery(query): RawQuery,
) -> PageResult {
    let query = query.unwrap_or_default();
    let request = AuthorizationRequest::parse(&state.oauth(), &query).await?;
    Ok(match proceed(&state, &jar, &request, &query).await {
        Ok(response) => response,
        Err(e) => {
            tracing::error!(error = %e, "authorization failed");
            found(
                request
                    .error(
                        &state.issuer,
                        AuthorizeErrorCode::ServerError,
                        "the server failed; try again",
                    )
                    .as_str(),
            )
        }
    })
}

/// The next step of a valid request for this browser.
async fn proceed(
    state: &AppState,
    jar: &CookieJar,
    request: &AuthorizationRequest,
    query: &str,
) -> Result<Response, store::StoreError> {
    let now = state.clock.unix();
    let signed_in = session::current_user(state, jar)
        .await?
        .filter(|(_, auth_time)| request.sign_in_satisfies(*auth_time, now));
    let Some((user, auth_time)) = signed_in else {
        if request.prompt.none {
            return Ok(error(
                state,
                request,
                AuthorizeErrorCode::LoginRequired,
                "the user is not signed in",
            ));
        }
        return Ok(see_other(&login_location(request, query)));
    };
    decide(state, request, &user, auth_time, query).await
}

/// With a signed-in user: refuse, ask for consent, or issue the code.
pub async fn decide(
    state: &AppState,
    request: &AuthorizationRequest,
    user: &User,
    auth_time: i64,
    query: &str,
) -> Result<Response, store::StoreError> {
    if !request.client.admits(&user.username) {
        return Ok(error(
            state,
            request,
            AuthorizeErrorCode::AccessDenied,
            "this user is not approved for this application",
        ));
    }
    if authorize::needs_consent(&state.oauth(), request, user).await? {
        if request.prompt.none {
            return Ok(error(
                state,
                request,
                AuthorizeErrorCode::ConsentRequired,
                "the user has not approved this application",
            ));
        }
        return Ok(see_other(&format!("/consent?{query}")));
    }
    Ok(
        match authorize::issue_code(&state.oauth(), request, &user.id, auth_time).await? {
            Some(location) => found(location.as_str()),
            None => see_other(&login_location(request, query)),
        },
    )
}

/// Where to sign in, coming back to this request afterwards. The way back drops `prompt`
/// and `max_age`: the sign-in about to happen satisfies both.
pub fn login_location(request: &AuthorizationRequest, query: &str) -> String {
    let kept: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k != "prompt" && k != "max_age")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let back = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(kept)
        .finish();
    let mut login = form_urlencoded::Serializer::new(String::new());
    login.append_pair("return_to", &format!("/oauth2/authorize?{back}"));
    if let Some(hint) = &request.login_hint {
        login.append_pair("login_hint", hint);
    }
    format!("/login?{}", login.finish())
}

fn error(
    state: &AppState,
    request: &AuthorizationRequest,
    code: AuthorizeErrorCode,
    description: &str,
) -> Response {
    found(request.error(&state.issuer, code, description).as_str())
}

/// Shows or redirects a rejection.
pub fn reject(rejection: Rejection) -> Response {
    match rejection {
        Rejection::Page(text) => error_page(StatusCode::BAD_REQUEST, &text),
        Rejection::Redirect(url) => found(url.as_str()),
    }
}

/// `302 Found` (RFC 6749 §4.1.2 uses it for the authorization response).
fn found(location: &str) -> Response {
    use axum::response::IntoResponse as _;
    match axum::http::HeaderValue::from_str(location) {
        Ok(value) => with_page_headers(
            (StatusCode::FOUND, [(axum::http::header::LOCATION, value)]).into_response(),
        ),
        Err(_) => error_page(StatusCode::BAD_REQUEST, "the redirect URI cannot be used"),
    }
}
