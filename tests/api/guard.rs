//! The bearer-token guard against forged, foreign, expired and misplaced tokens.

use rstest::rstest;
use rstest_reuse::apply;

use crate::support::{Backend, both_backends, unavailable};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse::clock::ManualClock;
use jwt_simple::prelude::*;
use serde_json::{Value, json};

use crate::support::TestApp;

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

fn parts(token: &str) -> (Value, Value, String) {
    let mut it = token.split('.');
    let header =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(it.next().unwrap()).unwrap()).unwrap();
    let payload =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(it.next().unwrap()).unwrap()).unwrap();
    (header, payload, it.next().unwrap().to_owned())
}

#[track_caller]
fn assert_invalid_token(res: &reqwest::Response) {
    assert_eq!(res.status(), 401);
    let challenge = res.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.starts_with("Bearer ") && challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
    assert_eq!(res.headers()["content-type"], "application/problem+json");
}

#[apply(both_backends)]
async fn missing_and_misplaced_tokens_get_rfc6750_challenges(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let (id, secret) = app.service_client(&["api"]).await;
    let token = app.access_token(&id, &secret, None).await;

    let none = app.get("/api/v1/me").await;
    assert_eq!(none.status(), 401);
    assert_eq!(
        none.headers()["www-authenticate"],
        r#"Bearer realm="gatehouse""#,
        "no error code without a token (§3.1)"
    );

    let query = app.get(&format!("/api/v1/me?access_token={token}")).await;
    assert_eq!(
        query.status(),
        400,
        "tokens in the query string are refused"
    );
    assert!(
        query.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_request")
    );

    let basic = app
        .http
        .get(app.url("/api/v1/me"))
        .basic_auth(&id, Some(&secret))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 401);

    let insufficient = app.get_bearer("/admin/v1/clients", &token).await;
    assert_eq!(insufficient.status(), 403);
    let challenge = insufficient.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains(r#"error="insufficient_scope""#)
            && challenge.contains(r#"scope="admin""#),
        "{challenge}"
    );
    app.stop().await;
}

#[apply(both_backends)]
async fn forged_tokens_are_rejected(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let (id, secret) = app.service_client(&["api", "admin"]).await;
    let token = app.access_token(&id, &secret, Some("api")).await;
    let (header, payload, signature) = parts(&token);
    let kid = header["kid"].as_str().unwrap().to_owned();

    // alg=none, unsigned.
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "at+jwt", "kid": kid})),
        b64(&payload)
    );
    assert_invalid_token(&app.get_bearer("/api/v1/me", &none).await);

    // HS256 "signed" with the server's public key (algorithm confusion).
    let jwks: Value = app.get("/oauth2/jwks").await.json().await.unwrap();
    let access_key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["alg"] == "ES256")
        .unwrap()
        .clone();
    let public_pem = ES256PublicKey::from_jwk(&access_key.to_string())
        .unwrap()
        .to_pem()
        .unwrap();
    for secret_bytes in [
        public_pem.as_bytes().to_vec(),
        access_key.to_string().into_bytes(),
    ] {
        let key = HS256Key::from_bytes(&secret_bytes).with_key_id(&kid);
        let claims = Claims::with_custom_claims(
            json!({"client_id": id, "scope": "admin"}),
            Duration::from_secs(300),
        )
        .with_issuer(&app.base)
        .with_audience(format!("{}/api", app.base))
        .with_subject(&id)
        .with_jwt_id("forged");
        let options = HeaderOptions {
            signature_type: Some("at+jwt".to_owned()),
            ..Default::default()
        };
        let forged = key.authenticate_with_options(claims, &options).unwrap();
        assert_invalid_token(&app.get_bearer("/api/v1/me", &forged).await);
    }

    // A tampered payload under the original signature (scope raised to admin).
    let mut raised = payload.clone();
    raised["scope"] = json!("admin");
    let tampered = format!("{}.{}.{}", b64(&header), b64(&raised), signature);
    assert_invalid_token(&app.get_bearer("/admin/v1/clients", &tampered).await);

    // A different typ (an ID token or any plain JWT).
    let mut plain = header.clone();
    plain["typ"] = json!("JWT");
    let retyped = format!("{}.{}.{}", b64(&plain), b64(&payload), signature);
    assert_invalid_token(&app.get_bearer("/api/v1/me", &retyped).await);

    // A well-formed token signed by a key the server never had.
    let stranger = ES256KeyPair::generate().with_key_id(&kid);
    let claims = Claims::with_custom_claims(
        json!({"client_id": id, "scope": "api"}),
        Duration::from_secs(300),
    )
    .with_issuer(&app.base)
    .with_audience(format!("{}/api", app.base))
    .with_subject(&id)
    .with_jwt_id("x");
    let options = HeaderOptions {
        signature_type: Some("at+jwt".to_owned()),
        ..Default::default()
    };
    let foreign = stranger.sign_with_options(claims, &options).unwrap();
    assert_invalid_token(&app.get_bearer("/api/v1/me", &foreign).await);
    assert_invalid_token(&app.get_bearer("/api/v1/me", "garbage").await);

    assert_eq!(
        app.get_bearer("/api/v1/me", &token).await.status(),
        200,
        "the genuine token still works"
    );
    app.stop().await;
}

#[apply(both_backends)]
async fn tokens_for_another_issuer_or_audience_are_rejected(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    // Two servers on one database and key ring, differing only in issuer or audience.
    let app = TestApp::spawn(backend).await;
    let other_issuer = TestApp::spawn_on(app.db.share(), |c| {
        c.issuer = Some("https://elsewhere.example".to_owned())
    })
    .await;
    let issuer = app.base.clone();
    let other_audience = TestApp::spawn_on(app.db.share(), |c| {
        c.issuer = Some(issuer);
        c.audience = Some("https://billing.example".to_owned());
    })
    .await;
    let (id, secret) = app.service_client(&["api"]).await;

    let from_elsewhere = other_issuer.access_token(&id, &secret, None).await;
    let res = app.get_bearer("/api/v1/me", &from_elsewhere).await;
    assert_invalid_token(&res);
    assert!(
        res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("another issuer")
    );

    let for_billing = other_audience.access_token(&id, &secret, None).await;
    let res = app.get_bearer("/api/v1/me", &for_billing).await;
    assert_invalid_token(&res);
    assert!(
        res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("another audience")
    );
    for server in [other_issuer, other_audience, app] {
        server.stop().await;
    }
}

#[apply(both_backends)]
async fn expired_tokens_are_rejected_after_the_skew(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let clock = ManualClock::at(1_900_000_000);
    let app = TestApp::spawn_with_clock(backend, clock.clone(), |c| {
        c.access_token_ttl_secs = 60;
        c.clock_skew_secs = 5;
    })
    .await;
    let (id, secret) = app.service_client(&["api"]).await;
    let token = app.access_token(&id, &secret, None).await;
    clock.advance(60 + 5);
    assert_eq!(
        app.get_bearer("/api/v1/me", &token).await.status(),
        200,
        "within the skew"
    );
    clock.advance(1);
    let res = app.get_bearer("/api/v1/me", &token).await;
    assert_invalid_token(&res);
    assert!(
        res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("expired")
    );
    let introspected = app.introspect(&id, &secret, &token).await;
    assert_eq!(
        introspected,
        json!({"active": false}),
        "introspection calls an expired token inactive"
    );
    app.stop().await;
}
