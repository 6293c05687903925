//! Names: client ids, usernames, email addresses.

use std::fmt;

use serde::Serialize;
use utoipa::ToSchema;

use super::Invalid;

string_newtype!(
    /// A client identifier: 1–64 characters of `A–Z a–z 0–9 - . _ ~` (RFC 3986 unreserved).
    ClientId
);

impl ClientId {
    /// Accepts an identifier of unreserved characters.
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        if s.is_empty() || s.len() > 64 {
            return Err(Invalid::new("invalid", "must be 1 to 64 characters"));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
        {
            return Err(Invalid::new(
                "invalid",
                "may only contain A-Z a-z 0-9 - . _ ~",
            ));
        }
        Ok(Self(s.to_owned()))
    }
}

string_newtype!(
    /// A login name: 1–64 characters of `a–z 0–9 . _ @ + -`, kept in lower case.
    Username
);

impl Username {
    /// Accepts a login name, folding it to lower case.
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let s = s.trim().to_lowercase();
        if s.is_empty() || s.len() > 64 {
            return Err(Invalid::new("invalid", "must be 1 to 64 characters"));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._@+-".contains(&b))
        {
            return Err(Invalid::new(
                "invalid",
                "may only contain a-z 0-9 . _ @ + -",
            ));
        }
        Ok(Self(s))
    }
}

string_newtype!(
    /// An email address: one `@` with text on both sides, at most 254 characters.
    Email
);

impl Email {
    /// Accepts a plausible address (deliverability is the mail server's business).
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let s = s.trim();
        let valid = s.len() <= 254
            && matches!(s.split_once('@'), Some((local, domain))
                if !local.is_empty() && !domain.is_empty() && !domain.contains('@')
                    && !s.chars().any(|c| c.is_whitespace() || c.is_control()));
        if !valid {
            return Err(Invalid::new(
                "invalid",
                "must be an email address like ada@example.com",
            ));
        }
        Ok(Self(s.to_owned()))
    }
}
