//! Error types at each boundary and the HTTP shapes they take: RFC 9457 problem documents
//! for the API, RFC 6749 §5.2 bodies for OAuth endpoints. Mapped here and nowhere else.

mod api;
mod oauth;

pub use api::*;
pub use oauth::*;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// Media type of RFC 9457 problem documents.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The response header that hands a client the nonce for its next DPoP proof (RFC 9449 §8).
pub const DPOP_NONCE: header::HeaderName = header::HeaderName::from_static("dpop-nonce");

/// `name="value"` for a `WWW-Authenticate` challenge. The value keeps only the characters
/// RFC 6749 allows in `error` and `error_description` (printable ASCII but `"` and `\`,
/// which an auth-param's quoted-string would have to escape); any other becomes `?`.
fn auth_param(name: &str, value: &str) -> String {
    let value: String = value
        .chars()
        .map(|c| match c {
            ' ' | '!' | '#'..='[' | ']'..='~' => c,
            _ => '?',
        })
        .collect();
    format!("{name}=\"{value}\"")
}

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
