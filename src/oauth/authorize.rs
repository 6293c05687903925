//! The authorization endpoint's rules (RFC 6749 §4.1, RFC 7636, OpenID Connect Core §3.1.2):
//! validating a request, deciding whether the user must sign in or consent, and issuing
//! the code. Redirect targets are checked before anything else; until they are trusted,
//! errors are shown to the user and never redirected (RFC 6749 §4.1.2.1).

use std::sync::Arc;

use url::Url;

use super::params::Params;
use super::{pkce, secret};
use crate::model::Client;
use crate::model::{ClientType, GrantType, RedirectUri, ScopeSet};
use crate::oauth::Ctx;
use crate::store::{self, StoreError};

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
    /// Request URIs are not supported.
    RequestUriNotSupported,
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
            Self::RequestUriNotSupported => "request_uri_not_supported",
        }
    }
}

/// A request that cannot go on.
#[derive(Debug)]
pub enum Rejection {
    /// The client or redirect URI is not trusted: show this to the user, never redirect.
    Page(String),
    /// The redirect URI is trusted: send the error back to the client.
    Redirect(Url),
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
}

impl AuthorizationRequest {
    /// Validates the query of an authorization request.
    pub async fn parse(ctx: &Ctx<'_>, query: &str) -> Result<Self, Rejection> {
        let params = Params::parse(query.as_bytes()).map_err(|e| Rejection::Page(e.description))?;
        // 1. Who is asking, and where may the answer go? Until both are known: a page.
        let client_id = params
            .get("client_id")
            .ok_or_else(|| Rejection::Page("the request has no client_id".to_owned()))?;
        let client = ctx
            .client(client_id)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "client lookup failed");
                Rejection::Page("the server could not look up the application".to_owned())
            })?
            .filter(|c| c.enabled)
            .ok_or_else(|| Rejection::Page("this application is unknown or disabled".to_owned()))?;
        let redirect_uri = match params.get("redirect_uri") {
            Some(uri) => {
                if !redirect_allowed(&client.redirect_uris, uri) {
                    return Err(Rejection::Page(
                        "the redirect_uri is not registered for this application".to_owned(),
                    ));
                }
                uri.to_owned()
            }
            None if client.redirect_uris.len() == 1 => client.redirect_uris[0].to_string(),
            None => {
                return Err(Rejection::Page(
                    "the request has no redirect_uri and the application registered several"
                        .to_owned(),
                ));
            }
        };
        let redirect_url = Url::parse(&redirect_uri)
            .map_err(|_| Rejection::Page("the redirect_uri is not a valid URI".to_owned()))?;
        let state_param = params.get("state").map(str::to_owned);
        let fail = |code: AuthorizeErrorCode, description: &str| {
            Rejection::Redirect(error_redirect(
                &redirect_url,
                code,
                description,
                state_param.as_deref(),
                ctx.issuer,
            ))
        };
        if state_param
            .as_ref()
            .is_some_and(|s| s.len() > MAX_STATE_LEN)
        {
            return Err(fail(
                AuthorizeErrorCode::InvalidRequest,
                "state is longer than 2048 characters",
            ));
        }
        // 2. The rest of the request, answered at the redirect URI.
        if params.get("request").is_some() {
            return Err(fail(
                AuthorizeErrorCode::RequestNotSupported,
                "request objects are not supported",
            ));
        }
        if params.get("request_uri").is_some() {
            return Err(fail(
                AuthorizeErrorCode::RequestUriNotSupported,
                "request_uri is not supported",
            ));
        }
        match params.get("response_type") {
            Some("code") => {}
            None => {
                return Err(fail(
                    AuthorizeErrorCode::InvalidRequest,
                    "response_type is required",
                ));
            }
            Some(_) => {
                return Err(fail(
                    AuthorizeErrorCode::UnsupportedResponseType,
                    "only response_type=code is supported",
                ));
            }
        }
        if params.get("response_mode").is_some_and(|m| m != "query") {
            return Err(fail(
                AuthorizeErrorCode::InvalidRequest,
                "only response_mode=query is supported",
            ));
        }
        if !client.allows_grant(GrantType::AuthorizationCode) {
            return Err(fail(
                AuthorizeErrorCode::UnauthorizedClient,
                "this application is not registered for the authorization code flow",
            ));
        }
        let allowed = client.scopes.delegable();
        let scope = match params.get("scope") {
            None => allowed.clone(),
            Some(raw) => ScopeSet::parse(raw)
                .map_err(|e| fail(AuthorizeErrorCode::InvalidScope, &e.message))?,
        };
        if let Some(s) = scope.not_delegable() {
            return Err(fail(
                AuthorizeErrorCode::InvalidScope,
                &super::grants::not_delegable(s),
            ));
        }
        if !scope.is_subset(&allowed) {
            return Err(fail(
                AuthorizeErrorCode::InvalidScope,
                &format!("requested scope exceeds what this application may have ({allowed})"),
            ));
        }
        if scope.is_empty() {
            return Err(fail(AuthorizeErrorCode::InvalidScope, "no scope requested"));
        }
        let code_challenge = match params.get("code_challenge") {
            Some(challenge) => {
                pkce::check_challenge(challenge, params.get("code_challenge_method"))
                    .map_err(|e| fail(AuthorizeErrorCode::InvalidRequest, &e.to_string()))?;
                Some(challenge.to_owned())
            }
            None if params.get("code_challenge_method").is_some() => {
                return Err(fail(
                    AuthorizeErrorCode::InvalidRequest,
                    "code_challenge_method without code_challenge",
                ));
            }
            None if client.client_type == ClientType::Public => {
                return Err(fail(
                    AuthorizeErrorCode::InvalidRequest,
                    "PKCE is required for public clients: send code_challenge with code_challenge_method=S256",
                ));
            }
            None => None,
        };
        let nonce = params.get("nonce").map(str::to_owned);
        if nonce.as_ref().is_some_and(|n| n.len() > MAX_STATE_LEN) {
            return Err(fail(
                AuthorizeErrorCode::InvalidRequest,
                "nonce is longer than 2048 characters",
            ));
        }
        let mut prompt = Prompt::default();
        for value in params.get("prompt").unwrap_or("").split(' ') {
            match value {
                "" => {}
                "none" => prompt.none = true,
                "login" | "select_account" => prompt.login = true,
                "consent" => prompt.consent = true,
                other => {
                    return Err(fail(
                        AuthorizeErrorCode::InvalidRequest,
                        &format!("unknown prompt value `{other}`"),
                    ));
                }
            }
        }
        if prompt.none && (prompt.login || prompt.consent) {
            return Err(fail(
                AuthorizeErrorCode::InvalidRequest,
                "prompt=none cannot be combined with other values",
            ));
        }
        let max_age = match params.get("max_age") {
            None => None,
            Some(raw) => Some(raw.parse::<i64>().ok().filter(|v| *v >= 0).ok_or_else(|| {
                fail(
                    AuthorizeErrorCode::InvalidRequest,
                    "max_age must be a non-negative integer",
                )
            })?),
        };
        Ok(Self {
            client,
            redirect_uri,
            redirect_url,
            state: state_param.clone(),
            scope,
            code_challenge,
            nonce,
            prompt,
            max_age,
            login_hint: params.get("login_hint").map(str::to_owned),
        })
    }

    /// The error `code` sent back to the client.
    pub fn error(&self, issuer: &str, code: AuthorizeErrorCode, description: &str) -> Url {
        error_redirect(
            &self.redirect_url,
            code,
            description,
            self.state.as_deref(),
            issuer,
        )
    }

    /// Whether a sign-in at `auth_time` may answer this request at `now`: not when it is
    /// older than `max_age`, and not when the request asks for a new sign-in
    /// (`prompt=login`) — the way back from /login drops `prompt`, so a request that still
    /// carries it has not been through one.
    pub fn sign_in_satisfies(&self, auth_time: i64, now: i64) -> bool {
        !self.prompt.login && self.max_age.is_none_or(|max| now - auth_time <= max)
    }
}

/// Exact string match against the registered URIs (RFC 9700 §2.1); for a loopback IP
/// literal registered with `http`, any port (RFC 8252 §7.3) — everything else still equal.
pub fn redirect_allowed(registered: &[RedirectUri], presented: &str) -> bool {
    if registered.iter().any(|r| r.as_str() == presented) {
        return true;
    }
    // Only in canonical form (so that nothing but the port may differ), http, and a
    // loopback IP literal with an explicit port.
    let Some(presented) = canonical_loopback(presented) else {
        return false;
    };
    registered
        .iter()
        .filter_map(|r| canonical_loopback(r.as_str()))
        .any(|r| r == presented)
}

/// `uri` without its port, if it is an `http` loopback-IP URI already in canonical form.
fn canonical_loopback(uri: &str) -> Option<String> {
    let mut url = Url::parse(uri).ok()?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        _ => false,
    };
    if url.scheme() != "http" || !loopback || url.as_str() != uri {
        return None;
    }
    url.set_port(None).ok()?;
    Some(url.into())
}

/// `redirect_uri?error=…&error_description=…&state=…&iss=…` (RFC 6749 §4.1.2.1, RFC 9207).
pub fn error_redirect(
    redirect_uri: &Url,
    code: AuthorizeErrorCode,
    description: &str,
    state: Option<&str>,
    issuer: &str,
) -> Url {
    let mut pairs: Vec<(&str, &str)> =
        vec![("error", code.as_str()), ("error_description", description)];
    if let Some(state) = state {
        pairs.push(("state", state));
    }
    pairs.push(("iss", issuer));
    with_query(redirect_uri, &pairs)
}

fn with_query(redirect_uri: &Url, pairs: &[(&str, &str)]) -> Url {
    let mut url = redirect_uri.clone();
    {
        let mut query = url.query_pairs_mut();
        for (k, v) in pairs {
            query.append_pair(k, v);
        }
    }
    url
}

/// Whether the user must be asked: not when pre-authorized for the client, not when the
/// scopes were approved before (unless `prompt=consent`).
pub async fn needs_consent(
    ctx: &Ctx<'_>,
    request: &AuthorizationRequest,
    user: &crate::model::User,
) -> Result<bool, StoreError> {
    if request.prompt.consent {
        return Ok(true);
    }
    if request.client.pre_authorized_users.contains(&user.username) {
        return Ok(false);
    }
    let remembered =
        store::consents::scope(ctx.store, &user.id, request.client.client_id.as_str()).await?;
    Ok(!remembered
        .and_then(|s| ScopeSet::parse(&s).ok())
        .is_some_and(|approved| request.scope.is_subset(&approved)))
}

/// Remembers the user's approval of the request's scopes (merged with earlier ones).
pub async fn record_consent(
    ctx: &Ctx<'_>,
    request: &AuthorizationRequest,
    user_id: &str,
) -> Result<(), StoreError> {
    let client_id = request.client.client_id.as_str();
    let before = store::consents::scope(ctx.store, user_id, client_id)
        .await?
        .and_then(|s| ScopeSet::parse(&s).ok())
        .unwrap_or_default();
    let merged = before.union(&request.scope);
    store::consents::upsert(
        ctx.store,
        user_id,
        client_id,
        &merged.to_string(),
        ctx.clock.unix(),
    )
    .await
}

/// Issues a code for the signed-in user and returns the redirect that carries it; `None`
/// when the sign-in does not satisfy the request ([`AuthorizationRequest::sign_in_satisfies`]):
/// the user must sign in again first. Every code is issued here.
pub async fn issue_code(
    ctx: &Ctx<'_>,
    request: &AuthorizationRequest,
    user_id: &str,
    auth_time: i64,
) -> Result<Option<Url>, StoreError> {
    let now = ctx.clock.unix();
    if !request.sign_in_satisfies(auth_time, now) {
        return Ok(None);
    }
    let code = secret::generate();
    use secrecy::ExposeSecret as _;
    let row = store::grants::CodeRow {
        client_id: request.client.client_id.to_string(),
        user_id: user_id.to_owned(),
        redirect_uri: request.redirect_uri.clone(),
        scope: request.scope.to_string(),
        code_challenge: request.code_challenge.clone(),
        nonce: request.nonce.clone(),
        auth_time,
        expires_at: now + CODE_TTL_SECS,
    };
    store::grants::insert_code(ctx.store, &secret::hash_secret(&code), &row, now).await?;
    let mut pairs: Vec<(&str, &str)> = vec![("code", code.expose_secret())];
    if let Some(s) = &request.state {
        pairs.push(("state", s));
    }
    pairs.push(("iss", ctx.issuer));
    Ok(Some(with_query(&request.redirect_url, &pairs)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uris(list: &[&str]) -> Vec<RedirectUri> {
        list.iter()
            .filter_map(|u| RedirectUri::parse(u).ok())
            .collect()
    }

    #[test]
    fn redirect_matching_is_exact_but_for_loopback_ports() {
        let reg = uris(&["https://app.example/cb", "http://127.0.0.1/callback"]);
        assert!(redirect_allowed(&reg, "https://app.example/cb"));
        for bad in [
            "https://app.example/cb/",
            "https://app.example/cb?x=1",
            "https://app.example/cb#f",
            "https://app.example:8443/cb",
            "https://APP.example/cb",
            "https://user@app.example/cb",
            "https://app.example/CB",
            "http://app.example/cb",
            "http://127.0.0.1:4000/other",
            "http://localhost:4000/callback",
        ] {
            assert!(!redirect_allowed(&reg, bad), "{bad} must be refused");
        }
        assert!(redirect_allowed(&reg, "http://127.0.0.1:53012/callback"));
        assert!(redirect_allowed(&reg, "http://127.0.0.1/callback"));
    }
}
