//! RFC 8628 §3.4–3.5: the device polls with its device code until the user has decided.
//! An approved code is redeemed once (claimed in the transaction that writes the
//! tokens); polls closer together than the interval get `slow_down` and the interval
//! grows by 5 s for good. A pending poll costs one read: the time of each device's last
//! poll is kept in memory by the process that answered it.

use super::{UserGrant, invalid_grant, issue_for_user};
use crate::error::{OAuthError, OAuthErrorCode};
use crate::model::Client;
use crate::model::ScopeSet;
use crate::oauth::Ctx;
use crate::oauth::device::SLOW_DOWN_SECS;
use crate::oauth::params::Params;
use crate::oauth::secret;
use crate::store;

/// Polls with `device_code`.
#[tracing::instrument(level = "debug", skip_all, fields(client_id = %client.client_id))]
pub async fn exchange(
    ctx: &Ctx<'_>,
    client: &Client,
    params: &Params,
    jkt: Option<&str>,
) -> Result<super::TokenResponse, OAuthError> {
    let code = params.require("device_code")?;
    let hash = secret::hash(code);
    let now = ctx.clock.unix();
    let row = store::devices::by_device_code(ctx.store, &hash)
        .await?
        // Another client's code: nothing about it is recorded or told.
        .filter(|row| row.client_id == client.client_id.as_str())
        .ok_or_else(|| invalid_grant("the device code is invalid"))?;
    if row.status == "issued" {
        return Err(invalid_grant("the device code was already used"));
    }
    // The last poll is kept in memory (a pending poll writes nothing); a slow_down is
    // also written, so that every replica keeps the longer interval.
    let seen = ctx.device_polls.get(&hash);
    let last = row.last_polled_at.max(seen.map(|(at, _)| at));
    let interval = row.poll_interval.max(seen.map_or(0, |(_, every)| every));
    let too_fast = last.is_some_and(|last| now < last + interval);
    let interval = interval + if too_fast { SLOW_DOWN_SECS } else { 0 };
    ctx.device_polls.insert(hash, (now, interval));
    if too_fast {
        store::devices::record_poll(ctx.store, &hash, now, interval).await?;
    }
    let answer = |code, text: String| -> Result<super::TokenResponse, OAuthError> {
        Err(OAuthError::new(code, text))
    };
    if too_fast {
        return answer(
            OAuthErrorCode::SlowDown,
            format!("poll at most every {interval} s"),
        );
    }
    if now > row.expires_at {
        return answer(
            OAuthErrorCode::ExpiredToken,
            "the device code has expired; start again".to_owned(),
        );
    }
    match row.status.as_str() {
        "pending" => {
            return answer(
                OAuthErrorCode::AuthorizationPending,
                "the user has not decided yet".to_owned(),
            );
        }
        "denied" => {
            return answer(
                OAuthErrorCode::AccessDenied,
                "the user denied the request".to_owned(),
            );
        }
        _ => {}
    }
    let mut tx = ctx.store.begin().await?;
    if !store::devices::claim_approved(&mut tx, &hash, now).await? {
        return Err(invalid_grant("the device code was already used"));
    }
    // Approved, and now claimed as issued inside `tx`: every failure below rolls it back.
    let user_id = row
        .user_id
        .as_deref()
        .ok_or_else(|| invalid_grant("the device code is invalid"))?;
    let user = store::users::by_id_in(&mut tx, user_id)
        .await?
        .filter(|u| u.enabled)
        .ok_or_else(|| invalid_grant("the user is disabled"))?;
    let scope = ScopeSet::parse(&row.scope).map_err(|e| invalid_grant(e.message))?;
    let grant = UserGrant {
        client,
        user: &user,
        granted: &scope,
        scope: &scope,
        auth_time: row.auth_time.unwrap_or(now),
        nonce: None,
        id_token_claims: None,
        // The device is not part of the browser session that approved it: signing out
        // there does not sign the device out.
        sid: None,
        jkt,
    };
    let issuance = issue_for_user(ctx, &mut tx, &grant).await?;
    tx.commit().await?;
    tracing::info!(user_id = %user.id, client_id = %client.client_id, "device code redeemed");
    Ok(issuance.response)
}
