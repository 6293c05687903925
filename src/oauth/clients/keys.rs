//! A client's assertion keys: PEM keys, certificates and JWKS documents, listed and removed.

use serde::Serialize;
use utoipa::ToSchema;

use super::*;
use crate::clock::Clock;
use crate::oauth::RegistryError;
use crate::store::{self, Store};

/// A client's registered assertion key.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ClientKey {
    /// The key id assertions carry in their header: base64url SHA-256 of the key's DER.
    pub kid: String,
    /// `RSA`, `EC` or `OKP`.
    pub kty: String,
    /// The client.
    pub client_id: String,
}

/// Registers a public key a client signs assertions with: a PEM `PUBLIC KEY` or an X.509
/// `CERTIFICATE` (its subject's key). Its kid is the base64url SHA-256 of the key's DER.
pub async fn add_key(
    store: &Store,
    clock: &dyn Clock,
    client_id: &str,
    pem_text: &str,
) -> Result<ClientKey, RegistryError> {
    let parsed =
        crate::oauth::assertion_keys::from_pem(pem_text).map_err(RegistryError::Invalid)?;
    find(store, client_id).await?;
    store_key(store, clock, client_id, &parsed).await
}

/// Registers every key of a JWKS document (kids as the document names them; a key
/// without one gets the SHA-256 of its DER). All or none: one bad key refuses them all.
pub async fn add_jwks(
    store: &Store,
    clock: &dyn Clock,
    client_id: &str,
    jwks_text: &str,
) -> Result<Vec<ClientKey>, RegistryError> {
    let parsed =
        crate::oauth::assertion_keys::from_jwks(jwks_text).map_err(RegistryError::Invalid)?;
    find(store, client_id).await?;
    let rows: Vec<store::client_keys::ClientKeyRow> = parsed
        .iter()
        .map(|key| key_row(clock, client_id, key))
        .collect();
    store::client_keys::insert_all(store, &rows).await?;
    tracing::info!(
        client_id,
        keys = rows.len(),
        "client keys added from a JWKS"
    );
    Ok(rows.iter().map(ClientKey::from).collect())
}

/// A client's assertion keys, oldest first.
pub async fn list_keys(store: &Store, client_id: &str) -> Result<Vec<ClientKey>, RegistryError> {
    find(store, client_id).await?;
    Ok(store::client_keys::for_client(store, client_id)
        .await?
        .iter()
        .map(ClientKey::from)
        .collect())
}

/// Removes one of a client's keys: assertions signed with it stop verifying (on every
/// replica within a sync interval).
pub async fn remove_key(store: &Store, client_id: &str, kid: &str) -> Result<(), RegistryError> {
    find(store, client_id).await?;
    if !store::client_keys::delete(store, client_id, kid).await? {
        return Err(RegistryError::NotFound(format!(
            "key {kid} of client {client_id}"
        )));
    }
    tracing::info!(client_id, kid, "client key removed");
    Ok(())
}

impl From<&store::client_keys::ClientKeyRow> for ClientKey {
    fn from(row: &store::client_keys::ClientKeyRow) -> Self {
        Self {
            kid: row.kid.clone(),
            kty: row.kty.clone(),
            client_id: row.client_id.clone(),
        }
    }
}

pub(super) fn key_row(
    clock: &dyn Clock,
    client_id: &str,
    key: &crate::oauth::assertion_keys::ParsedKey,
) -> store::client_keys::ClientKeyRow {
    use base64::Engine as _;
    use sha2::Digest as _;
    let kid = key.kid.clone().unwrap_or_else(|| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(&key.spki_der))
    });
    store::client_keys::ClientKeyRow {
        kid,
        client_id: client_id.to_owned(),
        kty: key.kty.to_owned(),
        public_pem: key.pem(),
        created_at: clock.unix(),
    }
}

pub(super) async fn store_key(
    store: &Store,
    clock: &dyn Clock,
    client_id: &str,
    key: &crate::oauth::assertion_keys::ParsedKey,
) -> Result<ClientKey, RegistryError> {
    let row = key_row(clock, client_id, key);
    store::client_keys::insert_all(store, std::slice::from_ref(&row)).await?;
    tracing::info!(client_id, kid = %row.kid, kty = %row.kty, "client key added");
    Ok(ClientKey::from(&row))
}
