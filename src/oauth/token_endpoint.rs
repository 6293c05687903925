//! The token endpoint: authenticate the client, check the grant, dispatch to its module.

use super::client_auth::{self, Presented};
use super::grants::{self, TokenResponse};
use super::params::Params;
use crate::audit::Event;
use crate::error::{OAuthError, OAuthErrorCode};
use crate::model::{Client, GrantType};
use crate::oauth::Ctx;
use crate::ratelimit::Policy;

/// Counts a request of `key` against `policy`; refused past the limit.
pub async fn within_limit(ctx: &Ctx<'_>, policy: Policy, key: &str) -> Result<(), OAuthError> {
    match ctx.limiter.check(policy, key).await {
        Some(decision) if decision.refused() => Err(OAuthError::rate_limited(&decision)),
        _ => Ok(()),
    }
}

/// Grants this server answers at the token endpoint.
pub const ENABLED_GRANTS: &[GrantType] = &[
    GrantType::AuthorizationCode,
    GrantType::RefreshToken,
    GrantType::ClientCredentials,
    GrantType::JwtBearer,
    GrantType::DeviceCode,
];

/// Exchanges a grant for tokens.
pub async fn exchange(
    ctx: &Ctx<'_>,
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
    let client = if grant == GrantType::JwtBearer {
        Box::pin(jwt_bearer_client(ctx, params, presented)).await?
    } else {
        client_auth::authenticate(ctx, presented).await?
    };
    within_limit(
        ctx,
        Policy::TokenClient,
        &crate::ratelimit::client_key(&client, &presented.address),
    )
    .await?;
    check_origin(ctx, &client, presented)?;
    if !client.allows_grant(grant) {
        return Err(OAuthError::new(
            OAuthErrorCode::UnauthorizedClient,
            format!("this client is not registered for {grant}"),
        ));
    }
    // Boxed, and only when there is a proof to check (or one is missing): the request
    // of a bearer client carries no part of it.
    let required = super::dpop::required_of(&client);
    let proof = if presented.dpop.is_some() || required {
        let dpop = presented.dpop.as_deref();
        Box::pin(super::dpop::at_endpoint(
            ctx,
            &client,
            dpop,
            "/oauth2/token",
            required,
        ))
        .await?
    } else {
        None
    };
    let jkt = proof.as_ref().map(|p| p.jkt.as_str());
    // The grants that reach the database are boxed: their futures are large (kilobytes),
    // and inline they would make every token request's future that large, copied as
    // the request moves through the server (client credentials included).
    let mut response = match grant {
        GrantType::ClientCredentials => {
            grants::client_credentials::exchange(ctx, &client, params, jkt)?
        }
        GrantType::AuthorizationCode => {
            Box::pin(grants::authorization_code::exchange(
                ctx, &client, params, jkt,
            ))
            .await?
        }
        GrantType::RefreshToken => {
            Box::pin(grants::refresh_token::exchange(ctx, &client, params, jkt)).await?
        }
        GrantType::JwtBearer => {
            Box::pin(grants::jwt_bearer::exchange(ctx, &client, params, jkt)).await?
        }
        GrantType::DeviceCode => {
            Box::pin(grants::device_code::exchange(ctx, &client, params, jkt)).await?
        }
    };
    if ctx.dpop.nonce_required(client.require_dpop_nonce) {
        response.dpop_nonce = Some(ctx.dpop.nonce(ctx.clock.unix()));
    }
    let mut event = Event::new("token.issued")
        .client(client.client_id.as_str())
        .detail("grant_type", grant.to_string())
        .detail("scope", response.scope.clone());
    if response.subject != client.client_id.as_str() {
        event = event.user(response.subject.as_str());
    }
    ctx.audit.record(event).await;
    Ok(response)
}

/// A browser app may call from its own registered origins only (this server's own pages,
/// such as /docs, are same-origin).
pub fn check_origin(
    ctx: &Ctx<'_>,
    client: &Client,
    presented: &Presented,
) -> Result<(), OAuthError> {
    if let Some(origin) = &presented.origin
        && url::Url::parse(ctx.issuer)
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
    Ok(())
}

/// The client of a JWT bearer grant. Client authentication is optional there (RFC 7523
/// §3.1): without it the assertion's `iss` names the client, and the assertion's
/// signature authenticates it; with it, the authenticated client must be that `iss`.
async fn jwt_bearer_client(
    ctx: &Ctx<'_>,
    params: &Params,
    presented: &Presented,
) -> Result<std::sync::Arc<crate::model::Client>, OAuthError> {
    let assertion = params.require("assertion")?;
    let issuer = client_auth::unverified_issuer(assertion)
        .ok_or_else(|| grants::invalid_grant("the assertion is not a JWT with an iss claim"))?;
    let authenticates = presented.basic.is_some()
        || presented.client_secret.is_some()
        || presented.assertion.is_some()
        || presented.client_id.is_some();
    if authenticates {
        let client = client_auth::authenticate(ctx, presented).await?;
        if client.client_id.as_str() != issuer {
            return Err(grants::invalid_grant(
                "the assertion's iss is not the authenticated client",
            ));
        }
        return Ok(client);
    }
    let client = ctx.client(&issuer).await?.ok_or_else(|| {
        grants::invalid_grant(format!(
            "iss {} is not a registered client",
            grants::quoted(&issuer)
        ))
    })?;
    if !client.enabled {
        return Err(OAuthError::new(
            OAuthErrorCode::InvalidClient,
            "the client is disabled",
        ));
    }
    Ok(client)
}
