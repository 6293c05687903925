//! Security hardening, tried as an attacker would: no user-delegated token reaches the
//! admin API, one user never sees another's data (guessing locks: `lockout.rs`).

use rstest::rstest;
use rstest_reuse::apply;

use crate::support::{both_backends, unavailable};
use jwt_simple::prelude::*;
use serde_json::{Value, json};

use crate::flow::{Browser, PASSWORD, input_value, json, location, user, user_token};
use crate::support::{Backend, TestApp, cli, execute_sql};

const DEVICE: &str = "urn:ietf:params:oauth:grant-type:device_code";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// Starts a device authorization for `client` (with `scope`, if any), has `username`
/// approve it and polls once: the token response.
async fn device_tokens(app: &TestApp, client: &str, scope: Option<&str>, username: &str) -> Value {
    let mut form = vec![("client_id", client)];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    let codes = json(
        app.post_form("/oauth2/device_authorization", None, &form)
            .await,
    )
    .await;
    let user_code = codes["user_code"]
        .as_str()
        .unwrap_or_else(|| panic!("{codes}"));
    Browser::new(app).approve_device(user_code, username).await;
    let form = [
        ("grant_type", DEVICE),
        ("client_id", client),
        ("device_code", codes["device_code"].as_str().unwrap()),
    ];
    json(app.post_form("/oauth2/token", None, &form).await).await
}

#[apply(both_backends)]
async fn admin_is_never_in_a_user_delegated_token(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    user(&app, "mallory").await;

    // Registration refuses `admin` beside a grant that acts for a user: library, API, CLI.
    let asks = gatehouse::oauth::clients::NewClient {
        name: "TV".to_owned(),
        client_type: "public".to_owned(),
        grant_types: vec![DEVICE.to_owned(), "refresh_token".to_owned()],
        scopes: vec![
            "admin".to_owned(),
            "api".to_owned(),
            "offline_access".to_owned(),
        ],
        ..Default::default()
    };
    let refused = gatehouse::oauth::clients::create(
        &app.app_state.store,
        app.app_state.clock.as_ref(),
        asks.clone(),
    )
    .await;
    assert!(
        matches!(refused, Err(gatehouse::oauth::RegistryError::Invalid(ref f)) if f[0].field == "scopes" && f[0].code == "conflict"),
        "{:?}",
        refused.err()
    );
    let (admin_id, admin_secret) = app.service_client(&["admin"]).await;
    let admin = app
        .access_token(&admin_id, &admin_secret, Some("admin"))
        .await;
    let res = app
        .http
        .post(app.url("/admin/v1/clients"))
        .bearer_auth(&admin)
        .json(
            &json!({"name": "TV", "type": "public", "grant_types": [DEVICE], "scopes": ["admin"]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let problem: Value = res.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "scopes", "{problem}");
    assert!(
        problem["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("acts for a user"),
        "{problem}"
    );
    let out = cli(
        &app.db,
        &[
            "client", "create", "--name", "TV", "--type", "public", "--grant", DEVICE, "--scope",
            "admin",
        ],
        None,
    )
    .await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("admin") && out.stderr.contains("acts for a user"),
        "{}",
        out.stderr
    );

    // A client that holds `admin` anyway (registered before the rule, or edited in the
    // database): a user's approval still never puts it in a token.
    let (tv, _) = app
        .register(gatehouse::oauth::clients::NewClient {
            scopes: vec!["api".to_owned(), "offline_access".to_owned()],
            ..asks
        })
        .await;
    execute_sql(
        &app.db,
        r#"UPDATE clients SET scopes = '["admin","api","offline_access"]' WHERE name = 'TV'"#,
    )
    .await;
    let res = app
        .post_form(
            "/oauth2/device_authorization",
            None,
            &[("client_id", &tv), ("scope", "admin api")],
        )
        .await;
    assert_eq!(res.status(), 400);
    let body = json(res).await;
    assert_eq!(body["error"], "invalid_scope");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("cannot be granted by a user"),
        "{body}"
    );
    let tokens = device_tokens(&app, &tv, None, "mallory").await;
    assert_eq!(tokens["scope"], "offline_access api", "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(
        app.get_bearer("/admin/v1/users", access).await.status(),
        403
    );

    // The same for a partner's JWT bearer assertion.
    let (partner, _) = app
        .register(gatehouse::oauth::clients::NewClient {
            name: "Partner".to_owned(),
            client_type: "confidential".to_owned(),
            auth_method: Some("private_key_jwt".to_owned()),
            grant_types: vec![JWT_BEARER.to_owned()],
            scopes: vec!["api".to_owned()],
            pre_authorize: vec!["mallory".to_owned()],
            ..Default::default()
        })
        .await;
    let key = ES256KeyPair::generate();
    gatehouse::oauth::clients::add_key(
        &app.app_state.store,
        app.app_state.clock.as_ref(),
        &partner,
        &key.public_key().to_pem().unwrap(),
    )
    .await
    .unwrap();
    execute_sql(
        &app.db,
        r#"UPDATE clients SET scopes = '["admin","api"]' WHERE name = 'Partner'"#,
    )
    .await;
    let assertion = |jti: &str| {
        let claims = Claims::create(Duration::from_secs(60))
            .with_issuer(&partner)
            .with_subject("mallory")
            .with_audience(app.url("/oauth2/token"))
            .with_jwt_id(jti);
        key.sign(claims).unwrap()
    };
    let form = |assertion: &str, scope: Option<&'static str>| {
        let mut form = vec![
            ("grant_type", JWT_BEARER.to_owned()),
            ("assertion", assertion.to_owned()),
        ];
        form.extend(scope.map(|s| ("scope", s.to_owned())));
        form
    };
    let res = app
        .http
        .post(app.url("/oauth2/token"))
        .form(&form(&assertion("a-1"), None))
        .send()
        .await
        .unwrap();
    let body = json(res).await;
    assert_eq!(body["scope"], "api", "{body}");
    assert_eq!(
        app.get_bearer("/admin/v1/users", body["access_token"].as_str().unwrap())
            .await
            .status(),
        403
    );
    let res = app
        .http
        .post(app.url("/oauth2/token"))
        .form(&form(&assertion("a-2"), Some("admin")))
        .send()
        .await
        .unwrap();
    let body = json(res).await;
    assert_eq!(body["error"], "invalid_scope", "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("cannot be granted by a user"),
        "{body}"
    );

    // A refresh family that was granted `admin` before the rule refreshes to nothing.
    execute_sql(
        &app.db,
        "UPDATE refresh_families SET scope = 'admin api offline_access'",
    )
    .await;
    let res =
        crate::flow::refresh(&app, &tv, tokens["refresh_token"].as_str().unwrap(), None).await;
    assert_eq!(res.status(), 400);
    let body = json(res).await;
    assert_eq!(body["error"], "invalid_scope", "{body}");
    app.stop().await;
}

use crate::cases::cases_app;

const REDIRECT: &str = "https://app.example/cb";

#[apply(both_backends)]
async fn two_users_of_one_app_never_share_an_idempotency_key(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let ada = user(&app, "ada").await;
    let bob = user(&app, "bob").await;
    let client = cases_app(&app).await;
    let body = json!({"case": {"subject": "Printer on fire"}});
    let post = |token: String| {
        let request = app
            .http
            .post(app.url("/api/v1/cases"))
            .bearer_auth(token)
            .header("idempotency-key", "retry-1")
            .json(&body);
        async move { request.send().await.unwrap() }
    };
    let ada_token = user_token(&app, &client, REDIRECT, "ada", "cases.write").await;
    let bob_token = user_token(&app, &client, REDIRECT, "bob", "cases.write").await;

    let first = post(ada_token.clone()).await;
    assert_eq!(first.status(), 201);
    let first = json(first).await;
    assert_eq!(first["owner"], ada.id);
    // Bob sends the same key and body: a case of his own, not a replay of Ada's.
    let second = post(bob_token.clone()).await;
    assert_eq!(second.status(), 201);
    assert!(second.headers().get("idempotent-replayed").is_none());
    let second = json(second).await;
    assert_eq!(second["owner"], bob.id);
    assert_ne!(second["id"], first["id"]);
    // Each one's retry replays their own answer.
    let again = post(bob_token).await;
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(json(again).await, second);
    let again = post(ada_token).await;
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(json(again).await, first);
    app.stop().await;
}

#[apply(both_backends)]
async fn a_third_party_app_sees_and_withdraws_only_its_own_grant(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    user(&app, "ada").await;
    let field_app = cases_app(&app).await;
    let (portal, _) = app
        .register(gatehouse::oauth::clients::NewClient {
            name: "Account Portal".to_owned(),
            client_type: "public".to_owned(),
            redirect_uris: vec![REDIRECT.to_owned()],
            scopes: ["openid", "grants"].map(String::from).to_vec(),
            ..Default::default()
        })
        .await;
    let third_party = crate::flow::public_client(&app, REDIRECT).await;
    let field_token = user_token(&app, &field_app, REDIRECT, "ada", "openid cases.read").await;
    let snoop = user_token(&app, &third_party, REDIRECT, "ada", "openid").await;

    // The third-party app's `openid` token lists its own grant, and no other.
    let listed = json(app.get_bearer("/api/v1/me/grants", &snoop).await).await;
    let ids: Vec<&str> = listed["grants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["client_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [third_party.as_str()], "{listed}");
    // It may not withdraw another app's access; the other app's token keeps working.
    let res = app
        .http
        .delete(app.url(&format!("/api/v1/me/grants/{field_app}")))
        .bearer_auth(&snoop)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let challenge = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains(r#"error="insufficient_scope""#)
            && challenge.contains(r#"scope="grants""#),
        "{challenge}"
    );
    assert_eq!(
        app.get_bearer("/api/v1/me", &field_token).await.status(),
        200
    );

    // The portal the user trusted with `grants` sees all three and withdraws one.
    let manager = user_token(&app, &portal, REDIRECT, "ada", "grants").await;
    let listed = json(app.get_bearer("/api/v1/me/grants", &manager).await).await;
    assert_eq!(listed["grants"].as_array().unwrap().len(), 3, "{listed}");
    let res = app
        .http
        .delete(app.url(&format!("/api/v1/me/grants/{third_party}")))
        .bearer_auth(&manager)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(app.get_bearer("/api/v1/me", &snoop).await.status(), 401);
    // Any app may still withdraw its own grant.
    let res = app
        .http
        .delete(app.url(&format!("/api/v1/me/grants/{field_app}")))
        .bearer_auth(&field_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    app.stop().await;
}

/// A second server on `app`'s database, both syncing every 100 ms: another replica.
async fn replica(app: &TestApp) -> TestApp {
    let issuer = app.base.clone();
    TestApp::spawn_on(app.db.share(), |c| {
        c.sync_interval_ms = 100;
        c.issuer = Some(issuer);
    })
    .await
}

/// A code-flow token response of `username` for the public `client`, with `scope`.
async fn code_tokens(
    app: &TestApp,
    browser: &Browser<'_>,
    client: &str,
    username: &str,
    scope: &str,
) -> Value {
    let (verifier, challenge) = crate::flow::pkce();
    let path = crate::flow::authorize_path(&[
        ("response_type", "code"),
        ("client_id", client),
        ("redirect_uri", REDIRECT),
        ("scope", scope),
        ("state", "s"),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ]);
    let code = crate::flow::param(&browser.authorize(&path, username).await, "code").unwrap();
    json(crate::flow::redeem(app, client, &code, REDIRECT, Some(&verifier)).await).await
}

/// Whether `token` reaches `/api/v1/me` on `app` within 2 s (`want` = the status).
async fn answers(app: &TestApp, token: &str, want: u16) -> bool {
    crate::support::eventually(2, || async {
        (app.get_bearer("/api/v1/me", token).await.status() == want).then_some(())
    })
    .await
    .is_some()
}

#[apply(both_backends)]
async fn disabling_a_user_or_a_client_stops_what_was_already_issued_on_every_replica(
    #[case] backend: Backend,
) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let a = TestApp::spawn_with(backend, |c| c.sync_interval_ms = 100).await;
    let b = replica(&a).await;
    user(&a, "ada").await;
    let client = crate::flow::public_client(&a, REDIRECT).await;
    let browser = Browser::new(&a);
    let tokens = code_tokens(&a, &browser, &client, "ada", "offline_access api").await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(a.get_bearer("/api/v1/me", access).await.status(), 200);
    assert_eq!(
        b.get_bearer("/api/v1/me", access).await.status(),
        200,
        "cached as verified on b too"
    );
    assert_eq!(
        crate::support::query_count(&a.db, "SELECT COUNT(*) FROM sessions").await,
        1
    );

    let (admin_id, admin_secret) = a.service_client(&["admin"]).await;
    let admin = a.access_token(&admin_id, &admin_secret, None).await;
    let res = a
        .http
        .post(a.url("/admin/v1/users/ada/disable"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // At once where it was disabled, within a sync interval on the other replica.
    let refused = a.get_bearer("/api/v1/me", access).await;
    assert_eq!(refused.status(), 401);
    assert!(
        refused.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    assert!(
        answers(&b, access, 401).await,
        "the other replica still accepts the token"
    );
    let res =
        crate::flow::refresh(&b, &client, tokens["refresh_token"].as_str().unwrap(), None).await;
    assert_eq!(
        json(res).await["error"],
        "invalid_grant",
        "the refresh family is revoked"
    );
    assert_eq!(
        crate::support::query_count(&a.db, "SELECT COUNT(*) FROM sessions").await,
        0,
        "sessions end"
    );

    // A client disabled with the CLI (another process): its tokens stop on both replicas.
    let (svc, svc_secret) = a.service_client(&["api"]).await;
    let svc_token = a.access_token(&svc, &svc_secret, None).await;
    assert_eq!(b.get_bearer("/api/v1/me", &svc_token).await.status(), 200);
    cli(&a.db, &["client", "disable", &svc], None).await.ok();
    assert!(answers(&a, &svc_token, 401).await);
    assert!(answers(&b, &svc_token, 401).await);
    b.stop().await;
    a.stop().await;
}

#[apply(both_backends)]
async fn a_revoked_signing_key_leaves_jwks_and_verification_at_once_and_a_new_key_signs(
    #[case] backend: Backend,
) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let a = TestApp::spawn_with(backend, |c| c.sync_interval_ms = 100).await;
    let b = replica(&a).await;
    let (id, secret) = a.service_client(&["admin", "api"]).await;
    let leaked = a.access_token(&id, &secret, Some("api")).await;
    let leaked_kid = jwt_simple::token::Token::decode_metadata(&leaked)
        .unwrap()
        .key_id()
        .unwrap()
        .to_owned();
    for app in [&a, &b] {
        assert_eq!(
            app.get_bearer("/api/v1/me", &leaked).await.status(),
            200,
            "verified and cached"
        );
    }

    let admin = a.access_token(&id, &secret, Some("admin")).await;
    let res = a
        .http
        .delete(a.url(&format!("/admin/v1/keys/{leaked_kid}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let revoked = json(res).await;
    assert_eq!(revoked["revoked"], leaked_kid.as_str());
    let next_kid = revoked["successor"]["kid"].as_str().unwrap().to_owned();
    assert_eq!(revoked["successor"]["state"], "active", "{revoked}");
    assert_eq!(crate::support::kids(&a).await, [next_kid.as_str()]);
    assert_eq!(
        a.get_bearer("/api/v1/me", &leaked).await.status(),
        401,
        "the cached verification is gone"
    );
    assert!(
        answers(&b, &leaked, 401).await,
        "the other replica still accepts the leaked key"
    );
    assert_eq!(crate::support::kids(&b).await, [next_kid.as_str()]);
    // No gap: the next token is signed by the new key and accepted everywhere.
    let fresh = b.access_token(&id, &secret, Some("api")).await;
    assert_eq!(
        jwt_simple::token::Token::decode_metadata(&fresh)
            .unwrap()
            .key_id(),
        Some(next_kid.as_str())
    );
    assert_eq!(a.get_bearer("/api/v1/me", &fresh).await.status(), 200);

    // The CLI does the same; an unknown kid is a usage error, and 404 over the API.
    let out = cli(&a.db, &["keys", "revoke", &next_kid, "--json"], None)
        .await
        .ok()
        .json();
    let third = out["successor"]["kid"].as_str().unwrap().to_owned();
    assert!(answers(&a, &fresh, 401).await && answers(&b, &fresh, 401).await);
    assert!(
        crate::support::eventually(2, || async {
            (crate::support::kids(&b).await == [third.clone()]).then_some(())
        })
        .await
        .is_some()
    );
    assert_eq!(
        cli(&a.db, &["keys", "revoke", "no-such-kid"], None)
            .await
            .code,
        2
    );
    // A base64url kid may start with `-`: it is still the kid, not an option.
    let out = cli(&a.db, &["keys", "revoke", "-no-such-kid"], None).await;
    assert!(
        out.code == 2 && out.stderr.contains("no signing key -no-such-kid"),
        "{}",
        out.stderr
    );
    let out = cli(&a.db, &["client", "remove-key", &id, "-no-such-kid"], None).await;
    assert!(
        out.stderr.contains("-no-such-kid") && !out.stderr.contains("unexpected argument"),
        "{}",
        out.stderr
    );
    let admin = a.access_token(&id, &secret, Some("admin")).await;
    let res = a
        .http
        .delete(a.url("/admin/v1/keys/no-such-kid"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    b.stop().await;
    a.stop().await;
}

#[apply(both_backends)]
async fn another_client_replaying_a_used_code_revokes_nothing(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    user(&app, "ada").await;
    let client = crate::flow::public_client(&app, REDIRECT).await;
    let stranger = crate::flow::public_client(&app, REDIRECT).await;
    let (verifier, challenge) = crate::flow::pkce();
    let path = crate::flow::authorize_path(&[
        ("response_type", "code"),
        ("client_id", &client),
        ("redirect_uri", REDIRECT),
        ("scope", "api offline_access"),
        ("state", "s"),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ]);
    let code =
        crate::flow::param(&Browser::new(&app).authorize(&path, "ada").await, "code").unwrap();
    let tokens =
        json(crate::flow::redeem(&app, &client, &code, REDIRECT, Some(&verifier)).await).await;
    let access = tokens["access_token"].as_str().unwrap();

    // The stranger learned the used code: invalid, like any unknown code, and nothing ends.
    let res = crate::flow::redeem(&app, &stranger, &code, REDIRECT, Some(&verifier)).await;
    assert_eq!(res.status(), 400);
    let body = json(res).await;
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["error_description"], "the code is invalid");
    assert_eq!(app.get_bearer("/api/v1/me", access).await.status(), 200);
    let refreshed = crate::flow::refresh(
        &app,
        &client,
        tokens["refresh_token"].as_str().unwrap(),
        None,
    )
    .await;
    assert_eq!(refreshed.status(), 200);
    let refreshed = json(refreshed).await;

    // The code's own client replaying it revokes what it issued.
    let res = crate::flow::redeem(&app, &client, &code, REDIRECT, Some(&verifier)).await;
    assert!(
        json(res).await["error_description"]
            .as_str()
            .unwrap()
            .contains("revoked")
    );
    assert_eq!(app.get_bearer("/api/v1/me", access).await.status(), 401);
    let res = crate::flow::refresh(
        &app,
        &client,
        refreshed["refresh_token"].as_str().unwrap(),
        None,
    )
    .await;
    assert_eq!(json(res).await["error"], "invalid_grant");
    app.stop().await;
}

#[apply(both_backends)]
async fn case_notifications_go_to_the_contact_or_an_allowed_domain_within_a_daily_cap(
    #[case] backend: Backend,
) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn_with(backend, |c| {
        c.mail_allowed_domains = vec!["support.example".to_owned()];
        c.mail_daily_limit = 3;
    })
    .await;
    let (id, secret) = app.service_client(&["cases.write"]).await;
    let token = app.access_token(&id, &secret, None).await;
    let post = |body: Value| {
        let request = app
            .http
            .post(app.url("/api/v1/cases"))
            .bearer_auth(&token)
            .json(&body);
        async move { request.send().await.unwrap() }
    };
    let contact = json!({"name": "Ada", "email": "ada@customer.example"});

    // Not an open relay: a stranger's address is refused, naming the field; nothing is written.
    let res = post(json!({"case": {"subject": "Spam", "contact": contact}, "notification": {"to": "victim@elsewhere.example"}})).await;
    assert_eq!(res.status(), 422);
    let problem = json(res).await;
    assert_eq!(
        problem["errors"][0]["field"], "notification.to",
        "{problem}"
    );
    assert_eq!(problem["errors"][0]["code"], "not_allowed");
    assert_eq!(
        crate::support::query_count(&app.db, "SELECT COUNT(*) FROM cases").await,
        0
    );
    let res = post(json!({"case": {"subject": "No contact"}, "notification": {}})).await;
    assert_eq!(res.status(), 422);
    assert_eq!(json(res).await["errors"][0]["code"], "required");

    // The contact by default, the contact named, or the allowed domain.
    let res =
        post(json!({"case": {"subject": "Default", "contact": contact}, "notification": {}})).await;
    assert_eq!(res.status(), 201);
    assert_eq!(
        json(res).await["notification"]["to"],
        "ada@customer.example"
    );
    let res = post(json!({"case": {"subject": "Named", "contact": contact}, "notification": {"to": "ADA@customer.example"}})).await;
    assert_eq!(res.status(), 201);
    let res = post(json!({"case": {"subject": "Team", "contact": contact}, "notification": {"to": "desk@support.example"}})).await;
    assert_eq!(res.status(), 201);
    // The caller's fourth notification of the day is refused; a case without one is not.
    let res =
        post(json!({"case": {"subject": "Fourth", "contact": contact}, "notification": {}})).await;
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    assert!(
        json(res).await["detail"]
            .as_str()
            .unwrap()
            .contains("notification")
    );
    assert_eq!(
        post(json!({"case": {"subject": "Quiet", "contact": contact}}))
            .await
            .status(),
        201
    );
    assert_eq!(
        crate::support::query_count(&app.db, "SELECT COUNT(*) FROM email_outbox").await,
        3
    );
    app.stop().await;
}

#[apply(both_backends)]
async fn prompt_login_and_max_age_hold_at_consent_reached_directly(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let clock = gatehouse::clock::ManualClock::at(1_900_000_000);
    let app = TestApp::spawn_with_clock(backend, clock.clone(), |_| {}).await;
    user(&app, "ada").await;
    let client = crate::flow::public_client(&app, REDIRECT).await;
    let browser = Browser::new(&app);
    let (_, challenge) = crate::flow::pkce();
    let query = |extra: &[(&str, &str)]| {
        let mut params = vec![
            ("response_type", "code"),
            ("client_id", client.as_str()),
            ("redirect_uri", REDIRECT),
            ("scope", "api"),
            ("state", "s"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ];
        params.extend_from_slice(extra);
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish()
    };
    // Signed in, at the consent page of a plain request: its CSRF token is at hand.
    let res = browser
        .get(&format!("/oauth2/authorize?{}", query(&[])))
        .await;
    let login = location(&res);
    browser.sign_in(&login, "ada", PASSWORD).await;
    let page = browser.get(&format!("/consent?{}", query(&[]))).await;
    assert_eq!(page.status(), 200);
    let csrf = input_value(&page.text().await.unwrap(), "csrf_token").unwrap();
    clock.advance(60);

    for extra in [&[("prompt", "login")][..], &[("max_age", "30")][..]] {
        let request = query(extra);
        // GET /consent directly: to the sign-in page, not the consent form.
        let res = browser.get(&format!("/consent?{request}")).await;
        assert_eq!(res.status(), 303, "{extra:?}");
        assert!(location(&res).starts_with("/login"), "{extra:?}");
        // POST /consent directly: no code, to the sign-in page.
        let res = browser
            .post(
                "/consent",
                &[
                    ("csrf_token", &csrf),
                    ("request", &request),
                    ("decision", "approve"),
                ],
            )
            .await;
        assert_eq!(res.status(), 303, "{extra:?}");
        let to = location(&res);
        assert!(
            to.starts_with("/login") && !to.contains("code="),
            "{extra:?}: {to}"
        );
    }
    assert_eq!(
        crate::support::query_count(&app.db, "SELECT COUNT(*) FROM authorization_codes").await,
        0
    );
    // A fresh sign-in satisfies max_age again.
    let url = browser
        .authorize(
            &format!("/oauth2/authorize?{}", query(&[("max_age", "30")])),
            "ada",
        )
        .await;
    assert!(crate::flow::param(&url, "code").is_some());
    app.stop().await;
}

#[apply(both_backends)]
async fn metrics_are_served_on_the_management_listener_only(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    assert_eq!(
        app.get("/metrics").await.status(),
        404,
        "not on the public listener"
    );
    assert_eq!(
        app.get("/healthz").await.status(),
        200,
        "health stays on the public port"
    );
    let metrics = app
        .http
        .get(format!("{}/metrics", app.management))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    assert!(
        metrics
            .text()
            .await
            .unwrap()
            .contains("http_requests_total")
    );
    for path in ["/healthz", "/readyz"] {
        let res = app
            .http
            .get(format!("{}{path}", app.management))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{path}");
    }
    app.stop().await;
}

#[apply(both_backends)]
async fn caller_input_is_bounded_before_it_reaches_a_log_line_or_an_audit_row(
    #[case] backend: Backend,
) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    user(&app, "ada").await;
    // A request id is kept only when it looks like one.
    for (sent, kept) in [
        ("abc-123_x.Y", true),
        ("has space", false),
        ("<script>", false),
        (&*"a".repeat(65), false),
        (&*"b".repeat(64), true),
    ] {
        let res = app
            .http
            .get(app.url("/healthz"))
            .header("x-request-id", sent)
            .send()
            .await
            .unwrap();
        let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_eq!(id == sent, kept, "{sent}");
        assert!(
            id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)),
            "{id}"
        );
    }

    // A 10,000-character username, and one with a line break, sign in as nobody and are
    // stored cut to the form's 64 characters, without the break.
    let browser = Browser::new(&app);
    let long = "ada".repeat(3334);
    assert_eq!(
        browser.sign_in("/login", &long, PASSWORD).await.status(),
        401
    );
    assert_eq!(
        browser
            .sign_in("/login", "ada\nforged audit line", PASSWORD)
            .await
            .status(),
        401
    );
    assert_eq!(
        browser
            .sign_in("/login", &format!("ada{}", "\u{7}"), PASSWORD)
            .await
            .status(),
        401,
        "not ada"
    );
    app.app_state.audit.flush().await;
    let (admin_id, admin_secret) = app.service_client(&["admin"]).await;
    let admin = app.access_token(&admin_id, &admin_secret, None).await;
    let audit = json(
        app.get_bearer("/admin/v1/audit?event=sign_in&limit=10", &admin)
            .await,
    )
    .await;
    let names: Vec<String> = audit["events"]
        .as_array()
        .unwrap_or_else(|| panic!("{audit}"))
        .iter()
        .map(|e| e["detail"]["username"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names.len(), 3, "{audit}");
    for name in &names {
        assert!(
            name.chars().count() <= 65 && !name.chars().any(char::is_control),
            "{name:?}"
        );
    }
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("adaada") && n.ends_with('…')),
        "{names:?}"
    );
    let throttles = crate::support::query_count(
        &app.db,
        "SELECT CAST(MAX(LENGTH(throttle_key)) AS BIGINT) FROM login_failures",
    )
    .await;
    assert!(
        throttles <= 5 + 64 + 3,
        "throttle keys are bounded too: {throttles}"
    );
    app.stop().await;
}

#[apply(both_backends)]
async fn pages_with_a_csrf_token_are_never_compressed(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let client = crate::flow::public_client(&app, REDIRECT).await;
    let (_, challenge) = crate::flow::pkce();
    let long_hint = "x".repeat(2000);
    let authorize = crate::flow::authorize_path(&[
        ("response_type", "code"),
        ("client_id", &client),
        ("redirect_uri", REDIRECT),
        ("scope", "api"),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
        ("state", &long_hint),
    ]);
    let login =
        crate::flow::authorize_path(&[("return_to", &authorize[1..]), ("login_hint", &long_hint)])
            .replace("/oauth2/authorize?", "/login?");
    for path in [login.as_str(), "/activate?user_code=BCDF-GHJK"] {
        let res = app
            .http
            .get(app.url(path))
            .header("accept-encoding", "gzip, br")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{path}");
        assert!(
            res.headers().get("content-encoding").is_none(),
            "{path} is compressed"
        );
        let html = res.text().await.unwrap();
        assert!(
            html.len() > 1024 || path.starts_with("/activate"),
            "{path} is large enough to be compressed"
        );
        assert!(html.contains("csrf_token"));
    }
    // Other large answers still are.
    let res = app
        .http
        .get(app.url("/openapi.json"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-encoding"], "gzip");
    app.stop().await;
}

#[apply(both_backends)]
async fn strangers_cannot_spend_an_apps_limits(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn_with(backend, |c| {
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        c.rate_limit_token_per_client = 3;
        c.rate_limit_api = 2;
        c.api_daily_limit = 4;
    })
    .await;
    let public = crate::flow::public_client(&app, REDIRECT).await;
    let attempt = |from: &'static str| {
        let request = app
            .http
            .post(app.url("/oauth2/token"))
            .header("x-forwarded-for", from)
            .form(&[
                ("grant_type", "refresh_token"),
                ("client_id", public.as_str()),
                ("refresh_token", "guess"),
            ]);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    // A public app's limit counts per address (an IPv6 address per /64): a stranger
    // spends only its own share.
    for _ in 0..3 {
        assert_eq!(attempt("2001:db8:1:2::1").await, 400);
    }
    assert_eq!(attempt("2001:db8:1:2::ffff").await, 429, "the same /64");
    assert_eq!(attempt("2001:db8:1:3::1").await, 400, "another /64");
    assert_eq!(attempt("203.0.113.7").await, 400, "another address");
    // A confidential client's limit is its own, wherever it calls from.
    let (svc, secret) = app.service_client(&["api"]).await;
    for (n, from) in [
        "198.51.100.1",
        "198.51.100.2",
        "198.51.100.3",
        "198.51.100.4",
    ]
    .into_iter()
    .enumerate()
    {
        let res = app
            .http
            .post(app.url("/oauth2/token"))
            .header("x-forwarded-for", from)
            .basic_auth(&svc, Some(&secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status().as_u16(),
            if n < 3 { 200 } else { 429 },
            "{from}"
        );
    }

    // The API limit and daily cap count one user of an app apart from its others.
    user(&app, "ada").await;
    user(&app, "bob").await;
    let ada = user_token(&app, &public, REDIRECT, "ada", "api").await;
    let bob = user_token(&app, &public, REDIRECT, "bob", "api").await;
    for _ in 0..2 {
        assert_eq!(app.get_bearer("/api/v1/me", &ada).await.status(), 200);
    }
    assert_eq!(app.get_bearer("/api/v1/me", &ada).await.status(), 429);
    let res = app.get_bearer("/api/v1/me", &bob).await;
    assert_eq!(res.status(), 200, "ada's calls do not spend bob's limit");
    assert_eq!(res.headers()["gatehouse-limit-info"], "api-usage=1/4");
    app.stop().await;
}
