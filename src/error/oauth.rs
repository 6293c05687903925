//! OAuthError: RFC 6749 §5.2 errors of the OAuth endpoints.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

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
    /// RFC 6749 §4.1.2.1 (a pushed request, RFC 9126 §2.3): only `code` is supported.
    UnsupportedResponseType,
    /// OpenID Connect Core §3.1.2.6 (a pushed request): request objects are not supported.
    RequestNotSupported,
    /// RFC 9449 §5: the DPoP proof is missing (for a client that must send one) or invalid.
    InvalidDpopProof,
    /// RFC 9449 §8: the proof must carry the nonce in the `DPoP-Nonce` header; retry
    /// with a new proof that does.
    UseDpopNonce,
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
    /// A DPoP nonce for the client's next proof (the `DPoP-Nonce` header, RFC 9449 §8).
    pub dpop_nonce: Option<String>,
}

impl OAuthError {
    /// An error with `code` and a description for the client's developer.
    pub fn new(code: OAuthErrorCode, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
            status: None,
            dpop_nonce: None,
        }
    }

    /// The same error, telling the client the nonce its next DPoP proof must carry.
    pub fn with_dpop_nonce(self, nonce: Option<String>) -> Self {
        Self {
            dpop_nonce: nonce,
            ..self
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
        let code = self.code;
        let nonce = self.dpop_nonce.and_then(|n| HeaderValue::from_str(&n).ok());
        let description = (code != OAuthErrorCode::ServerError).then_some(self.description);
        let challenge = (status == StatusCode::UNAUTHORIZED)
            .then(|| basic_challenge(code, description.as_deref()))
            .and_then(|c| HeaderValue::from_str(&c).ok());
        let mut response = (
            status,
            Json(OAuthErrorBody {
                error: code,
                error_description: description,
            }),
        )
            .into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if let Some(challenge) = challenge {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        if let Some(nonce) = nonce {
            headers.insert(super::DPOP_NONCE, nonce);
        }
        response
    }
}

/// The challenge of a failed client authentication (RFC 6749 §5.2, RFC 7617), carrying
/// the error as the body does: relying-party libraries read the challenge first.
fn basic_challenge(code: OAuthErrorCode, description: Option<&str>) -> String {
    let mut params = vec![
        super::auth_param("realm", "gatehouse"),
        super::auth_param("charset", "UTF-8"),
    ];
    if let Ok(serde_json::Value::String(error)) = serde_json::to_value(code) {
        params.push(super::auth_param("error", &error));
    }
    if let Some(description) = description {
        params.push(super::auth_param("error_description", description));
    }
    format!("Basic {}", params.join(", "))
}

impl From<crate::store::StoreError> for OAuthError {
    fn from(e: crate::store::StoreError) -> Self {
        OAuthError::new(OAuthErrorCode::ServerError, format!("{e:#}"))
    }
}
