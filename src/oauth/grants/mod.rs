//! Grants of the token endpoint: one module each, one `exchange` entry point each.

pub mod authorization_code;
pub mod client_credentials;
pub mod refresh_token;

use secrecy::ExposeSecret as _;
use serde::Serialize;
use utoipa::ToSchema;

use super::clients::Client;
use super::model::{GrantType, Scope, ScopeSet};
use super::users::User;
use super::{id_token, secret};
use crate::error::{OAuthError, OAuthErrorCode};
use crate::state::AppState;
use crate::store::{self, Tx};

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"access_token": "eyJhbGciOiJFUzI1NiIsImtpZCI6Ii4uLiIsInR5cCI6ImF0K2p3dCJ9...", "token_type": "Bearer", "expires_in": 600, "scope": "cases.read"}))]
pub struct TokenResponse {
    /// The access token: an RFC 9068 JWT.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// The granted scopes, space-separated.
    pub scope: String,
    /// A refresh token, when `offline_access` was granted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// An OpenID Connect ID token, when `openid` was granted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

/// Tokens for a user, from a code, a refresh token or (later) a device code.
pub struct UserGrant<'a> {
    /// The client.
    pub client: &'a Client,
    /// The user.
    pub user: &'a User,
    /// Everything the user granted: the bound of later refreshes.
    pub granted: &'a ScopeSet,
    /// The access token's scope: `granted` or narrower.
    pub scope: &'a ScopeSet,
    /// When the user authenticated.
    pub auth_time: i64,
    /// The OpenID Connect nonce of the authorization request.
    pub nonce: Option<&'a str>,
}

/// Where the refresh token of an issuance belongs.
pub enum Family<'a> {
    /// Start a family if `offline_access` was granted (and the client may refresh).
    Start,
    /// Continue this family (a rotation).
    Continue {
        /// The family.
        id: &'a str,
        /// Its end, if any.
        expires_at: Option<i64>,
    },
}

/// What an issuance wrote, for a replayed code to revoke.
pub struct Issuance {
    /// The response to send.
    pub response: TokenResponse,
    /// The access token's id and expiry, and the family.
    pub issued: store::grants::Issued,
}

/// Signs the access token (and ID token) and writes the refresh token, inside `tx`.
pub async fn issue_for_user(
    state: &AppState,
    tx: &mut Tx,
    grant: &UserGrant<'_>,
    family: Family<'_>,
) -> Result<Issuance, OAuthError> {
    let now = state.clock.unix();
    let ttl = state.access_token_ttl(grant.client);
    let access = state
        .tokens
        .issue(
            now,
            &grant.user.id,
            grant.client.client_id.as_str(),
            grant.scope,
            ttl,
        )
        .map_err(server_error)?;
    let refresh_allowed = grant.granted.contains(Scope::OfflineAccess)
        && grant.client.allows_grant(GrantType::RefreshToken);
    let family = match family {
        Family::Start if refresh_allowed => {
            let lifetime = grant
                .client
                .refresh_token_ttl_secs
                .unwrap_or(state.config.refresh_token_ttl_secs);
            let row = store::grants::FamilyRow {
                id: secret::token_id(),
                client_id: grant.client.client_id.to_string(),
                user_id: grant.user.id.clone(),
                scope: grant.granted.to_string(),
                auth_time: grant.auth_time,
                expires_at: (lifetime > 0).then_some(now + lifetime),
            };
            store::grants::insert_family(tx, &row, now).await?;
            Some((row.id, row.expires_at))
        }
        Family::Start => None,
        Family::Continue { id, expires_at } => Some((id.to_owned(), expires_at)),
    };
    let refresh_token = match &family {
        Some((family_id, family_expires)) => {
            let idle = grant
                .client
                .refresh_token_idle_secs
                .unwrap_or(state.config.refresh_token_idle_secs);
            let idle_expires_at = match family_expires {
                Some(end) => Some((now + idle).min(*end)),
                None => Some(now + idle),
            };
            let token = secret::generate();
            let row = store::grants::RefreshRow {
                idle_expires_at,
                access_jti: access.claims.jti.clone(),
                access_exp: access.claims.exp,
            };
            store::grants::insert_refresh(tx, &secret::hash_secret(&token), family_id, &row, now)
                .await?;
            Some(token.expose_secret().to_owned())
        }
        None => None,
    };
    let id_token = if grant.scope.contains(Scope::OpenId) {
        Some(
            id_token::sign(state, grant, &access.token, now, ttl)
                .map_err(|e| OAuthError::new(OAuthErrorCode::ServerError, e.to_string()))?,
        )
    } else {
        None
    };
    Ok(Issuance {
        issued: store::grants::Issued {
            access_jti: Some(access.claims.jti.clone()),
            access_exp: Some(access.claims.exp),
            family_id: family.map(|(id, _)| id),
        },
        response: TokenResponse {
            access_token: access.token,
            token_type: "Bearer",
            expires_in: ttl,
            scope: access.claims.scope,
            refresh_token,
            id_token,
        },
    })
}

/// Revokes refresh-token families and the access tokens they issued, inside `tx`; the
/// caller commits, then calls [`note_revoked`] so this process honours it at once.
pub async fn revoke_families(
    state: &AppState,
    tx: &mut Tx,
    family_ids: &[String],
    client_id: &str,
    reason: &str,
) -> Result<Vec<(String, i64)>, store::StoreError> {
    let now = state.clock.unix();
    let live = store::grants::revoke_families(tx, family_ids, reason, now).await?;
    store::grants::revoke_access_tokens(tx, &live, client_id, now).await?;
    Ok(live)
}

/// Puts access tokens revoked in the database on this process's revocation list.
pub fn note_revoked(state: &AppState, tokens: &[(String, i64)]) {
    for (jti, exp) in tokens {
        state
            .tokens
            .revoked
            .insert(jti, *exp + state.config.clock_skew_secs);
    }
}

/// `invalid_grant` with a description.
pub fn invalid_grant(description: impl Into<String>) -> OAuthError {
    OAuthError::new(OAuthErrorCode::InvalidGrant, description)
}

fn server_error(e: impl std::fmt::Display) -> OAuthError {
    OAuthError::new(OAuthErrorCode::ServerError, e.to_string())
}
