//! The web-server flow over HTTP: authorization code + PKCE, sign-in, consent, sessions,
//! refresh-token rotation, OpenID Connect — and every way a request can be wrong.

use rstest::rstest;
use rstest_reuse::apply;

use crate::support::{Backend, both_backends, unavailable};
use std::collections::HashSet;

use gatehouse::clock::ManualClock;
use jwt_simple::prelude::*;
use serde_json::Value;

use crate::flow::{
    Browser, PASSWORD, authorize_path, input_value, json, location, param, pkce, public_client,
    redeem, refresh, user,
};
use crate::support::{TestApp, eventually};

const REDIRECT: &str = "https://app.example/cb";

#[derive(Debug, Serialize, Deserialize)]
struct IdExtra {
    at_hash: String,
    azp: String,
    auth_time: i64,
}

/// Starts a flow for `client` and returns (authorize path, verifier).
fn start(client: &str, scope: &str, state: &str) -> (String, String) {
    let (verifier, challenge) = pkce();
    let path = authorize_path(&[
        ("response_type", "code"),
        ("client_id", client),
        ("redirect_uri", REDIRECT),
        ("scope", scope),
        ("state", state),
        ("nonce", "n-0S6_WzA2Mj"),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ]);
    (path, verifier)
}

#[apply(both_backends)]
async fn code_flow_issues_tokens_that_work_and_refresh_rotates(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let ada = user(&app, "ada").await;
    let client = public_client(&app, REDIRECT).await;
    let browser = Browser::new(&app);
    let (path, verifier) = start(&client, "openid profile email offline_access api", "xyz&1");
    let back = browser.authorize(&path, "ada").await;
    assert_eq!(back.as_str().split('?').next().unwrap(), REDIRECT);
    assert_eq!(
        param(&back, "state").as_deref(),
        Some("xyz&1"),
        "state comes back untouched"
    );
    assert_eq!(
        param(&back, "iss").as_deref(),
        Some(app.base.as_str()),
        "RFC 9207 iss"
    );
    let code = param(&back, "code").unwrap();

    let res = redeem(&app, &client, &code, REDIRECT, Some(&verifier)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let tokens = json(res).await;
    assert_eq!(tokens["scope"], "openid profile email offline_access api");
    let access = tokens["access_token"].as_str().unwrap();
    let claims = crate::oauth::verify_independently(&app, access).await;
    assert_eq!(claims.subject.as_deref(), Some(ada.id.as_str()));
    assert_eq!(claims.custom.client_id, client);

    // The ID token, checked with an independent library against JWKS.
    let id_token = tokens["id_token"].as_str().unwrap();
    let jwks: Value = app.get("/oauth2/jwks").await.json().await.unwrap();
    let kid = Token::decode_metadata(id_token)
        .unwrap()
        .key_id()
        .unwrap()
        .to_owned();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .unwrap();
    // RS256: OpenID Connect's default for a client that registered no algorithm.
    assert_eq!(jwk["alg"], "RS256");
    let component = |name: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(jwk[name].as_str().unwrap())
            .unwrap()
    };
    let key = RS256PublicKey::from_components(&component("n"), &component("e")).unwrap();
    let id = key
        .verify_token::<IdExtra>(
            id_token,
            Some(VerificationOptions {
                allowed_issuers: Some(HashSet::from([app.base.clone()])),
                allowed_audiences: Some(HashSet::from([client.clone()])),
                ..Default::default()
            }),
        )
        .unwrap();
    assert_eq!(id.subject.as_deref(), Some(ada.id.as_str()));
    assert_eq!(id.nonce.as_deref(), Some("n-0S6_WzA2Mj"));
    assert_eq!(id.custom.azp, client);
    let digest = sha2::Sha256::digest(access.as_bytes());
    use base64::Engine as _;
    use sha2::Digest as _;
    assert_eq!(
        id.custom.at_hash,
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16])
    );
    assert!(id.custom.auth_time > 0);

    // The API and userinfo accept the access token.
    let me = json(app.get_bearer("/api/v1/me", access).await).await;
    assert_eq!(me["sub"], ada.id.as_str());
    let info = json(app.get_bearer("/oauth2/userinfo", access).await).await;
    assert_eq!(info["sub"], ada.id.as_str());
    assert_eq!(info["preferred_username"], "ada");
    assert_eq!(info["name"], "ada Example");
    assert_eq!(info["email"], "ada@example.com");

    // Rotation: each refresh token works once and yields a new one.
    let r1 = tokens["refresh_token"].as_str().unwrap().to_owned();
    let second = json(refresh(&app, &client, &r1, None).await).await;
    let r2 = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(r1, r2);
    assert_eq!(second["scope"], "openid profile email offline_access api");
    // Narrowing is allowed; widening is not.
    let narrow = refresh(&app, &client, &r2, Some("api")).await;
    assert_eq!(narrow.status(), 200);
    let narrow = json(narrow).await;
    assert_eq!(narrow["scope"], "api");
    assert!(narrow.get("id_token").is_none(), "no openid, no ID token");
    let r3 = narrow["refresh_token"].as_str().unwrap().to_owned();
    let wide = refresh(&app, &client, &r3, Some("api cases.write")).await;
    assert_eq!(wide.status(), 400);
    assert_eq!(json(wide).await["error"], "invalid_scope");
    // The widening attempt did not use up r3; the originally granted scope is still fine.
    let fourth = refresh(&app, &client, &r3, Some("openid api")).await;
    assert_eq!(fourth.status(), 200);
    let fourth = json(fourth).await;
    let live_access = fourth["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        app.get_bearer("/api/v1/me", &live_access).await.status(),
        200
    );

    // Reuse of a rotated token: invalid_grant, and the whole family is revoked —
    // the newest refresh token and the access token issued with it included.
    let reuse = refresh(&app, &client, &r1, None).await;
    assert_eq!(reuse.status(), 400);
    let body = json(reuse).await;
    assert_eq!(body["error"], "invalid_grant");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("already used"),
        "{body}"
    );
    let r4 = fourth["refresh_token"].as_str().unwrap();
    assert_eq!(
        json(refresh(&app, &client, r4, None).await).await["error"],
        "invalid_grant"
    );
    let denied = app.get_bearer("/api/v1/me", &live_access).await;
    assert_eq!(denied.status(), 401);
    assert!(
        denied.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("revoked")
    );
    app.stop().await;
}

#[apply(both_backends)]
async fn a_replayed_code_fails_and_revokes_what_it_issued(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    user(&app, "bob").await;
    let client = public_client(&app, REDIRECT).await;
    let browser = Browser::new(&app);
    let (path, verifier) = start(&client, "openid offline_access api", "s");
    let code = param(&browser.authorize(&path, "bob").await, "code").unwrap();
    let first = json(redeem(&app, &client, &code, REDIRECT, Some(&verifier)).await).await;
    let access = first["access_token"].as_str().unwrap();
    assert_eq!(app.get_bearer("/api/v1/me", access).await.status(), 200);

    let again = redeem(&app, &client, &code, REDIRECT, Some(&verifier)).await;
    assert_eq!(again.status(), 400);
    assert_eq!(json(again).await["error"], "invalid_grant");
    assert_eq!(
        app.get_bearer("/api/v1/me", access).await.status(),
        401,
        "first use's access token revoked"
    );
    let r = first["refresh_token"].as_str().unwrap();
    assert_eq!(
        json(refresh(&app, &client, r, None).await).await["error"],
        "invalid_grant"
    );
    app.stop().await;
}

#[apply(both_backends)]
async fn codes_are_bound_to_client_redirect_verifier_and_sixty_seconds(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let clock = ManualClock::at(1_900_000_000);
    let app = TestApp::spawn_with_clock(backend, clock.clone(), |_| {}).await;
    user(&app, "cy").await;
    let client = public_client(&app, REDIRECT).await;
    let other = public_client(&app, REDIRECT).await;
    let browser = Browser::new(&app);

    let code_for = async |scope: &str| {
        let (path, verifier) = start(&client, scope, "s");
        (
            param(&browser.authorize(&path, "cy").await, "code").unwrap(),
            verifier,
        )
    };
    let (code, verifier) = code_for("api").await;
    let error_of =
        |res: reqwest::Response| async { json(res).await["error"].as_str().unwrap().to_owned() };
    // Another client's code.
    assert_eq!(
        error_of(redeem(&app, &other, &code, REDIRECT, Some(&verifier)).await).await,
        "invalid_grant"
    );
    // Another redirect_uri, or none.
    assert_eq!(
        error_of(
            redeem(
                &app,
                &client,
                &code,
                "https://app.example/other",
                Some(&verifier)
            )
            .await
        )
        .await,
        "invalid_grant"
    );
    // No verifier; a wrong verifier.
    assert_eq!(
        error_of(redeem(&app, &client, &code, REDIRECT, None).await).await,
        "invalid_grant"
    );
    let (wrong, _) = pkce();
    let res = redeem(&app, &client, &code, REDIRECT, Some(&wrong)).await;
    let body = json(res).await;
    assert_eq!(body["error"], "invalid_grant");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("code_verifier"),
        "{body}"
    );
    // None of those used the code up.
    assert_eq!(
        redeem(&app, &client, &code, REDIRECT, Some(&verifier))
            .await
            .status(),
        200
    );

    // Sixty seconds.
    let (code, verifier) = code_for("api").await;
    clock.advance(61);
    let res = redeem(&app, &client, &code, REDIRECT, Some(&verifier)).await;
    let body = json(res).await;
    assert_eq!(body["error"], "invalid_grant");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{body}"
    );
    app.stop().await;
}

#[apply(both_backends)]
async fn untrusted_redirect_uris_get_a_page_never_a_redirect(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let client = public_client(&app, REDIRECT).await;
    let loopback = app
        .register(gatehouse::oauth::clients::NewClient {
            name: "CLI".to_owned(),
            client_type: "public".to_owned(),
            redirect_uris: vec!["http://127.0.0.1/callback".to_owned()],
            ..Default::default()
        })
        .await
        .0;
    let (_, challenge) = pkce();
    let try_redirect = |client: String, redirect: &'static str| {
        let challenge = challenge.clone();
        let app = &app;
        async move {
            app.get(&authorize_path(&[
                ("response_type", "code"),
                ("client_id", &client),
                ("redirect_uri", redirect),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
                ("state", "s"),
            ]))
            .await
        }
    };
    for bad in [
        "https://app.example/cb/extra",
        "https://app.example/cb?x=1",
        "https://app.example/cb#frag",
        "https://app.example:444/cb",
        "https://APP.EXAMPLE/cb",
        "https://app.example/CB",
        "https://user@app.example/cb",
        "https://evil.example/cb",
        "http://app.example/cb",
    ] {
        let res = try_redirect(client.clone(), bad).await;
        assert_eq!(res.status(), 400, "{bad}");
        assert!(
            res.headers().get("location").is_none(),
            "{bad} must not be redirected to"
        );
        assert!(
            res.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        assert!(
            res.text().await.unwrap().contains("not registered"),
            "{bad}"
        );
    }
    // Unknown client: a page too.
    let res = try_redirect("nope".to_owned(), REDIRECT).await;
    assert_eq!(res.status(), 400);
    // RFC 8252 §7.3: a loopback IP redirect may use any port, nothing else may change.
    let res = try_redirect(loopback.clone(), "http://127.0.0.1:51004/callback").await;
    assert_eq!(res.status(), 303, "to the sign-in page");
    let res = try_redirect(loopback.clone(), "http://127.0.0.1:51004/other").await;
    assert_eq!(res.status(), 400);
    // Pages carry the security headers.
    assert_eq!(res.headers()["x-frame-options"], "DENY");
    assert!(
        res.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    app.stop().await;
}

#[apply(both_backends)]
async fn errors_after_the_redirect_is_trusted_go_back_to_the_client(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let client = public_client(&app, REDIRECT).await;
    let (_, challenge) = pkce();
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("response_type", "code")], "invalid_request"), // public client without PKCE
        (
            vec![
                ("response_type", "code"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "plain"),
            ],
            "invalid_request",
        ),
        (
            vec![("response_type", "code"), ("code_challenge", &challenge)],
            "invalid_request",
        ),
        (
            vec![
                ("response_type", "token"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ],
            "unsupported_response_type",
        ),
        (
            vec![
                ("response_type", "code"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
                ("scope", "admin"),
            ],
            "invalid_scope",
        ),
        (
            vec![
                ("response_type", "code"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
                ("scope", "api bogus"),
            ],
            "invalid_scope",
        ),
        (
            vec![
                ("response_type", "code"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
                ("prompt", "none"),
            ],
            "login_required",
        ),
    ];
    for (extra, expected) in cases {
        let mut params = vec![
            ("client_id", client.as_str()),
            ("redirect_uri", REDIRECT),
            ("state", "st8"),
        ];
        params.extend(extra.iter().copied());
        let res = app.get(&authorize_path(&params)).await;
        assert_eq!(res.status(), 302, "{extra:?}");
        let to = url::Url::parse(&location(&res)).unwrap();
        assert!(to.as_str().starts_with(REDIRECT));
        assert_eq!(param(&to, "error").as_deref(), Some(expected), "{extra:?}");
        assert_eq!(param(&to, "state").as_deref(), Some("st8"));
        assert_eq!(param(&to, "iss").as_deref(), Some(app.base.as_str()));
    }
    app.stop().await;
}

#[apply(both_backends)]
async fn consent_is_remembered_skipped_when_pre_authorized_and_can_be_denied(
    #[case] backend: Backend,
) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    user(&app, "dee").await;
    user(&app, "eve").await;
    let client = app
        .register(gatehouse::oauth::clients::NewClient {
            name: "Field App".to_owned(),
            client_type: "public".to_owned(),
            redirect_uris: vec![REDIRECT.to_owned()],
            pre_authorize: vec!["eve".to_owned()],
            ..Default::default()
        })
        .await
        .0;
    let browser = Browser::new(&app);
    let (path, _) = start(&client, "openid api", "1");
    // First time: sign in, then the consent page names the app and each scope in words.
    let res = browser.get(&path).await;
    let res = browser.sign_in(&location(&res), "dee", PASSWORD).await;
    let res = browser.get(&location(&res)).await;
    let consent = location(&res);
    assert!(consent.starts_with("/consent?"));
    let html = browser.get(&consent).await.text().await.unwrap();
    assert!(
        html.contains("Field App") && html.contains("use the API on your behalf"),
        "{html}"
    );
    // Deny: access_denied at the client.
    let denied = browser.consent(&consent, "deny").await;
    let to = url::Url::parse(&location(&denied)).unwrap();
    assert_eq!(param(&to, "error").as_deref(), Some("access_denied"));
    // Approve, then the same (or a smaller) request skips the page.
    browser.consent(&consent, "approve").await;
    let (path, _) = start(&client, "api", "2");
    let res = browser.get(&path).await;
    assert_eq!(res.status(), 302);
    assert!(param(&url::Url::parse(&location(&res)).unwrap(), "code").is_some());
    // A wider request asks again; prompt=consent always asks.
    let (path, _) = start(&client, "openid api email", "3");
    assert!(location(&browser.get(&path).await).starts_with("/consent"));
    let (path, _) = start(&client, "api", "4");
    assert!(
        location(&browser.get(&format!("{path}&prompt=consent")).await).starts_with("/consent")
    );
    // prompt=none with a session but a wider request: consent_required.
    let (path, _) = start(&client, "openid api email", "5");
    let to = url::Url::parse(&location(
        &browser.get(&format!("{path}&prompt=none")).await,
    ))
    .unwrap();
    assert_eq!(param(&to, "error").as_deref(), Some("consent_required"));
    // A pre-authorized user is never asked.
    let eve = Browser::new(&app);
    let (path, _) = start(&client, "openid api email", "6");
    let back = eve.authorize(&path, "eve").await;
    assert!(param(&back, "code").is_some());
    app.stop().await;
}

#[apply(both_backends)]
async fn forms_without_the_right_csrf_token_are_refused(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    user(&app, "fay").await;
    let browser = Browser::new(&app);
    let page = browser.get("/login").await.text().await.unwrap();
    let csrf = input_value(&page, "csrf_token").unwrap();
    for token in ["", "forged", &csrf[..csrf.len() - 2]] {
        let res = browser
            .post(
                "/login",
                &[
                    ("username", "fay"),
                    ("password", PASSWORD),
                    ("csrf_token", token),
                ],
            )
            .await;
        assert_eq!(res.status(), 403, "token {token:?}");
    }
    // Another browser's (valid) token does not fit this browser's cookie.
    let other = Browser::new(&app);
    let other_page = other.get("/login").await.text().await.unwrap();
    let other_csrf = input_value(&other_page, "csrf_token").unwrap();
    let res = browser
        .post(
            "/login",
            &[
                ("username", "fay"),
                ("password", PASSWORD),
                ("csrf_token", &other_csrf),
            ],
        )
        .await;
    assert_eq!(res.status(), 403);
    // The consent form too.
    let res = browser
        .post(
            "/consent",
            &[
                ("request", "client_id=x"),
                ("decision", "approve"),
                ("csrf_token", "forged"),
            ],
        )
        .await;
    assert_eq!(res.status(), 403);
    // With its own token, sign-in works and replaces the session cookie.
    let res = browser
        .post(
            "/login",
            &[
                ("username", "fay"),
                ("password", PASSWORD),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(res.status(), 200);
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    app.stop().await;
}

#[apply(both_backends)]
async fn revoking_a_refresh_token_revokes_its_family(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    user(&app, "ivy").await;
    let client = public_client(&app, REDIRECT).await;
    let browser = Browser::new(&app);
    let (path, verifier) = start(&client, "offline_access api", "s");
    let code = param(&browser.authorize(&path, "ivy").await, "code").unwrap();
    let first = json(redeem(&app, &client, &code, REDIRECT, Some(&verifier)).await).await;
    let r1 = first["refresh_token"].as_str().unwrap();
    let second = json(refresh(&app, &client, r1, None).await).await;
    let access = second["access_token"].as_str().unwrap();
    // Revoke the (rotated) first token: the family goes, the current one with it.
    let res = app
        .post_form(
            "/oauth2/revoke",
            None,
            &[
                ("client_id", &client),
                ("token", r1),
                ("token_type_hint", "refresh_token"),
            ],
        )
        .await;
    assert_eq!(res.status(), 200);
    let r2 = second["refresh_token"].as_str().unwrap();
    assert_eq!(
        json(refresh(&app, &client, r2, None).await).await["error"],
        "invalid_grant"
    );
    assert_eq!(app.get_bearer("/api/v1/me", access).await.status(), 401);
    app.stop().await;
}

#[apply(both_backends)]
async fn cors_allows_registered_origins_only(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn_with(backend, |c| c.sync_interval_ms = 100).await;
    let client = public_client(&app, REDIRECT).await;
    let preflight = |origin: &'static str, path: &'static str| {
        let app = &app;
        async move {
            app.http
                .request(reqwest::Method::OPTIONS, app.url(path))
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .header("access-control-request-headers", "content-type")
                .send()
                .await
                .unwrap()
        }
    };
    // A new client's origins are picked up within one sync interval, by every replica.
    let ok = eventually(5, || async {
        let res = preflight("https://spa.example", "/oauth2/token").await;
        res.headers()
            .contains_key("access-control-allow-origin")
            .then_some(res)
    })
    .await
    .expect("the registered origin is allowed");
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://spa.example"
    );
    let api = preflight("https://spa.example", "/api/v1/me").await;
    assert_eq!(
        api.headers()["access-control-allow-origin"],
        "https://spa.example"
    );
    let foreign = preflight("https://evil.example", "/oauth2/token").await;
    assert!(
        foreign
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    let admin = preflight("https://spa.example", "/admin/v1/clients").await;
    assert!(admin.headers().get("access-control-allow-origin").is_none());
    // The token endpoint holds the origin to the authenticating client's own list.
    let other = app
        .register(gatehouse::oauth::clients::NewClient {
            name: "Other".to_owned(),
            client_type: "public".to_owned(),
            redirect_uris: vec![REDIRECT.to_owned()],
            cors_origins: vec!["https://other.example".to_owned()],
            ..Default::default()
        })
        .await
        .0;
    // The client cache lives one sync interval too.
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    let res = app
        .http
        .post(app.url("/oauth2/token"))
        .header("origin", "https://other.example")
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", client.as_str()),
            ("code", "x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert!(
        json(res).await["error_description"]
            .as_str()
            .unwrap()
            .contains("origin")
    );
    let res = app
        .http
        .post(app.url("/oauth2/token"))
        .header("origin", "https://other.example")
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", other.as_str()),
            ("code", "x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        json(res).await["error"],
        "invalid_grant",
        "its own origin passes"
    );
    app.stop().await;
}

#[apply(both_backends)]
async fn users_and_admins_list_and_withdraw_grants(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    user(&app, "jo").await;
    let client = public_client(&app, REDIRECT).await;
    let browser = Browser::new(&app);
    let (path, verifier) = start(&client, "offline_access api", "s");
    let code = param(&browser.authorize(&path, "jo").await, "code").unwrap();
    let tokens = json(redeem(&app, &client, &code, REDIRECT, Some(&verifier)).await).await;
    let access = tokens["access_token"].as_str().unwrap();
    let refresh_token = tokens["refresh_token"].as_str().unwrap();

    let mine = json(app.get_bearer("/api/v1/me/grants", access).await).await;
    assert_eq!(mine["grants"][0]["client_id"], client.as_str(), "{mine}");
    assert_eq!(mine["grants"][0]["client_name"], "Phone App");
    assert_eq!(mine["grants"][0]["scope"], "offline_access api");
    let (admin_id, admin_secret) = app.service_client(&["admin"]).await;
    let admin = app.access_token(&admin_id, &admin_secret, None).await;
    let listed = json(app.get_bearer("/admin/v1/users/jo/grants", &admin).await).await;
    assert_eq!(listed["grants"], mine["grants"]);

    // The user withdraws the app's access: its tokens stop working, consent is asked again.
    let res = app
        .http
        .delete(app.url(&format!("/api/v1/me/grants/{client}")))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(app.get_bearer("/api/v1/me", access).await.status(), 401);
    assert_eq!(
        json(refresh(&app, &client, refresh_token, None).await).await["error"],
        "invalid_grant"
    );
    let (path, _) = start(&client, "api", "again");
    assert!(location(&browser.get(&path).await).starts_with("/consent"));
    let res = app
        .http
        .delete(app.url(&format!("/admin/v1/users/jo/grants/{client}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404, "nothing left to withdraw");
    app.stop().await;
}

#[apply(both_backends)]
async fn one_refresh_token_presented_twice_at_once_rotates_once_and_revokes_the_family(
    #[case] backend: Backend,
) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    user(&app, "kit").await;
    let client = public_client(&app, REDIRECT).await;
    let browser = Browser::new(&app);
    let (path, verifier) = start(&client, "offline_access api", "s");
    let code = param(&browser.authorize(&path, "kit").await, "code").unwrap();
    let first = json(redeem(&app, &client, &code, REDIRECT, Some(&verifier)).await).await;
    let token = first["refresh_token"].as_str().unwrap();
    let answers =
        futures::future::join_all((0..8).map(|_| refresh(&app, &client, token, None))).await;
    let mut winners = Vec::new();
    for a in answers {
        if a.status() == 200 {
            winners.push(json(a).await);
        } else {
            assert_eq!(json(a).await["error"], "invalid_grant");
        }
    }
    assert_eq!(winners.len(), 1, "exactly one rotation wins");
    // The losers presented a used token: the winner's successor is revoked as well.
    let successor = winners[0]["refresh_token"].as_str().unwrap();
    assert_eq!(
        json(refresh(&app, &client, successor, None).await).await["error"],
        "invalid_grant"
    );
    assert_eq!(
        app.get_bearer("/api/v1/me", winners[0]["access_token"].as_str().unwrap())
            .await
            .status(),
        401
    );
    app.stop().await;
}

#[apply(both_backends)]
async fn concurrent_refreshes_of_many_grants_each_rotate_and_one_reuse_revokes_only_its_own(
    #[case] backend: Backend,
) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    user(&app, "lee").await;
    let client = public_client(&app, REDIRECT).await;
    let browser = Browser::new(&app);
    let mut tokens = Vec::new();
    for i in 0..6 {
        let (path, verifier) = start(&client, "offline_access api", &format!("s{i}"));
        let code = param(&browser.authorize(&path, "lee").await, "code").unwrap();
        let answer = json(redeem(&app, &client, &code, REDIRECT, Some(&verifier)).await).await;
        tokens.push(answer["refresh_token"].as_str().unwrap().to_owned());
    }
    // Six grants refreshed at once, the first of them presented twice.
    let mut presented: Vec<&str> = tokens.iter().map(String::as_str).collect();
    presented.push(&tokens[0]);
    let answers =
        futures::future::join_all(presented.iter().map(|t| refresh(&app, &client, t, None))).await;
    let mut bodies = Vec::new();
    for a in answers {
        let status = a.status();
        bodies.push((status, json(a).await));
    }
    let twice = [&bodies[0], &bodies[6]];
    assert_eq!(
        twice.iter().filter(|(s, _)| *s == 200).count(),
        1,
        "the token presented twice rotates once: {twice:?}"
    );
    for (status, body) in &bodies[1..6] {
        assert_eq!(*status, 200, "{body}");
        let successor = body["refresh_token"].as_str().unwrap();
        assert!(!tokens.iter().any(|t| t == successor), "a fresh successor");
        let next = refresh(&app, &client, successor, None).await;
        assert_eq!(next.status(), 200, "an untouched grant keeps working");
        assert_eq!(
            app.get_bearer("/api/v1/me", body["access_token"].as_str().unwrap())
                .await
                .status(),
            200
        );
    }
    let (_, winner) = twice.into_iter().find(|(s, _)| *s == 200).unwrap();
    assert_eq!(
        json(
            refresh(
                &app,
                &client,
                winner["refresh_token"].as_str().unwrap(),
                None
            )
            .await
        )
        .await["error"],
        "invalid_grant"
    );
    app.stop().await;
}

#[apply(both_backends)]
async fn prompt_login_and_max_age_ask_for_a_fresh_sign_in(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let clock = ManualClock::at(1_900_000_000);
    let app = TestApp::spawn_with_clock(backend, clock.clone(), |_| {}).await;
    user(&app, "lee").await;
    let client = app
        .register(gatehouse::oauth::clients::NewClient {
            name: "Bank App".to_owned(),
            client_type: "public".to_owned(),
            redirect_uris: vec![REDIRECT.to_owned()],
            pre_authorize: vec!["lee".to_owned()],
            ..Default::default()
        })
        .await
        .0;
    let browser = Browser::new(&app);
    let (path, _) = start(&client, "openid api", "1");
    browser.authorize(&path, "lee").await;
    // Signed in: a plain request goes straight back …
    let (path, _) = start(&client, "openid api", "2");
    assert_eq!(browser.get(&path).await.status(), 302);
    // … prompt=login sends the user to the sign-in page (with login_hint pre-filled) …
    let res = browser
        .get(&format!("{path}&prompt=login&login_hint=lee"))
        .await;
    let login = location(&res);
    assert!(login.starts_with("/login?"), "{login}");
    let page = browser.get(&login).await.text().await.unwrap();
    assert_eq!(input_value(&page, "username").as_deref(), Some("lee"));
    let back = browser.sign_in(&login, "lee", PASSWORD).await;
    let back = browser.get(&location(&back)).await;
    assert!(param(&url::Url::parse(&location(&back)).unwrap(), "code").is_some());
    // … and so does max_age once the sign-in is older than that.
    clock.advance(120);
    let res = browser.get(&format!("{path}&max_age=60")).await;
    assert!(location(&res).starts_with("/login?"));
    let res = browser.get(&format!("{path}&max_age=600")).await;
    assert_eq!(res.status(), 302);
    assert!(param(&url::Url::parse(&location(&res)).unwrap(), "code").is_some());
    app.stop().await;
}

#[apply(both_backends)]
async fn refresh_tokens_follow_the_clients_lifetime_and_idle_policy(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let clock = ManualClock::at(1_900_000_000);
    let app = TestApp::spawn_with_clock(backend, clock.clone(), |_| {}).await;
    user(&app, "mo").await;
    let client = app
        .register(gatehouse::oauth::clients::NewClient {
            name: "Kiosk".to_owned(),
            client_type: "public".to_owned(),
            redirect_uris: vec![REDIRECT.to_owned()],
            refresh_token_ttl_secs: Some(1000),
            refresh_token_idle_secs: Some(300),
            ..Default::default()
        })
        .await
        .0;
    let browser = Browser::new(&app);
    let issue = async || {
        let (path, verifier) = start(&client, "offline_access api", "s");
        let code = param(&browser.authorize(&path, "mo").await, "code").unwrap();
        json(redeem(&app, &client, &code, REDIRECT, Some(&verifier)).await).await["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    // Idle: unused for longer than 300 s, a token expires.
    let token = issue().await;
    clock.advance(301);
    let body = json(refresh(&app, &client, &token, None).await).await;
    assert_eq!(body["error"], "invalid_grant");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("unused"),
        "{body}"
    );
    // Used every 250 s it lives on — but never past the grant's 1000 s.
    let mut token = issue().await;
    for _ in 0..3 {
        clock.advance(250);
        let next = json(refresh(&app, &client, &token, None).await).await;
        token = next["refresh_token"].as_str().unwrap().to_owned();
    }
    clock.advance(251);
    let body = json(refresh(&app, &client, &token, None).await).await;
    assert_eq!(body["error"], "invalid_grant", "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{body}"
    );
    app.stop().await;
}

#[apply(both_backends)]
async fn a_disabled_user_can_neither_sign_in_nor_refresh(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    user(&app, "ned").await;
    let client = public_client(&app, REDIRECT).await;
    let browser = Browser::new(&app);
    let (path, verifier) = start(&client, "offline_access api", "s");
    let code = param(&browser.authorize(&path, "ned").await, "code").unwrap();
    let tokens = json(redeem(&app, &client, &code, REDIRECT, Some(&verifier)).await).await;
    gatehouse::oauth::users::set_enabled(
        &app.app_state.store,
        app.app_state.clock.as_ref(),
        "ned",
        false,
    )
    .await
    .unwrap();
    let r = tokens["refresh_token"].as_str().unwrap();
    assert_eq!(
        json(refresh(&app, &client, r, None).await).await["error"],
        "invalid_grant"
    );
    // The session no longer counts, and signing in again fails like a wrong password.
    let (path, _) = start(&client, "api", "2");
    let res = browser.get(&path).await;
    assert!(location(&res).starts_with("/login"));
    assert_eq!(
        browser
            .sign_in(&location(&res), "ned", PASSWORD)
            .await
            .status(),
        401
    );
    app.stop().await;
}
