//! The types every layer shares, with no I/O: each newtype's `parse` is the only way in.
//! `store/` and everything above it import these; this module imports nothing of theirs.

/// Why a value was refused; the caller puts it under a field name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Machine-readable reason (`required`, `too_long`, `invalid`, `unknown`).
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
}

impl Invalid {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// Generates `as_str`, `Display`, `FromStr` and serde for a closed set of protocol strings.
macro_rules! protocol_enum {
    ($(#[doc = $doc:literal])* $name:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)+
        }

        // Written by hand: the derive does not see a `rename` that a macro passes in, and
        // would document the variants' Rust names instead of the protocol strings.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                let description = [$($doc),*].map(str::trim).join("\n");
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($text),+]))
                    .description((!description.is_empty()).then_some(description))
                    .into()
            }
        }

        impl ToSchema for $name {}

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The protocol string.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = Invalid;
            fn from_str(s: &str) -> Result<Self, Invalid> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(Invalid::new(
                        "unknown",
                        format!(concat!("unknown ", $what, " `{}`; expected one of: {}"), other,
                            [$($text),+].join(", ")),
                    )),
                }
            }
        }
    };
}

/// Validates a newtype's text and keeps it.
macro_rules! string_newtype {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, ToSchema)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The validated text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

mod client;
mod ids;
pub mod json;
mod protocol;
mod scope;
mod uri;
mod user;

pub use client::{Client, SecretHash};
pub use ids::{ClientId, Email, Username};
pub use protocol::{AuthMethod, ClientType, GrantType, Profile, SigningAlg};
pub use scope::{Scope, ScopeSet};
pub use uri::{CorsOrigin, LogoutUri, RedirectUri};
pub use user::User;
