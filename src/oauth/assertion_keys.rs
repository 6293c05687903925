//! The public keys a client signs assertions with (RFC 7523), in the forms partners have
//! them: a PEM `PUBLIC KEY`, a PEM X.509 `CERTIFICATE` (as a Connected App uploads one),
//! or a JWKS document. Each is stored as its SubjectPublicKeyInfo in PEM.

use der::asn1::{AnyRef, BitString, ObjectIdentifier, UintRef};
use der::{Decode as _, Encode as _};
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

use crate::error::FieldError;

const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// Keys in one JWKS document at most.
pub const MAX_JWKS_KEYS: usize = 20;

/// A key ready to store: its kid (when the source names one), type and SPKI in PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedKey {
    /// The JWK's own `kid`, if it had one.
    pub kid: Option<String>,
    /// `RSA`, `EC` or `OKP`.
    pub kty: &'static str,
    /// The SubjectPublicKeyInfo, DER.
    pub spki_der: Vec<u8>,
}

impl ParsedKey {
    /// The key as a PEM `PUBLIC KEY`.
    pub fn pem(&self) -> String {
        pem::encode(&pem::Pem::new("PUBLIC KEY", self.spki_der.clone()))
    }
}

fn invalid(field: &str, message: impl Into<String>) -> Vec<FieldError> {
    vec![FieldError::new(field, "invalid", message.into())]
}

/// The key type of an SPKI jsonwebtoken can verify with, or why not.
fn classify(spki_der: &[u8]) -> Result<&'static str, String> {
    let pem = pem::encode(&pem::Pem::new("PUBLIC KEY", spki_der.to_vec()));
    use jsonwebtoken::DecodingKey;
    if DecodingKey::from_ed_pem(pem.as_bytes()).is_ok() {
        Ok("OKP")
    } else if DecodingKey::from_ec_pem(pem.as_bytes()).is_ok() {
        Ok("EC")
    } else if DecodingKey::from_rsa_pem(pem.as_bytes()).is_ok() {
        Ok("RSA")
    } else {
        Err("unsupported key type: use RSA, EC P-256 or Ed25519".to_owned())
    }
}

/// A PEM `PUBLIC KEY` or `CERTIFICATE` (its subject's key is taken; the certificate's
/// dates and issuer are the partner's business, as with a Connected App).
pub fn from_pem(text: &str) -> Result<ParsedKey, Vec<FieldError>> {
    let parsed = pem::parse(text.trim()).map_err(|_| invalid("pem", "not a PEM document"))?;
    let spki_der = match parsed.tag() {
        "PUBLIC KEY" => parsed.contents().to_vec(),
        "CERTIFICATE" => {
            let cert = x509_cert::Certificate::from_der(parsed.contents())
                .map_err(|e| invalid("pem", format!("not an X.509 certificate: {e}")))?;
            cert.tbs_certificate
                .subject_public_key_info
                .to_der()
                .map_err(|e| invalid("pem", format!("the certificate's key: {e}")))?
        }
        other => {
            return Err(invalid(
                "pem",
                format!("expected a PUBLIC KEY or CERTIFICATE PEM block, not {other}"),
            ));
        }
    };
    let kty = classify(&spki_der).map_err(|m| invalid("pem", m))?;
    Ok(ParsedKey {
        kid: None,
        kty,
        spki_der,
    })
}

/// The keys of a JWKS document (`{"keys": [...]}`) or of a single JWK; private parts
/// are refused, and keys marked `"use": "enc"` too.
pub fn from_jwks(text: &str) -> Result<Vec<ParsedKey>, Vec<FieldError>> {
    let doc: serde_json::Value =
        serde_json::from_str(text).map_err(|e| invalid("jwks", format!("not JSON: {e}")))?;
    let keys: Vec<&serde_json::Value> = match doc.get("keys") {
        Some(serde_json::Value::Array(keys)) => keys.iter().collect(),
        Some(_) => return Err(invalid("jwks.keys", "must be an array")),
        None if doc.get("kty").is_some() => vec![&doc],
        None => return Err(invalid("jwks", "expected a JWKS document with `keys`")),
    };
    if keys.is_empty() || keys.len() > MAX_JWKS_KEYS {
        return Err(invalid("jwks.keys", format!("1 to {MAX_JWKS_KEYS} keys")));
    }
    let mut parsed = Vec::with_capacity(keys.len());
    let mut errors = Vec::new();
    for (i, jwk) in keys.iter().enumerate() {
        match from_jwk(jwk) {
            Ok(key) => parsed.push(key),
            Err(message) => errors.push(FieldError::new(
                format!("jwks.keys[{i}]"),
                "invalid",
                message,
            )),
        }
    }
    if errors.is_empty() {
        Ok(parsed)
    } else {
        Err(errors)
    }
}

fn b64(jwk: &serde_json::Value, member: &str) -> Result<Vec<u8>, String> {
    use base64::Engine as _;
    let text = jwk
        .get(member)
        .and_then(|v| v.as_str())
        .ok_or_else(|| format!("`{member}` is missing"))?;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| format!("`{member}` is not base64url"))
}

fn from_jwk(jwk: &serde_json::Value) -> Result<ParsedKey, String> {
    let text = |m: &str| jwk.get(m).and_then(|v| v.as_str());
    if ["d", "p", "q", "dp", "dq", "qi", "k"]
        .iter()
        .any(|m| jwk.get(*m).is_some())
    {
        return Err("a private or symmetric key: register only the public part".to_owned());
    }
    if text("use").is_some_and(|u| u != "sig") {
        return Err("`use` must be `sig`".to_owned());
    }
    let kid = match text("kid") {
        Some(kid)
            if !kid.is_empty() && kid.len() <= 128 && kid.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Some(kid.to_owned())
        }
        Some(_) => return Err("`kid` must be 1 to 128 visible ASCII characters".to_owned()),
        None => None,
    };
    let (algorithm, key_bits) = match (text("kty"), text("crv")) {
        (Some("EC"), Some("P-256")) => {
            let (x, y) = (b64(jwk, "x")?, b64(jwk, "y")?);
            if x.len() != 32 || y.len() != 32 {
                return Err("`x` and `y` must be 32 bytes each for P-256".to_owned());
            }
            let params = AnyRef::from(&SECP256R1);
            let algorithm = AlgorithmIdentifierOwned {
                oid: ID_EC_PUBLIC_KEY,
                parameters: Some(params.into()),
            };
            (algorithm, [&[4u8][..], &x, &y].concat())
        }
        (Some("OKP"), Some("Ed25519")) => {
            let x = b64(jwk, "x")?;
            if x.len() != 32 {
                return Err("`x` must be 32 bytes for Ed25519".to_owned());
            }
            let algorithm = AlgorithmIdentifierOwned {
                oid: ED25519,
                parameters: None,
            };
            (algorithm, x)
        }
        (Some("RSA"), _) => {
            let (n, e) = (b64(jwk, "n")?, b64(jwk, "e")?);
            let rsa = RsaPublicKey {
                modulus: UintRef::new(&n).map_err(|e| format!("`n`: {e}"))?,
                public_exponent: UintRef::new(&e).map_err(|e| format!("`e`: {e}"))?,
            };
            let algorithm = AlgorithmIdentifierOwned {
                oid: RSA_ENCRYPTION,
                parameters: Some(AnyRef::NULL.into()),
            };
            (algorithm, rsa.to_der().map_err(|e| e.to_string())?)
        }
        (Some("EC"), crv) => {
            return Err(format!(
                "curve {} is not supported (P-256)",
                crv.unwrap_or("?")
            ));
        }
        (kty, _) => {
            return Err(format!(
                "kty {} is not supported (RSA, EC P-256, OKP Ed25519)",
                kty.unwrap_or("?")
            ));
        }
    };
    let spki = SubjectPublicKeyInfoOwned {
        algorithm,
        subject_public_key: BitString::from_bytes(&key_bits).map_err(|e| e.to_string())?,
    };
    let spki_der = spki.to_der().map_err(|e| e.to_string())?;
    let kty = classify(&spki_der)?;
    Ok(ParsedKey { kid, kty, spki_der })
}

/// RFC 8017 A.1.1.
#[derive(der::Sequence)]
struct RsaPublicKey<'a> {
    modulus: UintRef<'a>,
    public_exponent: UintRef<'a>,
}
