//! GET and POST /oauth2/authorize: validate, then sign in, consent and answer the client
//! with a code, in its response mode.

use askama::Template;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum_extra::extract::CookieJar;

use super::error::{PageResult, WebError};
use super::{FORM_POST_CSP, error_page, page, see_other, session, with_page_headers};
use crate::http::extract::is_form;
use crate::http::state::AppState;
use crate::model::User;
use crate::oauth::authorize::{
    self, AuthorizationRequest, AuthorizationResponse, AuthorizeErrorCode, Rejection, ResponseMode,
};
use crate::oauth::login::SignIn;
use crate::store;

/// The authorization endpoint (RFC 6749 §4.1.1, OpenID Connect Core §3.1.2). A browser is
/// sent to `/login` and `/consent` as needed and comes back to the client's redirect URI
/// with `code`, `state` and `iss` — or with `error`, once the client and redirect URI are
/// trusted. Until then errors are shown as a page and never redirected.
#[utoipa::path(get, path = "/oauth2/authorize", tag = "oauth",
    params(
        ("response_type" = Option<String>, Query, description = "`code`: required, except with a `request_uri`, which holds it"),
        ("client_id" = String, Query, description = "The client"),
        ("request_uri" = Option<String>, Query, description = "A pushed request's `request_uri` (RFC 9126), from POST /oauth2/par: then the pushed parameters are the only ones that count, and only `client_id` need come with it. Once only; required of clients registered with `require_pushed_authorization_requests` and `fapi2` ones"),
        ("redirect_uri" = Option<String>, Query, description = "One of the client's registered URIs, exactly (a loopback IP URI may differ in port, RFC 8252 §7.3); may be left out when exactly one is registered"),
        ("scope" = Option<String>, Query, description = "Space-separated scopes; default: every user scope the client may have. `refresh_token` is an alias of `offline_access`"),
        ("state" = Option<String>, Query, description = "Returned untouched (at most 2048 characters)"),
        ("code_challenge" = Option<String>, Query, description = "PKCE (RFC 7636): base64url SHA-256 of the verifier; required for public clients"),
        ("code_challenge_method" = Option<String>, Query, description = "`S256` (plain is refused)"),
        ("nonce" = Option<String>, Query, description = "Echoed in the ID token"),
        ("prompt" = Option<String>, Query, description = "`none`, `login`, `consent` (space-separated)"),
        ("max_age" = Option<i64>, Query, description = "Seconds since the last sign-in after which the user must sign in again"),
        ("login_hint" = Option<String>, Query, description = "Username to pre-fill"),
        ("response_mode" = Option<String>, Query, description = "`query` (default) or `form_post`: the answer is POSTed to the redirect URI by an auto-submitting form"),
        ("claims" = Option<String>, Query, description = "OpenID Connect Core §5.5: a JSON object whose `id_token` member names claims for the ID token (released within the granted scopes); at most 4096 characters"),
        ("acr_values" = Option<String>, Query, description = "Asks for `acr` in the ID token; Gatehouse asserts `urn:gatehouse:acr:password`"),
        ("dpop_jkt" = Option<String>, Query, description = "Binds the code to a DPoP key (RFC 9449 §10): the JWK SHA-256 thumbprint of the key whose proof must come with the code at the token endpoint"),
    ),
    responses(
        (status = 200, description = "`response_mode=form_post`: the auto-submitting form to the client", body = String, content_type = "text/html"),
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
    Ok(respond(&state, &jar, &request, &query).await)
}

/// The authorization endpoint with the request as a form body (OpenID Connect Core
/// §3.1.2.1). A cross-site POST carries no `SameSite=Lax` session cookie, so without one
/// the browser is sent on to the same request as a GET, which carries it: a signed-in user
/// is not asked to sign in again, and one who must sign in comes back to the request.
#[utoipa::path(post, path = "/oauth2/authorize", tag = "oauth",
    request_body(content = AuthorizationForm, content_type = "application/x-www-form-urlencoded",
        description = "The parameters of GET /oauth2/authorize, form-encoded (none in the query)"),
    responses(
        (status = 200, description = "`response_mode=form_post`: the auto-submitting form to the client", body = String, content_type = "text/html"),
        (status = 302, description = "As for GET"),
        (status = 303, description = "No session cookie came with the POST: on to the same request as a GET"),
        (status = 400, description = "HTML error page: unknown client or unregistered redirect URI, parameters in the query, a body that is not UTF-8", body = String, content_type = "text/html"),
        (status = 413, description = "HTML error page: the body is over the limit", body = String, content_type = "text/html"),
        (status = 415, description = "HTML error page: the body is not form-encoded", body = String, content_type = "text/html"),
    ))]
pub async fn authorize_post(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> PageResult {
    let body = posted_form(&headers, query.as_deref(), body)?;
    let params = body.as_str();
    let request = AuthorizationRequest::parse(&state.oauth(), params).await?;
    if let Some(get) = as_get_without_session(&state, &jar, "/oauth2/authorize", params) {
        return Ok(get);
    }
    Ok(respond(&state, &jar, &request, params).await)
}

/// The form of a POSTed authorization request, for the OpenAPI document: the body is read
/// as raw parameters, exactly as GET's query.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct AuthorizationForm {
    /// `code`: required, except with a `request_uri`.
    response_type: Option<String>,
    /// The client.
    client_id: String,
    /// A pushed request's `request_uri` (RFC 9126).
    request_uri: Option<String>,
    /// One of the client's registered URIs, exactly.
    redirect_uri: Option<String>,
    /// Space-separated scopes.
    scope: Option<String>,
    /// Returned untouched.
    state: Option<String>,
    /// PKCE S256 challenge.
    code_challenge: Option<String>,
    /// `S256`.
    code_challenge_method: Option<String>,
    /// Echoed in the ID token.
    nonce: Option<String>,
    /// `none`, `login`, `consent`.
    prompt: Option<String>,
    /// Seconds.
    max_age: Option<String>,
    /// Username to pre-fill.
    login_hint: Option<String>,
    /// `query` or `form_post`.
    response_mode: Option<String>,
    /// OpenID Connect Core §5.5.
    claims: Option<String>,
    /// Asks for `acr`.
    acr_values: Option<String>,
    /// Binds the code to a DPoP key (RFC 9449 §10).
    dpop_jkt: Option<String>,
}

/// A request POSTed without a session cookie — a cross-site POST brings no
/// `SameSite=Lax` cookie — goes on as the same request by GET at `path`, which brings it.
pub fn as_get_without_session(
    state: &AppState,
    jar: &CookieJar,
    path: &str,
    params: &str,
) -> Option<Response> {
    jar.get(session::cookie_names(state).session)
        .is_none()
        .then(|| see_other(&format!("{path}?{params}")))
}

/// The parameters of a request POSTed as a form to a browser endpoint (authorization,
/// end-session): a form body, none in the URL, within the body limit, UTF-8. Otherwise an
/// error page (415, 400, 413).
pub fn posted_form(
    headers: &HeaderMap,
    query: Option<&str>,
    body: Result<Bytes, BytesRejection>,
) -> Result<String, WebError> {
    if !is_form(headers) {
        return Err(WebError::Page(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "The request must be sent as a form (application/x-www-form-urlencoded).",
        ));
    }
    if query.is_some_and(|q| !q.is_empty()) {
        return Err(WebError::bad_request(
            "A POSTed request carries its parameters in the body, not the URL.",
        ));
    }
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            WebError::Page(e.status(), "The request is too large.")
        } else {
            WebError::bad_request("The request could not be read.")
        }
    })?;
    String::from_utf8(body.to_vec())
        .map_err(|_| WebError::bad_request("The request is not valid UTF-8."))
}

/// The answer to a valid request: its next step, or a server error for the client.
async fn respond(
    state: &AppState,
    jar: &CookieJar,
    request: &AuthorizationRequest,
    query: &str,
) -> Response {
    match proceed(state, jar, request, query).await {
        Ok(response) => response,
        Err(e) => {
            tracing::error!(error = %e, "authorization failed");
            answer(&request.error(
                &state.issuer,
                AuthorizeErrorCode::ServerError,
                "the server failed; try again",
            ))
        }
    }
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
        .filter(|(_, sign_in)| request.sign_in_satisfies(sign_in.auth_time, now));
    let Some((user, sign_in)) = signed_in else {
        if request.prompt.none {
            return Ok(error(
                state,
                request,
                AuthorizeErrorCode::LoginRequired,
                "the user is not signed in",
            ));
        }
        return to_login(state, request, query).await;
    };
    decide(state, request, &user, &sign_in, query).await
}

/// With a signed-in user: refuse, ask for consent, or issue the code.
pub async fn decide(
    state: &AppState,
    request: &AuthorizationRequest,
    user: &User,
    sign_in: &SignIn,
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
        match authorize::issue_code(&state.oauth(), request, &user.id, sign_in).await? {
            Some(response) => answer(&response),
            None => to_login(state, request, query).await?,
        },
    )
}

/// On to sign in, coming back to this request afterwards.
async fn to_login(
    state: &AppState,
    request: &AuthorizationRequest,
    query: &str,
) -> Result<Response, store::StoreError> {
    authorize::forget_sign_in_demands(&state.oauth(), request).await?;
    Ok(see_other(&login_location(request, query)))
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
    answer(&request.error(&state.issuer, code, description))
}

/// Shows or sends back a rejection.
pub fn reject(rejection: Rejection) -> Response {
    match rejection {
        Rejection::Page(text) => error_page(StatusCode::BAD_REQUEST, &text),
        Rejection::Redirect(response) => answer(&response),
    }
}

/// The page of the form post response mode.
#[derive(Template)]
#[template(path = "form_post.html", config = "src/http/web/askama.toml")]
struct FormPostPage<'a> {
    action: &'a str,
    host: &'a str,
    params: &'a [(&'static str, String)],
}

/// Sends an authorization response to the client in its response mode: a `302 Found` to
/// the redirect URI with the parameters in its query, or a page whose form POSTs them
/// there — submitted by its one script, or by its button when scripts are off.
pub fn answer(response: &AuthorizationResponse) -> Response {
    match response.mode {
        ResponseMode::Query => found(response.location().as_str()),
        ResponseMode::FormPost => {
            let url = &response.redirect_uri;
            let template = FormPostPage {
                action: url.as_str(),
                host: url.host_str().unwrap_or(url.scheme()),
                params: &response.params,
            };
            let mut page = page(StatusCode::OK, &template);
            page.headers_mut().insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(FORM_POST_CSP),
            );
            page
        }
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
