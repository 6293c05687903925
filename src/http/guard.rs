//! The resource-side guard (RFC 6750, RFC 9449 §7): an access token from the Authorization
//! header (and, for userinfo's POST, a form body: RFC 6750 §2.2), never the query string,
//! verified against the in-memory key ring and revocation list; a DPoP-bound token only
//! with the `DPoP` scheme and a proof of its key, a bearer token only as `Bearer`; then
//! the route's scopes.

use std::marker::PhantomData;
use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, OriginalUri, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, StatusCode};

use crate::error::ApiError;
use crate::http::extract::{is_form, raw_body};
use crate::http::state::AppState;
use crate::model::Scope;
use crate::oauth::dpop::{Expect, ProofError};
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
        let (scheme, token) = header_token(parts)?.ok_or_else(ApiError::no_token)?;
        let sender = Sender::of(parts, scheme)?;
        Self::admit(state, token, &sender).await
    }
}

/// The `Authorization` scheme a token came with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    /// RFC 6750.
    Bearer,
    /// RFC 9449 §7.1.
    Dpop,
}

/// What the request says about its sender: with the `DPoP` scheme, what the proof must
/// match (a bearer request copies nothing).
struct Sender {
    dpop: Option<DpopRequest>,
}

/// The proof of a `DPoP` request and the method and path it must name.
struct DpopRequest {
    proof: Option<String>,
    method: String,
    path: String,
}

impl Sender {
    fn of(parts: &Parts, scheme: Scheme) -> Result<Self, ApiError> {
        if scheme == Scheme::Bearer {
            return Ok(Self { dpop: None });
        }
        let proof = dpop_header(&parts.headers).map_err(|why| ApiError::Dpop {
            status: StatusCode::BAD_REQUEST,
            error: "invalid_dpop_proof",
            description: why.to_owned(),
            nonce: None,
        })?;
        // The path as the client sent it, also inside a nested router.
        let path = parts
            .extensions
            .get::<OriginalUri>()
            .map_or_else(|| parts.uri.path(), |u| u.0.path());
        Ok(Self {
            dpop: Some(DpopRequest {
                proof: proof.map(str::to_owned),
                method: parts.method.as_str().to_owned(),
                path: path.to_owned(),
            }),
        })
    }
}

/// The one `DPoP` header of a request, if any (RFC 9449 §4.3: never two).
pub fn dpop_header(headers: &HeaderMap) -> Result<Option<&str>, &'static str> {
    static DPOP: HeaderName = HeaderName::from_static("dpop");
    let mut all = headers.get_all(&DPOP).iter();
    match (all.next(), all.next()) {
        (None, _) => Ok(None),
        (Some(value), None) => value
            .to_str()
            .map(Some)
            .map_err(|_| "the DPoP header is not a JWT"),
        (Some(_), Some(_)) => Err("send one DPoP header, not several"),
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

/// The scheme and token of an `Authorization: Bearer` or `Authorization: DPoP` header;
/// `None` when there is no such header.
fn header_token(parts: &Parts) -> Result<Option<(Scheme, &str)>, ApiError> {
    let Some(value) = parts.headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .and_then(|(scheme, token)| {
            let scheme = if scheme.eq_ignore_ascii_case("bearer") {
                Scheme::Bearer
            } else if scheme.eq_ignore_ascii_case("dpop") {
                Scheme::Dpop
            } else {
                return None;
            };
            let token = token.trim();
            (!token.is_empty()).then_some((scheme, token))
        })
        .map(Some)
        .ok_or_else(|| {
            ApiError::invalid_bearer_request(
                StatusCode::UNAUTHORIZED,
                "the Authorization header must be `Bearer <token>` or `DPoP <token>`",
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
        let in_header = header_token(&parts)?.map(|(scheme, token)| (scheme, token.to_owned()));
        let sender = Sender::of(&parts, in_header.as_ref().map_or(Scheme::Bearer, |h| h.0))?;
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
            (Some((_, token)), []) => token,
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
        Caller::admit(state, &token, &sender).await.map(FormCaller)
    }
}

impl<P: ScopePolicy> Caller<P> {
    /// Verifies `token`, counts it against the API limits, checks its sender (a DPoP
    /// proof for a bound token) and the route's scopes.
    async fn admit(state: &AppState, token: &str, sender: &Sender) -> Result<Self, ApiError> {
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
        // Boxed: a bearer token never waits on a proof, and its request's future stays small.
        if claims.cnf.is_some() || sender.dpop.is_some() {
            Box::pin(check_sender(state, &claims, token, sender)).await?;
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

/// A DPoP failure at a resource: 401 with the DPoP challenge.
fn dpop_refusal(error: &'static str, description: impl Into<String>) -> ApiError {
    ApiError::Dpop {
        status: StatusCode::UNAUTHORIZED,
        error,
        description: description.into(),
        nonce: None,
    }
}

/// RFC 9449 §7: a DPoP-bound token only with the `DPoP` scheme and a valid proof of its
/// key (for this method and URL, with the token's hash, and the nonce when the client
/// must use one); a bearer token only as `Bearer`.
async fn check_sender(
    state: &AppState,
    claims: &AccessClaims,
    token: &str,
    sender: &Sender,
) -> Result<(), ApiError> {
    let (jkt, request) = match (claims.jkt(), &sender.dpop) {
        (None, None) => return Ok(()),
        (Some(jkt), Some(request)) => (jkt, request),
        (Some(_), None) => {
            return Err(dpop_refusal(
                "invalid_token",
                "this token is DPoP-bound: send it as `Authorization: DPoP <token>` with a DPoP proof",
            ));
        }
        (None, Some(_)) => {
            return Err(dpop_refusal(
                "invalid_token",
                "this token is not DPoP-bound: send it as `Authorization: Bearer <token>`",
            ));
        }
    };
    let Some(proof) = request.proof.as_deref() else {
        return Err(dpop_refusal(
            "invalid_dpop_proof",
            "a DPoP token needs a DPoP proof in the DPoP header",
        ));
    };
    let nonce = state.dpop.nonce_required(false)
        || state
            .oauth()
            .client(&claims.client_id)
            .await?
            .is_some_and(|c| c.require_dpop_nonce);
    let htu = format!("{}{}", state.issuer, request.path);
    let expect = Expect {
        htm: &request.method,
        htu: &htu,
        access_token: Some(token),
        nonce,
    };
    let now = state.clock.unix();
    let proof = match state.dpop.verify(proof, &expect, now).await {
        Ok(proof) => proof,
        Err(ProofError::Invalid(why)) => return Err(dpop_refusal("invalid_dpop_proof", why)),
        Err(ProofError::UseNonce(why)) => {
            return Err(ApiError::Dpop {
                status: StatusCode::UNAUTHORIZED,
                error: "use_dpop_nonce",
                description: why,
                nonce: Some(state.dpop.nonce(now)),
            });
        }
        Err(ProofError::Unavailable(_)) => return Err(ApiError::Unavailable),
    };
    if proof.jkt != jkt {
        return Err(dpop_refusal(
            "invalid_dpop_proof",
            "the proof is signed by another key than the one this token is bound to",
        ));
    }
    Ok(())
}
