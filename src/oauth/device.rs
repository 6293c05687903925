//! The device authorization grant (RFC 8628): a device without a keyboard asks for a
//! device code and a short user code; the user enters the user code on /activate (on a
//! phone or computer), signs in and approves; the device polls the token endpoint until
//! then.

use secrecy::ExposeSecret as _;
use serde::Serialize;
use utoipa::ToSchema;

use super::params::Params;
use super::secret;
use crate::error::{OAuthError, OAuthErrorCode};
use crate::model::Client;
use crate::model::GrantType;
use crate::oauth::Ctx;
use crate::store;

/// The letters of user codes (RFC 8628 §6.1): consonants only, so that no word is spelled
/// and nothing is mistaken for a digit.
pub const USER_CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
/// Letters in a user code: 20^8 ≈ 2.6·10^10 codes (34.6 bits).
pub const USER_CODE_LEN: usize = 8;
/// What a `slow_down` adds to the interval (RFC 8628 §3.5).
pub const SLOW_DOWN_SECS: i64 = 5;

/// The device authorization response (RFC 8628 §3.2).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"device_code": "GmRhmhcxhwAzkoEqiMEg_DnyEysNkuNhszIySk9eS", "user_code": "WDJB-MJHT",
    "verification_uri": "https://id.example.com/activate",
    "verification_uri_complete": "https://id.example.com/activate?user_code=WDJB-MJHT",
    "expires_in": 600, "interval": 5}))]
pub struct DeviceAuthorization {
    /// The device's secret: poll the token endpoint with it.
    pub device_code: String,
    /// What the user types on the verification page: 8 letters as XXXX-XXXX.
    pub user_code: String,
    /// The verification page.
    pub verification_uri: String,
    /// The verification page with the code filled in (for a QR code); it still asks the
    /// user to confirm the code.
    pub verification_uri_complete: String,
    /// Seconds until the codes expire.
    pub expires_in: i64,
    /// Seconds the device waits between polls.
    pub interval: i64,
}

/// A new user code: 8 letters of [`USER_CODE_ALPHABET`], uniformly drawn.
pub fn generate_user_code() -> String {
    let mut code = String::with_capacity(USER_CODE_LEN);
    while code.len() < USER_CODE_LEN {
        let mut bytes = [0u8; 16];
        secret::fill_random(&mut bytes);
        // 240 = 12 × 20: bytes above it would favour the first letters.
        for b in bytes.into_iter().filter(|b| *b < 240) {
            if code.len() < USER_CODE_LEN {
                code.push(char::from(USER_CODE_ALPHABET[usize::from(b % 20)]));
            }
        }
    }
    code
}

/// A user code as typed: case, hyphens and spaces do not matter. `None` when it cannot
/// be a user code at all.
pub fn normalize_user_code(typed: &str) -> Option<String> {
    let code: String = typed
        .chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (code.len() == USER_CODE_LEN && code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)))
        .then_some(code)
}

/// A stored user code as shown: XXXX-XXXX.
pub fn display_user_code(code: &str) -> String {
    let (a, b) = code.split_at(code.len().min(USER_CODE_LEN / 2));
    format!("{a}-{b}")
}

/// Starts a device authorization for `client` (RFC 8628 §3.1).
pub async fn start(
    ctx: &Ctx<'_>,
    client: &Client,
    params: &Params,
) -> Result<DeviceAuthorization, OAuthError> {
    if !client.allows_grant(GrantType::DeviceCode) {
        return Err(OAuthError::new(
            OAuthErrorCode::UnauthorizedClient,
            format!(
                "this client is not registered for {}",
                GrantType::DeviceCode
            ),
        ));
    }
    // The user approves what the device gets: only scopes a user may delegate.
    let scope = super::grants::narrow_scope(
        params,
        &client.scopes.delegable(),
        super::grants::exceeds_delegable(params),
    )?;
    let now = ctx.clock.unix();
    let ttl = ctx.config.device_code_ttl_secs;
    let interval = ctx.config.device_poll_interval_secs;
    let device_code = secret::generate();
    let hash = secret::hash(device_code.expose_secret());
    // A collision with a live code is about one in 10^7 even with 1,000 live codes: draw
    // again a few times rather than fail.
    for _ in 0..5 {
        let user_code = generate_user_code();
        let row = store::devices::DeviceRow {
            client_id: client.client_id.to_string(),
            user_code: user_code.clone(),
            scope: scope.to_string(),
            status: "pending".to_owned(),
            user_id: None,
            auth_time: None,
            poll_interval: interval,
            last_polled_at: None,
            expires_at: now + ttl,
        };
        if store::devices::insert(ctx.store, &hash, &row, now).await? {
            let shown = display_user_code(&user_code);
            let verification_uri = format!("{}/activate", ctx.issuer);
            return Ok(DeviceAuthorization {
                device_code: device_code.expose_secret().to_owned(),
                verification_uri_complete: format!("{verification_uri}?user_code={shown}"),
                verification_uri,
                user_code: shown,
                expires_in: ttl,
                interval,
            });
        }
    }
    Err(OAuthError::new(
        OAuthErrorCode::ServerError,
        "could not draw a free user code",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_use_the_alphabet_and_read_back_however_typed() {
        for _ in 0..200 {
            let code = generate_user_code();
            assert_eq!(code.len(), USER_CODE_LEN);
            let shown = display_user_code(&code);
            assert_eq!(normalize_user_code(&shown).as_deref(), Some(code.as_str()));
            let typed = format!(" {} ", shown.to_lowercase().replace('-', " - "));
            assert_eq!(normalize_user_code(&typed).as_deref(), Some(code.as_str()));
        }
        assert_eq!(
            normalize_user_code("WDJB-MJHA"),
            None,
            "a vowel is never in a code"
        );
        assert_eq!(normalize_user_code("WDJB-MJH"), None);
        assert_eq!(normalize_user_code("WDJB-MJHTT"), None);
        assert_eq!(normalize_user_code("WDJB-MJH1"), None);
    }
}
