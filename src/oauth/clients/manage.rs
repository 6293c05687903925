//! Changing a registered client: finding it, rotating its secret, enabling and disabling it.

use super::*;
use crate::clock::Clock;
use crate::model::Client;
use crate::oauth::RegistryError;
use crate::oauth::secret;
use crate::store::{self, Store};

/// Finds a client by id.
pub async fn find(store: &Store, client_id: &str) -> Result<Client, RegistryError> {
    store::clients::get(store, client_id)
        .await?
        .ok_or_else(|| RegistryError::NotFound(format!("client {client_id}")))
}

/// Replaces a secret-based client's secret; the old one stops working at once.
pub async fn rotate_secret(
    store: &Store,
    clock: &dyn Clock,
    client_id: &str,
) -> Result<Created, RegistryError> {
    let client = find(store, client_id).await?;
    if !client.token_endpoint_auth_method.uses_secret() {
        return Err(RegistryError::Invalid(vec![crate::error::FieldError::new(
            "client_id",
            "invalid",
            format!(
                "client authenticates with {}, not a secret",
                client.token_endpoint_auth_method
            ),
        )]));
    }
    let secret = secret::generate();
    store::clients::set_secret_hash(
        store,
        client_id,
        &secret::hash_secret(&secret),
        clock.unix(),
    )
    .await?;
    tracing::info!(client_id, "client secret rotated");
    Ok(Created {
        client: find(store, client_id).await?,
        secret: Some(secret),
    })
}

/// Enables or disables a client. Disabling ends what was issued to it: access tokens are
/// refused (every replica within a sync interval) and refresh families revoked.
pub async fn set_enabled(
    store: &Store,
    clock: &dyn Clock,
    client_id: &str,
    enabled: bool,
) -> Result<Client, RegistryError> {
    let now = clock.unix();
    let mut tx = store.begin().await?;
    if !store::clients::set_enabled(&mut tx, client_id, enabled, now).await? {
        return Err(RegistryError::NotFound(format!("client {client_id}")));
    }
    if !enabled {
        // What was issued stops too: access tokens (through the cut-off) and refresh
        // families.
        let cutoff = store::cutoffs::Cutoff {
            user_id: String::new(),
            client_id: client_id.to_owned(),
            cut_at: now,
        };
        store::cutoffs::insert(&mut tx, &cutoff).await?;
        store::grants::revoke_families_of(&mut tx, None, Some(client_id), "client disabled", now)
            .await?;
    }
    tx.commit().await?;
    tracing::info!(client_id, enabled, "client enabled flag changed");
    find(store, client_id).await
}
