//! A key's life in the store: generation, rotation, revocation, maintenance, listing.

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde_json::json;
use sha2::{Digest as _, Sha256};
use sqlx::types::Json;
use utoipa::ToSchema;

use super::*;
use crate::clock::Clock;
use crate::config::{Config, SigningAlg};
use crate::store::keys::KeyRow;
use crate::store::{self, Store};

/// A newly generated key, sealed for storage.
pub(super) fn generate(
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
        SigningAlg::RS256 | SigningAlg::PS256 => {
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

/// The lines of keys the server keeps whatever its clients registered: access tokens',
/// the default ID-token algorithm's, and RS256, which OpenID Discovery requires every
/// provider to offer for ID tokens.
pub fn required_lines(config: &Config) -> Vec<SigningAlg> {
    let mut lines = vec![
        config.signing_alg,
        config.id_token_signing_alg,
        SigningAlg::RS256,
    ];
    lines.sort();
    lines.dedup();
    lines
}

/// Makes sure each of `lines` has a key that signs: a line without one (a new database, a
/// client registering a new algorithm) gets its first key, active at once (nobody can
/// hold a JWKS with it yet). Safe from several processes at once.
pub async fn ensure_lines(
    store: &Store,
    clock: &dyn Clock,
    master: &MasterKey,
    lines: &[SigningAlg],
) -> Result<(), KeyError> {
    let now = clock.unix();
    let mut tx = store.begin().await?;
    store::keys::lock(&mut tx).await?;
    for &alg in lines {
        if store::keys::current(&mut tx, alg.as_str()).await?.is_none() {
            let row = generate(alg, master, now, now)?;
            store::keys::insert(&mut tx, &row).await?;
            tracing::info!(kid = %row.kid, alg = %row.alg, "first signing key of its line created");
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Rotates `alg`'s line: a new key is published now and signs after `publish_secs`; the
/// line's current key retires then. Returns the new key.
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

pub(super) async fn rotate_locked(
    tx: &mut store::Tx,
    master: &MasterKey,
    alg: SigningAlg,
    now: i64,
    publish_secs: i64,
) -> Result<KeyRow, KeyError> {
    let row = generate(alg, master, now, now + publish_secs)?;
    store::keys::retire_line(tx, alg.as_str(), row.activate_at).await?;
    store::keys::insert(tx, &row).await?;
    tracing::info!(kid = %row.kid, alg = %row.alg, activate_at = row.activate_at, "signing key rotated");
    Ok(row)
}

/// What revoking a key did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Revoked {
    /// The revoked key: gone from JWKS and verification.
    pub revoked: String,
    /// The key made to sign at once in its place, when no other key of its line was
    /// signing.
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
/// signed stops verifying. When no other key of its line signs from now on (it was the
/// active key, or the only successor of a retiring one), a new key of the same algorithm
/// signs at once: no gap.
pub async fn revoke(
    store: &Store,
    clock: &dyn Clock,
    master: &MasterKey,
    kid: &str,
) -> Result<Revoked, KeyError> {
    let now = clock.unix();
    let mut tx = store.begin().await?;
    store::keys::lock(&mut tx).await?;
    let Some(alg) = store::keys::delete(&mut tx, kid).await? else {
        return Err(KeyError::NotFound(kid.to_owned()));
    };
    let alg: SigningAlg = alg
        .parse()
        .map_err(|e: crate::model::Invalid| KeyError::Crypto(e.message))?;
    let successor = if store::keys::signs_on(&mut tx, alg.as_str(), now).await? {
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

/// The lines the server needs: the [`required_lines`] and each algorithm a client
/// registered for its ID tokens.
pub async fn wanted_lines(store: &Store, config: &Config) -> Result<Vec<SigningAlg>, KeyError> {
    let mut lines = required_lines(config);
    for alg in store::clients::id_token_algs(store).await? {
        let alg = alg
            .parse()
            .map_err(|e: crate::model::Invalid| StoreError::Corrupt(e.message))?;
        if !lines.contains(&alg) {
            lines.push(alg);
        }
    }
    Ok(lines)
}

/// Rotates each line whose current key is older than `rotation_secs`, starts each
/// [wanted](wanted_lines) line that has no key, and deletes keys whose tokens have all
/// expired. Run periodically by every process; the lock makes one win. Returns the new
/// keys' ids.
pub async fn maintain(
    store: &Store,
    clock: &dyn Clock,
    master: &MasterKey,
    config: &Config,
) -> Result<Vec<String>, KeyError> {
    let wanted = wanted_lines(store, config).await?;
    let now = clock.unix();
    let mut tx = store.begin().await?;
    store::keys::lock(&mut tx).await?;
    let mut rotated = Vec::new();
    for &alg in SigningAlg::ALL {
        match store::keys::current(&mut tx, alg.as_str()).await? {
            Some((_, activated)) if activated + config.key_rotation_secs <= now => {
                let row = rotate_locked(&mut tx, master, alg, now, config.key_publish_secs).await?;
                rotated.push(row.kid);
            }
            Some(_) => {}
            None if wanted.contains(&alg) => {
                let row = generate(alg, master, now, now)?;
                store::keys::insert(&mut tx, &row).await?;
            }
            None => {}
        }
    }
    tx.commit().await?;
    store::keys::delete_retired_before(
        store,
        now - config.access_token_max_ttl_secs - config.clock_skew_secs,
    )
    .await?;
    Ok(rotated)
}

pub(super) fn info(row: &KeyRow, now: i64) -> KeyInfo {
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
