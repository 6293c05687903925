//! Parameters of an OAuth request body (`application/x-www-form-urlencoded`).

use std::collections::HashMap;

use crate::error::{OAuthError, OAuthErrorCode};

/// Most parameters one request may carry.
const MAX_PARAMS: usize = 64;

/// Form parameters, each present at most once (RFC 6749 §3.2).
#[derive(Debug, Default, Clone)]
pub struct Params(HashMap<String, String>);

impl Params {
    /// Parses a form body; a repeated parameter is `invalid_request`. Empty values count as
    /// absent (RFC 6749 §3.1).
    pub fn parse(body: &[u8]) -> Result<Self, OAuthError> {
        let mut map = HashMap::new();
        for (i, (name, value)) in form_urlencoded::parse(body).enumerate() {
            if i >= MAX_PARAMS {
                return Err(OAuthError::new(
                    OAuthErrorCode::InvalidRequest,
                    "too many parameters",
                ));
            }
            if value.is_empty() {
                continue;
            }
            if map.insert(name.to_string(), value.into_owned()).is_some() {
                return Err(OAuthError::new(
                    OAuthErrorCode::InvalidRequest,
                    format!("parameter `{name}` is repeated (RFC 6749 §3.2)"),
                ));
            }
        }
        Ok(Self(map))
    }

    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Sets `name` to `value`.
    pub fn set(&mut self, name: &str, value: &str) {
        self.0.insert(name.to_owned(), value.to_owned());
    }

    /// Removes `name`.
    pub fn remove(&mut self, name: &str) {
        self.0.remove(name);
    }

    /// The parameters form-encoded, by name (the same parameters, the same text).
    pub fn to_form(&self) -> String {
        let mut pairs: Vec<(&String, &String)> = self.0.iter().collect();
        pairs.sort();
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
    }

    /// The value of `name`, or `invalid_request` naming it.
    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name).ok_or_else(|| {
            OAuthError::new(
                OAuthErrorCode::InvalidRequest,
                format!("parameter `{name}` is required"),
            )
        })
    }
}
