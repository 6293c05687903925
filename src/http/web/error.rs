//! `WebError`: why a page handler stops early, so that handlers can use `?`. Every variant
//! becomes a page (or the authorization endpoint's redirect) with the page headers; what
//! failed inside is logged, never shown.

use std::fmt::Display;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::authorize::reject;
use super::error_page;
use crate::oauth::authorize::Rejection;
use crate::store::StoreError;

/// A page handler's answer when it cannot go on.
#[derive(Debug)]
pub enum WebError {
    /// Something inside failed (the store, the password check): logged, answered with a
    /// 503 page that asks to try again.
    Internal(String),
    /// The request cannot be served: an error page with this status and text.
    Page(StatusCode, &'static str),
    /// An invalid authorization request: shown as a page, or sent back to the client once
    /// its redirect URI is trusted.
    Rejected(Rejection),
    /// A page that is already built: the form again with what was wrong, or a redirect.
    Reply(Box<Response>),
}

/// What a page handler returns.
pub type PageResult = Result<Response, WebError>;

impl WebError {
    /// Something inside failed; `e` is logged.
    pub fn internal(e: impl Display) -> Self {
        Self::Internal(e.to_string())
    }

    /// Answers `response`, a page already built.
    pub fn reply(response: Response) -> Self {
        Self::Reply(Box::new(response))
    }

    /// A 400 page with `text`.
    pub fn bad_request(text: &'static str) -> Self {
        Self::Page(StatusCode::BAD_REQUEST, text)
    }
}

impl From<StoreError> for WebError {
    fn from(e: StoreError) -> Self {
        Self::internal(e)
    }
}

impl From<Rejection> for WebError {
    fn from(rejection: Rejection) -> Self {
        Self::Rejected(rejection)
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        match self {
            Self::Internal(error) => {
                tracing::error!(%error, "a page failed inside");
                error_page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The server failed; try again.",
                )
            }
            Self::Page(status, text) => error_page(status, text),
            Self::Rejected(rejection) => reject(rejection),
            Self::Reply(response) => *response,
        }
    }
}
