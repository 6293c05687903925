//! Authorization server metadata (RFC 8414) and OpenID Connect discovery, generated from
//! what this server actually has enabled.

use serde_json::{Value, json};

use super::token_endpoint::ENABLED_GRANTS;
use crate::model::{AuthMethod, Scope};
use crate::oauth::Ctx;
use crate::oauth::authorize::ACR_PASSWORD;

/// Algorithms accepted on client assertions.
pub const ASSERTION_ALGS: &[&str] = &["RS256", "PS256", "ES256", "EdDSA"];

/// The metadata document.
pub fn metadata(ctx: &Ctx<'_>) -> Value {
    let issuer = ctx.issuer;
    let grants: Vec<&str> = ENABLED_GRANTS.iter().map(|g| g.as_str()).collect();
    let client_auth = [
        AuthMethod::ClientSecretBasic,
        AuthMethod::ClientSecretPost,
        AuthMethod::PrivateKeyJwt,
    ];
    let auth_methods: Vec<&str> = client_auth.iter().map(|m| m.as_str()).collect();
    let revoke_methods: Vec<&str> = client_auth
        .iter()
        .chain([&AuthMethod::None])
        .map(|m| m.as_str())
        .collect();
    let scopes: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
    // `none`: public clients at revocation; the token endpoint accepts them too (PKCE).
    // Exactly the lines that have a key: RS256 always (OpenID Discovery), the access
    // tokens' and each one a client registered.
    let id_token_algs: Vec<&str> = ctx
        .tokens
        .ring
        .algorithms(ctx.clock.unix())
        .iter()
        .map(|a| a.as_str())
        .collect();
    json!({
        "issuer": issuer,
        "token_endpoint": format!("{issuer}/oauth2/token"),
        "device_authorization_endpoint": format!("{issuer}/oauth2/device_authorization"),
        "jwks_uri": format!("{issuer}/oauth2/jwks"),
        "introspection_endpoint": format!("{issuer}/oauth2/introspect"),
        "revocation_endpoint": format!("{issuer}/oauth2/revoke"),
        "authorization_endpoint": format!("{issuer}/oauth2/authorize"),
        "userinfo_endpoint": format!("{issuer}/oauth2/userinfo"),
        "end_session_endpoint": format!("{issuer}/oauth2/logout"),
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
        "grant_types_supported": grants,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "form_post"],
        "code_challenge_methods_supported": ["S256"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": id_token_algs,
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "at_hash",
            "azp", "amr", "acr", "sid", "name", "preferred_username", "updated_at", "email", "email_verified"],
        "claims_parameter_supported": true,
        "acr_values_supported": [ACR_PASSWORD],
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "authorization_response_iss_parameter_supported": true,
        "dpop_signing_alg_values_supported": super::dpop::ALGS,
        "pushed_authorization_request_endpoint": format!("{issuer}/oauth2/par"),
        // Per client (`require_pushed_authorization_requests` in its registration), not
        // server-wide (RFC 9126 §5).
        "require_pushed_authorization_requests": false,
        "scopes_supported": scopes,
        "token_endpoint_auth_methods_supported": revoke_methods,
        "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        "revocation_endpoint_auth_methods_supported": revoke_methods,
        "revocation_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        "access_token_signing_alg_values_supported": [ctx.config.signing_alg.as_str()],
        "service_documentation": format!("{issuer}/docs"),
    })
}
