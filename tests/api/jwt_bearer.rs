//! The JWT bearer grant (RFC 7523 §2.1): a partner's server signs an assertion for a
//! pre-authorized user with an independent JOSE library (RS256 and ES256) and gets an
//! access token that acts as that user; every broken rule has its own error.

use rstest::rstest;
use rstest_reuse::apply;

use crate::support::{Backend, both_backends, unavailable};
use gatehouse::oauth::clients::NewClient;
use jwt_simple::prelude::*;
use serde_json::{Value, json};

use crate::flow::user;
use crate::support::{TestApp, cli};

pub const GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// A partner client pre-authorized for `ada`; returns its id.
pub async fn partner(app: &TestApp) -> String {
    let (id, _) = app
        .register(NewClient {
            name: "partner".to_owned(),
            client_type: "confidential".to_owned(),
            auth_method: Some("private_key_jwt".to_owned()),
            grant_types: vec![GRANT.to_owned()],
            scopes: vec![
                "api".to_owned(),
                "cases.read".to_owned(),
                "cases.write".to_owned(),
                "offline_access".to_owned(),
            ],
            pre_authorize: vec!["ada".to_owned()],
            ..Default::default()
        })
        .await;
    id
}

/// A new ES256 key of `client`, registered through the library.
pub async fn es256_key(app: &TestApp, client: &str) -> ES256KeyPair {
    let key = ES256KeyPair::generate();
    gatehouse::oauth::clients::add_key(
        &app.app_state.store,
        app.app_state.clock.as_ref(),
        client,
        &key.public_key().to_pem().unwrap(),
    )
    .await
    .unwrap();
    app.app_state.clients.changed(client);
    key
}

pub fn claims(
    iss: &str,
    sub: &str,
    aud: &str,
    valid_secs: u64,
    jti: &str,
) -> JWTClaims<NoCustomClaims> {
    Claims::create(Duration::from_secs(valid_secs))
        .with_issuer(iss)
        .with_subject(sub)
        .with_audience(aud)
        .with_jwt_id(jti)
}

async fn grant(app: &TestApp, assertion: &str, extra: &[(&str, &str)]) -> reqwest::Response {
    let mut form = vec![("grant_type", GRANT), ("assertion", assertion)];
    form.extend_from_slice(extra);
    app.post_form("/oauth2/token", None, &form).await
}

#[apply(both_backends)]
async fn a_partner_assertion_gets_a_token_that_acts_as_the_user(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let ada = user(&app, "ada").await;
    let id = partner(&app).await;
    let aud = app.url("/oauth2/token");

    // RS256 with a key registered through the CLI, chosen by its kid.
    let rsa = RS384KeyPair::generate(2048).unwrap();
    let rsa = RS256KeyPair::from_pem(&rsa.to_pem().unwrap()).unwrap();
    let pem_file = app.db.path().join("partner-rsa.pem");
    std::fs::write(&pem_file, rsa.public_key().to_pem().unwrap()).unwrap();
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
    assert_eq!(added["kty"], "RSA");
    let rsa = rsa.with_key_id(added["kid"].as_str().unwrap());
    let answer = grant(
        &app,
        &rsa.sign(claims(&id, "ada", &aud, 120, "r-1")).unwrap(),
        &[],
    )
    .await;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["cache-control"], "no-store");
    let token: Value = answer.json().await.unwrap();
    assert_eq!(token["token_type"], "Bearer");
    assert_eq!(
        token["scope"], "api cases.read cases.write",
        "the client's scopes, no offline_access"
    );
    assert!(token.get("refresh_token").is_none(), "no refresh token");
    let access = token["access_token"].as_str().unwrap();

    // The token acts as ada: /me says so, and a case it creates is ada's.
    let me: Value = app
        .get_bearer("/api/v1/me", access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["sub"], ada.id);
    assert_eq!(me["client_id"], id);
    let created = app
        .http
        .post(app.url("/api/v1/cases"))
        .bearer_auth(access)
        .json(&json!({"case": {"subject": "From the partner"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let case: Value = created.json().await.unwrap();
    assert_eq!(case["owner"], ada.id);
    assert_eq!(case["created_by"], id);

    // ES256 with a key registered through the library, tried without a kid; the
    // issuer as audience; the scope narrowed.
    let ec = es256_key(&app, &id).await;
    let answer = grant(
        &app,
        &ec.sign(claims(&id, "ADA", &app.url(""), 60, "e-1"))
            .unwrap(),
        &[("scope", "cases.read")],
    )
    .await;
    assert_eq!(answer.status(), 200);
    let token: Value = answer.json().await.unwrap();
    assert_eq!(token["scope"], "cases.read");
    let me: Value = app
        .get_bearer("/api/v1/me", token["access_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["sub"], ada.id);
    app.stop().await;
}

#[apply(both_backends)]
async fn each_broken_rule_is_named(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn_with(backend, |c| c.clock_skew_secs = 30).await;
    user(&app, "ada").await;
    let bob = user(&app, "bob").await;
    let id = partner(&app).await;
    let key = ES256KeyPair::generate();
    let kid = gatehouse::oauth::clients::add_key(
        &app.app_state.store,
        app.app_state.clock.as_ref(),
        &id,
        &key.public_key().to_pem().unwrap(),
    )
    .await
    .unwrap()
    .kid;
    let key = key.with_key_id(&kid);
    let aud = app.url("/oauth2/token");
    let wall = jwt_simple::prelude::Clock::now_since_epoch().as_secs() as i64;

    let refused = |res: reqwest::Response, error: &'static str, needle: &'static str| async move {
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"], error, "{body}");
        assert_eq!(
            status,
            if error == "invalid_client" { 401 } else { 400 },
            "{body}"
        );
        let description = body["error_description"].as_str().unwrap().to_owned();
        assert!(
            description.contains(needle),
            "`{description}` should mention `{needle}`"
        );
    };
    let sign = |c: JWTClaims<NoCustomClaims>| key.sign(c).unwrap();

    let good = sign(claims(&id, "ada", &aud, 60, "j-1"));
    assert_eq!(grant(&app, &good, &[]).await.status(), 200);
    refused(grant(&app, &good, &[]).await, "invalid_grant", "replay").await;

    let mut expired = claims(&id, "ada", &aud, 60, "j-2");
    expired.expires_at = Some(Duration::from_secs((wall - 120) as u64));
    refused(
        grant(&app, &sign(expired), &[]).await,
        "invalid_grant",
        "expired",
    )
    .await;
    refused(
        grant(&app, &sign(claims(&id, "ada", &aud, 3600, "j-3")), &[]).await,
        "invalid_grant",
        "ahead",
    )
    .await;
    let mut early = claims(&id, "ada", &aud, 60, "j-4");
    early.invalid_before = Some(Duration::from_secs((wall + 120) as u64));
    refused(
        grant(&app, &sign(early), &[]).await,
        "invalid_grant",
        "not valid yet",
    )
    .await;
    refused(
        grant(
            &app,
            &sign(claims(
                &id,
                "ada",
                "https://elsewhere.example/token",
                60,
                "j-5",
            )),
            &[],
        )
        .await,
        "invalid_grant",
        "aud",
    )
    .await;
    refused(
        grant(
            &app,
            &sign(claims("someone-else", "ada", &aud, 60, "j-6")),
            &[],
        )
        .await,
        "invalid_grant",
        "not a registered client",
    )
    .await;
    let other = ES256KeyPair::generate().with_key_id("no-such-kid");
    refused(
        grant(
            &app,
            &other.sign(claims(&id, "ada", &aud, 60, "j-7")).unwrap(),
            &[],
        )
        .await,
        "invalid_grant",
        "kid",
    )
    .await;
    let forged = ES256KeyPair::generate().with_key_id(&kid);
    refused(
        grant(
            &app,
            &forged.sign(claims(&id, "ada", &aud, 60, "j-8")).unwrap(),
            &[],
        )
        .await,
        "invalid_grant",
        "signature",
    )
    .await;
    let hs = HS256Key::generate();
    refused(
        grant(
            &app,
            &hs.authenticate(claims(&id, "ada", &aud, 60, "j-9"))
                .unwrap(),
            &[],
        )
        .await,
        "invalid_grant",
        "not accepted",
    )
    .await;
    refused(
        grant(
            &app,
            &sign(claims(&id, bob.username.as_ref(), &aud, 60, "j-10")),
            &[],
        )
        .await,
        "invalid_grant",
        "not a user pre-authorized",
    )
    .await;
    refused(
        grant(&app, &sign(claims(&id, "nobody", &aud, 60, "j-11")), &[]).await,
        "invalid_grant",
        "not a user pre-authorized",
    )
    .await;
    refused(
        grant(&app, "not a jwt", &[]).await,
        "invalid_grant",
        "not a JWT",
    )
    .await;
    refused(
        grant(
            &app,
            &sign(claims(&id, "ada", &aud, 60, "j-12")),
            &[("scope", "admin")],
        )
        .await,
        "invalid_scope",
        "cannot be granted by a user",
    )
    .await;
    let missing = app
        .post_form("/oauth2/token", None, &[("grant_type", GRANT)])
        .await;
    refused(missing, "invalid_request", "assertion").await;

    // Client authentication is optional, but when present it must be the assertion's iss.
    let (other_id, other_secret) = app.service_client(&["api"]).await;
    let mismatched = app
        .post_form(
            "/oauth2/token",
            Some((&other_id, &other_secret)),
            &[
                ("grant_type", GRANT),
                ("assertion", &sign(claims(&id, "ada", &aud, 60, "j-13"))),
            ],
        )
        .await;
    refused(mismatched, "invalid_grant", "not the authenticated client").await;

    // A disabled client gets nothing.
    gatehouse::oauth::clients::set_enabled(
        &app.app_state.store,
        app.app_state.clock.as_ref(),
        &id,
        false,
    )
    .await
    .unwrap();
    app.app_state.clients.changed(&id);
    refused(
        grant(&app, &sign(claims(&id, "ada", &aud, 60, "j-14")), &[]).await,
        "invalid_client",
        "disabled",
    )
    .await;
    app.stop().await;
}

#[apply(both_backends)]
async fn a_client_not_registered_for_the_grant_is_refused(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    user(&app, "ada").await;
    let (id, _) = app
        .register(NewClient {
            name: "no grant".to_owned(),
            client_type: "confidential".to_owned(),
            auth_method: Some("private_key_jwt".to_owned()),
            grant_types: vec!["client_credentials".to_owned()],
            scopes: vec!["api".to_owned()],
            pre_authorize: vec!["ada".to_owned()],
            ..Default::default()
        })
        .await;
    let key = ES256KeyPair::generate();
    gatehouse::oauth::clients::add_key(
        &app.app_state.store,
        app.app_state.clock.as_ref(),
        &id,
        &key.public_key().to_pem().unwrap(),
    )
    .await
    .unwrap();
    let assertion = key
        .sign(claims(&id, "ada", &app.url("/oauth2/token"), 60, "n-1"))
        .unwrap();
    let res = grant(&app, &assertion, &[]).await;
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "unauthorized_client"
    );
    let discovery: Value = app
        .get("/.well-known/openid-configuration")
        .await
        .json()
        .await
        .unwrap();
    assert!(
        discovery["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&json!(GRANT))
    );
    app.stop().await;
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[apply(both_backends)]
async fn keys_come_as_certificates_or_jwks_and_rotate_without_downtime(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    user(&app, "ada").await;
    let id = partner(&app).await;
    let aud = app.url("/oauth2/token");
    let (admin_id, admin_secret) = app.service_client(&["admin"]).await;
    let admin = app.access_token(&admin_id, &admin_secret, None).await;

    // An X.509 certificate, as a Connected App uploads one, through the admin API.
    let cert_key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["partner.example".to_owned()])
        .unwrap()
        .self_signed(&cert_key)
        .unwrap();
    let added = app
        .http
        .post(app.url(&format!("/admin/v1/clients/{id}/keys")))
        .bearer_auth(&admin)
        .json(&json!({"pem": cert.pem()}))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 201);
    let cert_kid = added.json::<Value>().await.unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    let signer = ES256KeyPair::from_pem(&cert_key.serialize_pem())
        .unwrap()
        .with_key_id(&cert_kid);
    let ok = grant(
        &app,
        &signer.sign(claims(&id, "ada", &aud, 60, "c-1")).unwrap(),
        &[],
    )
    .await;
    assert_eq!(ok.status(), 200, "{}", ok.text().await.unwrap());

    // A JWKS document with an EC and an RSA key under the partner's own kids, by the CLI.
    let ec = ES256KeyPair::generate().with_key_id("2026-11-ec");
    let rsa = RS256KeyPair::generate(2048)
        .unwrap()
        .with_key_id("2026-11-rsa");
    let point = ec.public_key().public_key().to_bytes_uncompressed();
    let parts = rsa.public_key().to_components();
    let jwks = json!({"keys": [
        {"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..]), "kid": "2026-11-ec", "use": "sig"},
        {"kty": "RSA", "n": b64(&parts.n), "e": b64(&parts.e), "kid": "2026-11-rsa", "alg": "RS256"},
    ]});
    let file = app.db.path().join("partner.jwks");
    std::fs::write(&file, jwks.to_string()).unwrap();
    let listed = cli(
        &app.db,
        &[
            "client",
            "add-key",
            &id,
            "--jwks",
            file.to_str().unwrap(),
            "--json",
        ],
        None,
    )
    .await
    .ok()
    .json();
    let kids: Vec<&str> = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, ["2026-11-ec", "2026-11-rsa"]);
    app.app_state.clients.changed(&id);
    for (n, assertion) in [
        ec.sign(claims(&id, "ada", &aud, 60, "k-1")).unwrap(),
        rsa.sign(claims(&id, "ada", &aud, 60, "k-2")).unwrap(),
    ]
    .iter()
    .enumerate()
    {
        assert_eq!(grant(&app, assertion, &[]).await.status(), 200, "key {n}");
    }
    // Another partner may use the same kid names.
    let other = partner(&app).await;
    let again = app
        .http
        .post(app.url(&format!("/admin/v1/clients/{other}/jwks")))
        .bearer_auth(&admin)
        .json(&jwks)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 201);
    // The same kid twice for one client is a conflict; a private key is refused by path.
    let dup = app
        .http
        .post(app.url(&format!("/admin/v1/clients/{id}/jwks")))
        .bearer_auth(&admin)
        .json(&jwks)
        .send()
        .await
        .unwrap();
    assert_eq!(dup.status(), 409);
    let private = json!({"keys": [{"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..]), "d": "AAAA"}]});
    let refused = app
        .http
        .post(app.url(&format!("/admin/v1/clients/{id}/jwks")))
        .bearer_auth(&admin)
        .json(&private)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
    assert_eq!(
        refused.json::<Value>().await.unwrap()["errors"][0]["field"],
        "jwks.keys[0]"
    );

    // Rotation: the old key removed, the others keep working at once.
    let listed: Value = app
        .http
        .get(app.url(&format!("/admin/v1/clients/{id}/keys")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["keys"].as_array().unwrap().len(), 3);
    let removed = app
        .http
        .delete(app.url(&format!("/admin/v1/clients/{id}/keys/{cert_kid}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), 204);
    let gone = grant(
        &app,
        &signer.sign(claims(&id, "ada", &aud, 60, "c-2")).unwrap(),
        &[],
    )
    .await;
    assert_eq!(gone.status(), 400);
    assert!(
        gone.json::<Value>().await.unwrap()["error_description"]
            .as_str()
            .unwrap()
            .contains("no registered key")
    );
    assert_eq!(
        grant(
            &app,
            &ec.sign(claims(&id, "ada", &aud, 60, "k-3")).unwrap(),
            &[]
        )
        .await
        .status(),
        200
    );
    let out = cli(
        &app.db,
        &["client", "remove-key", &id, "2026-11-rsa", "--json"],
        None,
    )
    .await
    .ok()
    .json();
    assert_eq!(out["removed"], true);
    let missing = cli(&app.db, &["client", "remove-key", &id, "2026-11-rsa"], None).await;
    assert_ne!(missing.code, 0);
    app.stop().await;
}
