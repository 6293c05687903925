//! Protocol vocabulary as types: each newtype's `parse` is the only way in.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use url::Url;
use utoipa::ToSchema;

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

protocol_enum!(
    /// Whether a client can keep a secret (RFC 6749 §2.1).
    ClientType, "client type" {
        /// Runs on the user's device (SPA, mobile, CLI); cannot keep a secret.
        Public = "public",
        /// Runs on a server; authenticates at the token endpoint.
        Confidential = "confidential",
    }
);

protocol_enum!(
    /// How a client authenticates at the token endpoint (RFC 7591 §2).
    AuthMethod, "token endpoint auth method" {
        /// HTTP Basic with the client id and secret (RFC 6749 §2.3.1).
        ClientSecretBasic = "client_secret_basic",
        /// `client_id` and `client_secret` in the form body.
        ClientSecretPost = "client_secret_post",
        /// A JWT signed with one of the client's registered keys (RFC 7523 §2.2).
        PrivateKeyJwt = "private_key_jwt",
        /// No authentication: public clients.
        None = "none",
    }
);

impl AuthMethod {
    /// Whether the method uses a server-generated shared secret.
    pub fn uses_secret(self) -> bool {
        matches!(
            self,
            AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost
        )
    }
}

protocol_enum!(
    /// A `grant_type` of the token endpoint.
    GrantType, "grant type" {
        /// RFC 6749 §4.1, with PKCE.
        AuthorizationCode = "authorization_code",
        /// RFC 6749 §6, with rotation.
        RefreshToken = "refresh_token",
        /// RFC 6749 §4.4.
        ClientCredentials = "client_credentials",
        /// RFC 7523 §2.1: a partner's signed assertion.
        JwtBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer",
        /// RFC 8628: devices without a keyboard.
        DeviceCode = "urn:ietf:params:oauth:grant-type:device_code",
    }
);

impl GrantType {
    /// Whether tokens of this grant act for a user (who delegates scopes to the client).
    pub fn acts_for_user(self) -> bool {
        !matches!(self, GrantType::ClientCredentials)
    }
}

protocol_enum!(
    /// A scope this server knows.
    Scope, "scope" {
        /// OpenID Connect sign-in.
        OpenId = "openid",
        /// The user's name claims.
        Profile = "profile",
        /// The user's email claims.
        Email = "email",
        /// A refresh token.
        OfflineAccess = "offline_access",
        /// The resource API in general.
        Api = "api",
        /// Read cases.
        CasesRead = "cases.read",
        /// Create and change cases.
        CasesWrite = "cases.write",
        /// List and withdraw every app the user has granted access (`/api/v1/me/grants`).
        Grants = "grants",
        /// The admin API.
        Admin = "admin",
    }
);

impl Scope {
    /// Whether a user may delegate this scope to a client. `admin` may not: it belongs to
    /// administrators' service clients (client credentials), never to a token that acts
    /// for a signed-in user. This is the one rule every user grant applies.
    pub fn user_delegable(self) -> bool {
        !matches!(self, Scope::Admin)
    }
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

string_newtype!(
    /// A registered redirect URI, compared by exact string match (RFC 9700 §2.1).
    RedirectUri
);

impl RedirectUri {
    /// Accepts an absolute URI without fragment: `https`, `http` on a loopback host
    /// (RFC 8252 §7.3), or a private-use scheme of a native app (RFC 8252 §7.1).
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let url = Url::parse(s)
            .map_err(|e| Invalid::new("invalid", format!("not an absolute URI: {e}")))?;
        if url.fragment().is_some() {
            return Err(Invalid::new(
                "invalid",
                "must not contain a fragment (RFC 6749 §3.1.2)",
            ));
        }
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(&url) => {}
            "http" => {
                return Err(Invalid::new(
                    "invalid",
                    "http is allowed only for loopback hosts; use https",
                ));
            }
            "javascript" | "data" | "file" | "vbscript" | "blob" | "about" => {
                return Err(Invalid::new(
                    "invalid",
                    "this scheme cannot be a redirect URI",
                ));
            }
            // Private-use schemes must be reverse domain names (RFC 8252 §7.1).
            scheme if scheme.contains('.') => {}
            _ => {
                return Err(Invalid::new(
                    "invalid",
                    "use https, http on a loopback host, or a reverse-domain private-use scheme",
                ));
            }
        }
        Ok(Self(s.to_owned()))
    }

    /// Whether this URI points at the user's own machine (port may vary, RFC 8252 §7.3).
    pub fn is_loopback(&self) -> bool {
        Url::parse(&self.0).is_ok_and(|u| u.scheme() == "http" && is_loopback(&u))
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    }
}

string_newtype!(
    /// A browser origin allowed to call the API cross-origin: `scheme://host[:port]`.
    CorsOrigin
);

impl CorsOrigin {
    /// Accepts an http(s) origin with no path, query or fragment.
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let url =
            Url::parse(s).map_err(|e| Invalid::new("invalid", format!("not an origin: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(Invalid::new(
                "invalid",
                "must be an http(s) origin like https://app.example.com",
            ));
        }
        let origin = url.origin().ascii_serialization();
        if origin != s.trim_end_matches('/') {
            return Err(Invalid::new(
                "invalid",
                format!("must be just an origin, e.g. `{origin}`"),
            ));
        }
        Ok(Self(origin))
    }
}

/// A set of scopes in canonical order, as in a `scope` parameter (RFC 6749 §3.3).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
pub struct ScopeSet(Vec<Scope>);

impl ScopeSet {
    /// A set from any scopes, deduplicated and sorted.
    pub fn new(scopes: impl IntoIterator<Item = Scope>) -> Self {
        let mut v: Vec<Scope> = scopes.into_iter().collect();
        v.sort();
        v.dedup();
        Self(v)
    }

    /// Parses a space-delimited `scope` parameter; every scope must be known.
    /// `refresh_token` is accepted as another name of `offline_access` (the Connected App
    /// name for it).
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        s.split(' ')
            .filter(|p| !p.is_empty())
            .map(|p| match p {
                "refresh_token" => Ok(Scope::OfflineAccess),
                other => Scope::from_str(other),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self::new)
    }

    /// The scopes.
    pub fn iter(&self) -> impl Iterator<Item = Scope> + '_ {
        self.0.iter().copied()
    }

    /// Whether `scope` is in the set.
    pub fn contains(&self, scope: Scope) -> bool {
        self.0.contains(&scope)
    }

    /// Whether every scope of `self` is also in `other`.
    pub fn is_subset(&self, other: &ScopeSet) -> bool {
        self.0.iter().all(|s| other.contains(*s))
    }

    /// The scopes of the set a user may delegate ([`Scope::user_delegable`]).
    pub fn delegable(&self) -> ScopeSet {
        ScopeSet(self.iter().filter(|s| s.user_delegable()).collect())
    }

    /// The first scope of the set that no user may delegate, if any.
    pub fn not_delegable(&self) -> Option<Scope> {
        self.iter().find(|s| !s.user_delegable())
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The scopes of both sets.
    pub fn union(&self, other: &ScopeSet) -> ScopeSet {
        ScopeSet::new(self.iter().chain(other.iter()))
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<&str> = self.0.iter().map(|s| s.as_str()).collect();
        f.write_str(&parts.join(" "))
    }
}
