//! Redirect URIs of the authorization endpoint: exact matching (loopback ports aside), and
//! the authorization response (a code or an error) in its response mode.

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

/// How the authorization response reaches the client.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ResponseMode {
    /// In the redirect URI's query (RFC 6749 §4.1.2), the default of `response_type=code`.
    #[default]
    Query,
    /// POSTed to the redirect URI by an auto-submitting form (OAuth 2.0 Form Post
    /// Response Mode).
    FormPost,
}

impl ResponseMode {
    /// `response_mode`; `None` when the value is not one of ours.
    pub fn parse(value: Option<&str>) -> Option<Self> {
        match value {
            None | Some("query") => Some(Self::Query),
            Some("form_post") => Some(Self::FormPost),
            Some(_) => None,
        }
    }
}

/// An authorization response for the client's redirect URI: a code or an error, with
/// `state` and `iss`.
#[derive(Debug, Clone)]
pub struct AuthorizationResponse {
    /// The redirect URI of the request.
    pub redirect_uri: Url,
    /// The response parameters, in order.
    pub params: Vec<(&'static str, String)>,
    /// How they travel.
    pub mode: ResponseMode,
}

impl AuthorizationResponse {
    /// The redirect URI with the parameters added to its query (the query mode).
    pub fn location(&self) -> Url {
        let mut url = self.redirect_uri.clone();
        url.query_pairs_mut().extend_pairs(&self.params);
        url
    }
}

/// `error`, `error_description`, `state`, `iss` (RFC 6749 §4.1.2.1, RFC 9207).
pub fn error_response(
    redirect_uri: &Url,
    mode: ResponseMode,
    code: AuthorizeErrorCode,
    description: &str,
    state: Option<&str>,
    issuer: &str,
) -> AuthorizationResponse {
    let mut params = vec![
        ("error", code.as_str().to_owned()),
        ("error_description", description.to_owned()),
    ];
    if let Some(state) = state {
        params.push(("state", state.to_owned()));
    }
    params.push(("iss", issuer.to_owned()));
    AuthorizationResponse {
        redirect_uri: redirect_uri.clone(),
        params,
        mode,
    }
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
