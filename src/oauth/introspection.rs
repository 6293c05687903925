//! RFC 7662 token introspection, for the client a token was issued to and for resource
//! servers (clients registered with `may_introspect`), which may introspect any token.

use serde::Serialize;
use utoipa::ToSchema;

use super::client_auth::{self, Presented};
use super::params::Params;
use super::tokens::Audience;
use super::{grants, secret};
use crate::error::{OAuthError, OAuthErrorCode};
use crate::model::AuthMethod;
use crate::oauth::Ctx;
use crate::store;
use crate::store::grants::RefreshState;

/// An introspection answer: `{"active": false}` or the token's claims.
#[derive(Debug, Default, Serialize, ToSchema)]
#[schema(example = json!({"active": true, "scope": "openid api", "client_id": "s6BhdRkqt3",
    "sub": "0193a5c4-5d1e-7c2a-9f4e-1b2c3d4e5f60", "username": "ada",
    "token_type": "Bearer", "exp": 1790000600, "iat": 1790000000, "iss": "https://id.example.com",
    "aud": "https://id.example.com/api", "jti": "Xc2H6u9jrfY0R3ltwZ8ZpA"}))]
pub struct Introspection {
    /// Whether the token is valid now, unrevoked, and the asking client may see it (it was
    /// issued to it, or it is a resource server).
    pub active: bool,
    /// Granted scopes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The client the token was issued to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The subject.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// The user's username, when the subject is a user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// `Bearer` or `DPoP` (a DPoP-bound token) for an access token, `refresh_token` for a
    /// refresh token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
    /// Expiry (a refresh token without one is valid until revoked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// Issued at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// Issuer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audience: the resource API of an access token.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub aud: Option<Audience>,
    /// Token id (access tokens).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// A DPoP-bound token's key (RFC 9449 §6.2): the resource server checks the proof
    /// against `cnf.jkt`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cnf: Option<super::tokens::Confirmation>,
}

/// Introspects `token`. Only an authenticated (non-public) client may ask; a token issued
/// to another client is reported inactive, like an unknown one, unless the asking client
/// is a resource server (`may_introspect`).
pub async fn introspect(
    ctx: &Ctx<'_>,
    params: &Params,
    presented: &Presented,
) -> Result<Introspection, OAuthError> {
    let client = client_auth::authenticate(ctx, presented).await?;
    if client.token_endpoint_auth_method == AuthMethod::None {
        return Err(OAuthError::new(
            OAuthErrorCode::InvalidClient,
            "introspection needs an authenticated client",
        ));
    }
    let token = params.require("token")?;
    let may_see = |owner: &str| client.may_introspect || owner == client.client_id.as_str();
    let now = ctx.clock.unix();
    if let Ok(claims) = ctx.tokens.verify(token, now) {
        if !may_see(&claims.client_id) {
            return Ok(Introspection::default());
        }
        return Ok(Introspection {
            active: true,
            scope: Some(claims.scope.clone()),
            client_id: Some(claims.client_id.clone()),
            sub: Some(claims.sub.clone()),
            username: username(ctx, &claims.client_id, &claims.sub).await?,
            token_type: Some(if claims.cnf.is_some() {
                super::dpop::TOKEN_TYPE
            } else {
                "Bearer"
            }),
            exp: Some(claims.exp),
            iat: Some(claims.iat),
            iss: Some(claims.iss.clone()),
            aud: Some(claims.aud.clone()),
            jti: Some(claims.jti.clone()),
            cnf: claims.cnf.clone(),
        });
    }
    // Not a valid access token: perhaps a refresh token. Those are base64url without
    // dots, so a JWT that failed (expired, revoked, forged) costs no database read.
    if token.contains('.') {
        return Ok(Introspection::default());
    }
    let Some(found) = ctx.refresh.lookup(secret::hash(token)).await? else {
        return Ok(Introspection::default());
    };
    let family = &found.family;
    let live = found.state_at(now) == RefreshState::Live && found.user.enabled;
    if !live || !may_see(&family.client_id) {
        return Ok(Introspection::default());
    }
    let exp = found.expires_at();
    Ok(Introspection {
        active: true,
        scope: Some(family.scope.clone()),
        client_id: Some(family.client_id.clone()),
        sub: Some(found.user.id.clone()),
        username: Some(found.user.username.to_string()),
        token_type: Some("refresh_token"),
        exp,
        iat: Some(found.issued_at),
        iss: Some(ctx.issuer.to_owned()),
        aud: None,
        jti: None,
        cnf: None,
    })
}

/// The username behind an access token's subject (a client's token for itself, whose
/// subject is its own id: no user).
async fn username(ctx: &Ctx<'_>, client_id: &str, sub: &str) -> Result<Option<String>, OAuthError> {
    if sub == client_id {
        return Ok(None);
    }
    Ok(ctx
        .clients
        .username(ctx.store, sub)
        .await?
        .map(|name| name.to_string()))
}

/// RFC 7009 revocation: the client's own token goes on the revocation list until it
/// expires. Unknown, invalid, expired or foreign tokens are answered the same (200), so
/// the endpoint tells nothing about tokens the caller does not own.
pub async fn revoke(
    ctx: &Ctx<'_>,
    params: &Params,
    presented: &Presented,
) -> Result<(), OAuthError> {
    let client = client_auth::authenticate(ctx, presented).await?;
    let token = params.require("token")?;
    if let Some(hint) = params.get("token_type_hint")
        && !matches!(hint, "access_token" | "refresh_token")
    {
        return Err(OAuthError::new(
            OAuthErrorCode::UnsupportedTokenType,
            format!("token_type_hint `{hint}` is not supported"),
        ));
    }
    let now = ctx.clock.unix();
    // A JWT is an access token, anything else may be a refresh token; the hint only
    // orders the lookups (RFC 7009 §2.1), so try both.
    if let Ok(claims) = ctx.tokens.verify(token, now) {
        if claims.client_id == client.client_id.as_str() {
            ctx.tokens.revoke(ctx.store, &claims, now).await?;
            ctx.audit
                .record(
                    crate::audit::Event::new("token.revoked")
                        .client(client.client_id.as_str())
                        .detail("token_type", "access_token")
                        .detail("jti", claims.jti.as_str()),
                )
                .await;
        }
        return Ok(());
    }
    let Some(family) = store::grants::family_of(ctx.store, &secret::hash(token)).await? else {
        return Ok(());
    };
    if family.client_id != client.client_id.as_str() {
        return Ok(());
    }
    grants::revoke_family(
        ctx,
        &family.id,
        client.client_id.as_str(),
        "revoked by the client",
    )
    .await?;
    ctx.audit
        .record(
            crate::audit::Event::new("token.revoked")
                .client(client.client_id.as_str())
                .user(family.user_id.as_str())
                .detail("token_type", "refresh_token")
                .detail("family", family.id.as_str()),
        )
        .await;
    Ok(())
}
