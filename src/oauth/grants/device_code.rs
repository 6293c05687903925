//! RFC 8628 §3.4–3.5: the device polls with its device code until the user has decided.
//! An approved code is redeemed once; polls closer together than the interval get
//! `slow_down` and the interval grows by 5 s.

use super::{UserGrant, invalid_grant, issue_for_user};
use crate::error::{OAuthError, OAuthErrorCode};
use crate::oauth::clients::Client;
use crate::oauth::device::SLOW_DOWN_SECS;
use crate::oauth::model::ScopeSet;
use crate::oauth::params::Params;
use crate::oauth::secret;
use crate::state::AppState;
use crate::store::{self, devices::Poll};

/// Polls with `device_code`.
#[tracing::instrument(level = "debug", skip_all, fields(client_id = %client.client_id))]
pub async fn exchange(
    state: &AppState,
    client: &Client,
    params: &Params,
) -> Result<super::TokenResponse, OAuthError> {
    let code = params.require("device_code")?;
    let hash = secret::hash(code);
    let now = state.clock.unix();
    let mut tx = state.store.begin().await?;
    let row = match store::devices::poll(&mut tx, &hash, SLOW_DOWN_SECS, now).await? {
        Poll::Unknown => return Err(invalid_grant("the device code is invalid")),
        Poll::TooFast(row) => {
            tx.commit().await?;
            return Err(OAuthError::new(
                OAuthErrorCode::SlowDown,
                format!("poll at most every {} s", row.poll_interval),
            ));
        }
        Poll::Found(row) => row,
    };
    if row.client_id != client.client_id.as_str() {
        // Not this client's code: nothing about it is recorded or told.
        return Err(invalid_grant("the device code is invalid"));
    }
    let pending = |code, text: &str| -> Result<super::TokenResponse, OAuthError> {
        Err(OAuthError::new(code, text))
    };
    if row.status == "issued" {
        tx.commit().await?;
        return Err(invalid_grant("the device code was already used"));
    }
    if now > row.expires_at {
        tx.commit().await?;
        return pending(
            OAuthErrorCode::ExpiredToken,
            "the device code has expired; start again",
        );
    }
    match row.status.as_str() {
        "pending" => {
            tx.commit().await?;
            return pending(
                OAuthErrorCode::AuthorizationPending,
                "the user has not decided yet",
            );
        }
        "denied" => {
            tx.commit().await?;
            return pending(OAuthErrorCode::AccessDenied, "the user denied the request");
        }
        _ => {}
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
    };
    let issuance = issue_for_user(state, &mut tx, &grant).await?;
    tx.commit().await?;
    tracing::info!(user_id = %user.id, client_id = %client.client_id, "device code redeemed");
    Ok(issuance.response)
}
