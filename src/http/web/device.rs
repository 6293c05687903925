//! /activate: the user enters a device's user code (RFC 8628 §3.3), signs in if needed,
//! sees which application asks for what, and approves or denies. Wrong codes are counted
//! per browser and per address, shared by every replica, and lock for a while.

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use serde::Deserialize;

use super::error::{PageResult, WebError};
use super::{
    MessagePage, describe_scope, page, see_other, session, try_again_in, with_retry_after,
};
use crate::audit::Event;
use crate::http::ratelimit::ClientAddr;
use crate::http::state::AppState;
use crate::model::ScopeSet;
use crate::oauth::device::{display_user_code, normalize_user_code};
use crate::oauth::login;
use crate::oauth::secret;
use crate::store;

#[derive(Template)]
#[template(path = "activate.html", config = "src/http/web/askama.toml")]
struct ActivatePage<'a> {
    error: Option<&'a str>,
    csrf_token: &'a str,
    user_code: &'a str,
}

#[derive(Template)]
#[template(path = "activate_confirm.html", config = "src/http/web/askama.toml")]
struct ConfirmPage<'a> {
    client_name: &'a str,
    username: &'a str,
    user_code: &'a str,
    scopes: Vec<(&'static str, &'static str)>,
    csrf_token: &'a str,
}

/// Query of GET /activate (`verification_uri_complete` fills the code in; after a
/// sign-in, `checked` proves the code was already accepted from this browser).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ActivateQuery {
    user_code: String,
    checked: String,
}

/// The code form, as posted (with `decision` once the code was accepted).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ActivateForm {
    user_code: String,
    decision: String,
    csrf_token: String,
}

fn render_entry(
    state: &AppState,
    jar: CookieJar,
    status: StatusCode,
    error: Option<&str>,
    user_code: &str,
) -> Response {
    let (jar, csrf_token) = session::csrf_token(state, jar);
    // What was typed goes back into the form (escaped by the template), cut to its size.
    let user_code: String = user_code.chars().take(32).collect();
    let template = ActivatePage {
        error,
        csrf_token: &csrf_token,
        user_code: &user_code,
    };
    (jar, page(status, &template)).into_response()
}

/// GET /activate: the code form. A code in the query is only filled in: the user still
/// submits it, and approves on the next page (RFC 8628 §5.4). Coming back from the
/// sign-in that a submitted code asked for (`checked`), a signed-in user goes straight to
/// that page: the code is not entered, nor counted as a guess, twice.
pub async fn activate_page(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(query): Query<ActivateQuery>,
) -> PageResult {
    let now = state.clock.unix();
    let code = normalize_user_code(&query.user_code);
    let checked = code.as_deref().is_some_and(|code| {
        !query.checked.is_empty()
            && session::bound_valid(&state, &jar, &checked_purpose(code), &query.checked)
    });
    if let (true, Some(code)) = (checked, code) {
        let found = store::devices::pending_by_user_code(&state.store, &code, now).await?;
        let user = session::current_user(&state, &jar).await?;
        if let (Some(request), Some((user, _))) = (found, user) {
            return confirm_page(&state, jar, &request, &user).await;
        }
    }
    Ok(render_entry(
        &state,
        jar,
        StatusCode::OK,
        None,
        &query.user_code,
    ))
}

/// What a [`session::bound_token`] for an accepted user code binds.
fn checked_purpose(normalized_code: &str) -> String {
    format!("activate {normalized_code}")
}

/// Throttle keys of a wrong-code guess: this browser (its CSRF cookie) and its address.
fn guess_keys(state: &AppState, jar: &CookieJar, address: &str) -> [String; 2] {
    let browser = jar
        .get(session::cookie_names(state).csrf)
        .map(|c| {
            use base64::Engine as _;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret::hash(c.value()))
        })
        .unwrap_or_default();
    [
        format!("activate-browser:{browser}"),
        format!(
            "activate-addr:{}",
            crate::ratelimit::address_bucket(address)
        ),
    ]
}

/// Counts every user-code lookup on /activate (guesses an attacker can make).
pub const USER_CODE_CHECKS_METRIC: &str = "gatehouse_user_code_checks_total";

fn too_many(state: &AppState, jar: CookieJar, user_code: &str, retry_after: i64) -> WebError {
    let text = format!("Too many wrong codes. {}", try_again_in(retry_after));
    let response = render_entry(
        state,
        jar,
        StatusCode::TOO_MANY_REQUESTS,
        Some(&text),
        user_code,
    );
    WebError::reply(with_retry_after(response, retry_after))
}

/// POST /activate: checks the code; then asks to sign in, or shows what the device's
/// application asks for; with a `decision`, records it (once).
pub async fn activate_submit(
    State(state): State<AppState>,
    ClientAddr(address): ClientAddr,
    jar: CookieJar,
    Form(form): Form<ActivateForm>,
) -> PageResult {
    let now = state.clock.unix();
    let (jar, request) = checked_code(&state, jar, &address, &form, now).await?;
    decide(&state, jar, &address, &form, request, now).await
}

/// The pending device request whose code the form carries, once the CSRF token and the
/// guess limits allow looking it up; else the page that says why not.
async fn checked_code(
    state: &AppState,
    jar: CookieJar,
    address: &str,
    form: &ActivateForm,
    now: i64,
) -> Result<(CookieJar, store::devices::DeviceRow), WebError> {
    if !session::csrf_valid(state, &jar, &form.csrf_token) {
        return Err(WebError::reply(render_entry(
            state,
            jar,
            StatusCode::FORBIDDEN,
            Some("This form has expired. Enter the code again."),
            &form.user_code,
        )));
    }
    let config = &state.config;
    let keys = guess_keys(state, &jar, address);
    let locked = login::locked_until(&state.oauth(), &[&keys[0], &keys[1]], now)
        .await
        .map_err(WebError::internal)?;
    if let Some(until) = locked {
        return Err(too_many(state, jar, &form.user_code, until - now));
    }
    // Every guess takes its place in the count before the code is looked up (and gets it
    // back if it was right), so that parallel guesses get no more lookups than the limit.
    let limits = [
        (keys[0].as_str(), config.activate_guesses),
        (keys[1].as_str(), config.activate_guesses_per_address),
    ];
    let counted = login::count_attempt(&state.oauth(), &limits, now)
        .await
        .map_err(WebError::internal)?;
    if counted.refused {
        let retry = counted.locked_until.map_or(1, |until| until - now);
        return Err(too_many(state, jar, &form.user_code, retry));
    }
    metrics::counter!(USER_CODE_CHECKS_METRIC).increment(1);
    let found = match normalize_user_code(&form.user_code) {
        Some(code) => store::devices::pending_by_user_code(&state.store, &code, now).await?,
        None => None,
    };
    let Some(request) = found else {
        tracing::info!("wrong device code entered");
        if let Some(until) = counted.locked_until.filter(|until| *until > now) {
            return Err(too_many(state, jar, &form.user_code, until - now));
        }
        return Err(WebError::reply(render_entry(
            state,
            jar,
            StatusCode::BAD_REQUEST,
            Some("That code is not valid or has expired. Check the code on your device."),
            &form.user_code,
        )));
    };
    for key in &keys {
        store::sessions::refund(&state.store, key).await?;
    }
    Ok((jar, request))
}

/// With a valid code: asks to sign in, shows what the application asks for, or records
/// the user's decision.
async fn decide(
    state: &AppState,
    jar: CookieJar,
    address: &str,
    form: &ActivateForm,
    request: store::devices::DeviceRow,
    now: i64,
) -> PageResult {
    let shown = display_user_code(&request.user_code);
    let Some((user, sign_in)) = session::current_user(state, &jar).await? else {
        let checked = session::bound_token(state, &jar, &checked_purpose(&request.user_code))
            .unwrap_or_default();
        let back = format!("/activate?user_code={shown}&checked={checked}");
        let location = format!(
            "/login?return_to={}",
            form_urlencoded::byte_serialize(back.as_bytes()).collect::<String>()
        );
        return Ok(see_other(&location));
    };
    let decision = match form.decision.as_str() {
        "" => None,
        "approve" => Some(true),
        "deny" => Some(false),
        _ => return Err(WebError::bad_request("Choose Allow or Deny.")),
    };
    let Some(approve) = decision else {
        return confirm_page(state, jar, &request, &user).await;
    };
    let client = asking_client(state, &request).await?;
    let approve = approve && client.admits(&user.username);
    let decided = store::devices::decide(
        &state.store,
        &request.user_code,
        approve,
        &user.id,
        sign_in.auth_time,
        now,
    )
    .await?;
    if !decided {
        return Err(WebError::Page(
            StatusCode::CONFLICT,
            "This code was already used or has expired.",
        ));
    }
    let event = Event::new("device.decision")
        .user(&user.id)
        .client(client.client_id.as_str())
        .address(address)
        .detail("decision", if approve { "approve" } else { "deny" });
    state
        .audit
        .record(if approve { event } else { event.failed() })
        .await;
    Ok(outcome_page(
        &client.name,
        approve,
        form.decision == "approve",
    ))
}

/// The enabled client the device request came from.
async fn asking_client(
    state: &AppState,
    request: &store::devices::DeviceRow,
) -> Result<std::sync::Arc<crate::model::Client>, WebError> {
    match state.oauth().client(&request.client_id).await? {
        Some(client) if client.enabled => Ok(client),
        _ => Err(WebError::bad_request(
            "The application that asked is no longer available.",
        )),
    }
}

/// What the device's application asks for, with Allow and Deny.
async fn confirm_page(
    state: &AppState,
    jar: CookieJar,
    request: &store::devices::DeviceRow,
    user: &crate::model::User,
) -> PageResult {
    let client = asking_client(state, request).await?;
    let scope = ScopeSet::parse(&request.scope).unwrap_or_default();
    let (jar, csrf_token) = session::csrf_token(state, jar);
    let template = ConfirmPage {
        client_name: &client.name,
        username: user.username.as_str(),
        user_code: &display_user_code(&request.user_code),
        scopes: scope
            .iter()
            .map(|s| (s.as_str(), describe_scope(s)))
            .collect(),
        csrf_token: &csrf_token,
    };
    Ok((jar, page(StatusCode::OK, &template)).into_response())
}

/// What the user reads after deciding: connected, not approved for the application, or
/// denied.
fn outcome_page(name: &str, approve: bool, asked_to_approve: bool) -> Response {
    let (title, text) = if approve {
        (
            "Device connected",
            format!("{} is now connected. You can return to your device.", name),
        )
    } else if asked_to_approve {
        (
            "Not allowed",
            format!("Your account is not approved for {}.", name),
        )
    } else {
        (
            "Request denied",
            format!("{} was not given access. You can close this page.", name),
        )
    };
    page(
        StatusCode::OK,
        &MessagePage {
            title,
            text: &text,
            is_error: !approve,
        },
    )
}
