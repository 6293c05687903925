//! The signing key ring: generation, encryption at rest under the master key, rotation, and
//! the in-memory ring every process signs and verifies with.
//!
//! A key's life: published in JWKS from creation; signs from `activate_at` (creation plus
//! `key_publish_secs`, so verifiers can fetch it first) until its successor activates
//! (`retire_at`); stays in JWKS `access_token_max_ttl_secs` longer, until the last token it
//! signed has expired; then it is deleted.

mod lifecycle;
mod ring;

pub use lifecycle::*;
pub use ring::*;

use std::path::PathBuf;

use serde::Serialize;
use utoipa::ToSchema;

pub use super::master_key::MasterKey;
use crate::store::StoreError;

/// Errors of the key ring.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Key material could not be generated, sealed or opened.
    #[error("{0}")]
    Crypto(String),
    /// A stored key cannot be opened with this master key.
    #[error(
        "signing key {kid} cannot be decrypted with this master key (was the master key changed?)"
    )]
    WrongMasterKey {
        /// The key that failed.
        kid: String,
    },
    /// The master key file could not be read or written.
    #[error("master key file {path}: {message}")]
    MasterKeyFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// No key has this kid.
    #[error("no signing key {0}")]
    NotFound(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub(crate) fn crypto(what: &str) -> impl Fn(aws_lc_rs::error::Unspecified) -> KeyError + '_ {
    move |_| KeyError::Crypto(format!("{what} failed"))
}

/// A key's public description (CLI, admin API).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KeyInfo {
    /// Key id.
    pub kid: String,
    /// Algorithm.
    pub alg: String,
    /// `pending` (published, not signing yet), `active`, `retired` (in JWKS until its tokens expire).
    pub state: &'static str,
    /// When it was made.
    #[serde(serialize_with = "crate::clock::as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    /// When it starts signing.
    #[serde(serialize_with = "crate::clock::as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub activate_at: i64,
    /// When it stops signing.
    #[serde(serialize_with = "crate::clock::as_rfc3339_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub retire_at: Option<i64>,
}
