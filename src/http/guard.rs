//! The resource-side guard (RFC 6750): a bearer token from the Authorization header (and,
//! for userinfo's POST, a form body: §2.2), never the query string, verified against the
//! in-memory key ring and revocation list, then the route's scopes.

use std::marker::PhantomData;
use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use crate::error::ApiError;
use crate::http::extract::{is_form, raw_body};
use crate::http::state::AppState;
use crate::model::Scope;
use crate::oauth::tokens::AccessClaims;
use crate::ratelimit::{self, ApiLimitKey, DailyUsage, Policy};

/// Which scopes a route needs: any one of `ANY_OF` (none listed = any valid token).
pub trait ScopePolicy: Send + Sync + 'static {
    /// Accepted scopes.
    const ANY_OF: &'static [Scope];
}

/// Any valid access token.
pub struct AnyScope;
impl ScopePolicy for AnyScope {
    const ANY_OF: &'static [Scope] = &[];
}

/// The admin API.
pub struct AdminScope;
impl ScopePolicy for AdminScope {
    const ANY_OF: &'static [Scope] = &[Scope::Admin];
}

/// OpenID Connect userinfo.
pub struct OpenIdScope;
impl ScopePolicy for OpenIdScope {
    const ANY_OF: &'static [Scope] = &[Scope::OpenId];
}

/// The verified caller of a protected route.
pub struct Caller<P: ScopePolicy = AnyScope> {
    /// The token's claims.
    pub claims: Arc<AccessClaims>,
    policy: PhantomData<P>,
}

impl<P: ScopePolicy> Caller<P> {
    /// Whether the token carries `scope`.
    pub fn has_scope(&self, scope: Scope) -> bool {
        has_scope(&self.claims, scope)
    }
}

fn has_scope(claims: &AccessClaims, scope: Scope) -> bool {
    claims.scope.split(' ').any(|s| s == scope.as_str())
}

impl<P: ScopePolicy> FromRequestParts<AppState> for Caller<P> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        refuse_query_token(parts)?;
        let token = header_token(parts)?.ok_or_else(ApiError::no_token)?;
        Self::admit(state, token).await
    }
}

/// A token in the query string is refused (RFC 9700 §2.1): URLs end up in logs.
fn refuse_query_token(parts: &Parts) -> Result<(), ApiError> {
    let in_query = parts
        .uri
        .query()
        .is_some_and(|q| form_urlencoded::parse(q.as_bytes()).any(|(k, _)| k == "access_token"));
    if in_query {
        return Err(ApiError::invalid_bearer_request(
            StatusCode::BAD_REQUEST,
            "send the token in the Authorization header, not the query string",
        ));
    }
    Ok(())
}

/// The token of an `Authorization: Bearer` header; `None` when there is no such header.
fn header_token(parts: &Parts) -> Result<Option<&str>, ApiError> {
    let Some(value) = parts.headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty())
        .map(Some)
        .ok_or_else(|| {
            ApiError::invalid_bearer_request(
                StatusCode::UNAUTHORIZED,
                "the Authorization header must be `Bearer <token>`",
            )
        })
}

/// A caller whose token may also come as `access_token` in a form-encoded body (RFC 6750
/// §2.2), for userinfo's POST (OpenID Connect Core §5.3.1). One method per request: a token
/// in both the header and the body, or twice in the body, is `invalid_request`.
pub struct FormCaller<P: ScopePolicy>(pub Caller<P>);

impl<P: ScopePolicy> FromRequest<AppState> for FormCaller<P> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let (parts, body) = request.into_parts();
        refuse_query_token(&parts)?;
        let in_header = header_token(&parts)?.map(str::to_owned);
        let in_body: Vec<String> = if is_form(&parts.headers) {
            let bytes = raw_body(Request::from_parts(parts, body), state).await?;
            form_urlencoded::parse(&bytes)
                .filter(|(k, _)| k == "access_token")
                .map(|(_, v)| v.into_owned())
                .collect()
        } else {
            Vec::new()
        };
        let token = match (in_header, in_body.as_slice()) {
            (Some(token), []) => token,
            (None, [token]) if !token.is_empty() => token.clone(),
            (None, []) => return Err(ApiError::no_token()),
            (None, [_]) => {
                return Err(ApiError::invalid_bearer_request(
                    StatusCode::BAD_REQUEST,
                    "access_token is empty",
                ));
            }
            _ => {
                return Err(ApiError::invalid_bearer_request(
                    StatusCode::BAD_REQUEST,
                    "send the token once: in the Authorization header or as one access_token in the body",
                ));
            }
        };
        Caller::admit(state, &token).await.map(FormCaller)
    }
}

impl<P: ScopePolicy> Caller<P> {
    /// Verifies `token`, counts it against the API limits and checks the route's scopes.
    async fn admit(state: &AppState, token: &str) -> Result<Self, ApiError> {
        let claims = state
            .tokens
            .verify(token, state.clock.unix())
            .map_err(|e| ApiError::invalid_token(e.to_string()))?;
        // A user's token counts for that user of the client; a client-credentials token
        // (its subject is the client) for the client.
        let acts_for_user = claims.sub != claims.client_id;
        let key: std::borrow::Cow<'_, str> = match state.config.rate_limit_api_key {
            ApiLimitKey::Subject if acts_for_user => {
                format!("{} {}", claims.client_id, claims.sub).into()
            }
            ApiLimitKey::Subject | ApiLimitKey::Client => claims.client_id.as_str().into(),
            ApiLimitKey::Token => claims.jti.as_str().into(),
        };
        if let Some(decision) = state.limiter.check(Policy::Api, &key).await
            && decision.refused()
        {
            return Err(ApiError::rate_limited(&decision));
        }
        let limit = state.config.api_daily_limit;
        let now = state.clock.unix();
        let per_user = acts_for_user && state.config.rate_limit_api_key != ApiLimitKey::Client;
        let subject = if per_user { claims.sub.as_str() } else { "" };
        match state.usage.count(&claims.client_id, subject, now, limit) {
            Ok(used) => ratelimit::record_usage(DailyUsage {
                used,
                limit,
                refused_for_secs: None,
            }),
            Err(used) => {
                let wait = crate::usage::secs_to_midnight(now);
                ratelimit::record_usage(DailyUsage {
                    used,
                    limit,
                    refused_for_secs: Some(u64::try_from(wait).unwrap_or(1)),
                });
                return Err(ApiError::RateLimited(format!(
                    "the daily API limit of {limit} calls is spent; it starts again at 00:00 UTC, in {wait} s"
                )));
            }
        }
        if !P::ANY_OF.is_empty() && !P::ANY_OF.iter().any(|s| has_scope(&claims, *s)) {
            return Err(ApiError::insufficient_scope(P::ANY_OF));
        }
        Ok(Self {
            claims,
            policy: PhantomData,
        })
    }
}
