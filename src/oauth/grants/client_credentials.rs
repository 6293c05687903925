//! RFC 6749 §4.4: a confidential client obtains a token for itself.

use super::TokenResponse;
use crate::error::{OAuthError, OAuthErrorCode};
use crate::model::Client;
use crate::model::{ClientType, Scope, ScopeSet};
use crate::oauth::Ctx;
use crate::oauth::params::Params;

/// Scopes that only make sense when a user is present.
const USER_SCOPES: [Scope; 4] = [
    Scope::OpenId,
    Scope::Profile,
    Scope::Email,
    Scope::OfflineAccess,
];

/// Issues an access token whose subject is the client; no refresh token.
#[tracing::instrument(level = "debug", skip_all, fields(client_id = %client.client_id))]
pub fn exchange(
    ctx: &Ctx<'_>,
    client: &Client,
    params: &Params,
    jkt: Option<&str>,
) -> Result<TokenResponse, OAuthError> {
    if client.client_type != ClientType::Confidential {
        return Err(OAuthError::new(
            OAuthErrorCode::UnauthorizedClient,
            "client_credentials needs a confidential client",
        ));
    }
    let allowed = ScopeSet::new(client.scopes.iter().filter(|s| !USER_SCOPES.contains(s)));
    let scope = super::narrow_scope(params, &allowed, |allowed| {
        let user_scope = params
            .get("scope")
            .into_iter()
            .flat_map(str::split_whitespace)
            .find(|s| USER_SCOPES.iter().any(|u| u.as_str() == *s));
        match user_scope {
            Some(s) => format!("scope `{s}` needs a user; client_credentials has none"),
            None => super::exceeds_client(allowed),
        }
    })?;
    super::access_token_only(ctx, client, super::Subject::Client, &scope, jkt)
}
