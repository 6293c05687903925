//! The token endpoint: authenticate the client, check the grant, dispatch to its module.

use super::client_auth::{self, Presented};
use super::grants::{self, TokenResponse};
use super::model::GrantType;
use super::params::Params;
use crate::error::{OAuthError, OAuthErrorCode};
use crate::state::AppState;

/// Grants this server answers at the token endpoint (the others arrive with their flows).
pub const ENABLED_GRANTS: &[GrantType] = &[
    GrantType::AuthorizationCode,
    GrantType::RefreshToken,
    GrantType::ClientCredentials,
];

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
    // A browser app may call from its own registered origins only (this server's own
    // pages, such as /docs, are same-origin).
    if let Some(origin) = &presented.origin
        && url::Url::parse(&state.issuer)
            .map(|u| u.origin().ascii_serialization())
            .ok()
            .as_deref()
            != Some(origin.as_str())
        && !client.cors_origins.iter().any(|o| o.as_str() == origin)
    {
        return Err(OAuthError::new(
            OAuthErrorCode::InvalidClient,
            format!("this client does not allow calls from origin {origin}"),
        ));
    }
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
        GrantType::AuthorizationCode => {
            grants::authorization_code::exchange(state, &client, params).await?
        }
        GrantType::RefreshToken => grants::refresh_token::exchange(state, &client, params).await?,
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
