//! Each grant of the token endpoint, called as a domain function against a real store:
//! no HTTP, no client authentication in front, only `oauth::Ctx` and the grant's
//! `exchange`. What the HTTP tests show end to end, these pin down rule by rule.

use std::sync::Arc;

use gatehouse::clock::ManualClock;
use gatehouse::error::{OAuthError, OAuthErrorCode};
use gatehouse::model::Client;
use gatehouse::oauth::authorize::{self, AuthorizationRequest};
use gatehouse::oauth::clients::NewClient;
use gatehouse::oauth::grants::{
    authorization_code, client_credentials, device_code, jwt_bearer, refresh_token,
};
use gatehouse::oauth::params::Params;
use gatehouse::oauth::{Ctx, device};
use rstest::rstest;
use rstest_reuse::apply;

use crate::flow::{pkce, user};
use crate::support::{Backend, TestApp, both_backends, unavailable};

const REDIRECT: &str = "https://app.example/callback";
const DEVICE: &str = "urn:ietf:params:oauth:grant-type:device_code";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// A token-endpoint form body.
fn params(pairs: &[(&str, &str)]) -> Params {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    Params::parse(body.as_bytes()).unwrap()
}

/// The registered client `id`, as the token endpoint sees it after authenticating it.
async fn client(ctx: &Ctx<'_>, id: &str) -> Arc<Client> {
    ctx.client(id).await.unwrap().unwrap()
}

fn code_of(error: &OAuthError) -> OAuthErrorCode {
    error.code
}

#[apply(both_backends)]
async fn client_credentials_grants_the_clients_own_scopes_and_never_a_users(
    #[case] backend: Backend,
) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let (id, _) = app.service_client(&["api", "cases.read"]).await;
    let ctx = app.app_state.oauth();
    let partner = client(&ctx, &id).await;

    let all = client_credentials::exchange(&ctx, &partner, &params(&[]), None).unwrap();
    assert_eq!(all.scope, "api cases.read");
    assert_eq!(all.subject, id);
    assert!(all.refresh_token.is_none() && all.id_token.is_none());
    let claims = app
        .app_state
        .tokens
        .verify(&all.access_token, ctx.clock.unix());
    assert_eq!(claims.unwrap().client_id, id);

    let narrow =
        client_credentials::exchange(&ctx, &partner, &params(&[("scope", "cases.read")]), None);
    assert_eq!(narrow.unwrap().scope, "cases.read");

    let wider = client_credentials::exchange(&ctx, &partner, &params(&[("scope", "admin")]), None);
    assert_eq!(code_of(&wider.unwrap_err()), OAuthErrorCode::InvalidScope);
    let user_scope =
        client_credentials::exchange(&ctx, &partner, &params(&[("scope", "openid")]), None);
    let refused = user_scope.unwrap_err();
    assert_eq!(code_of(&refused), OAuthErrorCode::InvalidScope);
    assert!(
        refused.description.contains("needs a user"),
        "{}",
        refused.description
    );
}

/// A code for `ada` from a real authorization request of a public PKCE client; returns
/// the client, the code and the verifier.
async fn code_for_ada(app: &TestApp, scope: &str) -> (Arc<Client>, String, String) {
    let ada = user(app, "ada").await;
    let (id, _) = app
        .register(NewClient {
            name: "Phone App".to_owned(),
            client_type: "public".to_owned(),
            redirect_uris: vec![REDIRECT.to_owned()],
            grant_types: vec!["authorization_code".to_owned(), "refresh_token".to_owned()],
            scopes: vec![
                "openid".to_owned(),
                "offline_access".to_owned(),
                "api".to_owned(),
            ],
            ..Default::default()
        })
        .await;
    let ctx = app.app_state.oauth();
    let (verifier, challenge) = pkce();
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("response_type", "code"),
            ("client_id", id.as_str()),
            ("redirect_uri", REDIRECT),
            ("scope", scope),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("nonce", "n-1"),
        ])
        .finish();
    let request = AuthorizationRequest::parse(&ctx, &query)
        .await
        .ok()
        .unwrap();
    let now = ctx.clock.unix();
    let sign_in = gatehouse::oauth::login::SignIn {
        auth_time: now,
        sid: "a-session".to_owned(),
    };
    let redirect = authorize::issue_code(&ctx, &request, &ada.id, &sign_in)
        .await
        .unwrap()
        .unwrap();
    let code = redirect
        .params
        .iter()
        .find(|(k, _)| *k == "code")
        .map(|(_, v)| v.clone())
        .unwrap();
    (client(&ctx, &id).await, code, verifier)
}

#[apply(both_backends)]
async fn a_code_is_redeemed_once_with_its_verifier_and_redirect_uri(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let (phone, code, verifier) = code_for_ada(&app, "openid api").await;
    let ctx = app.app_state.oauth();
    let redeem = |verifier: &str, redirect: &str| {
        params(&[
            ("code", code.as_str()),
            ("code_verifier", verifier),
            ("redirect_uri", redirect),
        ])
    };

    let wrong_verifier = authorization_code::exchange(
        &ctx,
        &phone,
        &redeem("x".repeat(43).as_str(), REDIRECT),
        None,
    )
    .await;
    assert_eq!(
        code_of(&wrong_verifier.unwrap_err()),
        OAuthErrorCode::InvalidGrant
    );

    let tokens = authorization_code::exchange(&ctx, &phone, &redeem(&verifier, REDIRECT), None)
        .await
        .unwrap();
    assert_eq!(tokens.scope, "openid api");
    assert!(tokens.id_token.is_some(), "openid was granted");
    assert!(
        tokens.refresh_token.is_none(),
        "offline_access was not asked for"
    );
    let now = ctx.clock.unix();
    assert!(
        app.app_state
            .tokens
            .verify(&tokens.access_token, now)
            .is_ok()
    );

    let replay =
        authorization_code::exchange(&ctx, &phone, &redeem(&verifier, REDIRECT), None).await;
    assert_eq!(code_of(&replay.unwrap_err()), OAuthErrorCode::InvalidGrant);
    assert!(
        app.app_state
            .tokens
            .verify(&tokens.access_token, now)
            .is_err(),
        "a replayed code revokes what it issued"
    );
}

#[apply(both_backends)]
async fn a_refresh_token_rotates_and_its_reuse_revokes_the_family(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let (phone, code, verifier) = code_for_ada(&app, "api offline_access").await;
    let ctx = app.app_state.oauth();
    let first = authorization_code::exchange(
        &ctx,
        &phone,
        &params(&[
            ("code", code.as_str()),
            ("code_verifier", verifier.as_str()),
            ("redirect_uri", REDIRECT),
        ]),
        None,
    )
    .await
    .unwrap();
    let old = first.refresh_token.unwrap();
    let refresh = |token: &str| params(&[("refresh_token", token)]);

    let narrower = refresh_token::exchange(
        &ctx,
        &phone,
        &params(&[("refresh_token", &old), ("scope", "api")]),
        None,
    )
    .await
    .unwrap();
    assert_eq!(narrower.scope, "api");
    let new = narrower.refresh_token.unwrap();
    assert_ne!(new, old, "every use rotates the token");

    let reuse = refresh_token::exchange(&ctx, &phone, &refresh(&old), None).await;
    assert_eq!(code_of(&reuse.unwrap_err()), OAuthErrorCode::InvalidGrant);
    let after = refresh_token::exchange(&ctx, &phone, &refresh(&new), None).await;
    assert_eq!(
        code_of(&after.unwrap_err()),
        OAuthErrorCode::InvalidGrant,
        "reuse of a rotated token revokes the whole family"
    );
}

#[apply(both_backends)]
async fn a_device_waits_for_approval_at_its_interval_then_gets_tokens_once(
    #[case] backend: Backend,
) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let clock = ManualClock::at(1_900_000_000);
    let app = TestApp::spawn_with_clock(backend, clock.clone(), |_| {}).await;
    let ada = user(&app, "ada").await;
    let (id, _) = app
        .register(NewClient {
            name: "TV".to_owned(),
            client_type: "public".to_owned(),
            grant_types: vec![DEVICE.to_owned()],
            scopes: vec!["api".to_owned()],
            ..Default::default()
        })
        .await;
    let ctx = app.app_state.oauth();
    let tv = client(&ctx, &id).await;
    let started = device::start(&ctx, &tv, &params(&[])).await.unwrap();
    let poll = params(&[("device_code", started.device_code.as_str())]);

    let pending = device_code::exchange(&ctx, &tv, &poll, None).await;
    assert_eq!(
        code_of(&pending.unwrap_err()),
        OAuthErrorCode::AuthorizationPending
    );
    let too_soon = device_code::exchange(&ctx, &tv, &poll, None).await;
    assert_eq!(code_of(&too_soon.unwrap_err()), OAuthErrorCode::SlowDown);

    let user_code = device::normalize_user_code(&started.user_code).unwrap();
    let now = ctx.clock.unix();
    let decided = gatehouse::store::devices::decide(ctx.store, &user_code, true, &ada.id, now, now);
    assert!(decided.await.unwrap());
    // slow_down added five seconds to the interval (RFC 8628 §3.5).
    clock.advance(started.interval + 5);
    let tokens = device_code::exchange(&ctx, &tv, &poll, None).await.unwrap();
    assert_eq!(
        (tokens.scope.as_str(), tokens.subject.as_str()),
        ("api", ada.id.as_str())
    );

    clock.advance(started.interval + 5);
    let again = device_code::exchange(&ctx, &tv, &poll, None).await;
    assert_eq!(code_of(&again.unwrap_err()), OAuthErrorCode::InvalidGrant);
}

#[apply(both_backends)]
async fn a_partner_assertion_acts_for_a_pre_authorized_enabled_user_only(#[case] backend: Backend) {
    use jwt_simple::prelude::{Claims, Duration, ECDSAP256KeyPairLike, ES256KeyPair};
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let ada = user(&app, "ada").await;
    user(&app, "bob").await;
    let (id, _) = app
        .register(NewClient {
            name: "partner".to_owned(),
            client_type: "confidential".to_owned(),
            auth_method: Some("private_key_jwt".to_owned()),
            grant_types: vec![JWT_BEARER.to_owned()],
            scopes: vec!["api".to_owned(), "offline_access".to_owned()],
            pre_authorize: vec!["ada".to_owned()],
            ..Default::default()
        })
        .await;
    let ctx = app.app_state.oauth();
    let key = ES256KeyPair::generate();
    let pem = key.public_key().to_pem().unwrap();
    let kid = gatehouse::oauth::clients::add_key(ctx.store, ctx.clock.as_ref(), &id, &pem)
        .await
        .unwrap()
        .kid;
    app.app_state.clients.changed(&id);
    let key = key.with_key_id(&kid);
    let partner = client(&ctx, &id).await;
    let audience = app.url("/oauth2/token");
    let assertion = |sub: &str, jti: &str| {
        let claims = Claims::create(Duration::from_secs(60))
            .with_issuer(&id)
            .with_subject(sub)
            .with_audience(&audience)
            .with_jwt_id(jti);
        params(&[("assertion", key.sign(claims).unwrap().as_str())])
    };

    let tokens = jwt_bearer::exchange(&ctx, &partner, &assertion("ada", "a-1"), None)
        .await
        .unwrap();
    assert_eq!(
        (tokens.scope.as_str(), tokens.subject.as_str()),
        ("api", ada.id.as_str()),
        "the user's token, without offline_access"
    );
    assert!(tokens.refresh_token.is_none() && tokens.id_token.is_none());

    let replay = jwt_bearer::exchange(&ctx, &partner, &assertion("ada", "a-1"), None).await;
    assert_eq!(code_of(&replay.unwrap_err()), OAuthErrorCode::InvalidGrant);
    let bob = jwt_bearer::exchange(&ctx, &partner, &assertion("bob", "a-2"), None).await;
    let refused = bob.unwrap_err();
    assert_eq!(code_of(&refused), OAuthErrorCode::InvalidGrant);
    assert!(
        refused.description.contains("pre-authorized"),
        "{refused:?}"
    );

    gatehouse::oauth::users::set_enabled(ctx.store, ctx.clock.as_ref(), "ada", false)
        .await
        .unwrap();
    let disabled = jwt_bearer::exchange(&ctx, &partner, &assertion("ada", "a-3"), None).await;
    let refused = disabled.unwrap_err();
    assert_eq!(code_of(&refused), OAuthErrorCode::InvalidGrant);
    assert!(refused.description.contains("disabled"), "{refused:?}");
}
