//! private_key_jwt client authentication (RFC 7523 §2.2) with keys signed by an independent
//! JOSE library.

use rstest::rstest;
use rstest_reuse::apply;

use crate::support::{Backend, both_backends, unavailable};
use gatehouse::oauth::clients::NewClient;
use jwt_simple::prelude::*;
use serde_json::Value;

use crate::support::{TestApp, cli};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn assertion(key: &ES256KeyPair, iss: &str, aud: &str, valid_secs: u64, jti: &str) -> String {
    let claims = Claims::create(Duration::from_secs(valid_secs))
        .with_issuer(iss)
        .with_subject(iss)
        .with_audience(aud)
        .with_jwt_id(jti);
    key.sign(claims).unwrap()
}

#[apply(both_backends)]
async fn private_key_jwt_authenticates_with_a_registered_key_once_per_jti(
    #[case] backend: Backend,
) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let (id, _) = app
        .register(NewClient {
            name: "partner".to_owned(),
            client_type: "confidential".to_owned(),
            auth_method: Some("private_key_jwt".to_owned()),
            grant_types: vec!["client_credentials".to_owned()],
            scopes: vec!["api".to_owned()],
            ..Default::default()
        })
        .await;
    let key = ES256KeyPair::generate();
    let pem_file = app.db.path().join("partner.pem");
    std::fs::write(&pem_file, key.public_key().to_pem().unwrap()).unwrap();
    let added = cli(
        &app.db,
        &[
            "client",
            "add-key",
            &id,
            "--pem",
            pem_file.to_str().unwrap(),
            "--json",
        ],
        None,
    )
    .await
    .ok()
    .json();
    let kid = added["kid"].as_str().unwrap().to_owned();
    assert_eq!(added["kty"], "EC");
    let key = key.with_key_id(&kid);
    let token_endpoint = app.url("/oauth2/token");

    let send = |assertion: String| {
        let app = &app;
        async move {
            app.post_form(
                "/oauth2/token",
                None,
                &[
                    ("grant_type", "client_credentials"),
                    ("client_assertion_type", ASSERTION_TYPE),
                    ("client_assertion", &assertion),
                ],
            )
            .await
        }
    };
    let good = assertion(&key, &id, &token_endpoint, 60, "a-1");
    let ok = send(good.clone()).await;
    assert_eq!(ok.status(), 200);
    let token: Value = ok.json().await.unwrap();
    assert_eq!(token["scope"], "api");

    let expect_401 = |res: reqwest::Response, needle: &'static str| async move {
        assert_eq!(res.status(), 401);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client");
        let description = body["error_description"].as_str().unwrap().to_owned();
        assert!(
            description.contains(needle),
            "`{description}` should mention `{needle}`"
        );
    };
    expect_401(send(good).await, "replay").await;
    expect_401(
        send(assertion(
            &key,
            &id,
            "https://other.example/token",
            60,
            "a-2",
        ))
        .await,
        "aud",
    )
    .await;
    expect_401(
        send(assertion(&key, &id, &token_endpoint, 3600, "a-3")).await,
        "ahead",
    )
    .await;
    let stranger = ES256KeyPair::generate().with_key_id(&kid);
    expect_401(
        send(assertion(&stranger, &id, &token_endpoint, 60, "a-4")).await,
        "signature",
    )
    .await;
    let unknown_kid = ES256KeyPair::generate().with_key_id("no-such-kid");
    expect_401(
        send(assertion(&unknown_kid, &id, &token_endpoint, 60, "a-5")).await,
        "kid",
    )
    .await;
    let expired = {
        let mut claims = Claims::create(Duration::from_secs(60))
            .with_issuer(&id)
            .with_subject(&id)
            .with_audience(&token_endpoint)
            .with_jwt_id("a-6");
        claims.expires_at = Some(Clock::now_since_epoch() - Duration::from_secs(120));
        key.sign(claims).unwrap()
    };
    expect_401(send(expired).await, "expired").await;

    // Registered for private_key_jwt, so a secret-style attempt is refused outright.
    let basic = app
        .post_form(
            "/oauth2/token",
            Some((&id, "anything")),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(basic.status(), 401);
    // The issuer is also an accepted audience.
    assert_eq!(
        send(assertion(&key, &id, &app.base, 60, "a-7"))
            .await
            .status(),
        200
    );
    app.stop().await;
}
