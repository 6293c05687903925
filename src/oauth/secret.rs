//! Server-generated secrets (client secrets, codes, refresh tokens): generation, hashing and
//! constant-time verification.
//!
//! These secrets carry 256 bits from the OS CSPRNG, so a fast SHA-256 is the right storage:
//! nobody can brute-force a preimage of a uniformly random 256-bit value, and a slow password
//! hash (argon2, ~18 ms) would only cap the token endpoint at ~55 requests/s per core while
//! adding no protection. Human-chosen passwords are a different matter: see `password`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::TryRngCore as _;
use rand::rngs::OsRng;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::model::SecretHash;

/// Fills `buf` from the operating system's CSPRNG.
pub fn fill_random(buf: &mut [u8]) {
    // The OS generator failing is unrecoverable for a security service: refuse to go on
    // with weak randomness rather than issue guessable credentials.
    #[allow(clippy::expect_used)]
    OsRng
        .try_fill_bytes(buf)
        .expect("the operating system's random generator failed");
}

/// A new URL-safe secret of 256 random bits (43 characters).
pub fn generate() -> SecretString {
    let mut bytes = [0u8; 32];
    fill_random(&mut bytes);
    SecretString::from(URL_SAFE_NO_PAD.encode(bytes))
}

/// A random, URL-safe identifier of `bytes` random bytes from the OS (client ids, the demo
/// password).
pub fn random_id(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    fill_random(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// A new client id: 22 letters and digits (131 random bits). Only alphanumerics, so that an
/// id never starts with `-` and reads as an option on a command line.
pub fn client_id() -> String {
    use rand::Rng as _;
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(22)
        .map(char::from)
        .collect()
}

/// A unique token id (`jti`): 128 bits from the thread-local CSPRNG (ChaCha, seeded and
/// reseeded from the OS). A `jti` must be unique and unguessable, not secret, and this
/// avoids a system call on every token issued.
pub fn token_id() -> String {
    let bytes: [u8; 16] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Hashes a presented or generated secret for storage and lookup.
pub fn hash(secret: &str) -> SecretHash {
    Sha256::digest(secret.as_bytes()).into()
}

/// Whether `presented` is the secret whose hash is `stored`, in constant time.
pub fn verify(presented: &str, stored: &SecretHash) -> bool {
    hash(presented).ct_eq(stored).into()
}

/// Hashes a generated secret.
pub fn hash_secret(secret: &SecretString) -> SecretHash {
    hash(secret.expose_secret())
}
