//! HTML pages: sign-in, consent, sign-out and errors, and the authorization endpoint that
//! leads a browser through them. Server-rendered (askama), one embedded stylesheet, no
//! script; every page forbids framing and loading anything from elsewhere.

pub mod authorize;
pub mod device;
pub mod error;
pub mod pages;
pub mod session;

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::state::AppState;
use crate::model::Scope;

/// The pages' routes; the authorization endpoint, which leads a browser through them, is
/// the one documented in the OpenAPI spec.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(authorize::authorize, authorize::authorize_post))
        .routes(routes!(pages::end_session, pages::end_session_post))
        .route("/login", get(pages::login_page).post(pages::login_submit))
        .route(
            "/consent",
            get(pages::consent_page).post(pages::consent_submit),
        )
        .route(
            "/activate",
            get(device::activate_page).post(device::activate_submit),
        )
        .route(
            "/logout",
            get(pages::logout_page).post(pages::logout_submit),
        )
        .route("/assets/gatehouse.css", get(stylesheet))
        .route("/assets/form-post.js", get(form_post_script))
}

const STYLESHEET: &str = include_str!("gatehouse.css");
const FORM_POST_SCRIPT: &str = include_str!("form-post.js");

/// Content Security Policy of every page: nothing but our stylesheet, no script, no
/// framing. `form-action` is left out on purpose: after a form is posted the browser
/// follows redirects to the client's redirect URI, which Chromium checks against
/// `form-action` too.
const CSP: &str =
    "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The page of the form post response mode may run our one script, which submits it.
pub(crate) const FORM_POST_CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; script-src 'self'; \
    base-uri 'none'; frame-ancestors 'none'";

async fn form_post_script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        FORM_POST_SCRIPT,
    )
        .into_response()
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
        .into_response()
}

/// Renders `template` as a page with the security headers.
pub fn page(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => with_page_headers((status, axum::response::Html(html)).into_response()),
        Err(e) => {
            tracing::error!(error = %e, "template rendering failed");
            with_page_headers(
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the page could not be rendered",
                )
                    .into_response(),
            )
        }
    }
}

/// Adds the headers every page and every redirect of the browser flow carries.
pub fn with_page_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A 303 to `location` with the page headers.
pub fn see_other(location: &str) -> Response {
    with_page_headers(Redirect::to(location).into_response())
}

/// A plain message or error page.
#[derive(Template)]
#[template(path = "message.html", config = "src/http/web/askama.toml")]
pub struct MessagePage<'a> {
    /// Heading.
    pub title: &'a str,
    /// Text.
    pub text: &'a str,
    /// Shown as an error.
    pub is_error: bool,
}

/// An error page with `status`.
pub fn error_page(status: StatusCode, text: &str) -> Response {
    page(
        status,
        &MessagePage {
            title: "Something went wrong",
            text,
            is_error: true,
        },
    )
}

/// "Try again in N minutes." for a lock that lasts `retry_after` more seconds.
pub fn try_again_in(retry_after: i64) -> String {
    let minutes = (retry_after + 59) / 60;
    let plural = if minutes == 1 { "" } else { "s" };
    format!("Try again in {minutes} minute{plural}.")
}

/// Adds `Retry-After: retry_after` (seconds) to a 429 page.
pub fn with_retry_after(mut response: Response, retry_after: i64) -> Response {
    if let Ok(value) = HeaderValue::from_str(&retry_after.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// A scope in plain words, for the consent page.
pub fn describe_scope(scope: Scope) -> &'static str {
    match scope {
        Scope::OpenId => "confirm who you are (your account id)",
        Scope::Profile => "see your name and username",
        Scope::Email => "see your email address",
        Scope::OfflineAccess => "stay signed in and act for you when you are away",
        Scope::Api => "use the API on your behalf",
        Scope::CasesRead => "read your cases",
        Scope::CasesWrite => "create and change your cases",
        Scope::EventsRead => "follow changes to your cases as they happen",
        Scope::Grants => "see and remove the apps you have connected to your account",
        Scope::Admin => "administer this server",
    }
}
