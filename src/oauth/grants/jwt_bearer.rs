//! RFC 7523 §2.1: a partner's server presents a JWT, signed with a key registered for its
//! client, asserting a user the client is pre-authorized for; it gets an access token for
//! that user (no refresh token: the partner signs a new assertion instead).

use super::{Subject, TokenResponse, access_token_only, invalid_grant, narrow_scope};
use crate::error::{OAuthError, OAuthErrorCode};
use crate::model::Client;
use crate::model::{Scope, ScopeSet, Username};
use crate::oauth::Ctx;
use crate::oauth::client_auth::{self, AssertionUse};
use crate::oauth::params::Params;
use crate::store;

/// The partner acts for the user now: no refresh token is issued.
const NOT_GRANTED: [Scope; 1] = [Scope::OfflineAccess];

/// Verifies the `assertion` and issues an access token for its subject.
#[tracing::instrument(level = "debug", skip_all, fields(client_id = %client.client_id))]
pub async fn exchange(
    ctx: &Ctx<'_>,
    client: &Client,
    params: &Params,
    jkt: Option<&str>,
) -> Result<TokenResponse, OAuthError> {
    let assertion = params.require("assertion")?;
    let subject =
        client_auth::verify_assertion(ctx, client, assertion, AssertionUse::AuthorizationGrant)
            .await
            .map_err(invalid_grant)?;
    let not_authorized = || {
        invalid_grant(format!(
            "sub {} is not a user pre-authorized for this client",
            super::quoted(&subject)
        ))
    };
    let username = Username::parse(&subject).map_err(|_| not_authorized())?;
    if !client.pre_authorized_users.contains(&username) {
        return Err(not_authorized());
    }
    let user = store::users::by_username(ctx.store, &username)
        .await
        .map_err(|e| OAuthError::new(OAuthErrorCode::ServerError, e.to_string()))?
        .filter(|u| u.enabled)
        .ok_or_else(|| invalid_grant(format!("the user `{username}` is disabled")))?;

    let delegable = client.scopes.delegable();
    let allowed = ScopeSet::new(delegable.iter().filter(|s| !NOT_GRANTED.contains(s)));
    let scope = narrow_scope(params, &allowed, super::exceeds_delegable(params))?;
    access_token_only(ctx, client, Subject::User(&user.id), &scope, jkt)
}
