//! Scopes and scope sets (RFC 6749 §3.3), and the one rule of what a user may delegate.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Invalid;

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
        /// Read the change events of the cases the token may read (`/api/v1/events`).
        EventsRead = "events.read",
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
