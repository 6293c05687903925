//! Validating an authorization request: redirect targets first, then every parameter.

use crate::model::{ClientType, GrantType, ScopeSet};
use crate::oauth::Ctx;
use crate::oauth::params::Params;
use crate::oauth::pkce;
use url::Url;

#[allow(unused_imports)]
use super::*;

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
                &crate::oauth::grants::not_delegable(s),
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
