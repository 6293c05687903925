//! Browser sessions and CSRF tokens.
//!
//! The session cookie carries 256 random bits; the database keeps only their SHA-256, so
//! a database leak yields no usable session. The id is replaced at every sign-in (no
//! session fixation). CSRF protection is a signed double-submit: a random `csrf` cookie
//! and, in every form, the HMAC-SHA-256 of it under a key derived from the master key. A
//! forged form cannot carry a valid token without the cookie's value, which other origins
//! cannot read; every replica derives the same key, so a form rendered by one is accepted
//! by another.

use aws_lc_rs::hmac;
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::ExposeSecret as _;

use crate::http::state::AppState;
use crate::oauth::login::SignIn;
use crate::oauth::secret;
use crate::store::{self, StoreError, sessions::SessionRow};

/// Cookie names: `__Host-` prefixed (Secure, host-only, path /) when the issuer is https.
pub struct CookieNames {
    /// The session cookie.
    pub session: &'static str,
    /// The CSRF cookie.
    pub csrf: &'static str,
}

/// The cookie names this server uses.
pub fn cookie_names(state: &AppState) -> CookieNames {
    if secure(state) {
        CookieNames {
            session: "__Host-gatehouse_session",
            csrf: "__Host-gatehouse_csrf",
        }
    } else {
        CookieNames {
            session: "gatehouse_session",
            csrf: "gatehouse_csrf",
        }
    }
}

fn secure(state: &AppState) -> bool {
    state.issuer.starts_with("https://")
}

fn cookie(state: &AppState, name: &'static str, value: String, max_age: i64) -> Cookie<'static> {
    Cookie::build((name, value))
        .path("/")
        .http_only(true)
        .secure(secure(state))
        .same_site(SameSite::Lax)
        .max_age(time::Duration::seconds(max_age))
        .build()
}

/// The signed-in, enabled user of this browser, and their sign-in.
pub async fn current_user(
    state: &AppState,
    jar: &CookieJar,
) -> Result<Option<(crate::model::User, SignIn)>, StoreError> {
    let Some(cookie) = jar.get(cookie_names(state).session) else {
        return Ok(None);
    };
    let id_hash = secret::hash(cookie.value());
    let Some(session) = store::sessions::get(&state.store, &id_hash, state.clock.unix()).await?
    else {
        return Ok(None);
    };
    let user = store::users::by_id(&state.store, &session.user_id)
        .await?
        .filter(|u| u.enabled);
    let sign_in = SignIn {
        auth_time: session.auth_time,
        sid: session.sid,
    };
    Ok(user.map(|u| (u, sign_in)))
}

/// Signs `user_id` in: a new session id. The old session, if any, is deleted; it goes on
/// under the new id (the same `sid`) when it was the same user's.
pub async fn start(
    state: &AppState,
    jar: CookieJar,
    user_id: &str,
) -> Result<CookieJar, StoreError> {
    let names = cookie_names(state);
    let replaces = jar.get(names.session).map(|c| secret::hash(c.value()));
    let value = secret::generate();
    let now = state.clock.unix();
    let ttl = state.config.session_ttl_secs;
    let row = SessionRow {
        user_id: user_id.to_owned(),
        auth_time: now,
        expires_at: now + ttl,
        sid: secret::token_id(),
    };
    store::sessions::insert(
        &state.store,
        &secret::hash_secret(&value),
        replaces.as_ref(),
        &row,
        now,
    )
    .await?;
    // A session of another user that this one replaced has ended: its clients are owed
    // logout tokens.
    if replaces.is_some() {
        state.logout_wakeup.notify_one();
    }
    Ok(jar.add(cookie(
        state,
        names.session,
        value.expose_secret().to_owned(),
        ttl,
    )))
}

/// Signs the browser out.
pub async fn end(state: &AppState, jar: CookieJar) -> Result<CookieJar, StoreError> {
    let names = cookie_names(state);
    if let Some(c) = jar.get(names.session) {
        let now = state.clock.unix();
        store::sessions::delete(&state.store, &secret::hash(c.value()), now).await?;
        state.logout_wakeup.notify_one();
    }
    Ok(jar.remove(Cookie::build(names.session).path("/").build()))
}

/// The CSRF token for this browser's forms, setting the CSRF cookie if it has none.
pub fn csrf_token(state: &AppState, jar: CookieJar) -> (CookieJar, String) {
    let name = cookie_names(state).csrf;
    match jar.get(name).map(|c| c.value().to_owned()) {
        Some(value) if value.len() == 43 => {
            let token = sign(state, &value);
            (jar, token)
        }
        _ => {
            let value = secret::generate().expose_secret().to_owned();
            let token = sign(state, &value);
            // A day: long enough for a form left open, renewed with every page.
            (jar.add(cookie(state, name, value, 24 * 3600)), token)
        }
    }
}

/// Whether `presented` is the CSRF token of this browser's cookie (constant time).
pub fn csrf_valid(state: &AppState, jar: &CookieJar, presented: &str) -> bool {
    let Some(cookie) = jar.get(cookie_names(state).csrf) else {
        return false;
    };
    let Ok(tag) = URL_SAFE_NO_PAD.decode(presented) else {
        return false;
    };
    hmac::verify(&state.csrf_key, &csrf_message(cookie.value()), &tag).is_ok()
}

/// A token that ties `purpose` to this browser (its CSRF cookie): proof, on a later GET,
/// that this server already accepted `purpose` from this browser. `None` without the
/// cookie.
pub fn bound_token(state: &AppState, jar: &CookieJar, purpose: &str) -> Option<String> {
    let cookie = jar.get(cookie_names(state).csrf)?;
    let tag = hmac::sign(&state.csrf_key, &bound_message(purpose, cookie.value()));
    Some(URL_SAFE_NO_PAD.encode(tag))
}

/// Whether `presented` is this browser's [`bound_token`] for `purpose` (constant time).
pub fn bound_valid(state: &AppState, jar: &CookieJar, purpose: &str, presented: &str) -> bool {
    let Some(cookie) = jar.get(cookie_names(state).csrf) else {
        return false;
    };
    let Ok(tag) = URL_SAFE_NO_PAD.decode(presented) else {
        return false;
    };
    hmac::verify(
        &state.csrf_key,
        &bound_message(purpose, cookie.value()),
        &tag,
    )
    .is_ok()
}

fn bound_message(purpose: &str, value: &str) -> Vec<u8> {
    let mut message = b"gatehouse bound v1\0".to_vec();
    message.extend_from_slice(purpose.as_bytes());
    message.push(0);
    message.extend_from_slice(value.as_bytes());
    message
}

fn sign(state: &AppState, value: &str) -> String {
    URL_SAFE_NO_PAD.encode(hmac::sign(&state.csrf_key, &csrf_message(value)))
}

fn csrf_message(value: &str) -> Vec<u8> {
    let mut message = b"gatehouse csrf v1\0".to_vec();
    message.extend_from_slice(value.as_bytes());
    message
}
