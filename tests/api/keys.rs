//! Signing keys: rotation with an injected clock, encryption at rest, the CLI, and every
//! process honouring a rotation or revocation made by another.

use rstest::rstest;
use rstest_reuse::apply;

use crate::support::{both_backends, unavailable};
use std::time::Instant;

use gatehouse::clock::ManualClock;
use serde_json::Value;

use crate::support::{
    Backend, ServerProcess, TestApp, TestDb, cli, cli_service_client, eventually, kids,
    postgres_available,
};

async fn client_credentials(
    http: &reqwest::Client,
    server: &ServerProcess,
    id: &str,
    secret: &str,
) -> String {
    let res: Value = http
        .post(server.url("/oauth2/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    res["access_token"].as_str().unwrap().to_owned()
}

async fn kid_of(token: &str) -> String {
    jwt_simple::token::Token::decode_metadata(token)
        .unwrap()
        .key_id()
        .unwrap()
        .to_owned()
}

#[apply(both_backends)]
async fn rotation_publishes_first_signs_later_and_retires_after_the_last_token(
    #[case] backend: Backend,
) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let clock = ManualClock::at(1_900_000_000);
    let app = TestApp::spawn_with_clock(backend, clock.clone(), |c| {
        c.key_publish_secs = 300;
        c.access_token_ttl_secs = 600;
        c.access_token_max_ttl_secs = 900;
        c.clock_skew_secs = 0;
    })
    .await;
    let (id, secret) = app.service_client(&["admin", "api"]).await;
    let old_token = app.access_token(&id, &secret, Some("admin")).await;
    let old_kid = kid_of(&old_token).await;
    assert_eq!(kids(&app).await, vec![old_kid.clone()]);

    let malformed = app
        .http
        .post(app.url("/admin/v1/keys/rotate?immediately=soon"))
        .bearer_auth(&old_token)
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    assert!(
        malformed.json::<Value>().await.unwrap()["detail"]
            .as_str()
            .unwrap()
            .contains("immediately")
    );
    assert_eq!(
        kids(&app).await,
        vec![old_kid.clone()],
        "a refused rotation rotates nothing"
    );
    let rotated = app
        .http
        .post(app.url("/admin/v1/keys/rotate"))
        .bearer_auth(&old_token)
        .send()
        .await
        .unwrap();
    assert_eq!(rotated.status(), 201);
    let new_kid = rotated.json::<Value>().await.unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_kid, old_kid);
    assert_eq!(
        kids(&app).await,
        vec![old_kid.clone(), new_kid.clone()],
        "published before it signs"
    );
    let during = app.access_token(&id, &secret, None).await;
    assert_eq!(
        kid_of(&during).await,
        old_kid,
        "the old key signs until the new one activates"
    );

    clock.advance(300);
    let after = app.access_token(&id, &secret, None).await;
    assert_eq!(
        kid_of(&after).await,
        new_kid,
        "new tokens carry the new kid"
    );
    assert_eq!(
        app.get_bearer("/api/v1/me", &old_token).await.status(),
        200,
        "old tokens keep validating"
    );
    assert_eq!(kids(&app).await, vec![old_kid.clone(), new_kid.clone()]);
    verify_independently_at(&app, &after).await;

    clock.advance(900);
    assert_eq!(
        kids(&app).await,
        vec![new_kid.clone()],
        "gone once its last token has expired"
    );
    let listed: Value = app
        .get_bearer(
            "/admin/v1/keys",
            &app.access_token(&id, &secret, Some("admin")).await,
        )
        .await
        .json()
        .await
        .unwrap();
    let states: Vec<&str> = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["alg"] == "ES256")
        .map(|k| k["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, vec!["retired", "active"]);

    // Automatic rotation: once the active key is older than key_rotation_secs.
    let state = app.app_state.clone();
    clock.advance(state.config.key_rotation_secs);
    gatehouse::oauth::keys::maintain(
        &state.store,
        state.clock.as_ref(),
        state.tokens.ring.master(),
        &state.config,
    )
    .await
    .unwrap();
    state.tokens.ring.refresh(&state.store).await.unwrap();
    assert_eq!(kids(&app).await.len(), 2, "a successor is published");
    app.stop().await;
}

async fn verify_independently_at(app: &TestApp, token: &str) {
    // jwt-simple checks exp against the real clock; the manual clock is in the future,
    // so only check what does not depend on time here: signature, iss, aud.
    let jwks: Value = app.get("/oauth2/jwks").await.json().await.unwrap();
    let kid = kid_of(token).await;
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .unwrap();
    let key = jwt_simple::prelude::ES256PublicKey::from_jwk(&jwk.to_string()).unwrap();
    use jwt_simple::prelude::ECDSAP256PublicKeyLike as _;
    let options = jwt_simple::prelude::VerificationOptions {
        artificial_time: Some(jwt_simple::prelude::UnixTimeStamp::from_secs(1_900_000_301)),
        ..Default::default()
    };
    key.verify_token::<Value>(token, Some(options))
        .expect("the new key's token verifies independently");
}

#[apply(both_backends)]
async fn cli_lists_and_rotates_keys_with_private_parts_encrypted(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let db = TestDb::new(backend).await;
    let listed = cli(&db, &["keys", "list", "--json"], None)
        .await
        .ok()
        .json();
    // One line of keys per algorithm in use: access tokens' ES256, ID tokens' RS256.
    let lines = |listed: &Value, alg: &str| -> Vec<Value> {
        listed["keys"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|k| k["alg"] == alg)
            .cloned()
            .collect()
    };
    let first = lines(&listed, "ES256")[0].clone();
    assert_eq!(first["state"], "active");
    assert_eq!(lines(&listed, "RS256")[0]["state"], "active");
    let rotated = cli(&db, &["keys", "rotate", "--json"], None)
        .await
        .ok()
        .json();
    assert_eq!(rotated["state"], "pending");
    let now = cli(&db, &["keys", "rotate", "--immediately", "--json"], None)
        .await
        .ok()
        .json();
    assert_eq!(now["state"], "active");
    let listed = cli(&db, &["keys", "list", "--json"], None)
        .await
        .ok()
        .json();
    assert_eq!(lines(&listed, "ES256").len(), 3);
    // Rotating another line leaves this one alone.
    let rsa = cli(&db, &["keys", "rotate", "--alg", "RS256", "--json"], None)
        .await
        .ok()
        .json();
    assert_eq!(
        (rsa["alg"].as_str(), rsa["state"].as_str()),
        (Some("RS256"), Some("pending"))
    );
    let listed = cli(&db, &["keys", "list", "--json"], None)
        .await
        .ok()
        .json();
    assert_eq!(lines(&listed, "ES256").len(), 3);
    assert_eq!(lines(&listed, "RS256").len(), 2);
    let unknown = cli(&db, &["keys", "rotate", "--alg", "HS256"], None).await;
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);

    // The stored private keys are sealed: no PKCS#8 structure in the clear.
    let store = gatehouse::store::Store::connect(&db.url, 2).await.unwrap();
    for row in gatehouse::store::keys::list(&store).await.unwrap() {
        assert!(
            !row.private_key
                .windows(7)
                .any(|w| w == [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01]),
            "the EC key OID must not be readable in the stored private key"
        );
    }
    // Another master key cannot open them: the server refuses to start, saying why.
    let wrong = cli(&db, &["keys", "rotate"], None).await;
    assert_eq!(wrong.code, 0);
    let mut cmd = crate::support::gatehouse(&db);
    cmd.args(["serve"])
        .env("GATEHOUSE_LISTEN", "127.0.0.1:0")
        .env("GATEHOUSE_MANAGEMENT_LISTEN", "127.0.0.1:0")
        .env(
            "GATEHOUSE_MASTER_KEY",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        );
    let out = crate::support::run(&mut cmd, None).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("master key"), "{}", out.stderr);
}

#[tokio::test]
async fn dev_mode_generates_a_private_master_key_file_beside_the_database() {
    let db = TestDb::new(Backend::Sqlite).await;
    let list_keys = || async {
        let mut cmd = crate::support::gatehouse(&db);
        cmd.env_remove("GATEHOUSE_MASTER_KEY")
            .args(["keys", "list", "--json"]);
        crate::support::run(&mut cmd, None).await.ok().json()
    };
    let first = list_keys().await;
    let algs: Vec<&str> = first["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["alg"].as_str().unwrap())
        .collect();
    assert!(
        algs.contains(&"ES256") && algs.contains(&"RS256"),
        "{algs:?}"
    );
    let file = db.path().join("gatehouse.master.key");
    let meta = std::fs::metadata(&file).expect("the key file exists beside the database");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let written = std::fs::read_to_string(&file).unwrap();
    // The next process reuses the file and so can open the key the first one sealed.
    assert_eq!(list_keys().await, first);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), written);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_on_one_process_is_honoured_by_another_within_two_seconds() {
    if !postgres_available("keys::a_revocation_on_one_process_is_honoured_by_another") {
        return;
    }
    let db = TestDb::new(Backend::Postgres).await;
    let (id, secret) = cli_service_client(&db, "api").await;
    let mut a = ServerProcess::start(&db, &[]).await;
    let mut b = ServerProcess::start(&db, &[]).await;
    let http = reqwest::Client::new();
    let token = client_credentials(&http, &a, &id, &secret).await;
    let token = token.as_str();
    assert_eq!(
        http.get(b.url("/api/v1/me"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "a token from one process works on the other"
    );

    let revoked = http
        .post(a.url("/oauth2/revoke"))
        .basic_auth(&id, Some(&secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let start = Instant::now();
    let honoured = eventually(2, || async {
        let status = http
            .get(b.url("/api/v1/me"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status();
        (status == 401).then_some(())
    })
    .await;
    assert!(
        honoured.is_some(),
        "process b still accepts the revoked token after 2 s"
    );
    eprintln!(
        "revocation honoured by the other process after {:?}",
        start.elapsed()
    );

    // A rotation made on one process is picked up by the other without restart.
    let rotated = cli(&db, &["keys", "rotate", "--immediately", "--json"], None)
        .await
        .ok()
        .json();
    let new_kid = rotated["kid"].as_str().unwrap();
    let picked_up = eventually(3, || async {
        let token = client_credentials(&http, &b, &id, &secret).await;
        (kid_of(&token).await == new_kid).then_some(())
    })
    .await;
    assert!(
        picked_up.is_some(),
        "process b did not pick up the rotation"
    );
    for server in [&a, &b] {
        server.terminate();
    }
    assert_eq!(a.wait().await, 0);
    assert_eq!(b.wait().await, 0);
}

#[apply(both_backends)]
async fn eddsa_and_rs256_keys_sign_tokens_that_verify_independently(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    use base64::Engine as _;
    use jwt_simple::prelude::*;
    for alg in [
        gatehouse::config::SigningAlg::EdDSA,
        gatehouse::config::SigningAlg::RS256,
    ] {
        let app = TestApp::spawn_with(backend, |c| c.signing_alg = alg).await;
        let (id, secret) = app.service_client(&["api"]).await;
        let token = app.access_token(&id, &secret, None).await;
        let metadata = Token::decode_metadata(&token).unwrap();
        assert_eq!(metadata.algorithm(), alg.as_str());
        let jwks: Value = app.get("/oauth2/jwks").await.json().await.unwrap();
        let jwk = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == metadata.key_id().unwrap())
            .unwrap();
        assert_eq!(jwk["alg"], alg.as_str());
        let claims = match alg {
            gatehouse::config::SigningAlg::EdDSA => {
                assert_eq!(
                    (jwk["kty"].as_str(), jwk["crv"].as_str()),
                    (Some("OKP"), Some("Ed25519"))
                );
                Ed25519PublicKey::from_jwk(&jwk.to_string())
                    .unwrap()
                    .verify_token::<Value>(&token, None)
                    .unwrap()
            }
            _ => {
                assert_eq!(jwk["kty"], "RSA");
                let b = |f: &str| {
                    base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .decode(jwk[f].as_str().unwrap())
                        .unwrap()
                };
                RS256PublicKey::from_components(&b("n"), &b("e"))
                    .unwrap()
                    .verify_token::<Value>(&token, None)
                    .unwrap()
            }
        };
        assert_eq!(claims.subject.as_deref(), Some(id.as_str()));
        assert_eq!(app.get_bearer("/api/v1/me", &token).await.status(), 200);
        app.stop().await;
    }
}
