//! RFC 6749 §4.4: a confidential client obtains a token for itself.

use super::TokenResponse;
use crate::error::{OAuthError, OAuthErrorCode};
use crate::oauth::clients::Client;
use crate::oauth::model::{ClientType, Scope, ScopeSet};
use crate::oauth::params::Params;
use crate::state::AppState;

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
    state: &AppState,
    client: &Client,
    params: &Params,
) -> Result<TokenResponse, OAuthError> {
    if client.client_type != ClientType::Confidential {
        return Err(OAuthError::new(
            OAuthErrorCode::UnauthorizedClient,
            "client_credentials needs a confidential client",
        ));
    }
    let allowed = ScopeSet::new(client.scopes.iter().filter(|s| !USER_SCOPES.contains(s)));
    let scope = match params.get("scope") {
        None => allowed,
        Some(raw) => {
            let requested = ScopeSet::parse(raw)
                .map_err(|e| OAuthError::new(OAuthErrorCode::InvalidScope, e.message))?;
            if let Some(user_scope) = requested.iter().find(|s| USER_SCOPES.contains(s)) {
                return Err(OAuthError::new(
                    OAuthErrorCode::InvalidScope,
                    format!("scope `{user_scope}` needs a user; client_credentials has none"),
                ));
            }
            if !requested.is_subset(&allowed) {
                return Err(OAuthError::new(
                    OAuthErrorCode::InvalidScope,
                    format!("requested scope exceeds what this client may have ({allowed})"),
                ));
            }
            requested
        }
    };
    let ttl = state.access_token_ttl(client);
    let now = state.clock.unix();
    let issued = state
        .tokens
        .issue(
            now,
            client.client_id.as_str(),
            client.client_id.as_str(),
            &scope,
            ttl,
        )
        .map_err(|e| OAuthError::new(OAuthErrorCode::ServerError, e.to_string()))?;
    Ok(TokenResponse {
        access_token: issued.token,
        token_type: "Bearer",
        expires_in: ttl,
        scope: issued.claims.scope,
        refresh_token: None,
        id_token: None,
    })
}
