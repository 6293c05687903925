//! RFC 6749 §6 with rotation (RFC 9700 §4.14.2): every use of a refresh token retires it
//! and issues its successor; presenting a retired token revokes the whole family.

use super::{Family, UserGrant, invalid_grant, issue_for_user, note_revoked, revoke_families};
use crate::error::{OAuthError, OAuthErrorCode};
use crate::oauth::clients::Client;
use crate::oauth::model::ScopeSet;
use crate::oauth::params::Params;
use crate::oauth::secret;
use crate::state::AppState;
use crate::store::{self, grants::Rotation};

/// Exchanges a refresh token for a new access token and refresh token.
#[tracing::instrument(level = "debug", skip_all, fields(client_id = %client.client_id))]
pub async fn exchange(
    state: &AppState,
    client: &Client,
    params: &Params,
) -> Result<super::TokenResponse, OAuthError> {
    let token = params.require("refresh_token")?;
    let hash = secret::hash(token);
    let now = state.clock.unix();
    let mut tx = state.store.begin().await?;
    let (family, idle_expires_at) = match store::grants::rotate(&mut tx, &hash, now).await? {
        Rotation::Current {
            family,
            idle_expires_at,
        } => (family, idle_expires_at),
        Rotation::Unknown | Rotation::Revoked => {
            return Err(invalid_grant("the refresh token is invalid or revoked"));
        }
        Rotation::Reused(family) => {
            if family.client_id != client.client_id.as_str() {
                return Err(invalid_grant("the refresh token is invalid or revoked"));
            }
            let revoked = revoke_families(
                state,
                &mut tx,
                std::slice::from_ref(&family.id),
                client.client_id.as_str(),
                "refresh token reused",
            )
            .await?;
            tx.commit().await?;
            note_revoked(state, &revoked);
            tracing::warn!(client_id = %client.client_id, family = %family.id, "refresh token reuse detected; family revoked");
            return Err(invalid_grant(
                "the refresh token was already used; every token of this grant is revoked",
            ));
        }
    };
    // Failures below drop `tx`: the token stays current.
    if family.client_id != client.client_id.as_str() {
        return Err(invalid_grant("the refresh token is invalid or revoked"));
    }
    if family.expires_at.is_some_and(|end| end <= now) {
        return Err(invalid_grant("the refresh token has expired"));
    }
    if idle_expires_at.is_some_and(|end| end <= now) {
        return Err(invalid_grant(
            "the refresh token has expired (unused for too long)",
        ));
    }
    let granted = ScopeSet::parse(&family.scope).map_err(|e| invalid_grant(e.message))?;
    let scope = match params.get("scope") {
        None => granted.clone(),
        Some(raw) => {
            let requested = ScopeSet::parse(raw)
                .map_err(|e| OAuthError::new(OAuthErrorCode::InvalidScope, e.message))?;
            if !requested.is_subset(&granted) {
                return Err(OAuthError::new(
                    OAuthErrorCode::InvalidScope,
                    format!("a refresh may narrow the scope, not widen it (granted: {granted})"),
                ));
            }
            requested
        }
    };
    let user = store::users::by_id_in(&mut tx, &family.user_id)
        .await?
        .filter(|u| u.enabled)
        .ok_or_else(|| invalid_grant("the user is disabled"))?;
    let grant = UserGrant {
        client,
        user: &user,
        granted: &granted,
        scope: &scope,
        auth_time: family.auth_time,
        nonce: None,
    };
    let continues = Family::Continue {
        id: &family.id,
        expires_at: family.expires_at,
    };
    let issuance = issue_for_user(state, &mut tx, &grant, continues).await?;
    tx.commit().await?;
    Ok(issuance.response)
}
