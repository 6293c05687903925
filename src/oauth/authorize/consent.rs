//! Consent and the code: whether to ask, remembering the answer, issuing the code.

use super::*;
use crate::model::ScopeSet;
use crate::oauth::Ctx;
use crate::oauth::login::SignIn;
use crate::oauth::secret;
use crate::store::{self, StoreError};

/// Whether the user must be asked: not when pre-authorized for the client, not when the
/// scopes were approved before (unless `prompt=consent`).
pub async fn needs_consent(
    ctx: &Ctx<'_>,
    request: &AuthorizationRequest,
    user: &crate::model::User,
) -> Result<bool, StoreError> {
    if request.prompt.consent {
        return Ok(true);
    }
    if request.client.pre_authorized_users.contains(&user.username) {
        return Ok(false);
    }
    let remembered =
        store::consents::scope(ctx.store, &user.id, request.client.client_id.as_str()).await?;
    Ok(!remembered
        .and_then(|s| ScopeSet::parse(&s).ok())
        .is_some_and(|approved| request.scope.is_subset(&approved)))
}

/// Remembers the user's approval of the request's scopes (merged with earlier ones).
pub async fn record_consent(
    ctx: &Ctx<'_>,
    request: &AuthorizationRequest,
    user_id: &str,
) -> Result<(), StoreError> {
    let client_id = request.client.client_id.as_str();
    let before = store::consents::scope(ctx.store, user_id, client_id)
        .await?
        .and_then(|s| ScopeSet::parse(&s).ok())
        .unwrap_or_default();
    let merged = before.union(&request.scope);
    store::consents::upsert(
        ctx.store,
        user_id,
        client_id,
        &merged.to_string(),
        ctx.clock.unix(),
    )
    .await
}

/// Issues a code for the signed-in user and returns the response that carries it; `None`
/// when the sign-in does not satisfy the request ([`AuthorizationRequest::sign_in_satisfies`]):
/// the user must sign in again first. Every code is issued here.
pub async fn issue_code(
    ctx: &Ctx<'_>,
    request: &AuthorizationRequest,
    user_id: &str,
    sign_in: &SignIn,
) -> Result<Option<AuthorizationResponse>, StoreError> {
    let now = ctx.clock.unix();
    if !request.sign_in_satisfies(sign_in.auth_time, now) {
        return Ok(None);
    }
    let code = secret::generate();
    use secrecy::ExposeSecret as _;
    let row = store::grants::CodeRow {
        client_id: request.client.client_id.to_string(),
        user_id: user_id.to_owned(),
        redirect_uri: request.redirect_uri.clone(),
        scope: request.scope.to_string(),
        code_challenge: request.code_challenge.clone(),
        nonce: request.nonce.clone(),
        auth_time: sign_in.auth_time,
        expires_at: now + CODE_TTL_SECS,
        id_token_claims: request.claims.id_token_names(),
        sid: Some(sign_in.sid.clone()),
        dpop_jkt: request.dpop_jkt.clone(),
    };
    store::grants::insert_code(ctx.store, &secret::hash_secret(&code), &row, now).await?;
    // A pushed request ends in one code (RFC 9126 §4: its request_uri is single-use).
    if let Some(pushed) = &request.pushed {
        store::pushed::delete(ctx.store, &pushed.uri_hash).await?;
    }
    let mut params = vec![("code", code.expose_secret().to_owned())];
    if let Some(s) = &request.state {
        params.push(("state", s.clone()));
    }
    params.push(("iss", ctx.issuer.to_owned()));
    Ok(Some(AuthorizationResponse {
        redirect_uri: request.redirect_url.clone(),
        params,
        mode: request.response_mode,
    }))
}

/// Before the user is sent to sign in for a pushed request: its `prompt` and `max_age`
/// go, as they go from the way back of a request in the query ([`super`]'s sign-in
/// rule), since the sign-in about to happen satisfies both.
pub async fn forget_sign_in_demands(
    ctx: &Ctx<'_>,
    request: &AuthorizationRequest,
) -> Result<(), StoreError> {
    let Some(pushed) = &request.pushed else {
        return Ok(());
    };
    if !request.prompt.login && request.max_age.is_none() {
        return Ok(());
    }
    let kept: Vec<(String, String)> = form_urlencoded::parse(pushed.params.as_bytes())
        .filter(|(k, _)| k != "prompt" && k != "max_age")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let params = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(kept)
        .finish();
    store::pushed::set_params(ctx.store, &pushed.uri_hash, &params).await
}
