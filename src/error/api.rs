//! ApiError: the API's and the admin API's errors, as RFC 9457 problems and RFC 6750 challenges.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::*;

/// Errors of the API and admin endpoints.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed (unparseable JSON, wrong content type, bad query string).
    #[error("{0}")]
    BadRequest(String),
    /// The request parsed but some fields are invalid.
    #[error("the request has invalid fields")]
    Validation(Vec<FieldError>),
    /// The body is larger than the configured limit.
    #[error("the request body is larger than this endpoint accepts")]
    PayloadTooLarge,
    /// The body is not of a media type the endpoint accepts.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Nothing here (also for resources the caller may not see: no existence leak).
    #[error("not found")]
    NotFound,
    /// The request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// If-Match names a version that is no longer current (412).
    #[error("the case has changed since the ETag in If-Match; read it again")]
    PreconditionFailed,
    /// An Idempotency-Key reused with a different request (422).
    #[error("this Idempotency-Key was used with a different request")]
    IdempotencyKeyReused,
    /// A request with this Idempotency-Key is still running (409, Retry-After).
    #[error("a request with this Idempotency-Key is still in progress; retry shortly")]
    IdempotencyKeyInFlight,
    /// A bearer-token failure (RFC 6750 §3): 400, 401 or 403 with `WWW-Authenticate`.
    #[error("{description}")]
    Bearer {
        /// 400 invalid_request, 401 invalid_token (or no token), 403 insufficient_scope.
        status: StatusCode,
        /// The RFC 6750 error code; none when no token was sent (§3.1).
        error: Option<&'static str>,
        /// What was wrong.
        description: String,
        /// The scopes that would have sufficed (insufficient_scope).
        scope: Option<String>,
    },
    /// A DPoP failure at a protected resource (RFC 9449 §7.1): `WWW-Authenticate: DPoP`
    /// with the error, and a `DPoP-Nonce` when the proof must carry a (new) nonce.
    #[error("{description}")]
    Dpop {
        /// 400 for a malformed request, else 401.
        status: StatusCode,
        /// `invalid_dpop_proof`, `use_dpop_nonce`, `invalid_token` or `invalid_request`.
        error: &'static str,
        /// What was wrong.
        description: String,
        /// The nonce the next proof must carry.
        nonce: Option<String>,
    },
    /// A rate limit or the daily API quota refused the request (429, `Retry-After`).
    #[error("{0}")]
    RateLimited(String),
    /// A daily quota is spent until `retry_after` seconds from now (429, `Retry-After`).
    #[error("{detail}")]
    QuotaSpent {
        /// What is spent.
        detail: String,
        /// Seconds until it starts again.
        retry_after: i64,
    },
    /// A store the replicas share did not answer and the server fails closed (503,
    /// `Retry-After`): the rate limiter, or where spent DPoP proofs are kept.
    #[error("a shared store (rate limits, spent DPoP proofs) is unavailable; retry shortly")]
    Unavailable,
    /// A replay id from before the event retention window: the events after it are gone
    /// (410), and resuming from it would hide the gap.
    #[error("{0}")]
    ReplayExpired(String),
    /// The server holds as many event streams as it allows (503, `Retry-After`).
    #[error("this server holds as many event streams as it allows; retry shortly")]
    StreamsFull,
    /// Something failed inside; logged, never described to the caller.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// 403 `insufficient_scope`: the token lacks every one of `needed`.
    pub fn insufficient_scope(needed: &[crate::model::Scope]) -> Self {
        let needed: Vec<&str> = needed.iter().map(|s| s.as_str()).collect();
        ApiError::Bearer {
            status: StatusCode::FORBIDDEN,
            error: Some("insufficient_scope"),
            description: format!("this endpoint needs scope {}", needed.join(" or ")),
            scope: Some(needed.join(" ")),
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::NotFound => ApiError::NotFound,
            crate::store::StoreError::Conflict(what) => ApiError::Conflict(what),
            crate::store::StoreError::ClaimLapsed => ApiError::IdempotencyKeyInFlight,
            other => ApiError::Internal(other.into()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = match &self {
            ApiError::IdempotencyKeyInFlight | ApiError::Unavailable => Some(1),
            ApiError::QuotaSpent { retry_after, .. } => Some((*retry_after).max(1)),
            ApiError::StreamsFull => Some(5),
            _ => None,
        };
        let challenge = match &self {
            ApiError::Bearer {
                error,
                description,
                scope,
                ..
            } => HeaderValue::from_str(&challenge(*error, description, scope.as_deref())).ok(),
            ApiError::Dpop {
                error, description, ..
            } => HeaderValue::from_str(&dpop_challenge(Some(error), description)).ok(),
            _ => None,
        };
        // A 401 names both schemes this server accepts (RFC 9449 §7.1).
        let also_dpop = match &self {
            ApiError::Bearer { status, .. } => *status == StatusCode::UNAUTHORIZED,
            _ => false,
        };
        let nonce = match &self {
            ApiError::Dpop { nonce, .. } => {
                nonce.as_deref().and_then(|n| HeaderValue::from_str(n).ok())
            }
            _ => None,
        };
        let mut response = self.into_problem().into_response();
        let headers = response.headers_mut();
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(challenge) = challenge {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        if also_dpop && let Ok(dpop) = HeaderValue::from_str(&dpop_challenge(None, "")) {
            headers.append(header::WWW_AUTHENTICATE, dpop);
        }
        if let Some(nonce) = nonce {
            headers.insert(super::DPOP_NONCE, nonce);
        }
        response
    }
}

impl ApiError {
    /// The problem document of the error (headers aside).
    fn into_problem(self) -> Problem {
        let (status, kind, detail) = match self {
            ApiError::Bearer {
                status,
                error,
                description,
                ..
            } => {
                let kind = error.map(|e| e.replace('_', "-"));
                return Problem::new(status, kind.as_deref(), description);
            }
            ApiError::Dpop {
                status,
                error,
                description,
                ..
            } => {
                return Problem::new(status, Some(&error.replace('_', "-")), description);
            }
            ApiError::Validation(errors) => {
                return Problem {
                    errors,
                    ..Problem::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        Some("validation"),
                        "the request has invalid fields",
                    )
                };
            }
            ApiError::Internal(error) => {
                // The span carries the request id, so the log line and the answer meet there.
                tracing::error!(request_id = %crate::telemetry::request_id(), error = format!("{error:#}"), "internal error");
                return Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    None,
                    "an internal error occurred; the request id in x-request-id identifies it in the logs",
                );
            }
            ApiError::BadRequest(detail) => (StatusCode::BAD_REQUEST, Some("bad-request"), detail),
            e @ ApiError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                Some("payload-too-large"),
                e.to_string(),
            ),
            ApiError::UnsupportedMediaType(detail) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Some("unsupported-media-type"),
                detail,
            ),
            ApiError::NotFound => (StatusCode::NOT_FOUND, None, "no such resource".to_owned()),
            e @ ApiError::PreconditionFailed => (
                StatusCode::PRECONDITION_FAILED,
                Some("precondition-failed"),
                e.to_string(),
            ),
            e @ ApiError::IdempotencyKeyReused => (
                StatusCode::UNPROCESSABLE_ENTITY,
                Some("idempotency-key-reused"),
                e.to_string(),
            ),
            e @ ApiError::IdempotencyKeyInFlight => (
                StatusCode::CONFLICT,
                Some("idempotency-key-in-flight"),
                e.to_string(),
            ),
            ApiError::Conflict(detail) => (StatusCode::CONFLICT, Some("conflict"), detail),
            ApiError::RateLimited(detail) | ApiError::QuotaSpent { detail, .. } => {
                (StatusCode::TOO_MANY_REQUESTS, Some("rate-limited"), detail)
            }
            e @ ApiError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                Some("unavailable"),
                e.to_string(),
            ),
            ApiError::ReplayExpired(detail) => (StatusCode::GONE, Some("replay-expired"), detail),
            e @ ApiError::StreamsFull => (
                StatusCode::SERVICE_UNAVAILABLE,
                Some("streams-full"),
                e.to_string(),
            ),
        };
        Problem::new(status, kind, detail)
    }

    /// 401 without an error code: no token was sent (RFC 6750 §3.1).
    pub fn no_token() -> Self {
        Self::bearer(StatusCode::UNAUTHORIZED, None, "a bearer token is required")
    }

    /// 401 `invalid_token`: expired, revoked, malformed or no longer backed by a user.
    pub fn invalid_token(description: impl Into<String>) -> Self {
        Self::bearer(StatusCode::UNAUTHORIZED, Some("invalid_token"), description)
    }

    /// `invalid_request` with `status` (400, or 401 for a malformed Authorization header).
    pub fn invalid_bearer_request(status: StatusCode, description: impl Into<String>) -> Self {
        Self::bearer(status, Some("invalid_request"), description)
    }

    fn bearer(
        status: StatusCode,
        error: Option<&'static str>,
        description: impl Into<String>,
    ) -> Self {
        ApiError::Bearer {
            status,
            error,
            description: description.into(),
            scope: None,
        }
    }
}

/// The RFC 6750 §3 challenge of a bearer failure.
fn challenge(error: Option<&str>, description: &str, scope: Option<&str>) -> String {
    let mut params = vec![super::auth_param("realm", "gatehouse")];
    if let Some(error) = error {
        params.push(super::auth_param("error", error));
        params.push(super::auth_param("error_description", description));
    }
    if let Some(scope) = scope {
        params.push(super::auth_param("scope", scope));
    }
    format!("Bearer {}", params.join(", "))
}

/// The RFC 9449 §7.1 challenge: the error, if any, and the proof algorithms accepted.
fn dpop_challenge(error: Option<&str>, description: &str) -> String {
    let mut params = vec![super::auth_param("realm", "gatehouse")];
    if let Some(error) = error {
        params.push(super::auth_param("error", error));
        params.push(super::auth_param("error_description", description));
    }
    params.push(super::auth_param(
        "algs",
        &crate::oauth::dpop::ALGS.join(" "),
    ));
    format!("DPoP {}", params.join(", "))
}

impl From<crate::oauth::RegistryError> for ApiError {
    fn from(e: crate::oauth::RegistryError) -> Self {
        use crate::oauth::RegistryError;
        match e {
            RegistryError::Invalid(fields) => ApiError::Validation(fields),
            RegistryError::NotFound(_) => ApiError::NotFound,
            RegistryError::Conflict(what) => ApiError::Conflict(what),
            RegistryError::Internal(e) => ApiError::Internal(e),
        }
    }
}

impl From<crate::oauth::keys::KeyError> for ApiError {
    fn from(e: crate::oauth::keys::KeyError) -> Self {
        match e {
            crate::oauth::keys::KeyError::NotFound(_) => ApiError::NotFound,
            other => ApiError::Internal(other.into()),
        }
    }
}
