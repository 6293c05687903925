//! The signing key ring: generation, encryption at rest under the master key, rotation, and
//! the in-memory ring every process signs and verifies with.
//!
//! A key's life: published in JWKS from creation; signs from `activate_at` (creation plus
//! `key_publish_secs`, so verifiers can fetch it first) until its successor activates
//! (`retire_at`); stays in JWKS `access_token_max_ttl_secs` longer, until the last token it
//! signed has expired; then it is deleted.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _,
};
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use sqlx::types::Json;
use utoipa::ToSchema;

pub use super::master_key::MasterKey;
use crate::clock::Clock;
use crate::config::{Config, SigningAlg};
use crate::store::keys::KeyRow;
use crate::store::{self, Store, StoreError};

/// Errors of the key ring.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Key material could not be generated, sealed or opened.
    #[error("{0}")]
    Crypto(String),
    /// A stored key cannot be opened with this master key.
    #[error(
        "signing key {kid} cannot be decrypted with this master key (was the master key changed?)"
    )]
    WrongMasterKey {
        /// The key that failed.
        kid: String,
    },
    /// The master key file could not be read or written.
    #[error("master key file {path}: {message}")]
    MasterKeyFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// No key has this kid.
    #[error("no signing key {0}")]
    NotFound(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub(crate) fn crypto(what: &str) -> impl Fn(aws_lc_rs::error::Unspecified) -> KeyError + '_ {
    move |_| KeyError::Crypto(format!("{what} failed"))
}

/// A key as the ring holds it.
pub struct LoadedKey {
    /// Key id.
    pub kid: String,
    /// JOSE algorithm.
    pub alg: Algorithm,
    signer: Signer,
    /// The base64url JWS header of access tokens this key signs (`alg`, `typ`, `kid`).
    header: String,
    /// The same for ID tokens (`typ: JWT`).
    id_header: String,
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
enum Signer {
    Es256(EcdsaKeyPair),
    EdDsa(Ed25519KeyPair),
    Rs256(RsaKeyPair),
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
            Signer::Rs256(pair) => {
                let mut signature = vec![0u8; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &rng, message, &mut signature)
                    .map_err(crypto("RS256 signing"))?;
                Ok(signature)
            }
        }
    }
}

/// A key's public description (CLI, admin API).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KeyInfo {
    /// Key id.
    pub kid: String,
    /// Algorithm.
    pub alg: String,
    /// `pending` (published, not signing yet), `active`, `retired` (in JWKS until its tokens expire).
    pub state: &'static str,
    /// When it was made.
    #[serde(serialize_with = "crate::clock::as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    /// When it starts signing.
    #[serde(serialize_with = "crate::clock::as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub activate_at: i64,
    /// When it stops signing.
    #[serde(serialize_with = "crate::clock::as_rfc3339_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub retire_at: Option<i64>,
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
        let (alg, signer, decoding) = match row.alg.as_str() {
            "ES256" => (
                Algorithm::ES256,
                Signer::Es256(
                    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8)
                        .map_err(rejected)?,
                ),
                DecodingKey::from_ec_components(&text("x"), &text("y")).map_err(bad)?,
            ),
            "EdDSA" => (
                Algorithm::EdDSA,
                Signer::EdDsa(Ed25519KeyPair::from_pkcs8(&pkcs8).map_err(rejected)?),
                DecodingKey::from_ed_components(&text("x")).map_err(bad)?,
            ),
            "RS256" => (
                Algorithm::RS256,
                Signer::Rs256(RsaKeyPair::from_pkcs8(&pkcs8).map_err(rejected)?),
                DecodingKey::from_rsa_components(&text("n"), &text("e")).map_err(bad)?,
            ),
            other => {
                return Err(KeyError::Crypto(format!(
                    "key {}: unknown alg {other}",
                    row.kid
                )));
            }
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
        let access_header = header(super::tokens::ACCESS_TOKEN_TYP)?;
        let id_header = header("JWT")?;
        Ok(LoadedKey {
            kid: row.kid,
            alg,
            signer,
            header: access_header,
            id_header,
            decoding,
            public_jwk,
            activate_at: row.activate_at,
            retire_at: row.retire_at,
        })
    }

    /// The key that signs at `now`: the most recently activated one still signing.
    pub fn signing_key(&self, now: i64) -> Option<Arc<LoadedKey>> {
        self.keys
            .load()
            .iter()
            .filter(|k| k.signs_at(now))
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

    /// Algorithms of the published keys, each once.
    pub fn algorithms(&self) -> Vec<Algorithm> {
        let mut algs: Vec<Algorithm> = Vec::new();
        for key in self.keys.load().iter() {
            if !algs.contains(&key.alg) {
                algs.push(key.alg);
            }
        }
        algs
    }
}

/// A newly generated key, sealed for storage.
fn generate(
    alg: SigningAlg,
    master: &MasterKey,
    now: i64,
    activate_at: i64,
) -> Result<KeyRow, KeyError> {
    let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    let (pkcs8, jwk, thumbprint_input) = match alg {
        SigningAlg::ES256 => {
            let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                .map_err(crypto("EC key generation"))?;
            let pkcs8 = pair
                .to_pkcs8v1()
                .map_err(crypto("EC key export"))?
                .as_ref()
                .to_vec();
            // Uncompressed point: 0x04 || x || y.
            let point = pair.public_key().as_ref();
            let (x, y) = (b64(&point[1..33]), b64(&point[33..65]));
            let input = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
            (
                pkcs8,
                json!({"kty": "EC", "crv": "P-256", "x": x, "y": y}),
                input,
            )
        }
        SigningAlg::EdDSA => {
            let pair = Ed25519KeyPair::generate().map_err(crypto("Ed25519 key generation"))?;
            let pkcs8 = pair
                .to_pkcs8()
                .map_err(crypto("Ed25519 key export"))?
                .as_ref()
                .to_vec();
            let x = b64(pair.public_key().as_ref());
            let input = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
            (
                pkcs8,
                json!({"kty": "OKP", "crv": "Ed25519", "x": x}),
                input,
            )
        }
        SigningAlg::RS256 => {
            let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .map_err(crypto("RSA key generation"))?;
            let pkcs8 = pair
                .as_der()
                .map_err(crypto("RSA key export"))?
                .as_ref()
                .to_vec();
            let public = pair.public_key();
            let n = b64(public.modulus().big_endian_without_leading_zero());
            let e = b64(public.exponent().big_endian_without_leading_zero());
            let input = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
            (pkcs8, json!({"kty": "RSA", "n": n, "e": e}), input)
        }
    };
    // RFC 7638 thumbprint of the required members, in lexicographic order.
    let kid = b64(&Sha256::digest(thumbprint_input.as_bytes()));
    let private_key = master.seal(&kid, &pkcs8)?;
    Ok(KeyRow {
        kid,
        alg: alg.as_str().to_owned(),
        public_jwk: Json(jwk),
        private_key,
        created_at: now,
        activate_at,
        retire_at: None,
    })
}

/// Makes sure a key signs: on a new database, creates the first one, active at once
/// (nobody can hold a JWKS without it yet). Safe from several processes at once.
pub async fn ensure_signing_key(
    store: &Store,
    clock: &dyn Clock,
    master: &MasterKey,
    alg: SigningAlg,
) -> Result<(), KeyError> {
    let now = clock.unix();
    let mut tx = store.begin().await?;
    store::keys::lock(&mut tx).await?;
    if store::keys::current(&mut tx).await?.is_none() {
        let row = generate(alg, master, now, now)?;
        store::keys::insert(&mut tx, &row).await?;
        tracing::info!(kid = %row.kid, alg = %row.alg, "first signing key created");
    }
    tx.commit().await?;
    Ok(())
}

/// Rotates: a new key is published now and signs after `publish_secs`; the current one
/// retires then. Returns the new key.
pub async fn rotate(
    store: &Store,
    clock: &dyn Clock,
    master: &MasterKey,
    alg: SigningAlg,
    publish_secs: i64,
) -> Result<KeyInfo, KeyError> {
    let now = clock.unix();
    let mut tx = store.begin().await?;
    store::keys::lock(&mut tx).await?;
    let row = rotate_locked(&mut tx, master, alg, now, publish_secs).await?;
    tx.commit().await?;
    Ok(info(&row, now))
}

async fn rotate_locked(
    tx: &mut store::Tx,
    master: &MasterKey,
    alg: SigningAlg,
    now: i64,
    publish_secs: i64,
) -> Result<KeyRow, KeyError> {
    let row = generate(alg, master, now, now + publish_secs)?;
    store::keys::retire_all(tx, row.activate_at).await?;
    store::keys::insert(tx, &row).await?;
    tracing::info!(kid = %row.kid, alg = %row.alg, activate_at = row.activate_at, "signing key rotated");
    Ok(row)
}

/// What revoking a key did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Revoked {
    /// The revoked key: gone from JWKS and verification.
    pub revoked: String,
    /// The key made to sign at once in its place, when no other key was signing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub successor: Option<KeyInfo>,
}

impl Revoked {
    /// The audit event of the revocation (the caller adds the actor).
    pub fn audit_event(&self) -> crate::audit::Event {
        let event = crate::audit::Event::new("key.revoked").detail("kid", self.revoked.clone());
        match &self.successor {
            Some(next) => event.detail("successor", next.kid.clone()),
            None => event,
        }
    }
}

/// Revokes a compromised key: it is deleted, so it leaves JWKS and verification (on every
/// replica at its next key-ring refresh, within a sync interval) and every token it
/// signed stops verifying. When no other key signs from now on (it was the active key, or
/// the only successor of a retiring one), a new key signs at once: no gap.
pub async fn revoke(
    store: &Store,
    clock: &dyn Clock,
    master: &MasterKey,
    alg: SigningAlg,
    kid: &str,
) -> Result<Revoked, KeyError> {
    let now = clock.unix();
    let mut tx = store.begin().await?;
    store::keys::lock(&mut tx).await?;
    if !store::keys::delete(&mut tx, kid).await? {
        return Err(KeyError::NotFound(kid.to_owned()));
    }
    let successor = if store::keys::signs_on(&mut tx, now).await? {
        None
    } else {
        Some(rotate_locked(&mut tx, master, alg, now, 0).await?)
    };
    tx.commit().await?;
    tracing::warn!(kid, successor = ?successor.as_ref().map(|k| &k.kid), "signing key revoked");
    Ok(Revoked {
        revoked: kid.to_owned(),
        successor: successor.map(|row| info(&row, now)),
    })
}

/// Rotates when the current key is older than `rotation_secs`, and deletes keys whose
/// tokens have all expired. Run periodically by every process; the lock makes one win.
pub async fn maintain(
    store: &Store,
    clock: &dyn Clock,
    master: &MasterKey,
    config: &Config,
) -> Result<Option<String>, KeyError> {
    let now = clock.unix();
    let mut tx = store.begin().await?;
    store::keys::lock(&mut tx).await?;
    let rotated = match store::keys::current(&mut tx).await? {
        Some((_, activated)) if activated + config.key_rotation_secs <= now => Some(
            rotate_locked(
                &mut tx,
                master,
                config.signing_alg,
                now,
                config.key_publish_secs,
            )
            .await?
            .kid,
        ),
        Some(_) => None,
        None => {
            let row = generate(config.signing_alg, master, now, now)?;
            store::keys::insert(&mut tx, &row).await?;
            None
        }
    };
    tx.commit().await?;
    store::keys::delete_retired_before(
        store,
        now - config.access_token_max_ttl_secs - config.clock_skew_secs,
    )
    .await?;
    Ok(rotated)
}

fn info(row: &KeyRow, now: i64) -> KeyInfo {
    let state = if row.activate_at > now {
        "pending"
    } else if row.retire_at.is_some_and(|r| r <= now) {
        "retired"
    } else {
        "active"
    };
    KeyInfo {
        kid: row.kid.clone(),
        alg: row.alg.clone(),
        state,
        created_at: row.created_at,
        activate_at: row.activate_at,
        retire_at: row.retire_at,
    }
}

/// Every stored key with its state at `now`.
pub async fn list(store: &Store, clock: &dyn Clock) -> Result<Vec<KeyInfo>, KeyError> {
    let now = clock.unix();
    Ok(store::keys::list(store)
        .await?
        .iter()
        .map(|r| info(r, now))
        .collect())
}
