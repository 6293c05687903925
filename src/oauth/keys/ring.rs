//! The in-memory key ring: replaced wholesale on refresh, read lock-free on every request.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair};
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RSA_PSS_SHA256, RsaEncoding, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Value, json};

use super::*;
use crate::model::SigningAlg;
use crate::store::keys::KeyRow;
use crate::store::{self, Store};

/// A key as the ring holds it.
pub struct LoadedKey {
    /// Key id.
    pub kid: String,
    /// JOSE algorithm.
    pub alg: Algorithm,
    /// The line of keys it belongs to (the same algorithm, as the server names it).
    pub line: SigningAlg,
    signer: Signer,
    /// The base64url JWS header of access tokens this key signs (`alg`, `typ`, `kid`).
    header: String,
    /// The same for ID tokens (`typ: JWT`).
    id_header: String,
    /// The same for logout tokens (`typ: logout+jwt`).
    logout_header: String,
    /// Verifies this key's signatures.
    pub decoding: DecodingKey,
    /// The public JWK (with `kid`, `alg`, `use`).
    pub public_jwk: Value,
    /// When it starts signing.
    pub activate_at: i64,
    /// When it stops signing.
    pub retire_at: Option<i64>,
}

impl LoadedKey {
    fn signs_at(&self, now: i64) -> bool {
        self.activate_at <= now && self.retire_at.is_none_or(|r| now < r)
    }

    fn published_at(&self, now: i64, retain: i64) -> bool {
        self.retire_at.is_none_or(|r| now < r + retain)
    }

    /// Signs `claims` as a compact JWS (RFC 7515 §7.1) with `typ`.
    ///
    /// The private key is parsed once, when loaded: jsonwebtoken's `encode` re-parses and
    /// re-validates the PKCS#8 key on every call, which for ES256 costs a second scalar
    /// multiplication per token, about a third of the token endpoint's CPU. The signature
    /// itself is aws-lc's; only the compact serialization is done here.
    pub fn sign_jws<T: serde::Serialize>(&self, claims: &T) -> Result<String, KeyError> {
        self.sign_with(&self.header, claims)
    }

    /// Signs an OpenID Connect ID token (`typ: JWT`).
    pub fn sign_id_token<T: serde::Serialize>(&self, claims: &T) -> Result<String, KeyError> {
        self.sign_with(&self.id_header, claims)
    }

    /// Signs a back-channel logout token (`typ: logout+jwt`, Back-Channel Logout 1.0 §4.1:
    /// no other kind of token can be taken for it).
    pub fn sign_logout_token<T: serde::Serialize>(&self, claims: &T) -> Result<String, KeyError> {
        self.sign_with(&self.logout_header, claims)
    }

    fn sign_with<T: serde::Serialize>(&self, header: &str, claims: &T) -> Result<String, KeyError> {
        let payload = serde_json::to_vec(claims).map_err(|e| KeyError::Crypto(e.to_string()))?;
        let mut jws = String::with_capacity(header.len() + payload.len() * 4 / 3 + 400);
        jws.push_str(header);
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(payload, &mut jws);
        let signature = self.signer.sign(jws.as_bytes())?;
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut jws);
        Ok(jws)
    }
}

/// A parsed private key, ready to sign.
pub(super) enum Signer {
    Es256(EcdsaKeyPair),
    EdDsa(Ed25519KeyPair),
    Rs256(RsaKeyPair),
    Ps256(RsaKeyPair),
}

impl Signer {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let rng = SystemRandom::new();
        match self {
            // The FIXED encoding is JWS's r || s (RFC 7518 §3.4).
            Signer::Es256(pair) => Ok(pair
                .sign(&rng, message)
                .map_err(crypto("ES256 signing"))?
                .as_ref()
                .to_vec()),
            Signer::EdDsa(pair) => Ok(pair.sign(message).as_ref().to_vec()),
            Signer::Rs256(pair) => rsa_sign(pair, &RSA_PKCS1_SHA256, message, "RS256 signing"),
            Signer::Ps256(pair) => rsa_sign(pair, &RSA_PSS_SHA256, message, "PS256 signing"),
        }
    }
}

fn rsa_sign(
    pair: &RsaKeyPair,
    padding: &'static dyn RsaEncoding,
    message: &[u8],
    what: &'static str,
) -> Result<Vec<u8>, KeyError> {
    let mut signature = vec![0u8; pair.public_modulus_len()];
    pair.sign(padding, &SystemRandom::new(), message, &mut signature)
        .map_err(crypto(what))?;
    Ok(signature)
}

/// The JOSE algorithm of a line of keys.
pub fn jose(alg: SigningAlg) -> Algorithm {
    match alg {
        SigningAlg::ES256 => Algorithm::ES256,
        SigningAlg::EdDSA => Algorithm::EdDSA,
        SigningAlg::RS256 => Algorithm::RS256,
        SigningAlg::PS256 => Algorithm::PS256,
    }
}

/// The in-memory ring: replaced wholesale on refresh, read lock-free on every request.
pub struct KeyRing {
    keys: ArcSwap<Vec<Arc<LoadedKey>>>,
    /// Grows whenever a key leaves the ring: what was verified with the ring before is
    /// verified again (a revoked key's tokens must not live on in a cache).
    generation: AtomicU64,
    master: MasterKey,
    retain_secs: i64,
}

impl KeyRing {
    /// An empty ring; call [`KeyRing::refresh`] to load it.
    pub fn new(master: MasterKey, retain_secs: i64) -> Self {
        Self {
            keys: ArcSwap::from_pointee(Vec::new()),
            generation: AtomicU64::new(0),
            master,
            retain_secs,
        }
    }

    /// The master key the ring's private keys are sealed with.
    pub fn master(&self) -> &MasterKey {
        &self.master
    }

    /// Reloads keys from the database, opening only keys not already loaded.
    pub async fn refresh(&self, store: &Store) -> Result<(), KeyError> {
        let rows = store::keys::list(store).await?;
        let known: HashMap<String, Arc<LoadedKey>> = self
            .keys
            .load()
            .iter()
            .map(|k| (k.kid.clone(), k.clone()))
            .collect();
        let mut next = Vec::with_capacity(rows.len());
        for row in rows {
            let key = match known.get(&row.kid) {
                Some(k) if k.retire_at == row.retire_at => k.clone(),
                _ => Arc::new(self.load(row)?),
            };
            next.push(key);
        }
        let removed = known.keys().any(|kid| !next.iter().any(|k| &k.kid == kid));
        self.keys.store(Arc::new(next));
        if removed {
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        Ok(())
    }

    /// The ring's generation: read it before verifying with the ring, and trust what was
    /// verified only while it has not changed.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn load(&self, row: KeyRow) -> Result<LoadedKey, KeyError> {
        let pkcs8 = self
            .master
            .open(&row.kid, &row.private_key)
            .ok_or_else(|| KeyError::WrongMasterKey {
                kid: row.kid.clone(),
            })?;
        let jwk = row.public_jwk.0;
        let text = |name: &str| jwk[name].as_str().unwrap_or_default().to_owned();
        let bad =
            |e: jsonwebtoken::errors::Error| KeyError::Crypto(format!("key {}: {e}", row.kid));
        let rejected =
            |_| KeyError::Crypto(format!("key {}: the private key is not usable", row.kid));
        let line: SigningAlg = row.alg.parse().map_err(|e: crate::model::Invalid| {
            KeyError::Crypto(format!("key {}: {}", row.kid, e.message))
        })?;
        let rsa = || RsaKeyPair::from_pkcs8(&pkcs8).map_err(rejected);
        let rsa_public = || DecodingKey::from_rsa_components(&text("n"), &text("e")).map_err(bad);
        let (signer, decoding) = match line {
            SigningAlg::ES256 => (
                Signer::Es256(
                    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8)
                        .map_err(rejected)?,
                ),
                DecodingKey::from_ec_components(&text("x"), &text("y")).map_err(bad)?,
            ),
            SigningAlg::EdDSA => (
                Signer::EdDsa(Ed25519KeyPair::from_pkcs8(&pkcs8).map_err(rejected)?),
                DecodingKey::from_ed_components(&text("x")).map_err(bad)?,
            ),
            SigningAlg::RS256 => (Signer::Rs256(rsa()?), rsa_public()?),
            SigningAlg::PS256 => (Signer::Ps256(rsa()?), rsa_public()?),
        };
        let mut public_jwk = jwk;
        if let Some(map) = public_jwk.as_object_mut() {
            map.insert("kid".to_owned(), json!(row.kid));
            map.insert("alg".to_owned(), json!(row.alg));
            map.insert("use".to_owned(), json!("sig"));
        }
        let header = |typ: &str| {
            serde_json::to_vec(&json!({"alg": row.alg, "typ": typ, "kid": row.kid}))
                .map(|h| URL_SAFE_NO_PAD.encode(h))
                .map_err(|e| KeyError::Crypto(e.to_string()))
        };
        let access_header = header(crate::oauth::tokens::ACCESS_TOKEN_TYP)?;
        let id_header = header("JWT")?;
        let logout_header = header("logout+jwt")?;
        Ok(LoadedKey {
            kid: row.kid,
            alg: jose(line),
            line,
            signer,
            header: access_header,
            id_header,
            logout_header,
            decoding,
            public_jwk,
            activate_at: row.activate_at,
            retire_at: row.retire_at,
        })
    }

    /// The key of `alg`'s line that signs at `now`: the most recently activated one still
    /// signing.
    pub fn signing_key(&self, alg: SigningAlg, now: i64) -> Option<Arc<LoadedKey>> {
        self.keys
            .load()
            .iter()
            .filter(|k| k.line == alg && k.signs_at(now))
            .max_by_key(|k| k.activate_at)
            .cloned()
    }

    /// The published key with this kid.
    pub fn verifying_key(&self, kid: &str, now: i64) -> Option<Arc<LoadedKey>> {
        self.keys
            .load()
            .iter()
            .find(|k| k.kid == kid && k.published_at(now, self.retain_secs))
            .cloned()
    }

    /// The JWKS document at `now` (RFC 7517): pending, active and recently retired keys.
    pub fn jwks(&self, now: i64) -> Value {
        let loaded = self.keys.load();
        let keys: Vec<&Value> = loaded
            .iter()
            .filter(|k| k.published_at(now, self.retain_secs))
            .map(|k| &k.public_jwk)
            .collect();
        json!({ "keys": keys })
    }

    /// The lines that have a published key, in [`SigningAlg::ALL`] order.
    pub fn algorithms(&self, now: i64) -> Vec<SigningAlg> {
        let loaded = self.keys.load();
        SigningAlg::ALL
            .iter()
            .copied()
            .filter(|alg| {
                loaded
                    .iter()
                    .any(|k| k.line == *alg && k.published_at(now, self.retain_secs))
            })
            .collect()
    }
}
