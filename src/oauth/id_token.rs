//! OpenID Connect ID tokens (Core §2, §3.1.3.6) and the userinfo claims (Core §5.3).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde::Serialize;
use sha2::{Digest as _, Sha256, Sha512};
use utoipa::ToSchema;

use super::authorize::{ACR_PASSWORD, pick};
use super::grants::UserGrant;
use super::keys::{KeyError, LoadedKey};
use crate::model::Client;
use crate::model::User;
use crate::model::{Scope, ScopeSet};
use crate::oauth::Ctx;

/// The claims of an ID token.
#[derive(Debug, Serialize)]
struct IdClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
    iat: i64,
    auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
    at_hash: String,
    azp: &'a str,
    /// How the user authenticated (RFC 8176): a password, the only way to sign in.
    amr: [&'static str; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    acr: Option<&'static str>,
    /// The browser session (Back-Channel Logout 1.0 §2.1), when the grant came from one.
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<&'a str>,
    /// Claims the request asked for (OpenID Connect Core §5.5) that the scopes release.
    #[serde(flatten)]
    requested: serde_json::Map<String, serde_json::Value>,
}

/// The key that signs `client`'s ID tokens (and its logout tokens) at `now`: the line of
/// the algorithm it registered, else of the server's default.
pub fn signing_key(
    ctx: &Ctx<'_>,
    client: &Client,
    now: i64,
) -> Result<std::sync::Arc<LoadedKey>, KeyError> {
    let alg = client
        .id_token_signed_response_alg
        .unwrap_or(ctx.config.id_token_signing_alg);
    ctx.tokens
        .ring
        .signing_key(alg, now)
        .ok_or_else(|| KeyError::Crypto(format!("no {alg} signing key is active")))
}

/// Signs the ID token of `grant`, bound to `access_token` by `at_hash`.
pub fn sign(
    ctx: &Ctx<'_>,
    grant: &UserGrant<'_>,
    access_token: &str,
    now: i64,
    ttl: i64,
) -> Result<String, KeyError> {
    let key = signing_key(ctx, grant.client, now)?;
    let client_id = grant.client.client_id.as_str();
    let asked = grant.id_token_claims.unwrap_or_default();
    let requested = if asked.is_empty() {
        serde_json::Map::new()
    } else {
        match serde_json::to_value(userinfo(grant.user, grant.scope)) {
            Ok(serde_json::Value::Object(released)) => pick(asked, &released),
            _ => serde_json::Map::new(),
        }
    };
    let claims = IdClaims {
        iss: ctx.issuer,
        sub: &grant.user.id,
        aud: client_id,
        exp: now + ttl,
        iat: now,
        auth_time: grant.auth_time,
        nonce: grant.nonce,
        at_hash: token_hash(key.alg, access_token),
        azp: client_id,
        amr: ["pwd"],
        acr: asked.split(' ').any(|c| c == "acr").then_some(ACR_PASSWORD),
        sid: grant.sid,
        requested,
    };
    key.sign_id_token(&claims)
}

/// The left half of the token's hash with the signature's hash function, base64url
/// (Core §3.1.3.6): SHA-256 for ES256, RS256 and PS256, SHA-512 for Ed25519.
pub fn token_hash(alg: Algorithm, token: &str) -> String {
    match alg {
        Algorithm::EdDSA => {
            let digest = Sha512::digest(token.as_bytes());
            URL_SAFE_NO_PAD.encode(&digest[..32])
        }
        _ => {
            let digest = Sha256::digest(token.as_bytes());
            URL_SAFE_NO_PAD.encode(&digest[..16])
        }
    }
}

/// The userinfo answer: `sub` and the claims of the granted scopes.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"sub": "0193a5c4-5d1e-7c2a-9f4e-1b2c3d4e5f60", "preferred_username": "ada",
    "name": "Ada Lovelace", "email": "ada@example.com", "email_verified": false}))]
pub struct UserInfo {
    /// The user's stable id (the `sub` of their tokens).
    pub sub: String,
    /// With `profile`: the username.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    /// With `profile`: the display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// With `profile`: last change, Unix seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<i64>,
    /// With `email`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// With `email`: always false — Gatehouse does not verify addresses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
}

/// The claims `scope` releases about `user`.
pub fn userinfo(user: &User, scope: &ScopeSet) -> UserInfo {
    let profile = scope.contains(Scope::Profile);
    let email = scope.contains(Scope::Email);
    UserInfo {
        sub: user.id.clone(),
        preferred_username: profile.then(|| user.username.to_string()),
        name: if profile {
            Some(
                user.display_name
                    .clone()
                    .unwrap_or_else(|| user.username.to_string()),
            )
        } else {
            None
        },
        updated_at: profile.then_some(user.updated_at),
        email: email.then(|| user.email.to_string()),
        email_verified: email.then_some(false),
    }
}
