//! The authorization server: the client and user registry, grants, client authentication,
//! tokens, keys and discovery. Nothing here knows about HTTP.

pub mod assertion_keys;
pub mod authorize;
pub mod client_auth;
pub mod clients;
mod context;
pub mod cutoffs;
pub mod device;
pub mod discovery;
pub mod grants;
pub mod id_token;
pub mod introspection;
pub mod keys;
pub mod login;
pub mod master_key;
pub mod params;
pub mod password;
pub mod pkce;
pub mod secret;
pub mod token;
pub mod tokens;
pub mod user_grants;
pub mod users;

pub use context::{ClientCache, Ctx, DevicePolls, device_polls, synced_cache};

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

/// Collects field errors while parsing an input, so that all of them are reported at once.
#[derive(Default)]
pub(crate) struct Fields(Vec<FieldError>);

impl Fields {
    /// Parses `value` with `parse`, recording a failure under `field`.
    pub(crate) fn check<T>(
        &mut self,
        field: impl Into<String>,
        parsed: Result<T, crate::model::Invalid>,
    ) -> Option<T> {
        match parsed {
            Ok(v) => Some(v),
            Err(e) => {
                self.0.push(FieldError::new(field, e.code, e.message));
                None
            }
        }
    }

    /// Parses every item of a list, naming failures `field[i]`.
    pub(crate) fn check_all<T>(
        &mut self,
        field: &str,
        items: &[String],
        parse: impl Fn(&str) -> Result<T, crate::model::Invalid>,
    ) -> Vec<T> {
        items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| self.check(format!("{field}[{i}]"), parse(item)))
            .collect()
    }

    /// Records a rule violation.
    pub(crate) fn fail(&mut self, field: &str, code: &str, message: impl Into<String>) {
        self.0.push(FieldError::new(field, code, message));
    }

    /// Ok when nothing failed.
    pub(crate) fn finish(self) -> Result<(), RegistryError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(RegistryError::Invalid(self.0))
        }
    }
}
