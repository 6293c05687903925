//! The token endpoint, client authentication, client credentials, introspection,
//! revocation and discovery. Tokens are checked with an independent JOSE library.

use rstest::rstest;
use rstest_reuse::apply;

use crate::support::{Backend, both_backends, unavailable};
use std::collections::HashSet;

use gatehouse::oauth::clients::NewClient;
use jwt_simple::prelude::*;
use serde_json::Value;

use crate::support::TestApp;

#[derive(Debug, Serialize, Deserialize)]
pub struct AtClaims {
    pub client_id: String,
    pub scope: String,
}

/// Verifies an access token with jwt-simple against the server's JWKS.
pub async fn verify_independently(app: &TestApp, token: &str) -> JWTClaims<AtClaims> {
    let jwks: Value = app.get("/oauth2/jwks").await.json().await.unwrap();
    let metadata = Token::decode_metadata(token).unwrap();
    assert_eq!(metadata.algorithm(), "ES256");
    assert_eq!(
        metadata.signature_type(),
        Some("at+jwt"),
        "RFC 9068 §2.1 typ"
    );
    let kid = metadata.key_id().unwrap();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .expect("kid is in JWKS");
    let key = ES256PublicKey::from_jwk(&jwk.to_string()).unwrap();
    let options = VerificationOptions {
        allowed_issuers: Some(HashSet::from([app.base.clone()])),
        allowed_audiences: Some(HashSet::from([format!("{}/api", app.base)])),
        time_tolerance: Some(Duration::from_secs(0)),
        ..Default::default()
    };
    key.verify_token::<AtClaims>(token, Some(options))
        .expect("the token verifies with an independent JOSE library")
}

async fn json(res: reqwest::Response) -> Value {
    res.json().await.unwrap()
}

#[track_caller]
fn assert_oauth_error(status: u16, body: &Value, want_status: u16, want_error: &str) {
    assert_eq!(
        (status, body["error"].as_str()),
        (want_status, Some(want_error)),
        "{body}"
    );
}

#[apply(both_backends)]
async fn client_credentials_issues_an_rfc9068_jwt(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let (id, secret) = app.service_client(&["cases.read", "cases.write"]).await;
    let res = app
        .post_form(
            "/oauth2/token",
            Some((&id, &secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body = json(res).await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 600);
    assert_eq!(body["scope"], "cases.read cases.write");
    assert!(
        body.get("refresh_token").is_none(),
        "client_credentials issues no refresh token"
    );
    let token = body["access_token"].as_str().unwrap();

    let claims = verify_independently(&app, token).await;
    assert_eq!(
        claims.subject.as_deref(),
        Some(id.as_str()),
        "sub is the client itself"
    );
    assert_eq!(claims.custom.client_id, id);
    assert_eq!(claims.custom.scope, "cases.read cases.write");
    assert!(claims.jwt_id.as_ref().is_some_and(|j| j.len() >= 16));
    let lifetime = claims.expires_at.unwrap().as_secs() - claims.issued_at.unwrap().as_secs();
    assert_eq!(lifetime, 600);

    let me = json(app.get_bearer("/api/v1/me", token).await).await;
    assert_eq!(me["sub"], id.as_str());
    assert_eq!(me["client_id"], id.as_str());
    assert_eq!(me["scope"], "cases.read cases.write");
    app.stop().await;
}

#[apply(both_backends)]
async fn requested_scopes_must_be_a_subset_of_the_clients(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let (id, secret) = app.service_client(&["cases.read", "cases.write"]).await;
    let basic = Some((id.as_str(), secret.as_str()));
    let narrowed = app
        .post_form(
            "/oauth2/token",
            basic,
            &[
                ("grant_type", "client_credentials"),
                ("scope", "cases.read"),
            ],
        )
        .await;
    assert_eq!(json(narrowed).await["scope"], "cases.read");
    for scope in [
        "admin",
        "cases.read admin",
        "root",
        "openid",
        "offline_access",
    ] {
        let res = app
            .post_form(
                "/oauth2/token",
                basic,
                &[("grant_type", "client_credentials"), ("scope", scope)],
            )
            .await;
        let status = res.status().as_u16();
        assert_oauth_error(status, &json(res).await, 400, "invalid_scope");
    }
    app.stop().await;
}

#[apply(both_backends)]
async fn token_endpoint_rejects_malformed_requests(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let (id, secret) = app.service_client(&["api"]).await;
    let url = app.url("/oauth2/token");

    let as_json = app
        .http
        .post(&url)
        .basic_auth(&id, Some(&secret))
        .json(&serde_json::json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    let status = as_json.status().as_u16();
    assert_oauth_error(status, &json(as_json).await, 400, "invalid_request");

    let twice = app
        .http
        .post(&url)
        .basic_auth(&id, Some(&secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&scope=api&scope=api")
        .send()
        .await
        .unwrap();
    assert_eq!(twice.headers()["cache-control"], "no-store");
    let status = twice.status().as_u16();
    let body = json(twice).await;
    assert_oauth_error(status, &body, 400, "invalid_request");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("scope")
    );

    let missing = app
        .post_form("/oauth2/token", Some((&id, &secret)), &[("scope", "api")])
        .await;
    let status = missing.status().as_u16();
    assert_oauth_error(status, &json(missing).await, 400, "invalid_request");

    let unknown = app
        .post_form(
            "/oauth2/token",
            Some((&id, &secret)),
            &[("grant_type", "password")],
        )
        .await;
    let status = unknown.status().as_u16();
    assert_oauth_error(status, &json(unknown).await, 400, "unsupported_grant_type");
    app.stop().await;
}

#[apply(both_backends)]
async fn clients_authenticate_only_with_their_registered_method(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let (basic_id, basic_secret) = app.service_client(&["api"]).await;
    let (post_id, post_secret) = app
        .register(NewClient {
            name: "post".to_owned(),
            client_type: "confidential".to_owned(),
            auth_method: Some("client_secret_post".to_owned()),
            grant_types: vec!["client_credentials".to_owned()],
            ..Default::default()
        })
        .await;
    let post_secret = post_secret.unwrap();
    let grant = ("grant_type", "client_credentials");

    let ok = app
        .post_form(
            "/oauth2/token",
            None,
            &[
                grant,
                ("client_id", &post_id),
                ("client_secret", &post_secret),
            ],
        )
        .await;
    assert_eq!(ok.status(), 200, "client_secret_post");

    // Each of these must be 401 invalid_client with a WWW-Authenticate challenge.
    let attempts = [
        app.post_form("/oauth2/token", Some((&post_id, &post_secret)), &[grant])
            .await,
        app.post_form(
            "/oauth2/token",
            None,
            &[
                grant,
                ("client_id", &basic_id),
                ("client_secret", &basic_secret),
            ],
        )
        .await,
        app.post_form("/oauth2/token", Some((&basic_id, "wrong-secret")), &[grant])
            .await,
        app.post_form("/oauth2/token", Some(("no-such-client", "x")), &[grant])
            .await,
        app.post_form("/oauth2/token", None, &[grant]).await,
    ];
    for res in attempts {
        let status = res.status().as_u16();
        assert!(
            res.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Basic")
        );
        assert_oauth_error(status, &json(res).await, 401, "invalid_client");
    }

    let both = app
        .post_form(
            "/oauth2/token",
            Some((&basic_id, &basic_secret)),
            &[grant, ("client_secret", &basic_secret)],
        )
        .await;
    let status = both.status().as_u16();
    assert_oauth_error(status, &json(both).await, 400, "invalid_request");

    // A public client authenticates with none but may not use client_credentials.
    let (public_id, _) = app
        .register(NewClient {
            name: "spa".to_owned(),
            client_type: "public".to_owned(),
            redirect_uris: vec!["https://app.example.com/cb".to_owned()],
            ..Default::default()
        })
        .await;
    let public = app
        .post_form("/oauth2/token", None, &[grant, ("client_id", &public_id)])
        .await;
    let status = public.status().as_u16();
    assert_oauth_error(status, &json(public).await, 400, "unauthorized_client");
    app.stop().await;
}

#[apply(both_backends)]
async fn disabled_clients_and_rotated_secrets_stop_working(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let (admin_id, admin_secret) = app.service_client(&["admin"]).await;
    let admin = app.access_token(&admin_id, &admin_secret, None).await;
    let (id, secret) = app.service_client(&["api"]).await;
    app.access_token(&id, &secret, None).await;

    let rotated = app
        .http
        .post(app.url(&format!("/admin/v1/clients/{id}/rotate-secret")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(rotated.status(), 200);
    let new_secret = json(rotated).await["client_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let old = app
        .post_form(
            "/oauth2/token",
            Some((&id, &secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(old.status(), 401, "the old secret stops working at once");
    app.access_token(&id, &new_secret, None).await;

    let disabled = app
        .http
        .post(app.url(&format!("/admin/v1/clients/{id}/disable")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(disabled.status(), 200);
    let res = app
        .post_form(
            "/oauth2/token",
            Some((&id, &new_secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    let status = res.status().as_u16();
    let body = json(res).await;
    assert_oauth_error(status, &body, 401, "invalid_client");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("disabled")
    );
    app.stop().await;
}

#[apply(both_backends)]
async fn introspection_answers_only_for_the_clients_own_live_tokens(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let (id, secret) = app.service_client(&["cases.read"]).await;
    let (other_id, other_secret) = app.service_client(&["cases.read"]).await;
    let token = app.access_token(&id, &secret, None).await;

    let res = app
        .post_form(
            "/oauth2/introspect",
            Some((&id, &secret)),
            &[("token", &token)],
        )
        .await;
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body = json(res).await;
    assert_eq!(body["active"], true);
    assert_eq!(body["client_id"], id.as_str());
    assert_eq!(body["scope"], "cases.read");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["iss"], app.base.as_str());

    let foreign = json(
        app.post_form(
            "/oauth2/introspect",
            Some((&other_id, &other_secret)),
            &[("token", &token)],
        )
        .await,
    )
    .await;
    assert_eq!(foreign, serde_json::json!({"active": false}));
    let garbage = json(
        app.post_form(
            "/oauth2/introspect",
            Some((&id, &secret)),
            &[("token", "not.a.token")],
        )
        .await,
    )
    .await;
    assert_eq!(garbage, serde_json::json!({"active": false}));

    let anonymous = app
        .post_form("/oauth2/introspect", None, &[("token", &token)])
        .await;
    assert_eq!(anonymous.status(), 401);
    let missing = app
        .post_form("/oauth2/introspect", Some((&id, &secret)), &[])
        .await;
    let status = missing.status().as_u16();
    assert_oauth_error(status, &json(missing).await, 400, "invalid_request");

    let revoked = app
        .post_form("/oauth2/revoke", Some((&id, &secret)), &[("token", &token)])
        .await;
    assert_eq!(revoked.status(), 200);
    let after = json(
        app.post_form(
            "/oauth2/introspect",
            Some((&id, &secret)),
            &[("token", &token)],
        )
        .await,
    )
    .await;
    assert_eq!(after, serde_json::json!({"active": false}));
    app.stop().await;
}

#[apply(both_backends)]
async fn revocation_is_rfc7009(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let (id, secret) = app.service_client(&["api"]).await;
    let (other_id, other_secret) = app.service_client(&["api"]).await;
    let token = app.access_token(&id, &secret, None).await;
    assert_eq!(app.get_bearer("/api/v1/me", &token).await.status(), 200);

    let unknown = app
        .post_form(
            "/oauth2/revoke",
            Some((&id, &secret)),
            &[("token", "whatever")],
        )
        .await;
    assert_eq!(unknown.status(), 200, "unknown tokens are answered 200");
    let foreign = app
        .post_form(
            "/oauth2/revoke",
            Some((&other_id, &other_secret)),
            &[("token", &token)],
        )
        .await;
    assert_eq!(foreign.status(), 200);
    assert_eq!(
        app.get_bearer("/api/v1/me", &token).await.status(),
        200,
        "another client cannot revoke it"
    );
    let hint = app
        .post_form(
            "/oauth2/revoke",
            Some((&id, &secret)),
            &[("token", &token), ("token_type_hint", "id_token")],
        )
        .await;
    let status = hint.status().as_u16();
    assert_oauth_error(status, &json(hint).await, 400, "unsupported_token_type");

    let res = app
        .post_form(
            "/oauth2/revoke",
            Some((&id, &secret)),
            &[("token", &token), ("token_type_hint", "access_token")],
        )
        .await;
    assert_eq!(res.status(), 200);
    let rejected = app.get_bearer("/api/v1/me", &token).await;
    assert_eq!(rejected.status(), 401);
    let challenge = rejected.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains(r#"error="invalid_token""#) && challenge.contains("revoked"),
        "{challenge}"
    );
    app.stop().await;
}

#[apply(both_backends)]
async fn discovery_lists_what_is_enabled(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let oidc = json(app.get("/.well-known/openid-configuration").await).await;
    let rfc8414 = json(app.get("/.well-known/oauth-authorization-server").await).await;
    assert_eq!(oidc, rfc8414);
    assert_eq!(oidc["issuer"], app.base.as_str());
    assert_eq!(oidc["token_endpoint"], app.url("/oauth2/token"));
    assert_eq!(
        oidc["introspection_endpoint"],
        app.url("/oauth2/introspect")
    );
    assert_eq!(oidc["revocation_endpoint"], app.url("/oauth2/revoke"));
    assert_eq!(oidc["authorization_endpoint"], app.url("/oauth2/authorize"));
    assert_eq!(oidc["userinfo_endpoint"], app.url("/oauth2/userinfo"));
    assert_eq!(
        oidc["grant_types_supported"],
        serde_json::json!([
            "authorization_code",
            "refresh_token",
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "urn:ietf:params:oauth:grant-type:device_code"
        ])
    );
    assert_eq!(
        oidc["response_types_supported"],
        serde_json::json!(["code"])
    );
    assert_eq!(
        oidc["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(
        oidc["id_token_signing_alg_values_supported"],
        serde_json::json!(["ES256", "RS256"])
    );
    assert_eq!(
        oidc["subject_types_supported"],
        serde_json::json!(["public"])
    );
    assert_eq!(
        oidc["access_token_signing_alg_values_supported"],
        serde_json::json!(["ES256"])
    );
    let methods = oidc["token_endpoint_auth_methods_supported"]
        .as_array()
        .unwrap();
    for m in [
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
    ] {
        assert!(methods.contains(&Value::from(m)), "{m}");
    }
    let jwks = app
        .http
        .get(oidc["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(jwks.headers()["content-type"], "application/jwk-set+json");
    let jwks = json(jwks).await;
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["alg"] == "ES256")
        .unwrap();
    assert_eq!(
        (
            key["kty"].as_str(),
            key["crv"].as_str(),
            key["use"].as_str()
        ),
        (Some("EC"), Some("P-256"), Some("sig"))
    );
    assert!(key.get("d").is_none(), "no private part is ever published");
    app.stop().await;
}
