//! URIs a client registers: redirect URIs (matched exactly) and CORS origins.

use std::fmt;

use serde::Serialize;
use url::Url;
use utoipa::ToSchema;

use super::Invalid;

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

string_newtype!(
    /// Where a client takes its logout tokens (OpenID Connect Back-Channel Logout 1.0 §2.2):
    /// the server POSTs to it.
    LogoutUri
);

impl LogoutUri {
    /// Accepts an absolute `https` URI without fragment, or `http` on a loopback host (a
    /// relying party on the same machine).
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let url = Url::parse(s)
            .map_err(|e| Invalid::new("invalid", format!("not an absolute URI: {e}")))?;
        if url.fragment().is_some() {
            return Err(Invalid::new("invalid", "must not contain a fragment"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Invalid::new(
                "invalid",
                "must not carry credentials in the URI",
            ));
        }
        match url.scheme() {
            "https" if url.host().is_some() => Ok(Self(s.to_owned())),
            "http" if is_loopback(&url) => Ok(Self(s.to_owned())),
            _ => Err(Invalid::new(
                "invalid",
                "use https (http only on a loopback host)",
            )),
        }
    }
}
