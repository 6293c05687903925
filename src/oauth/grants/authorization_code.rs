//! RFC 6749 §4.1.3 with RFC 7636: redeem an authorization code. The code is single use:
//! the first redemption claims it inside the transaction that writes what it issues; a
//! second one by the same client finds it used and revokes everything the first issued
//! (RFC 6749 §4.1.2); another client presenting it only hears that it is invalid.

use super::{UserGrant, invalid_grant, issue_for_user, note_revoked, revoke_families};
use crate::error::OAuthError;
use crate::model::Client;
use crate::model::ScopeSet;
use crate::oauth::Ctx;
use crate::oauth::params::Params;
use crate::oauth::{pkce, secret};
use crate::store::{self, grants::Redeemed};

/// Exchanges `code` for tokens.
#[tracing::instrument(level = "debug", skip_all, fields(client_id = %client.client_id))]
pub async fn exchange(
    ctx: &Ctx<'_>,
    client: &Client,
    params: &Params,
    jkt: Option<&str>,
) -> Result<super::TokenResponse, OAuthError> {
    let code = params.require("code")?;
    let code_hash = secret::hash(code);
    let now = ctx.clock.unix();
    let mut tx = ctx.store.begin().await?;
    let row = match store::grants::redeem_code(&mut tx, &code_hash, now).await? {
        Redeemed::First(row) => row,
        Redeemed::Unknown => return Err(invalid_grant("the code is invalid")),
        // Another client's code tells it nothing and revokes nothing: only the client the
        // code was issued to can prove a replay (RFC 9700 §4.2.4), and a stranger who
        // learned a used code must not be able to end the user's session with the app.
        Redeemed::Replayed { client_id, .. } if client_id != client.client_id.as_str() => {
            return Err(invalid_grant("the code is invalid"));
        }
        Redeemed::Replayed { issued, .. } => {
            return Err(replayed(ctx, tx, client, issued, now).await?);
        }
    };
    // Every failure below drops `tx`: the claim rolls back and nothing is written.
    if row.client_id != client.client_id.as_str() {
        return Err(invalid_grant("the code was issued to another client"));
    }
    if row.expires_at < now {
        return Err(invalid_grant("the code has expired"));
    }
    match params.get("redirect_uri") {
        Some(uri) if uri == row.redirect_uri => {}
        Some(_) => {
            return Err(invalid_grant(
                "redirect_uri differs from the authorization request's",
            ));
        }
        None => {
            return Err(invalid_grant(
                "redirect_uri is required (it was in the authorization request)",
            ));
        }
    }
    // A code requested with `dpop_jkt` is bound to that key (RFC 9449 §10).
    if let Some(bound) = &row.dpop_jkt
        && jkt != Some(bound.as_str())
    {
        return Err(crate::oauth::dpop::invalid_proof(
            "the code is bound to a DPoP key (dpop_jkt): redeem it with a proof of that key",
        ));
    }
    match (&row.code_challenge, params.get("code_verifier")) {
        (Some(challenge), Some(verifier)) => {
            pkce::verify(verifier, challenge).map_err(|e| invalid_grant(e.to_string()))?;
        }
        (Some(_), None) => return Err(invalid_grant("code_verifier is required")),
        (None, Some(_)) => {
            return Err(invalid_grant(
                "code_verifier given, but the authorization request had no code_challenge",
            ));
        }
        (None, None) => {}
    }
    let user = store::users::by_id_in(&mut tx, &row.user_id)
        .await?
        .filter(|u| u.enabled)
        .ok_or_else(|| invalid_grant("the user is disabled"))?;
    let scope = ScopeSet::parse(&row.scope).map_err(|e| invalid_grant(e.message))?;
    let grant = UserGrant {
        client,
        user: &user,
        granted: &scope,
        scope: &scope,
        auth_time: row.auth_time,
        nonce: row.nonce.as_deref(),
        id_token_claims: row.id_token_claims.as_deref(),
        sid: row.sid.as_deref(),
        jkt,
    };
    let issuance = issue_for_user(ctx, &mut tx, &grant).await?;
    store::grants::record_code_issue(&mut tx, &code_hash, &issuance.issued).await?;
    tx.commit().await?;
    Ok(issuance.response)
}

/// A code redeemed a second time by its own client: whoever holds it may have stolen it,
/// so what it issued is revoked. Returns the error to answer.
async fn replayed(
    ctx: &Ctx<'_>,
    mut tx: store::Tx,
    client: &Client,
    issued: store::grants::Issued,
    now: i64,
) -> Result<OAuthError, OAuthError> {
    // Whoever holds a replayed code may have stolen it: revoke what it gave.
    let mut revoked = Vec::new();
    if let (Some(jti), Some(exp)) = (&issued.access_jti, issued.access_exp) {
        revoked.push((jti.clone(), exp));
        store::grants::revoke_access_tokens(&mut tx, &revoked, client.client_id.as_str(), now)
            .await?;
    }
    if let Some(family) = issued.family_id {
        revoked.extend(
            revoke_families(
                ctx,
                &mut tx,
                &[family],
                client.client_id.as_str(),
                "authorization code replayed",
            )
            .await?,
        );
    }
    tx.commit().await?;
    note_revoked(ctx, &revoked);
    tracing::warn!(client_id = %client.client_id, "authorization code replayed; its tokens are revoked");
    Ok(invalid_grant(
        "the code was already used; the tokens it issued are revoked",
    ))
}
