//! RFC 7662 token introspection, for the client the token was issued to.

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

/// An introspection answer: `{"active": false}` or the token's claims.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"active": true, "scope": "cases.read", "client_id": "s6BhdRkqt3", "sub": "s6BhdRkqt3",
    "token_type": "Bearer", "exp": 1790000600, "iat": 1790000000, "iss": "https://id.example.com",
    "aud": "https://id.example.com/api", "jti": "Xc2H6u9jrfY0R3ltwZ8ZpA"}))]
pub struct Introspection {
    /// Whether the token is valid now, unrevoked, and was issued to the asking client.
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
    /// `Bearer`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
    /// Expiry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// Issued at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// Issuer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audience.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub aud: Option<Audience>,
    /// Token id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

impl Introspection {
    fn inactive() -> Self {
        Self {
            active: false,
            scope: None,
            client_id: None,
            sub: None,
            token_type: None,
            exp: None,
            iat: None,
            iss: None,
            aud: None,
            jti: None,
        }
    }
}

/// Introspects `token`. Only an authenticated (non-public) client may ask, and a token
/// issued to another client is reported inactive, like an unknown one.
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
    let Ok(claims) = ctx.tokens.verify(token, ctx.clock.unix()) else {
        return Ok(Introspection::inactive());
    };
    if claims.client_id != client.client_id.as_str() {
        return Ok(Introspection::inactive());
    }
    Ok(Introspection {
        active: true,
        scope: Some(claims.scope.clone()),
        client_id: Some(claims.client_id.clone()),
        sub: Some(claims.sub.clone()),
        token_type: Some("Bearer"),
        exp: Some(claims.exp),
        iat: Some(claims.iat),
        iss: Some(claims.iss.clone()),
        aud: Some(claims.aud.clone()),
        jti: Some(claims.jti.clone()),
    })
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
