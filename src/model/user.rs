//! A user account, as the store returns it.

use serde::Serialize;
use utoipa::ToSchema;

use super::{Email, Username};

/// A user account.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct User {
    /// Stable identifier (the `sub` of this user's tokens).
    pub id: String,
    /// Login name, lower case.
    pub username: Username,
    /// Email address.
    pub email: Email,
    /// Name shown to people.
    pub display_name: Option<String>,
    /// argon2id PHC string; never serialized.
    #[serde(skip)]
    pub password_hash: String,
    /// Disabled users cannot sign in and their grants stop working.
    pub enabled: bool,
    /// When the user was created.
    #[serde(serialize_with = "crate::clock::as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    /// When the user last changed.
    #[serde(serialize_with = "crate::clock::as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: i64,
}
