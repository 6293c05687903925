//! Client authentication at the token, introspection and revocation endpoints
//! (RFC 6749 §2.3, RFC 7523 §2.2): exactly the method the client is registered with.

use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;

use super::secret;
use crate::error::{OAuthError, OAuthErrorCode};
use crate::model::AuthMethod;
use crate::model::Client;
use crate::oauth::Ctx;
use crate::store;

/// RFC 7523 §2.2 `client_assertion_type`.
pub const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// What a request presented to identify and authenticate its client.
#[derive(Default)]
pub struct Presented {
    /// From `Authorization: Basic` (already form-decoded, RFC 6749 §2.3.1).
    pub basic: Option<(String, SecretString)>,
    /// `client_id` from the body.
    pub client_id: Option<String>,
    /// `client_secret` from the body.
    pub client_secret: Option<SecretString>,
    /// `client_assertion_type` from the body.
    pub assertion_type: Option<String>,
    /// `client_assertion` from the body.
    pub assertion: Option<String>,
    /// The browser origin the request came from (`Origin` header), if any.
    pub origin: Option<String>,
    /// The caller's address as rate limits count it ([`crate::ratelimit::address_bucket`]).
    pub address: String,
    /// The `DPoP` header: a proof of possession (RFC 9449), checked by the token endpoint.
    pub dpop: Option<String>,
}

fn invalid_client(description: impl Into<String>) -> OAuthError {
    OAuthError::new(OAuthErrorCode::InvalidClient, description)
}

/// Authenticates the client of a request; every failure is 401 `invalid_client`.
pub async fn authenticate(ctx: &Ctx<'_>, presented: &Presented) -> Result<Arc<Client>, OAuthError> {
    let methods = [
        presented.basic.is_some(),
        presented.client_secret.is_some(),
        presented.assertion.is_some(),
    ];
    if methods.iter().filter(|m| **m).count() > 1 {
        return Err(OAuthError::new(
            OAuthErrorCode::InvalidRequest,
            "use exactly one client authentication method (RFC 6749 §2.3)",
        ));
    }
    let (method, claimed_id) = if let Some((id, _)) = &presented.basic {
        (AuthMethod::ClientSecretBasic, id.clone())
    } else if presented.client_secret.is_some() {
        let id = presented
            .client_id
            .clone()
            .ok_or_else(|| invalid_client("client_secret without client_id"))?;
        (AuthMethod::ClientSecretPost, id)
    } else if let Some(assertion) = &presented.assertion {
        if presented.assertion_type.as_deref() != Some(JWT_BEARER_ASSERTION) {
            return Err(invalid_client(format!(
                "client_assertion_type must be {JWT_BEARER_ASSERTION}"
            )));
        }
        (AuthMethod::PrivateKeyJwt, assertion_issuer(assertion)?)
    } else {
        let id = presented
            .client_id
            .clone()
            .ok_or_else(|| invalid_client("client authentication is required"))?;
        (AuthMethod::None, id)
    };
    if let Some(body_id) = &presented.client_id
        && *body_id != claimed_id
    {
        return Err(invalid_client(
            "client_id does not match the authenticated client",
        ));
    }
    let client = ctx
        .client(&claimed_id)
        .await?
        .ok_or_else(|| invalid_client("client authentication failed"))?;
    if !client.enabled {
        return Err(invalid_client("the client is disabled"));
    }
    if client.token_endpoint_auth_method != method {
        return Err(invalid_client(format!(
            "this client must authenticate with {}, not {method}",
            client.token_endpoint_auth_method
        )));
    }
    match method {
        AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost => {
            let presented_secret = match (&presented.basic, &presented.client_secret) {
                (Some((_, s)), _) | (None, Some(s)) => s,
                (None, None) => return Err(invalid_client("client authentication failed")),
            };
            let valid = client
                .secret_hash
                .as_ref()
                .is_some_and(|h| secret::verify(presented_secret.expose_secret(), h));
            if !valid {
                return Err(invalid_client("client authentication failed"));
            }
        }
        AuthMethod::PrivateKeyJwt => {
            let assertion = presented.assertion.as_deref().unwrap_or_default();
            let purpose = AssertionUse::ClientAuthentication;
            let check = verify_assertion(ctx, &client, assertion, purpose);
            // Boxed: inline, its future would make every client authentication's as large.
            Box::pin(check).await.map_err(invalid_client)?;
        }
        AuthMethod::None => {}
    }
    Ok(client)
}

/// The `iss` of an assertion, read before its signature is checked only to find the key.
fn assertion_issuer(assertion: &str) -> Result<String, OAuthError> {
    unverified_issuer(assertion)
        .ok_or_else(|| invalid_client("client_assertion is not a JWT with an iss claim"))
}

/// The `iss` claim of a JWT, unverified: only to find whose keys verify it.
pub fn unverified_issuer(jwt: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Iss {
        iss: String,
    }
    jsonwebtoken::dangerous::insecure_decode::<Iss>(jwt)
        .ok()
        .map(|d| d.claims.iss)
}

/// What an assertion is presented for (RFC 7523 §2.1 and §2.2): its `sub` differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssertionUse {
    /// `client_assertion`: `sub` is the client itself.
    ClientAuthentication,
    /// The JWT bearer grant: `sub` is the user the client acts for.
    AuthorizationGrant,
}

#[derive(Debug, Deserialize)]
struct AssertionClaims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<super::tokens::Audience>,
    exp: Option<i64>,
    nbf: Option<i64>,
    iat: Option<i64>,
    jti: Option<String>,
}

/// The claims of an assertion whose signature verifies with one of the client's keys, by
/// an accepted algorithm (the claims themselves are checked by [`verify_assertion`]).
async fn signed_claims(
    ctx: &Ctx<'_>,
    client: &Client,
    assertion: &str,
) -> Result<AssertionClaims, String> {
    let header = jsonwebtoken::decode_header(assertion)
        .map_err(|_| "the assertion is not a JWT".to_owned())?;
    if !matches!(
        header.alg,
        Algorithm::RS256 | Algorithm::PS256 | Algorithm::ES256 | Algorithm::EdDSA
    ) {
        return Err(format!(
            "assertion algorithm {:?} is not accepted (RS256, PS256, ES256, EdDSA)",
            header.alg
        ));
    }
    if client.fapi2() && header.alg == Algorithm::RS256 {
        return Err(
            "this client's fapi2 profile accepts ES256, PS256 or EdDSA assertions, not RS256"
                .to_owned(),
        );
    }
    let keys = ctx
        .client_keys(client.client_id.as_str())
        .await
        .map_err(|e| format!("keys unavailable: {e}"))?;
    let candidates: Vec<&VerifyKey> = keys
        .iter()
        .filter(|k| header.kid.as_deref().is_none_or(|kid| kid == k.kid))
        .filter(|k| key_fits_alg(&k.kty, header.alg))
        .collect();
    if candidates.is_empty() {
        return Err(
            "no registered key of this client matches the assertion's kid and alg".to_owned(),
        );
    }
    let mut validation = Validation::new(header.alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    candidates
        .iter()
        .find_map(|k| jsonwebtoken::decode::<AssertionClaims>(assertion, &k.key, &validation).ok())
        .map(|data| data.claims)
        .ok_or_else(|| {
            "the assertion's signature does not verify with the client's keys".to_owned()
        })
}

/// Verifies an assertion (RFC 7523 §3) signed by one of the client's keys: iss = the
/// client_id, `sub` = the client_id too for client authentication (or present, for the
/// grant), aud = the token endpoint or the issuer, a bounded `exp`, `nbf`/`iat` not in
/// the future, and a `jti` never seen before. Returns `sub`; the error says which rule
/// failed, without echoing the assertion.
pub async fn verify_assertion(
    ctx: &Ctx<'_>,
    client: &Client,
    assertion: &str,
    purpose: AssertionUse,
) -> Result<String, String> {
    let claims = signed_claims(ctx, client, assertion).await?;

    let id = client.client_id.as_str();
    let now = ctx.clock.unix();
    let skew = ctx.config.clock_skew_secs;
    if claims.iss.as_deref() != Some(id) {
        return Err(format!("iss must be the client_id `{id}`"));
    }
    let sub = match (purpose, claims.sub) {
        (AssertionUse::ClientAuthentication, Some(sub)) if sub == id => sub,
        (AssertionUse::ClientAuthentication, _) => {
            return Err(format!("sub must be the client_id `{id}`"));
        }
        (AssertionUse::AuthorizationGrant, Some(sub)) if !sub.is_empty() => sub,
        (AssertionUse::AuthorizationGrant, _) => {
            return Err("sub must name the user the client acts for".to_owned());
        }
    };
    let token_endpoint = format!("{}/oauth2/token", ctx.issuer);
    if client.fapi2() && purpose == AssertionUse::ClientAuthentication {
        // FAPI 2.0 Security Profile §5.3.2.1: the issuer, as a string, and nothing else.
        if claims.aud != Some(super::tokens::Audience::One(ctx.issuer.to_owned())) {
            return Err(format!(
                "this client's fapi2 profile wants aud to be the issuer {} alone",
                ctx.issuer
            ));
        }
    } else if !claims
        .aud
        .is_some_and(|aud| aud.contains_any(&[&token_endpoint, ctx.issuer]))
    {
        return Err(format!("aud must be {token_endpoint} or {}", ctx.issuer));
    }
    let exp = claims
        .exp
        .ok_or_else(|| "the assertion has no exp".to_owned())?;
    if exp + skew < now {
        return Err("the assertion has expired".to_owned());
    }
    if exp > now + ctx.config.assertion_max_lifetime_secs + skew {
        return Err(format!(
            "the assertion's exp is more than {} s ahead",
            ctx.config.assertion_max_lifetime_secs
        ));
    }
    if claims.nbf.is_some_and(|nbf| nbf > now + skew)
        || claims.iat.is_some_and(|iat| iat > now + skew)
    {
        return Err("the assertion is not valid yet (nbf/iat in the future)".to_owned());
    }
    let jti = claims
        .jti
        .ok_or_else(|| "the assertion has no jti".to_owned())?;
    let used = store::revocations::UsedAssertion {
        client_id: id.to_owned(),
        jti,
        expires_at: exp + skew,
    };
    let fresh = ctx
        .assertions
        .use_once(used)
        .await
        .map_err(|e| format!("replay check unavailable: {e}"))?;
    if !fresh {
        return Err("this assertion's jti was used before (replay)".to_owned());
    }
    Ok(sub)
}

fn key_fits_alg(kty: &str, alg: Algorithm) -> bool {
    matches!(
        (kty, alg),
        ("RSA", Algorithm::RS256 | Algorithm::PS256)
            | ("EC", Algorithm::ES256)
            | ("OKP", Algorithm::EdDSA)
    )
}

/// A client's registered key, parsed once and cached (see [`crate::oauth::ClientCache`]).
pub struct VerifyKey {
    /// Its id.
    pub kid: String,
    /// `RSA`, `EC` or `OKP`.
    pub kty: String,
    /// The parsed public key.
    pub key: DecodingKey,
}

impl VerifyKey {
    /// Parses a stored key; `None` for a key this build cannot read.
    pub fn from_row(row: &store::client_keys::ClientKeyRow) -> Option<Self> {
        Some(Self {
            kid: row.kid.clone(),
            kty: row.kty.clone(),
            key: decoding_key(&row.kty, &row.public_pem)?,
        })
    }
}

fn decoding_key(kty: &str, pem: &str) -> Option<DecodingKey> {
    match kty {
        "RSA" => DecodingKey::from_rsa_pem(pem.as_bytes()).ok(),
        "EC" => DecodingKey::from_ec_pem(pem.as_bytes()).ok(),
        "OKP" => DecodingKey::from_ed_pem(pem.as_bytes()).ok(),
        _ => None,
    }
}
