//! Validating an authorization request: redirect targets first, then every parameter.

use std::sync::Arc;

use url::Url;

use super::*;
use crate::model::Client;
use crate::model::{ClientType, GrantType, ScopeSet};
use crate::oauth::Ctx;
use crate::oauth::params::Params;
use crate::oauth::pkce;

/// Why a request whose redirect target is trusted is refused: answered at that target.
pub(super) type Refusal = (AuthorizeErrorCode, String);

pub(super) fn refuse<T>(
    code: AuthorizeErrorCode,
    description: impl Into<String>,
) -> Result<T, Refusal> {
    Err((code, description.into()))
}

impl AuthorizationRequest {
    /// Validates the query of an authorization request; with `request_uri`, the pushed
    /// request it names (RFC 9126 §4), whose parameters are the only ones that count.
    pub async fn parse(ctx: &Ctx<'_>, query: &str) -> Result<Self, Rejection> {
        let params = Params::parse(query.as_bytes()).map_err(|e| Rejection::Page(e.description))?;
        let Some(uri) = params.get("request_uri") else {
            return Self::from_params(ctx, &params, Source::Browser).await;
        };
        let pushed = open_pushed(ctx, &params, uri).await?;
        let params =
            Params::parse(pushed.params.as_bytes()).map_err(|e| Rejection::Page(e.description))?;
        Self::from_params(ctx, &params, Source::Pushed(pushed)).await
    }

    /// Validates a request being pushed (RFC 9126 §2.1) as the authorization endpoint
    /// will when it is used.
    pub async fn validate_pushed(ctx: &Ctx<'_>, params: &Params) -> Result<Self, Rejection> {
        Self::from_params(ctx, params, Source::Pushing).await
    }

    async fn from_params(
        ctx: &Ctx<'_>,
        params: &Params,
        source: Source,
    ) -> Result<Self, Rejection> {
        // 1. Who is asking, and where may the answer go? Until both are known: a page.
        let (client, redirect_uri, redirect_url) = trusted_target(ctx, params).await?;
        // 2. The rest of the request, answered at the redirect URI, in the response mode
        // asked for (an unknown mode is refused in the default one).
        let state = params.get("state").map(str::to_owned);
        let mode = ResponseMode::parse(params.get("response_mode"));
        let response_mode = mode.unwrap_or_default();
        let rest = (|| {
            if mode.is_none() {
                refuse(
                    AuthorizeErrorCode::InvalidRequest,
                    "response_mode must be query or form_post",
                )?;
            }
            if state.as_ref().is_some_and(|s| s.len() > MAX_STATE_LEN) {
                refuse(
                    AuthorizeErrorCode::InvalidRequest,
                    "state is longer than 2048 characters",
                )?;
            }
            check_flow(params, &client)?;
            check_pushed(&client, &source)?;
            let scope = requested_scope(params, &client)?;
            let code_challenge = code_challenge(params, &client)?;
            let nonce = params.get("nonce").map(str::to_owned);
            if nonce.as_ref().is_some_and(|n| n.len() > MAX_STATE_LEN) {
                refuse(
                    AuthorizeErrorCode::InvalidRequest,
                    "nonce is longer than 2048 characters",
                )?;
            }
            Ok((
                (scope, code_challenge, nonce),
                prompt(params)?,
                max_age(params)?,
                super::claims::parse(params)?,
                dpop_jkt(params)?,
            ))
        })();
        let ((scope, code_challenge, nonce), prompt, max_age, claims, dpop_jkt) =
            rest.map_err(|(code, text)| {
                Rejection::Redirect(error_response(
                    &redirect_url,
                    response_mode,
                    code,
                    &text,
                    state.as_deref(),
                    ctx.issuer,
                ))
            })?;
        Ok(Self {
            client,
            redirect_uri,
            redirect_url,
            response_mode,
            state,
            scope,
            code_challenge,
            nonce,
            prompt,
            max_age,
            login_hint: params.get("login_hint").map(str::to_owned),
            claims,
            dpop_jkt,
            pushed: match source {
                Source::Pushed(pushed) => Some(pushed),
                Source::Browser | Source::Pushing => None,
            },
        })
    }

    /// The error `code` sent back to the client.
    pub fn error(
        &self,
        issuer: &str,
        code: AuthorizeErrorCode,
        description: &str,
    ) -> AuthorizationResponse {
        error_response(
            &self.redirect_url,
            self.response_mode,
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

/// The client and the redirect URI, both trusted; until they are, errors are pages.
async fn trusted_target(
    ctx: &Ctx<'_>,
    params: &Params,
) -> Result<(Arc<Client>, String, Url), Rejection> {
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
        Some(uri) if redirect_allowed(&client.redirect_uris, uri) => uri.to_owned(),
        Some(_) => {
            return Err(Rejection::Page(
                "the redirect_uri is not registered for this application".to_owned(),
            ));
        }
        None if client.redirect_uris.len() == 1 => client.redirect_uris[0].to_string(),
        None => {
            return Err(Rejection::Page(
                "the request has no redirect_uri and the application registered several".to_owned(),
            ));
        }
    };
    let redirect_url = Url::parse(&redirect_uri)
        .map_err(|_| Rejection::Page("the redirect_uri is not a valid URI".to_owned()))?;
    Ok((client, redirect_uri, redirect_url))
}

/// The code flow: no request objects, `response_type=code`, and a client registered for
/// it.
fn check_flow(params: &Params, client: &Client) -> Result<(), Refusal> {
    if params.get("request").is_some() {
        refuse(
            AuthorizeErrorCode::RequestNotSupported,
            "request objects are not supported",
        )?;
    }
    if params.get("request_uri").is_some() {
        refuse(
            AuthorizeErrorCode::InvalidRequest,
            "a pushed request cannot itself carry a request_uri",
        )?;
    }
    match params.get("response_type") {
        Some("code") => {}
        None => refuse(
            AuthorizeErrorCode::InvalidRequest,
            "response_type is required",
        )?,
        Some(_) => refuse(
            AuthorizeErrorCode::UnsupportedResponseType,
            "only response_type=code is supported",
        )?,
    }
    if !client.allows_grant(GrantType::AuthorizationCode) {
        refuse(
            AuthorizeErrorCode::UnauthorizedClient,
            "this application is not registered for the authorization code flow",
        )?;
    }
    Ok(())
}

/// A client that must push its requests (its registration or its FAPI 2.0 profile says
/// so) comes with a `request_uri`.
fn check_pushed(client: &Client, source: &Source) -> Result<(), Refusal> {
    let required = client.require_pushed_authorization_requests || client.fapi2();
    if required && matches!(source, Source::Browser) {
        refuse(
            AuthorizeErrorCode::InvalidRequest,
            "this application must push its authorization requests to /oauth2/par (RFC 9126) and send the request_uri",
        )?;
    }
    Ok(())
}

/// Opens the pushed request `uri` names, if `client_id` pushed it and it has not expired.
async fn open_pushed(ctx: &Ctx<'_>, outer: &Params, uri: &str) -> Result<PushedRef, Rejection> {
    let client_id = outer
        .get("client_id")
        .ok_or_else(|| Rejection::Page("the request has no client_id".to_owned()))?;
    let uri_hash = crate::oauth::secret::hash(uri);
    let pushed = crate::store::pushed::open(
        ctx.store,
        &uri_hash,
        client_id,
        ctx.clock.unix(),
        INTERACTION_SECS,
    )
    .await
    .map_err(|e| {
        tracing::error!(error = %e, "pushed request lookup failed");
        Rejection::Page("the server could not look up the request".to_owned())
    })?
    .ok_or_else(|| {
        Rejection::Page(
            "the request_uri is unknown or expired, or another application pushed it; the application must push its request again".to_owned(),
        )
    })?;
    Ok(PushedRef {
        uri_hash,
        params: pushed.params,
    })
}

/// The scopes asked for (all the client may have without `scope`): only what a user may
/// delegate, within the client's registration, and at least one.
fn requested_scope(params: &Params, client: &Client) -> Result<ScopeSet, Refusal> {
    let allowed = client.scopes.delegable();
    let scope = match params.get("scope") {
        None => allowed.clone(),
        Some(raw) => {
            ScopeSet::parse(raw).or_else(|e| refuse(AuthorizeErrorCode::InvalidScope, e.message))?
        }
    };
    if let Some(s) = scope.not_delegable() {
        refuse(
            AuthorizeErrorCode::InvalidScope,
            crate::oauth::grants::not_delegable(s),
        )?;
    }
    if !scope.is_subset(&allowed) {
        refuse(
            AuthorizeErrorCode::InvalidScope,
            format!("requested scope exceeds what this application may have ({allowed})"),
        )?;
    }
    if scope.is_empty() {
        refuse(AuthorizeErrorCode::InvalidScope, "no scope requested")?;
    }
    Ok(scope)
}

/// The PKCE challenge (RFC 7636): S256 only, and required of public clients.
fn code_challenge(params: &Params, client: &Client) -> Result<Option<String>, Refusal> {
    match params.get("code_challenge") {
        Some(challenge) => {
            pkce::check_challenge(challenge, params.get("code_challenge_method"))
                .or_else(|e| refuse(AuthorizeErrorCode::InvalidRequest, e.to_string()))?;
            Ok(Some(challenge.to_owned()))
        }
        None if params.get("code_challenge_method").is_some() => refuse(
            AuthorizeErrorCode::InvalidRequest,
            "code_challenge_method without code_challenge",
        ),
        None if client.client_type == ClientType::Public => refuse(
            AuthorizeErrorCode::InvalidRequest,
            "PKCE is required for public clients: send code_challenge with code_challenge_method=S256",
        ),
        None if client.fapi2() => refuse(
            AuthorizeErrorCode::InvalidRequest,
            "PKCE is required by this application's FAPI 2.0 profile: send code_challenge with code_challenge_method=S256",
        ),
        None => Ok(None),
    }
}

/// `dpop_jkt` (RFC 9449 §10): a SHA-256 JWK thumbprint, base64url (43 characters).
fn dpop_jkt(params: &Params) -> Result<Option<String>, Refusal> {
    match params.get("dpop_jkt") {
        None => Ok(None),
        Some(jkt)
            if jkt.len() == 43
                && jkt
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            Ok(Some(jkt.to_owned()))
        }
        Some(_) => refuse(
            AuthorizeErrorCode::InvalidRequest,
            "dpop_jkt must be a base64url SHA-256 JWK thumbprint (43 characters)",
        ),
    }
}

/// `prompt` (OpenID Connect Core §3.1.2.1); `none` stands alone.
fn prompt(params: &Params) -> Result<Prompt, Refusal> {
    let mut prompt = Prompt::default();
    for value in params.get("prompt").unwrap_or("").split(' ') {
        match value {
            "" => {}
            "none" => prompt.none = true,
            "login" | "select_account" => prompt.login = true,
            "consent" => prompt.consent = true,
            other => refuse(
                AuthorizeErrorCode::InvalidRequest,
                format!("unknown prompt value `{other}`"),
            )?,
        }
    }
    if prompt.none && (prompt.login || prompt.consent) {
        refuse(
            AuthorizeErrorCode::InvalidRequest,
            "prompt=none cannot be combined with other values",
        )?;
    }
    Ok(prompt)
}

/// `max_age`: seconds, when given.
fn max_age(params: &Params) -> Result<Option<i64>, Refusal> {
    match params.get("max_age") {
        None => Ok(None),
        Some(raw) => match raw.parse::<i64>() {
            Ok(v) if v >= 0 => Ok(Some(v)),
            _ => refuse(
                AuthorizeErrorCode::InvalidRequest,
                "max_age must be a non-negative integer",
            ),
        },
    }
}
