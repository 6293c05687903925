//! Redirect URIs of the authorization endpoint: exact matching (loopback ports aside) and error redirects.

use url::Url;

use super::*;
use crate::model::RedirectUri;

/// Exact string match against the registered URIs (RFC 9700 §2.1); for a loopback IP
/// literal registered with `http`, any port (RFC 8252 §7.3) — everything else still equal.
pub fn redirect_allowed(registered: &[RedirectUri], presented: &str) -> bool {
    if registered.iter().any(|r| r.as_str() == presented) {
        return true;
    }
    // Only in canonical form (so that nothing but the port may differ), http, and a
    // loopback IP literal with an explicit port.
    let Some(presented) = canonical_loopback(presented) else {
        return false;
    };
    registered
        .iter()
        .filter_map(|r| canonical_loopback(r.as_str()))
        .any(|r| r == presented)
}

/// `uri` without its port, if it is an `http` loopback-IP URI already in canonical form.
pub(super) fn canonical_loopback(uri: &str) -> Option<String> {
    let mut url = Url::parse(uri).ok()?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        _ => false,
    };
    if url.scheme() != "http" || !loopback || url.as_str() != uri {
        return None;
    }
    url.set_port(None).ok()?;
    Some(url.into())
}

/// `redirect_uri?error=…&error_description=…&state=…&iss=…` (RFC 6749 §4.1.2.1, RFC 9207).
pub fn error_redirect(
    redirect_uri: &Url,
    code: AuthorizeErrorCode,
    description: &str,
    state: Option<&str>,
    issuer: &str,
) -> Url {
    let mut pairs: Vec<(&str, &str)> =
        vec![("error", code.as_str()), ("error_description", description)];
    if let Some(state) = state {
        pairs.push(("state", state));
    }
    pairs.push(("iss", issuer));
    with_query(redirect_uri, &pairs)
}

pub(super) fn with_query(redirect_uri: &Url, pairs: &[(&str, &str)]) -> Url {
    let mut url = redirect_uri.clone();
    {
        let mut query = url.query_pairs_mut();
        for (k, v) in pairs {
            query.append_pair(k, v);
        }
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uris(list: &[&str]) -> Vec<RedirectUri> {
        list.iter()
            .filter_map(|u| RedirectUri::parse(u).ok())
            .collect()
    }

    #[test]
    fn redirect_matching_is_exact_but_for_loopback_ports() {
        let reg = uris(&["https://app.example/cb", "http://127.0.0.1/callback"]);
        assert!(redirect_allowed(&reg, "https://app.example/cb"));
        for bad in [
            "https://app.example/cb/",
            "https://app.example/cb?x=1",
            "https://app.example/cb#f",
            "https://app.example:8443/cb",
            "https://APP.example/cb",
            "https://user@app.example/cb",
            "https://app.example/CB",
            "http://app.example/cb",
            "http://127.0.0.1:4000/other",
            "http://localhost:4000/callback",
        ] {
            assert!(!redirect_allowed(&reg, bad), "{bad} must be refused");
        }
        assert!(redirect_allowed(&reg, "http://127.0.0.1:53012/callback"));
        assert!(redirect_allowed(&reg, "http://127.0.0.1/callback"));
    }
}
