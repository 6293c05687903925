//! The operator's master key: seals private keys at rest (AES-256-GCM, aws-lc).

use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use aws_lc_rs::{hkdf, hmac};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::keys::{KeyError, crypto};
use crate::config::{Config, Mode};

/// The operator's key that seals private keys at rest (AES-256-GCM) and from which the
/// other server-wide keys are derived (HKDF-SHA-256), so every replica agrees on them.
pub struct MasterKey {
    aead: RandomizedNonceKey,
    prk: hkdf::Prk,
}

impl MasterKey {
    /// A master key from 32 secret bytes.
    pub fn new(bytes: &[u8; 32]) -> Result<Self, KeyError> {
        let aead =
            RandomizedNonceKey::new(&AES_256_GCM, bytes).map_err(crypto("master key setup"))?;
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"gatehouse master key v1").extract(bytes);
        Ok(Self { aead, prk })
    }

    /// An HMAC-SHA-256 key for one purpose, derived from the master key.
    pub fn derive_hmac(&self, purpose: &str) -> Result<hmac::Key, KeyError> {
        let info = [purpose.as_bytes()];
        let okm = self
            .prk
            .expand(&info, hmac::HMAC_SHA256)
            .map_err(crypto("key derivation"))?;
        Ok(hmac::Key::from(okm))
    }

    /// The configured master key; in dev mode without one, a generated key kept in a 0600
    /// file beside the database.
    pub fn from_config(config: &Config) -> Result<Self, KeyError> {
        use secrecy::ExposeSecret as _;
        let text = if let Some(key) = &config.master_key {
            key.expose_secret().to_owned()
        } else if let Some(path) = &config.master_key_file {
            read_key_file(path)?
        } else if config.mode == Mode::Dev {
            dev_key_file(&dev_key_path(&config.database_url))?
        } else {
            return Err(KeyError::Crypto("no master key configured".to_owned()));
        };
        let bytes = crate::config::parse_master_key(&text).map_err(KeyError::Crypto)?;
        Self::new(&bytes)
    }

    /// Seals `plaintext`, bound to `aad`: nonce || ciphertext || tag.
    pub fn seal(&self, aad: &str, plaintext: &[u8]) -> Result<Vec<u8>, KeyError> {
        let mut data = plaintext.to_vec();
        let nonce = self
            .aead
            .seal_in_place_append_tag(Aad::from(aad.as_bytes()), &mut data)
            .map_err(crypto("sealing"))?;
        let mut out = nonce.as_ref().to_vec();
        out.extend_from_slice(&data);
        Ok(out)
    }

    /// Opens what [`MasterKey::seal`] sealed with the same `aad`.
    pub fn open(&self, aad: &str, sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, data) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut data = data.to_vec();
        let plain = self
            .aead
            .open_in_place(nonce, Aad::from(aad.as_bytes()), &mut data)
            .ok()?;
        Some(plain.to_vec())
    }
}

fn read_key_file(path: &Path) -> Result<String, KeyError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .map_err(|e| KeyError::MasterKeyFile {
            path: path.to_owned(),
            message: e.to_string(),
        })
}

/// Where dev mode keeps its generated master key: beside the SQLite file, or in the
/// working directory for other databases.
pub fn dev_key_path(database_url: &str) -> PathBuf {
    let file = database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))
        .map(|rest| rest.split('?').next().unwrap_or_default())
        .filter(|f| !f.is_empty() && !f.contains(":memory:"));
    match file.map(Path::new).and_then(Path::parent) {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join("gatehouse.master.key"),
        _ => PathBuf::from("gatehouse.master.key"),
    }
}

fn dev_key_file(path: &Path) -> Result<String, KeyError> {
    if path.exists() {
        return read_key_file(path);
    }
    let mut bytes = [0u8; 32];
    super::secret::fill_random(&mut bytes);
    let text = STANDARD.encode(bytes);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options
        .open(path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, format!("{text}\n").as_bytes()));
    match written {
        Ok(()) => {
            tracing::warn!(path = %path.display(), "dev mode: generated a master key file; production needs an explicit master key");
            Ok(text)
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_key_file(path),
        Err(e) => Err(KeyError::MasterKeyFile {
            path: path.to_owned(),
            message: e.to_string(),
        }),
    }
}
