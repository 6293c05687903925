//! The authorization endpoint's rules (RFC 6749 §4.1, RFC 7636, OpenID Connect Core §3.1.2):
//! validating a request, deciding whether the user must sign in or consent, and issuing
//! the code. Redirect targets are checked before anything else; until they are trusted,
//! errors are shown to the user and never redirected (RFC 6749 §4.1.2.1).

mod claims;
mod consent;
mod parse;
mod redirect;

pub use claims::{ACR_PASSWORD, ClaimsRequest, REQUESTABLE, pick};
pub use consent::*;
pub use redirect::*;

use std::sync::Arc;

use url::Url;

use crate::model::Client;
use crate::model::ScopeSet;

/// Seconds an authorization code stays redeemable.
pub const CODE_TTL_SECS: i64 = 60;
/// Longest `state` and `nonce` accepted.
const MAX_STATE_LEN: usize = 2048;

/// Error codes of the authorization endpoint (RFC 6749 §4.1.2.1, OpenID Connect §3.1.2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorizeErrorCode {
    /// Malformed request.
    InvalidRequest,
    /// The client may not use this flow.
    UnauthorizedClient,
    /// The user or the server said no.
    AccessDenied,
    /// Only `code` is supported.
    UnsupportedResponseType,
    /// Unknown scope or beyond the client's.
    InvalidScope,
    /// The server failed.
    ServerError,
    /// `prompt=none` but the user must sign in.
    LoginRequired,
    /// `prompt=none` but the user must consent.
    ConsentRequired,
    /// Request objects are not supported.
    RequestNotSupported,
}

impl AuthorizeErrorCode {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::AccessDenied => "access_denied",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::InvalidScope => "invalid_scope",
            Self::ServerError => "server_error",
            Self::LoginRequired => "login_required",
            Self::ConsentRequired => "consent_required",
            Self::RequestNotSupported => "request_not_supported",
        }
    }
}

/// A request that cannot go on.
#[derive(Debug)]
pub enum Rejection {
    /// The client or redirect URI is not trusted: show this to the user, never redirect.
    Page(String),
    /// The redirect URI is trusted: send the error back to the client.
    Redirect(AuthorizationResponse),
}

/// `prompt` values (OpenID Connect Core §3.1.2.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prompt {
    /// No page may be shown.
    pub none: bool,
    /// Sign in again even with a session.
    pub login: bool,
    /// Ask for consent even if it was given before.
    pub consent: bool,
}

/// A validated authorization request.
#[derive(Debug, Clone)]
pub struct AuthorizationRequest {
    /// The client.
    pub client: Arc<Client>,
    /// Where the answer goes (a registered URI, or its loopback variant with another port).
    pub redirect_uri: String,
    /// The same, parsed.
    pub redirect_url: Url,
    /// How the answer travels there.
    pub response_mode: ResponseMode,
    /// Returned untouched.
    pub state: Option<String>,
    /// Requested scopes (all allowed for the client).
    pub scope: ScopeSet,
    /// PKCE S256 challenge.
    pub code_challenge: Option<String>,
    /// OpenID Connect nonce, echoed in the ID token.
    pub nonce: Option<String>,
    /// `prompt`.
    pub prompt: Prompt,
    /// Longest acceptable age of the sign-in, seconds.
    pub max_age: Option<i64>,
    /// Suggested username.
    pub login_hint: Option<String>,
    /// Claims asked of the ID token (`claims`, `acr_values`).
    pub claims: ClaimsRequest,
    /// The DPoP key the code is bound to (RFC 9449 §10): its JWK thumbprint.
    pub dpop_jkt: Option<String>,
    /// The pushed request (RFC 9126) this request was opened from, if any.
    pub pushed: Option<PushedRef>,
}

/// A pushed request the authorization endpoint opened: its `request_uri`'s hash, and the
/// parameters it holds.
#[derive(Debug, Clone)]
pub struct PushedRef {
    /// SHA-256 of the `request_uri`.
    pub uri_hash: [u8; 32],
    /// The pushed parameters, form-encoded.
    pub params: String,
}

/// Where the parameters of a request come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// The query or form of the authorization endpoint, as the browser brought them.
    Browser,
    /// A request being pushed (RFC 9126 §2.1): validated now, used later.
    Pushing,
    /// A pushed request, opened by its `request_uri`.
    Pushed(PushedRef),
}

/// How long a pushed request waits for the authorization endpoint (RFC 9126 §2.2
/// `expires_in`).
pub const PUSHED_TTL_SECS: i64 = 60;
/// Once opened, how long a pushed request waits for the user to sign in and consent.
pub const INTERACTION_SECS: i64 = 600;
/// The prefix of every `request_uri` (RFC 9126 §2.2).
pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";
