//! RFC 9068 JWT access tokens: issuing, verifying (with a cache of verified tokens), and the
//! revocation list every process keeps in memory.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use jsonwebtoken::{Algorithm, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use utoipa::ToSchema;

use super::keys::KeyRing;
use crate::model::{ScopeSet, SigningAlg};
use crate::store::{self, Store, StoreError};

/// The `typ` header of access tokens (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";
/// Most verified tokens kept in the cache.
const CACHE_CAPACITY: u64 = 100_000;

/// `aud` as JWTs carry it: one string or a list.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(untagged)]
pub enum Audience {
    /// A single audience.
    One(String),
    /// Several audiences.
    Many(Vec<String>),
}

impl Audience {
    /// Whether `aud` is (one of) the audience(s).
    pub fn contains(&self, aud: &str) -> bool {
        match self {
            Audience::One(a) => a == aud,
            Audience::Many(list) => list.iter().any(|a| a == aud),
        }
    }

    /// Whether any of `auds` is among the audiences.
    pub fn contains_any(&self, auds: &[&str]) -> bool {
        auds.iter().any(|a| self.contains(a))
    }
}

/// The claims of an access token (RFC 9068 §2.2).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AccessClaims {
    /// Issuer.
    pub iss: String,
    /// The user, or the client itself for client credentials.
    pub sub: String,
    /// The resource API.
    pub aud: Audience,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Not before, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Unique token id (what revocation lists).
    pub jti: String,
    /// The client the token was issued to.
    pub client_id: String,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// The key a DPoP-bound token is bound to (RFC 9449 §6); absent on bearer tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

impl AccessClaims {
    /// The thumbprint of the key the token is bound to, if it is DPoP-bound.
    pub fn jkt(&self) -> Option<&str> {
        self.cnf.as_ref().map(|c| c.jkt.as_str())
    }
}

/// The `cnf` claim of a DPoP-bound token (RFC 7800, RFC 9449 §6.1).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct Confirmation {
    /// The SHA-256 JWK thumbprint (RFC 7638) of the key, base64url.
    pub jkt: String,
}

/// Why a token was refused; the text is the `error_description`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a JWT, or not ours in shape.
    #[error("the token is malformed")]
    Malformed,
    /// `typ` is not `at+jwt`.
    #[error("the token is not an access token (typ must be at+jwt)")]
    WrongType,
    /// The algorithm is not one this server signs with.
    #[error("the token's algorithm is not accepted")]
    Algorithm,
    /// No published key has this `kid`.
    #[error("the token was not signed by a key of this server")]
    UnknownKey,
    /// The signature does not verify.
    #[error("the token's signature is invalid")]
    Signature,
    /// `iss` is not this server.
    #[error("the token was issued by another issuer")]
    Issuer,
    /// `aud` does not name this API.
    #[error("the token is for another audience")]
    Audience,
    /// Past `exp`.
    #[error("the token has expired")]
    Expired,
    /// Before `nbf` or `iat`.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// On the revocation list.
    #[error("the token has been revoked")]
    Revoked,
    /// No key can sign right now (should not happen once started).
    #[error("no signing key is active")]
    NoSigningKey,
    /// Signing failed.
    #[error("signing failed: {0}")]
    Signing(String),
}

/// A freshly issued token.
pub struct Issued {
    /// The compact JWT.
    pub token: String,
    /// Its claims.
    pub claims: AccessClaims,
}

/// Issues and verifies access tokens.
pub struct Tokens {
    /// The signing keys.
    pub ring: KeyRing,
    /// The line of keys access tokens are signed with.
    alg: SigningAlg,
    /// Revoked token ids.
    pub revoked: RevocationList,
    /// Disabled users and clients, withdrawn grants.
    pub cutoffs: super::cutoffs::Cutoffs,
    issuer: String,
    audience: String,
    skew: i64,
    /// Verified tokens by SHA-256, with the key ring's generation they were verified in.
    verified: moka::sync::Cache<[u8; 32], (u64, Arc<AccessClaims>)>,
}

impl Tokens {
    /// A token service over `ring` that signs with `alg`'s line.
    pub fn new(
        ring: KeyRing,
        alg: SigningAlg,
        issuer: String,
        audience: String,
        skew: i64,
        max_ttl: i64,
    ) -> Self {
        let verified = moka::sync::Cache::builder()
            .max_capacity(CACHE_CAPACITY)
            // Memory hygiene only: expiry itself is checked against the injected clock.
            .time_to_live(Duration::from_secs(
                u64::try_from(max_ttl + skew).unwrap_or(3600),
            ))
            .build();
        Self {
            ring,
            alg,
            revoked: RevocationList::default(),
            cutoffs: super::cutoffs::Cutoffs::new(max_ttl + skew),
            issuer,
            audience,
            skew,
            verified,
        }
    }

    /// The `iss` of every token.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The `aud` of every token.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// Signs an access token for `sub` and `client_id` with `scope`, valid `ttl` seconds,
    /// bound to the DPoP key `jkt` when one is given.
    pub fn issue(
        &self,
        now: i64,
        sub: &str,
        client_id: &str,
        scope: &ScopeSet,
        ttl: i64,
        jkt: Option<&str>,
    ) -> Result<Issued, TokenError> {
        let key = self
            .ring
            .signing_key(self.alg, now)
            .ok_or(TokenError::NoSigningKey)?;
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            sub: sub.to_owned(),
            aud: Audience::One(self.audience.clone()),
            exp: now + ttl,
            iat: now,
            nbf: None,
            jti: super::secret::token_id(),
            client_id: client_id.to_owned(),
            scope: scope.to_string(),
            cnf: jkt.map(|jkt| Confirmation {
                jkt: jkt.to_owned(),
            }),
        };
        let token = key
            .sign_jws(&claims)
            .map_err(|e| TokenError::Signing(e.to_string()))?;
        Ok(Issued { token, claims })
    }

    /// Verifies an access token at `now`: signature by kid with the key's own algorithm,
    /// `typ`, `iss`, `aud`, `exp`/`nbf`/`iat` within the skew, then the revocation and
    /// cut-off lists.
    /// Verified tokens are cached by their SHA-256, so a token costs one signature check
    /// (again after a key left the ring: a revoked key's tokens stop at once).
    pub fn verify(&self, token: &str, now: i64) -> Result<Arc<AccessClaims>, TokenError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let generation = self.ring.generation();
        let claims = match self.verified.get(&digest) {
            Some((verified_in, claims)) if verified_in == generation => claims,
            _ => {
                let claims = Arc::new(self.verify_signature_and_claims(token, now)?);
                self.verified.insert(digest, (generation, claims.clone()));
                claims
            }
        };
        if claims.exp + self.skew < now {
            return Err(TokenError::Expired);
        }
        if self.revoked.contains(&claims.jti) || self.cutoffs.refuses(&claims) {
            return Err(TokenError::Revoked);
        }
        Ok(claims)
    }

    fn verify_signature_and_claims(
        &self,
        token: &str,
        now: i64,
    ) -> Result<AccessClaims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        let typ_ok = header.typ.as_deref().is_some_and(|t| {
            t.eq_ignore_ascii_case(ACCESS_TOKEN_TYP) || t.eq_ignore_ascii_case("application/at+jwt")
        });
        if !typ_ok {
            return Err(TokenError::WrongType);
        }
        // Explicit allow-list: never `none`, never an HMAC algorithm.
        if !matches!(
            header.alg,
            Algorithm::ES256 | Algorithm::EdDSA | Algorithm::RS256 | Algorithm::PS256
        ) {
            return Err(TokenError::Algorithm);
        }
        let kid = header.kid.as_deref().ok_or(TokenError::UnknownKey)?;
        let key = self
            .ring
            .verifying_key(kid, now)
            .ok_or(TokenError::UnknownKey)?;
        // The key decides the algorithm, not the token (no algorithm confusion).
        if key.alg != header.alg {
            return Err(TokenError::Algorithm);
        }
        let mut validation = Validation::new(key.alg);
        // Time and audience are checked below against the injected clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<AccessClaims>(token, &key.decoding, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => TokenError::Signature,
                _ => TokenError::Malformed,
            })?;
        let claims = data.claims;
        if claims.iss != self.issuer {
            return Err(TokenError::Issuer);
        }
        if !claims.aud.contains(&self.audience) {
            return Err(TokenError::Audience);
        }
        if claims.exp + self.skew < now {
            return Err(TokenError::Expired);
        }
        if claims.nbf.is_some_and(|nbf| nbf > now + self.skew) || claims.iat > now + self.skew {
            return Err(TokenError::NotYetValid);
        }
        Ok(claims)
    }

    /// Revokes a token in this process at once and, through the database, in every other
    /// process within one sync interval.
    pub async fn revoke(
        &self,
        store: &Store,
        claims: &AccessClaims,
        now: i64,
    ) -> Result<(), StoreError> {
        store::revocations::insert(
            store,
            &claims.jti,
            &claims.client_id,
            claims.exp + self.skew,
            now,
        )
        .await?;
        self.revoked.insert(&claims.jti, claims.exp + self.skew);
        Ok(())
    }
}

/// Revoked token ids until their tokens expire, refreshed from the database.
#[derive(Default)]
pub struct RevocationList {
    jtis: RwLock<HashMap<String, i64>>,
    synced_until: AtomicI64,
}

/// Revocations are re-read this far back on every sync, so one that committed late (a
/// slow transaction on another replica) is still seen.
const SYNC_OVERLAP_SECS: i64 = 30;

impl RevocationList {
    /// Whether `jti` is revoked.
    pub fn contains(&self, jti: &str) -> bool {
        self.jtis.read().is_ok_and(|set| set.contains_key(jti))
    }

    /// Adds a revocation already recorded in the database, so this process honours it at once.
    pub fn insert(&self, jti: &str, expires_at: i64) {
        if let Ok(mut set) = self.jtis.write() {
            set.insert(jti.to_owned(), expires_at);
        }
    }

    /// Pulls revocations from the database and forgets expired ones.
    pub async fn sync(&self, store: &Store, now: i64) -> Result<(), StoreError> {
        let since = self.synced_until.load(Ordering::SeqCst) - SYNC_OVERLAP_SECS;
        let rows = store::revocations::since(store, since, now).await?;
        if let Ok(mut set) = self.jtis.write() {
            set.extend(rows);
            set.retain(|_, exp| *exp >= now);
        }
        self.synced_until.store(now, Ordering::SeqCst);
        Ok(())
    }
}
