//! RFC 6749 §6 with rotation (RFC 9700 §4.14.2): every use of a refresh token retires it
//! and issues its successor; presenting a retired token revokes the whole family.
//!
//! The checks and the signing happen before anything is written; the write is then one
//! atomic statement that inserts the successor only if the presented token is still
//! current. Whoever loses that race presented a token twice — reuse.

use secrecy::ExposeSecret as _;

use super::{UserGrant, invalid_grant, new_refresh_token, revoke_family, sign_for_user};
use crate::error::OAuthError;
use crate::model::Client;
use crate::model::ScopeSet;
use crate::oauth::Ctx;
use crate::oauth::params::Params;
use crate::oauth::secret;
use crate::store::{
    self,
    grants::{FamilyRow, RefreshState},
};

/// Exchanges a refresh token for a new access token and refresh token.
#[tracing::instrument(level = "debug", skip_all, fields(client_id = %client.client_id))]
pub async fn exchange(
    ctx: &Ctx<'_>,
    client: &Client,
    params: &Params,
    jkt: Option<&str>,
) -> Result<super::TokenResponse, OAuthError> {
    let token = params.require("refresh_token")?;
    let hash = secret::hash(token);
    let now = ctx.clock.unix();
    let invalid = || invalid_grant("the refresh token is invalid or revoked");
    let found = ctx.refresh.lookup(hash).await?.ok_or_else(invalid)?;
    let family = &found.family;
    if family.client_id != client.client_id.as_str() {
        return Err(invalid());
    }
    match found.state_at(now) {
        RefreshState::Live => {}
        RefreshState::Revoked => return Err(invalid()),
        RefreshState::Rotated => return Err(reused(ctx, client, family).await?),
        RefreshState::Expired => return Err(invalid_grant("the refresh token has expired")),
        RefreshState::Idle => {
            return Err(invalid_grant(
                "the refresh token has expired (unused for too long)",
            ));
        }
    }
    // A public client's refresh token is bound to the key of its first tokens.
    if let Some(bound) = &family.dpop_jkt
        && jkt != Some(bound.as_str())
    {
        return Err(crate::oauth::dpop::invalid_proof(
            "the refresh token is bound to a DPoP key: refresh with a proof of that key",
        ));
    }
    let granted = ScopeSet::parse(&family.scope).map_err(|e| invalid_grant(e.message))?;
    let scope = super::narrow_scope(params, &granted, |granted| {
        format!("a refresh may narrow the scope, not widen it (granted: {granted})")
    })?;
    let user = &found.user;
    if !user.enabled {
        return Err(invalid_grant("the user is disabled"));
    }
    let grant = UserGrant {
        client,
        user,
        granted: &granted,
        scope: &scope,
        auth_time: family.auth_time,
        nonce: None,
        id_token_claims: None,
        sid: family.sid.as_deref(),
        jkt,
    };
    let signed = sign_for_user(ctx, &grant, now)?;
    let (successor, row) = new_refresh_token(ctx, client, family.expires_at, &signed.access, now);
    // The FAPI 2.0 Security Profile (§5.3.2.1) has a confidential client keep its refresh
    // token: it is bound to the client's authentication, and rotation only loses tokens
    // to network failures.
    if client.fapi2() && !ctx.config.fapi2_refresh_token_rotation {
        if !store::grants::keep(ctx.store, &hash, &row).await? {
            return Err(invalid());
        }
        return Ok(signed.into_response(None));
    }
    let won = ctx
        .refresh
        .rotate(store::grants::Rotation {
            parent: hash,
            successor: secret::hash_secret(&successor),
            row,
            now,
        })
        .await?;
    if !won {
        return Err(reused(ctx, client, family).await?);
    }
    Ok(signed.into_response(Some(successor.expose_secret().to_owned())))
}

/// A rotated token came back: revoke the family and every access token it issued.
async fn reused(
    ctx: &Ctx<'_>,
    client: &Client,
    family: &FamilyRow,
) -> Result<OAuthError, OAuthError> {
    revoke_family(
        ctx,
        &family.id,
        client.client_id.as_str(),
        "refresh token reused",
    )
    .await?;
    ctx.audit
        .record(
            crate::audit::Event::new("refresh.reuse_detected")
                .failed()
                .client(client.client_id.as_str())
                .user(family.user_id.as_str())
                .detail("family", family.id.as_str()),
        )
        .await;
    Ok(invalid_grant(
        "the refresh token was already used; every token of this grant is revoked",
    ))
}
