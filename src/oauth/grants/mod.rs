//! Grants of the token endpoint: one module each, one `exchange` entry point each.

pub mod authorization_code;
pub mod client_credentials;
pub mod device_code;
pub mod jwt_bearer;
pub mod refresh_token;

use secrecy::ExposeSecret as _;
use serde::Serialize;
use utoipa::ToSchema;

use super::{id_token, secret};
use crate::error::{OAuthError, OAuthErrorCode};
use crate::model::Client;
use crate::model::User;
use crate::model::{GrantType, Scope, ScopeSet};
use crate::oauth::Ctx;
use crate::store::{self, Tx};

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"access_token": "eyJhbGciOiJFUzI1NiIsImtpZCI6Ii4uLiIsInR5cCI6ImF0K2p3dCJ9...", "token_type": "Bearer", "expires_in": 600, "scope": "cases.read"}))]
pub struct TokenResponse {
    /// The access token: an RFC 9068 JWT.
    pub access_token: String,
    /// `Bearer`, or `DPoP` for a token bound to the key of the request's DPoP proof
    /// (send it as `Authorization: DPoP <token>` with a proof).
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
    /// The token's subject (for the audit log; not part of the answer).
    #[serde(skip)]
    #[schema(ignore)]
    pub subject: String,
    /// The nonce for the client's next DPoP proof (the `DPoP-Nonce` header).
    #[serde(skip)]
    #[schema(ignore)]
    pub dpop_nonce: Option<String>,
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
    /// Claims the authorization request asked for in the ID token (space-separated).
    pub id_token_claims: Option<&'a str>,
    /// The browser session the grant came from (the ID token's `sid`), if one.
    pub sid: Option<&'a str>,
    /// The DPoP key the access token is bound to, if the request carried a proof.
    pub jkt: Option<&'a str>,
}

/// What an issuance wrote, for a replayed code to revoke.
pub struct Issuance {
    /// The response to send.
    pub response: TokenResponse,
    /// The access token's id and expiry, and the family.
    pub issued: store::grants::Issued,
}

/// The signed tokens of an issuance (no database involved).
pub struct Signed {
    /// The access token and its claims.
    pub access: super::tokens::Issued,
    /// The ID token, when `openid` is in the scope.
    pub id_token: Option<String>,
    /// The access token's lifetime.
    pub ttl: i64,
}

impl Signed {
    /// The token response, with `refresh_token` if one was issued.
    pub fn into_response(self, refresh_token: Option<String>) -> TokenResponse {
        TokenResponse {
            token_type: token_type(&self.access.claims),
            access_token: self.access.token,
            expires_in: self.ttl,
            scope: self.access.claims.scope,
            refresh_token,
            id_token: self.id_token,
            subject: self.access.claims.sub,
            dpop_nonce: None,
        }
    }
}

/// `DPoP` for a token bound to a key, else `Bearer`.
fn token_type(claims: &super::tokens::AccessClaims) -> &'static str {
    if claims.cnf.is_some() {
        super::dpop::TOKEN_TYPE
    } else {
        "Bearer"
    }
}

/// Signs the access token (and the ID token) of `grant` at `now`.
pub fn sign_for_user(ctx: &Ctx<'_>, grant: &UserGrant<'_>, now: i64) -> Result<Signed, OAuthError> {
    let ttl = ctx.access_token_ttl(grant.client);
    let access = issue_access(
        ctx,
        grant.client,
        Subject::User(&grant.user.id),
        grant.scope,
        ttl,
        now,
        grant.jkt,
    )?;
    let id_token = if grant.scope.contains(Scope::OpenId) {
        Some(id_token::sign(ctx, grant, &access.token, now, ttl).map_err(server_error)?)
    } else {
        None
    };
    Ok(Signed {
        access,
        id_token,
        ttl,
    })
}

/// A new refresh token of a family, idle-limited by the client's policy (never past the
/// family's end): the plain token and the row to store.
pub fn new_refresh_token(
    ctx: &Ctx<'_>,
    client: &Client,
    family_expires_at: Option<i64>,
    access: &super::tokens::Issued,
    now: i64,
) -> (secrecy::SecretString, store::grants::RefreshRow) {
    let idle = client
        .refresh_token_idle_secs
        .unwrap_or(ctx.config.refresh_token_idle_secs);
    let idle_expires_at = Some(family_expires_at.map_or(now + idle, |end| (now + idle).min(end)));
    let row = store::grants::RefreshRow {
        idle_expires_at,
        access_jti: access.claims.jti.clone(),
        access_exp: access.claims.exp,
    };
    (secret::generate(), row)
}

/// Signs the tokens of a new grant (a code redeemed) and, if `offline_access` was granted
/// and the client may refresh, starts a refresh-token family — inside `tx`.
pub async fn issue_for_user(
    ctx: &Ctx<'_>,
    tx: &mut Tx,
    grant: &UserGrant<'_>,
) -> Result<Issuance, OAuthError> {
    let now = ctx.clock.unix();
    let signed = sign_for_user(ctx, grant, now)?;
    let refresh_allowed = grant.granted.contains(Scope::OfflineAccess)
        && grant.client.allows_grant(GrantType::RefreshToken);
    let mut family_id = None;
    let mut refresh_token = None;
    if refresh_allowed {
        let lifetime = grant
            .client
            .refresh_token_ttl_secs
            .unwrap_or(ctx.config.refresh_token_ttl_secs);
        let family = store::grants::FamilyRow {
            id: secret::token_id(),
            client_id: grant.client.client_id.to_string(),
            user_id: grant.user.id.clone(),
            scope: grant.granted.to_string(),
            auth_time: grant.auth_time,
            expires_at: (lifetime > 0).then_some(now + lifetime),
            sid: grant.sid.map(str::to_owned),
            // A public client's refresh token is as good as its key (RFC 9449 §5): bound
            // to it. A confidential client's is bound by its authentication.
            dpop_jkt: grant
                .jkt
                .filter(|_| grant.client.client_type == crate::model::ClientType::Public)
                .map(str::to_owned),
        };
        store::grants::insert_family(tx, &family, now).await?;
        let (token, row) =
            new_refresh_token(ctx, grant.client, family.expires_at, &signed.access, now);
        store::grants::insert_refresh(tx, &secret::hash_secret(&token), &family.id, &row, now)
            .await?;
        family_id = Some(family.id);
        refresh_token = Some(token.expose_secret().to_owned());
    }
    // A client given an ID token of a session is told when the session ends.
    if let (Some(sid), Some(_)) = (grant.sid, &signed.id_token) {
        store::logouts::joined(
            tx,
            sid,
            grant.client.client_id.as_str(),
            &grant.user.id,
            now,
        )
        .await?;
    }
    let issued = store::grants::Issued {
        access_jti: Some(signed.access.claims.jti.clone()),
        access_exp: Some(signed.access.claims.exp),
        family_id,
    };
    Ok(Issuance {
        issued,
        response: signed.into_response(refresh_token),
    })
}

/// Revokes refresh-token families and the access tokens they issued, inside `tx`; the
/// caller commits, then calls [`note_revoked`] so this process honours it at once.
pub async fn revoke_families(
    ctx: &Ctx<'_>,
    tx: &mut Tx,
    family_ids: &[String],
    client_id: &str,
    reason: &str,
) -> Result<Vec<(String, i64)>, store::StoreError> {
    let now = ctx.clock.unix();
    let live = store::grants::revoke_families(tx, family_ids, reason, now).await?;
    store::grants::revoke_access_tokens(tx, &live, client_id, now).await?;
    Ok(live)
}

/// Revokes one family and its access tokens in a transaction of its own, honoured by this
/// process at once and by the others within a sync interval.
pub async fn revoke_family(
    ctx: &Ctx<'_>,
    family_id: &str,
    client_id: &str,
    reason: &str,
) -> Result<(), store::StoreError> {
    let mut tx = ctx.store.begin().await?;
    let revoked = revoke_families(ctx, &mut tx, &[family_id.to_owned()], client_id, reason).await?;
    tx.commit().await?;
    note_revoked(ctx, &revoked);
    Ok(())
}

/// Puts access tokens revoked in the database on this process's revocation list.
pub fn note_revoked(ctx: &Ctx<'_>, tokens: &[(String, i64)]) {
    for (jti, exp) in tokens {
        ctx.tokens
            .revoked
            .insert(jti, *exp + ctx.config.clock_skew_secs);
    }
}

/// The scope of a token request: `allowed` without a `scope` parameter, else the
/// requested scopes if they are within `allowed` (`invalid_scope`, worded by `widened`,
/// if not).
pub fn narrow_scope(
    params: &super::params::Params,
    allowed: &ScopeSet,
    widened: impl FnOnce(&ScopeSet) -> String,
) -> Result<ScopeSet, OAuthError> {
    let Some(raw) = params.get("scope") else {
        return Ok(allowed.clone());
    };
    let requested = ScopeSet::parse(raw)
        .map_err(|e| OAuthError::new(OAuthErrorCode::InvalidScope, e.message))?;
    if !requested.is_subset(allowed) {
        return Err(OAuthError::new(
            OAuthErrorCode::InvalidScope,
            widened(allowed),
        ));
    }
    Ok(requested)
}

/// For a grant that acts for a user: "scope `admin` cannot be granted by a user" when the
/// request names such a scope, else [`exceeds_client`].
pub fn exceeds_delegable(params: &super::params::Params) -> impl FnOnce(&ScopeSet) -> String {
    let refused = params
        .get("scope")
        .and_then(|raw| ScopeSet::parse(raw).ok())
        .and_then(|requested| requested.not_delegable());
    move |allowed| refused.map_or_else(|| exceeds_client(allowed), not_delegable)
}

/// "requested scope exceeds what this client may have (…)".
pub fn exceeds_client(allowed: &ScopeSet) -> String {
    format!("requested scope exceeds what this client may have ({allowed})")
}

/// Whom an access token acts for.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    /// A signed-in (or asserted) user, by id: the token carries only what the user may
    /// delegate.
    User(&'a str),
    /// The client itself (client credentials).
    Client,
}

/// `invalid_scope`'s description for a scope no user may delegate.
pub fn not_delegable(scope: Scope) -> String {
    format!("scope `{scope}` cannot be granted by a user")
}

/// Signs an access token: every grant's tokens come through here, and a token that acts
/// for a user never carries a scope the user may not delegate ([`Scope::user_delegable`]),
/// whatever the grant, the client's registration or a family granted before.
fn issue_access(
    ctx: &Ctx<'_>,
    client: &Client,
    subject: Subject<'_>,
    scope: &ScopeSet,
    ttl: i64,
    now: i64,
    jkt: Option<&str>,
) -> Result<super::tokens::Issued, OAuthError> {
    let sub = match subject {
        Subject::User(id) => {
            if let Some(s) = scope.not_delegable() {
                return Err(OAuthError::new(
                    OAuthErrorCode::InvalidScope,
                    not_delegable(s),
                ));
            }
            id
        }
        Subject::Client => client.client_id.as_str(),
    };
    ctx.tokens
        .issue(now, sub, client.client_id.as_str(), scope, ttl, jkt)
        .map_err(server_error)
}

/// An access token alone (no refresh token, no ID token) for `subject`, bound to the
/// DPoP key `jkt` if one is given.
pub fn access_token_only(
    ctx: &Ctx<'_>,
    client: &Client,
    subject: Subject<'_>,
    scope: &ScopeSet,
    jkt: Option<&str>,
) -> Result<TokenResponse, OAuthError> {
    let ttl = ctx.access_token_ttl(client);
    let issued = issue_access(ctx, client, subject, scope, ttl, ctx.clock.unix(), jkt)?;
    Ok(TokenResponse {
        token_type: token_type(&issued.claims),
        access_token: issued.token,
        expires_in: ttl,
        scope: issued.claims.scope,
        refresh_token: None,
        id_token: None,
        subject: issued.claims.sub,
        dpop_nonce: None,
    })
}

/// A value the caller sent, fit to quote in an error description: short printable text
/// as it is, anything else summarised (descriptions are read by people and logged).
pub fn quoted(value: &str) -> String {
    if value.len() <= 64 && value.chars().all(|c| !c.is_control()) {
        format!("`{value}`")
    } else {
        format!("({} characters)", value.chars().count())
    }
}

/// `invalid_grant` with a description.
pub fn invalid_grant(description: impl Into<String>) -> OAuthError {
    OAuthError::new(OAuthErrorCode::InvalidGrant, description)
}

fn server_error(e: impl std::fmt::Display) -> OAuthError {
    OAuthError::new(OAuthErrorCode::ServerError, e.to_string())
}
