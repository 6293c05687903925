//! Proof Key for Code Exchange (RFC 7636), S256 only: `plain` would let anyone who sees the
//! authorization request redeem the code (RFC 9700 §2.1.1).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// Why a challenge or verifier was refused; the text is the `error_description`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PkceError {
    /// `code_challenge_method` other than S256 (or absent, which means `plain`).
    #[error("code_challenge_method must be S256 (plain is not accepted)")]
    Method,
    /// Not 43 base64url characters (the encoding of a SHA-256).
    #[error("code_challenge must be the 43-character base64url SHA-256 of the verifier")]
    Challenge,
    /// RFC 7636 §4.1: 43 to 128 characters of `[A-Za-z0-9-._~]`.
    #[error("code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~")]
    VerifierFormat,
    /// The verifier does not hash to the challenge.
    #[error("code_verifier does not match the code_challenge")]
    Mismatch,
}

/// Checks a `code_challenge` and its method as the authorization request gives them.
pub fn check_challenge(challenge: &str, method: Option<&str>) -> Result<(), PkceError> {
    if method != Some("S256") {
        return Err(PkceError::Method);
    }
    let valid = challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        return Err(PkceError::Challenge);
    }
    Ok(())
}

/// Whether `verifier` is the preimage of the S256 `challenge`, compared in constant time.
pub fn verify(verifier: &str, challenge: &str) -> Result<(), PkceError> {
    let valid = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    if !valid {
        return Err(PkceError::VerifierFormat);
    }
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    if bool::from(computed.as_bytes().ct_eq(challenge.as_bytes())) {
        Ok(())
    } else {
        Err(PkceError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_7636_appendix_b_example() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert_eq!(check_challenge(challenge, Some("S256")), Ok(()));
        assert_eq!(verify(verifier, challenge), Ok(()));
        assert_eq!(
            verify(&verifier.replace('d', "e"), challenge),
            Err(PkceError::Mismatch)
        );
        assert_eq!(
            check_challenge(challenge, Some("plain")),
            Err(PkceError::Method)
        );
        assert_eq!(check_challenge(challenge, None), Err(PkceError::Method));
        assert_eq!(verify("short", challenge), Err(PkceError::VerifierFormat));
    }
}
