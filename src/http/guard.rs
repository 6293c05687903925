//! The resource-side guard (RFC 6750): a bearer token from the Authorization header only,
//! verified against the in-memory key ring and revocation list, then the route's scopes.

use std::marker::PhantomData;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use crate::error::ApiError;
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
        let in_query = parts.uri.query().is_some_and(|q| {
            form_urlencoded::parse(q.as_bytes()).any(|(k, _)| k == "access_token")
        });
        if in_query {
            return Err(ApiError::invalid_bearer_request(
                StatusCode::BAD_REQUEST,
                "send the token in the Authorization header, not the query string",
            ));
        }
        let Some(value) = parts.headers.get(AUTHORIZATION) else {
            return Err(ApiError::no_token());
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::invalid_bearer_request(
                    StatusCode::UNAUTHORIZED,
                    "the Authorization header must be `Bearer <token>`",
                )
            })?;
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
