//! Connected apps: what a user has granted to which client — consents and live refresh-token grants — and
//! withdrawing it: the consent is forgotten and every refresh token and access token the
//! client holds for the user is revoked (access tokens through a cut-off, so that those
//! issued without a refresh token stop too).

use serde::Serialize;
use utoipa::ToSchema;

use super::grants::{note_revoked, revoke_families};
use crate::oauth::Ctx;
use crate::store::{self, StoreError};

/// One client's access to a user's account.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"client_id": "Xk2bJ9qLm4Tz8RwY1nVc3d", "client_name": "Field App",
    "scope": "openid api offline_access", "granted_at": "2026-11-23T10:00:00Z", "updated_at": "2026-11-23T10:00:00Z"}))]
pub struct Grant {
    /// The client.
    pub client_id: String,
    /// Its name.
    pub client_name: String,
    /// The scopes approved, space-separated.
    pub scope: String,
    /// First approved.
    #[serde(serialize_with = "crate::clock::as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub granted_at: i64,
    /// Last widened.
    #[serde(serialize_with = "crate::clock::as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: i64,
}

/// The user's grants, newest first.
pub async fn list(ctx: &Ctx<'_>, user_id: &str) -> Result<Vec<Grant>, StoreError> {
    Ok(store::consents::list(ctx.store, user_id)
        .await?
        .into_iter()
        .map(|c| Grant {
            client_id: c.client_id,
            client_name: c.client_name,
            scope: c.scope,
            granted_at: c.created_at,
            updated_at: c.updated_at,
        })
        .collect())
}

/// Withdraws everything `client_id` holds for `user_id`; false if it held nothing.
pub async fn revoke(ctx: &Ctx<'_>, user_id: &str, client_id: &str) -> Result<bool, StoreError> {
    let had_consent = store::consents::delete(ctx.store, user_id, client_id).await?;
    let mut tx = ctx.store.begin().await?;
    let families = store::grants::live_families(&mut tx, user_id, Some(client_id)).await?;
    let revoked = revoke_families(ctx, &mut tx, &families, client_id, "grant withdrawn").await?;
    let had_anything = had_consent || !families.is_empty();
    // Access tokens issued without a refresh token stop as well.
    let cutoff = store::cutoffs::Cutoff {
        user_id: user_id.to_owned(),
        client_id: client_id.to_owned(),
        cut_at: ctx.clock.unix(),
    };
    if had_anything {
        store::cutoffs::insert(&mut tx, &cutoff).await?;
    }
    tx.commit().await?;
    note_revoked(ctx, &revoked);
    // Logged only when the client held something: `client_id` is then a real one, never
    // text a caller made up.
    if had_anything {
        ctx.tokens.cutoffs.insert(&cutoff);
        tracing::info!(
            user_id,
            client_id,
            families = families.len(),
            "grant withdrawn"
        );
    }
    Ok(had_anything)
}
