//! Error types at each boundary and the HTTP shapes they take: RFC 9457 problem documents
//! for the API, RFC 6749 §5.2 bodies for OAuth endpoints. Mapped here and nowhere else.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// Media type of RFC 9457 problem documents.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One invalid input field of a validation problem.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct FieldError {
    /// JSON path of the field, e.g. `line_items[3].quantity`.
    pub field: String,
    /// Machine-readable reason, e.g. `required`, `too_long`, `out_of_range`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

impl FieldError {
    /// A field error with the given path, code and message.
    pub fn new(field: impl Into<String>, code: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            code: code.to_owned(),
            message: message.into(),
        }
    }

    /// `out_of_range`: "must be between `min` and `max`".
    pub fn out_of_range(field: impl Into<String>, min: i64, max: i64) -> Self {
        Self::new(
            field,
            "out_of_range",
            format!("must be between {min} and {max}"),
        )
    }

    /// `value` of `field` as Unix seconds, or the error that it is not an RFC 3339
    /// instant; `None` (and no error) when the field is absent.
    pub fn instant(errors: &mut Vec<FieldError>, field: &str, value: Option<&str>) -> Option<i64> {
        let value = value?;
        let unix = crate::clock::parse_rfc3339(value);
        if unix.is_none() {
            errors.push(FieldError::new(
                field,
                "invalid",
                "must be an RFC 3339 instant like 2026-11-29T10:00:00Z",
            ));
        }
        unix
    }
}

/// An RFC 9457 problem document, the one error shape of the API and admin endpoints.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "urn:gatehouse:problem:validation",
    "title": "Unprocessable Content",
    "status": 422,
    "detail": "the request body has invalid fields",
    "errors": [{"field": "line_items[3].quantity", "code": "out_of_range", "message": "must be between 1 and 1000000"}]
}))]
pub struct Problem {
    /// A URI naming the kind of problem; `about:blank` when the status says it all.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong with this request.
    pub detail: String,
    /// Field-level errors, for validation problems.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

impl Problem {
    /// A problem for `status` with a specific `kind` slug (`None` = `about:blank`).
    pub fn new(status: StatusCode, kind: Option<&str>, detail: impl Into<String>) -> Self {
        Self {
            kind: kind.map_or_else(
                || "about:blank".to_owned(),
                |k| format!("urn:gatehouse:problem:{k}"),
            ),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Json(self)).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        response
    }
}

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
    /// The shared rate limiter did not answer and the server fails closed (503).
    #[error("the rate limiter is unavailable; retry shortly")]
    Unavailable,
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
        let problem = match self {
            ApiError::Bearer {
                status,
                error,
                description,
                scope,
            } => {
                return bearer_challenge(status, error, &description, scope.as_deref());
            }
            ApiError::BadRequest(detail) => {
                Problem::new(StatusCode::BAD_REQUEST, Some("bad-request"), detail)
            }
            ApiError::Validation(errors) => Problem {
                errors,
                ..Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    Some("validation"),
                    "the request has invalid fields",
                )
            },
            e @ ApiError::PayloadTooLarge => Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                Some("payload-too-large"),
                e.to_string(),
            ),
            ApiError::UnsupportedMediaType(detail) => Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Some("unsupported-media-type"),
                detail,
            ),
            ApiError::NotFound => Problem::new(StatusCode::NOT_FOUND, None, "no such resource"),
            e @ ApiError::PreconditionFailed => Problem::new(
                StatusCode::PRECONDITION_FAILED,
                Some("precondition-failed"),
                e.to_string(),
            ),
            e @ ApiError::IdempotencyKeyReused => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                Some("idempotency-key-reused"),
                e.to_string(),
            ),
            e @ ApiError::IdempotencyKeyInFlight => {
                let mut response = Problem::new(
                    StatusCode::CONFLICT,
                    Some("idempotency-key-in-flight"),
                    e.to_string(),
                )
                .into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                return response;
            }
            ApiError::Conflict(detail) => {
                Problem::new(StatusCode::CONFLICT, Some("conflict"), detail)
            }
            ApiError::RateLimited(detail) => {
                Problem::new(StatusCode::TOO_MANY_REQUESTS, Some("rate-limited"), detail)
            }
            ApiError::QuotaSpent {
                detail,
                retry_after,
            } => {
                let mut response =
                    Problem::new(StatusCode::TOO_MANY_REQUESTS, Some("rate-limited"), detail)
                        .into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after.max(1)));
                return response;
            }
            e @ ApiError::Unavailable => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                Some("unavailable"),
                e.to_string(),
            ),
            ApiError::Internal(error) => {
                // The span carries the request id, so the log line and the answer meet there.
                tracing::error!(request_id = %crate::telemetry::request_id(), error = format!("{error:#}"), "internal error");
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    None,
                    "an internal error occurred; the request id in x-request-id identifies it in the logs",
                )
            }
        };
        problem.into_response()
    }
}

/// A bearer failure: the problem document plus the RFC 6750 §3 challenge.
fn bearer_challenge(
    status: StatusCode,
    error: Option<&str>,
    description: &str,
    scope: Option<&str>,
) -> Response {
    let kind = error.map(|e| e.replace('_', "-"));
    let mut response = Problem::new(status, kind.as_deref(), description).into_response();
    let mut challenge = "Bearer realm=\"gatehouse\"".to_owned();
    if let Some(error) = error {
        // Descriptions are our own fixed texts: no quotes or backslashes to escape.
        challenge.push_str(&format!(
            ", error=\"{error}\", error_description=\"{description}\""
        ));
    }
    if let Some(scope) = scope {
        challenge.push_str(&format!(", scope=\"{scope}\""));
    }
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// An RFC 6749 §5.2 error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OAuthErrorCode {
    /// The request is missing a parameter, repeats one, or is otherwise malformed.
    InvalidRequest,
    /// Client authentication failed.
    InvalidClient,
    /// The grant (code, refresh token, assertion) is invalid, expired or revoked.
    InvalidGrant,
    /// The client may not use this grant type.
    UnauthorizedClient,
    /// The grant type is not supported by this server.
    UnsupportedGrantType,
    /// The requested scope is invalid or exceeds what the client may have.
    InvalidScope,
    /// The resource owner or the server denied the request.
    AccessDenied,
    /// The server failed inside.
    ServerError,
    /// The server is overloaded or in maintenance.
    TemporarilyUnavailable,
    /// RFC 7009 §2.2.1: the server cannot revoke this type of token.
    UnsupportedTokenType,
    /// RFC 8628 §3.5: the user has not yet approved or denied the device's request.
    AuthorizationPending,
    /// RFC 8628 §3.5: the device polls too fast; its interval grew by 5 s.
    SlowDown,
    /// RFC 8628 §3.5: the device code expired; start again.
    ExpiredToken,
}

impl OAuthErrorCode {
    fn status(self) -> StatusCode {
        match self {
            Self::InvalidClient => StatusCode::UNAUTHORIZED,
            Self::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            Self::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// The RFC 6749 §5.2 body.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OAuthErrorBody {
    /// The error code.
    pub error: OAuthErrorCode,
    /// Which rule the request broke, for the client's developer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}

/// An error answered by an OAuth endpoint.
#[derive(Debug, thiserror::Error)]
#[error("{code:?}: {description}")]
pub struct OAuthError {
    /// The RFC 6749 error code.
    pub code: OAuthErrorCode,
    /// Human-readable detail (never a secret).
    pub description: String,
    /// The status, when not the code's usual one (429 for a rate limit).
    pub status: Option<StatusCode>,
}

impl OAuthError {
    /// An error with `code` and a description for the client's developer.
    pub fn new(code: OAuthErrorCode, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
            status: None,
        }
    }

    /// The same error answered with `status`.
    pub fn with_status(self, status: StatusCode) -> Self {
        Self {
            status: Some(status),
            ..self
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        if self.code == OAuthErrorCode::ServerError {
            tracing::error!(request_id = %crate::telemetry::request_id(), error = %self.description, "oauth endpoint failed");
        }
        let status = self.status.unwrap_or_else(|| self.code.status());
        let description = if self.code == OAuthErrorCode::ServerError {
            None
        } else {
            Some(self.description)
        };
        let mut response = (
            status,
            Json(OAuthErrorBody {
                error: self.code,
                error_description: description,
            }),
        )
            .into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"gatehouse\", charset=\"UTF-8\""),
            );
        }
        response
    }
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

impl From<crate::store::StoreError> for OAuthError {
    fn from(e: crate::store::StoreError) -> Self {
        OAuthError::new(OAuthErrorCode::ServerError, format!("{e:#}"))
    }
}
