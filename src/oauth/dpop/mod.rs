//! DPoP (RFC 9449): proofs that the caller holds the private key an access token is bound
//! to. A proof is a JWT the client signs for one request (`htm`, `htu`, `iat`, a fresh
//! `jti`, and at a resource `ath`, the token's hash) with its public key in the header;
//! the token carries that key's thumbprint (`cnf.jkt`, RFC 7638).
//!
//! Nonces (§8) are stateless: an HMAC of the current time step under a key derived from
//! the master key, so every replica issues and accepts the same ones. Proof ids are
//! single-use across replicas: each one is recorded in the database (batched with the
//! other requests of the moment) or in Redis until the proof would be too old anyway
//! ([`replay`]).

mod replay;

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::error::{OAuthError, OAuthErrorCode};
use crate::model::Client;
use crate::oauth::Ctx;
use crate::store::revocations::UsedAssertion;
pub use replay::ReplayStore;
use replay::SpentProofs;

/// The proof algorithms accepted (`dpop_signing_alg_values_supported`): asymmetric only,
/// never `none`, an HMAC or RS256 (FAPI 2.0 allows only these). `Ed25519` is RFC 9864's
/// fully-specified name of EdDSA with Ed25519, which newer clients (oauth4webapi) send.
pub const ALGS: &[&str] = &["ES256", "PS256", "EdDSA", "Ed25519"];
/// The `typ` of a proof (RFC 9449 §4.2).
pub const PROOF_TYP: &str = "dpop+jwt";
/// The token type of a DPoP-bound access token, and the `Authorization` scheme it is sent
/// with.
pub const TOKEN_TYPE: &str = "DPoP";
/// Longest proof accepted: a PS256 proof with a 4096-bit key is about 2 KB.
const MAX_PROOF_LEN: usize = 8 * 1024;
/// A nonce is accepted in the step of this many seconds it was issued in and the next
/// one: for 5 to 10 minutes.
const NONCE_STEP_SECS: i64 = 300;
/// Longest `jti` accepted.
const MAX_JTI_LEN: usize = 256;
/// Members of a JWK that only a private key has (RFC 7518 §6): a proof must never carry one.
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// What a request's proof must match.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    /// The request's method.
    pub htm: &'a str,
    /// The request's URL without query and fragment, as this server is reached at (the
    /// issuer's origin and path prefix, then the route's path).
    pub htu: &'a str,
    /// At a protected resource: the access token sent with the proof (`ath` is its hash).
    pub access_token: Option<&'a str>,
    /// Whether the proof must carry a current nonce.
    pub nonce: bool,
}

/// A proof that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// The SHA-256 thumbprint of its key (RFC 7638), base64url: what `cnf.jkt` carries.
    pub jkt: String,
}

/// Why a proof was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProofError {
    /// `invalid_dpop_proof`: the proof breaks a rule (the text says which).
    Invalid(String),
    /// `use_dpop_nonce`: the proof lacks the nonce this server requires, or has an old one.
    UseNonce(String),
    /// The replay check could not be made (the database or Redis did not answer).
    Unavailable(String),
}

impl std::fmt::Display for ProofError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Invalid(why) | Self::UseNonce(why) | Self::Unavailable(why) => f.write_str(why),
        }
    }
}

fn invalid<T>(why: impl Into<String>) -> Result<T, ProofError> {
    Err(ProofError::Invalid(why.into()))
}

/// The claims of a proof; each is checked for presence by [`Dpop::verify`].
#[derive(Debug, Deserialize)]
struct Claims {
    jti: Option<String>,
    htm: Option<String>,
    htu: Option<String>,
    iat: Option<i64>,
    ath: Option<String>,
    nonce: Option<String>,
}

/// Verifies proofs, issues and checks nonces, remembers proof ids.
pub struct Dpop {
    nonce_key: hmac::Key,
    /// Every client's proofs must carry a nonce.
    nonce_required: bool,
    /// How old a proof's `iat` may be.
    proof_lifetime: i64,
    skew: i64,
    proofs: SpentProofs,
}

impl Dpop {
    /// A verifier whose nonces are keyed by a key derived from the master key, and whose
    /// proof ids are marked spent in the store `dpop_replay_store` names (in batches on the
    /// current runtime, for the database).
    pub fn spawn(
        master: &super::keys::MasterKey,
        config: &crate::config::Config,
        store: &crate::store::Store,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            nonce_key: master.derive_hmac("dpop-nonce")?,
            nonce_required: config.dpop_nonce_required,
            proof_lifetime: config.dpop_proof_lifetime_secs,
            skew: config.clock_skew_secs,
            proofs: SpentProofs::open(config, store)?,
        })
    }

    /// Whether a client's proofs must carry a nonce: every client's when the server
    /// requires them, else only those registered with `require_dpop_nonce`.
    pub fn nonce_required(&self, client_requires: bool) -> bool {
        self.nonce_required || client_requires
    }

    /// The nonce to hand out at `now`.
    pub fn nonce(&self, now: i64) -> String {
        self.nonce_at(now.div_euclid(NONCE_STEP_SECS))
    }

    fn nonce_at(&self, step: i64) -> String {
        let tag = hmac::sign(&self.nonce_key, &step.to_be_bytes());
        URL_SAFE_NO_PAD.encode(&tag.as_ref()[..18])
    }

    /// Whether `nonce` was issued in this step or the one before (on any replica).
    fn nonce_valid(&self, nonce: &str, now: i64) -> bool {
        let step = now.div_euclid(NONCE_STEP_SECS);
        [step, step - 1].iter().any(|s| {
            let expected = self.nonce_at(*s);
            bool::from(expected.as_bytes().ct_eq(nonce.as_bytes()))
        })
    }

    /// Verifies `proof` for a request (RFC 9449 §4.3): its form and key, its signature,
    /// `htm`, `htu`, `iat`, `ath`, the nonce, and last that its `jti` was never used with
    /// this key before.
    pub async fn verify(
        &self,
        proof: &str,
        expect: &Expect<'_>,
        now: i64,
    ) -> Result<Proof, ProofError> {
        let (alg, jwk) = header(proof)?;
        let key = DecodingKey::from_jwk(&jwk)
            .or_else(|_| invalid("the proof's jwk is not a usable public key"))?;
        let jkt = jwk
            .thumbprint(ThumbprintHash::SHA256)
            .or_else(|_| invalid("the proof's jwk has no thumbprint"))?;
        // The signature over `header.payload`, by the algorithm the header was checked for
        // (the JOSE crate's own header parser does not know RFC 9864's `Ed25519`).
        let (signed, signature) = proof
            .rsplit_once('.')
            .map_or_else(|| invalid("the proof is not a signed JWT"), Ok)?;
        let verified = jsonwebtoken::crypto::verify(signature, signed.as_bytes(), &key, alg);
        if !verified.unwrap_or(false) {
            return invalid("the proof's signature does not verify with its jwk");
        }
        let claims: Claims = signed
            .split_once('.')
            .and_then(|(_, payload)| URL_SAFE_NO_PAD.decode(payload).ok())
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .map_or_else(|| invalid("the proof's claims are malformed"), Ok)?;
        let jti = self.check_claims(&claims, expect, now)?;
        let used = UsedAssertion {
            client_id: jkt.clone(),
            jti,
            expires_at: now + self.proof_lifetime + 2 * self.skew,
        };
        match self.proofs.spend(used, now).await {
            Ok(true) => Ok(Proof { jkt }),
            Ok(false) => invalid("this proof was used before (its jti is spent)"),
            Err(why) => Err(ProofError::Unavailable(why)),
        }
    }

    /// Every claim rule; returns the `jti`.
    fn check_claims(
        &self,
        claims: &Claims,
        expect: &Expect<'_>,
        now: i64,
    ) -> Result<String, ProofError> {
        let jti = match claims.jti.as_deref() {
            Some(j) if !j.is_empty() && j.len() <= MAX_JTI_LEN => j.to_owned(),
            Some(_) => {
                return invalid(format!(
                    "the proof's jti must be 1 to {MAX_JTI_LEN} characters"
                ));
            }
            None => return invalid("the proof has no jti"),
        };
        match claims.htm.as_deref() {
            Some(htm) if htm == expect.htm => {}
            Some(_) => return invalid(format!("the proof's htm must be {}", expect.htm)),
            None => return invalid("the proof has no htm"),
        }
        let Some(htu) = claims.htu.as_deref() else {
            return invalid("the proof has no htu");
        };
        if !same_target(htu, expect.htu) {
            return invalid(format!("the proof's htu must be {}", expect.htu));
        }
        let Some(iat) = claims.iat else {
            return invalid("the proof has no iat");
        };
        if iat > now + self.skew {
            return invalid("the proof's iat is in the future");
        }
        if iat < now - self.proof_lifetime - self.skew {
            return invalid(format!(
                "the proof is too old (iat more than {} s ago)",
                self.proof_lifetime
            ));
        }
        if let Some(token) = expect.access_token {
            let hash = token_hash(token);
            match claims.ath.as_deref() {
                Some(ath) if bool::from(ath.as_bytes().ct_eq(hash.as_bytes())) => {}
                Some(_) => return invalid("the proof's ath is not the hash of this access token"),
                None => return invalid("the proof has no ath (the access token's hash)"),
            }
        }
        if expect.nonce {
            match claims.nonce.as_deref() {
                Some(nonce) if self.nonce_valid(nonce, now) => {}
                Some(_) => {
                    return Err(ProofError::UseNonce(
                        "the proof's nonce has expired or is not this server's; use the one in DPoP-Nonce".to_owned(),
                    ));
                }
                None => {
                    return Err(ProofError::UseNonce(
                        "the proof must carry the nonce from the DPoP-Nonce header".to_owned(),
                    ));
                }
            }
        }
        Ok(jti)
    }
}

/// The proof's algorithm and public key, after the header's rules: `typ`, an accepted
/// `alg`, and a public `jwk` of the algorithm's key type and size.
fn header(proof: &str) -> Result<(Algorithm, Jwk), ProofError> {
    if proof.len() > MAX_PROOF_LEN {
        return invalid(format!("the proof is longer than {MAX_PROOF_LEN} bytes"));
    }
    let mut parts = proof.split('.');
    let (Some(head), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return invalid("the proof is not a signed JWT");
    };
    let header: Map<String, Value> = URL_SAFE_NO_PAD
        .decode(head)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .map_or_else(|| invalid("the proof's header is not base64url JSON"), Ok)?;
    let typ_ok = header
        .get("typ")
        .and_then(Value::as_str)
        .is_some_and(|t| t.eq_ignore_ascii_case(PROOF_TYP));
    if !typ_ok {
        return invalid(format!("the proof's typ must be {PROOF_TYP}"));
    }
    let alg = match header.get("alg").and_then(Value::as_str) {
        Some("ES256") => Algorithm::ES256,
        Some("PS256") => Algorithm::PS256,
        Some("EdDSA" | "Ed25519") => Algorithm::EdDSA,
        Some(other) => {
            return invalid(format!(
                "the proof's alg {} is not accepted ({})",
                crate::oauth::grants::quoted(other),
                ALGS.join(", ")
            ));
        }
        None => return invalid("the proof has no alg"),
    };
    let Some(Value::Object(jwk)) = header.get("jwk") else {
        return invalid("the proof's header has no jwk");
    };
    if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
        return invalid("the proof's jwk holds a private key");
    }
    check_key_type(alg, jwk)?;
    let jwk: Jwk = serde_json::from_value(Value::Object(jwk.clone()))
        .or_else(|_| invalid("the proof's jwk is malformed"))?;
    Ok((alg, jwk))
}

/// The key type (and curve, or RSA size) `alg` needs.
fn check_key_type(alg: Algorithm, jwk: &Map<String, Value>) -> Result<(), ProofError> {
    let member = |name: &str| jwk.get(name).and_then(Value::as_str);
    let fits = match alg {
        Algorithm::ES256 => member("kty") == Some("EC") && member("crv") == Some("P-256"),
        Algorithm::EdDSA => member("kty") == Some("OKP") && member("crv") == Some("Ed25519"),
        Algorithm::PS256 => {
            if member("kty") != Some("RSA") {
                false
            } else {
                // 2048 to 4096 bits: smaller is weak, larger only costs the verifier.
                let bytes = member("n")
                    .and_then(|n| URL_SAFE_NO_PAD.decode(n).ok())
                    .map_or(0, |n| n.len());
                if !(256..=512).contains(&bytes) {
                    return invalid("the proof's RSA key must be 2048 to 4096 bits");
                }
                true
            }
        }
        _ => false,
    };
    if fits {
        Ok(())
    } else {
        invalid(
            "the proof's jwk does not fit its alg (ES256: EC P-256, PS256: RSA, EdDSA: OKP Ed25519)",
        )
    }
}

/// Whether `client`'s access tokens must be DPoP-bound: its registration says so, or its
/// FAPI 2.0 profile.
pub fn required_of(client: &Client) -> bool {
    client.dpop_bound_access_tokens || client.fapi2()
}

/// `invalid_dpop_proof` at an OAuth endpoint.
pub fn invalid_proof(description: impl Into<String>) -> OAuthError {
    OAuthError::new(OAuthErrorCode::InvalidDpopProof, description)
}

/// The proof of a request by `client` to the endpoint at `path` (the token endpoint,
/// RFC 9449 §5, or the PAR endpoint, §10.1): `None` without one, unless `required`.
/// Refused with `invalid_dpop_proof`, or `use_dpop_nonce` and the nonce to use when one is
/// required and missing.
pub async fn at_endpoint(
    ctx: &Ctx<'_>,
    client: &Client,
    proof: Option<&str>,
    path: &str,
    required: bool,
) -> Result<Option<Proof>, OAuthError> {
    let now = ctx.clock.unix();
    let nonce = ctx.dpop.nonce_required(client.require_dpop_nonce);
    let fresh_nonce = || nonce.then(|| ctx.dpop.nonce(now));
    let Some(proof) = proof else {
        if required {
            return Err(invalid_proof(
                "this client's access tokens are DPoP-bound: send a DPoP proof",
            )
            .with_dpop_nonce(fresh_nonce()));
        }
        return Ok(None);
    };
    let htu = format!("{}{path}", ctx.issuer);
    let expect = Expect {
        htm: "POST",
        htu: &htu,
        access_token: None,
        nonce,
    };
    match ctx.dpop.verify(proof, &expect, now).await {
        Ok(proof) => Ok(Some(proof)),
        Err(ProofError::Invalid(why)) => Err(invalid_proof(why)),
        Err(ProofError::UseNonce(why)) => {
            Err(OAuthError::new(OAuthErrorCode::UseDpopNonce, why).with_dpop_nonce(fresh_nonce()))
        }
        Err(ProofError::Unavailable(why)) => {
            Err(OAuthError::new(OAuthErrorCode::TemporarilyUnavailable, why))
        }
    }
}

/// Whether a proof's `htu` names `expected`, ignoring query and fragment (RFC 9449 §4.3,
/// with RFC 3986 §6.2.2–6.2.3 normalisation: case of scheme and host, default port).
fn same_target(htu: &str, expected: &str) -> bool {
    let (Ok(mut given), Ok(mut wanted)) = (url::Url::parse(htu), url::Url::parse(expected)) else {
        return false;
    };
    for url in [&mut given, &mut wanted] {
        url.set_query(None);
        url.set_fragment(None);
    }
    given == wanted
}

/// The `ath` of an access token (RFC 9449 §4.2): base64url SHA-256 of its ASCII.
pub fn token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_compare_without_query_fragment_and_default_port() {
        assert!(same_target(
            "HTTPS://Example.COM:443/api/v1/me?x=1#f",
            "https://example.com/api/v1/me"
        ));
        assert!(!same_target(
            "https://example.com/api/v1/me/",
            "https://example.com/api/v1/me"
        ));
        assert!(!same_target(
            "http://example.com/api/v1/me",
            "https://example.com/api/v1/me"
        ));
        assert!(!same_target("not a url", "https://example.com/"));
    }
}
