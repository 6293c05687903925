//! The token endpoint: authenticate the client, check the grant, dispatch to its module.

use super::client_auth::{self, Presented};
use super::grants::{self, TokenResponse};
use super::model::GrantType;
use super::params::Params;
use crate::error::{OAuthError, OAuthErrorCode};
use crate::state::AppState;

/// Grants this server answers at the token endpoint (the others arrive with their flows).
pub const ENABLED_GRANTS: &[GrantType] = &[GrantType::ClientCredentials];

/// Exchanges a grant for tokens.
pub async fn exchange(
    state: &AppState,
    params: &Params,
    presented: &Presented,
) -> Result<TokenResponse, OAuthError> {
    let raw = params.require("grant_type")?;
    let grant: GrantType = raw
        .parse()
        .ok()
        .filter(|g| ENABLED_GRANTS.contains(g))
        .ok_or_else(|| {
            OAuthError::new(
                OAuthErrorCode::UnsupportedGrantType,
                format!("grant_type `{raw}` is not supported"),
            )
        })?;
    let client = client_auth::authenticate(state, presented).await?;
    if !client.allows_grant(grant) {
        return Err(OAuthError::new(
            OAuthErrorCode::UnauthorizedClient,
            format!("this client is not registered for {grant}"),
        ));
    }
    let response = match grant {
        GrantType::ClientCredentials => {
            grants::client_credentials::exchange(state, &client, params)?
        }
        other => {
            return Err(OAuthError::new(
                OAuthErrorCode::UnsupportedGrantType,
                format!("grant_type `{other}` is not supported"),
            ));
        }
    };
    tracing::debug!(client_id = %client.client_id, grant = %grant, "token issued");
    Ok(response)
}
