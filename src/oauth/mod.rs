//! The authorization server: the client and user registry, grants, client authentication,
//! tokens, keys and discovery. Nothing here knows about HTTP.

pub mod assertion_keys;
pub mod authorize;
pub mod backchannel;
pub mod client_auth;
pub mod clients;
pub mod connected_apps;
mod context;
pub mod cutoffs;
pub mod device;
pub mod discovery;
pub mod dpop;
pub mod grants;
pub mod id_token;
pub mod introspection;
pub mod keys;
pub mod login;
pub mod logout;
pub mod master_key;
pub mod par;
pub mod params;
pub mod password;
pub mod pkce;
pub mod secret;
pub mod token_endpoint;
pub mod tokens;
pub mod users;

pub use context::{ClientCache, Ctx, DevicePolls, device_polls};

use crate::error::FieldError;
use crate::store::StoreError;

/// Errors of registry operations (clients, users).
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Some inputs are invalid; each names its field.
    #[error("invalid input: {}", .0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    /// No such client or user.
    #[error("{0} not found")]
    NotFound(String),
    /// A uniqueness rule was violated.
    #[error("{0}")]
    Conflict(String),
    /// The store or the password hasher failed.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<StoreError> for RegistryError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => RegistryError::Conflict(what),
            other => RegistryError::Internal(other.into()),
        }
    }
}

impl From<Vec<FieldError>> for RegistryError {
    fn from(fields: Vec<FieldError>) -> Self {
        RegistryError::Invalid(fields)
    }
}
