//! Pushed authorization requests (RFC 9126) and the FAPI 2.0 Security Profile, driven
//! through the real endpoints and a real sign-in; DPoP proofs come from
//! `tests/api/dpop.rs`'s independent signer.

use jwt_simple::prelude::*;
use rstest::rstest;
use rstest_reuse::apply;
use serde_json::{Value, json};

use crate::dpop::Key;
use crate::flow::{Browser, location, param, pkce, user};
use crate::support::{Backend, TestApp, both_backends, cli, unavailable};
use gatehouse::oauth::clients::NewClient;

const REDIRECT: &str = "https://app.example/cb";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A confidential code-flow client with a secret.
async fn web_client(app: &TestApp, require_par: bool) -> (String, String) {
    let (id, secret) = app
        .register(NewClient {
            name: "Web App".to_owned(),
            client_type: "confidential".to_owned(),
            redirect_uris: vec![REDIRECT.to_owned()],
            require_pushed_authorization_requests: require_par,
            ..Default::default()
        })
        .await;
    (id, secret.unwrap())
}

/// POSTs `form` to /oauth2/par with Basic credentials (when given) and a DPoP proof.
async fn push(
    app: &TestApp,
    basic: Option<(&str, &str)>,
    form: &[(&str, &str)],
    proof: Option<String>,
) -> (u16, Value) {
    let mut request = app.http.post(app.url("/oauth2/par")).form(form);
    if let Some((id, secret)) = basic {
        request = request.basic_auth(id, Some(secret));
    }
    if let Some(proof) = proof {
        request = request.header("DPoP", proof);
    }
    let res = request.send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

fn authorize_uri(client_id: &str, request_uri: &str) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", client_id)
        .append_pair("request_uri", request_uri)
        .finish();
    format!("/oauth2/authorize?{query}")
}

#[apply(both_backends)]
async fn a_pushed_request_is_answered_once_through_its_request_uri(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    user(&app, "ada").await;
    let (id, secret) = web_client(&app, true).await;
    let (_, challenge) = pkce();
    let form = [
        ("response_type", "code"),
        ("redirect_uri", REDIRECT),
        ("scope", "openid api"),
        ("state", "st-1"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let (status, pushed) = push(&app, Some((&id, &secret)), &form, None).await;
    assert_eq!(status, 201, "{pushed}");
    assert_eq!(pushed["expires_in"], 60);
    let request_uri = pushed["request_uri"].as_str().unwrap();
    assert!(request_uri.starts_with("urn:ietf:params:oauth:request_uri:"));

    let browser = Browser::new(&app);
    let callback = browser
        .authorize(&authorize_uri(&id, request_uri), "ada")
        .await;
    assert_eq!(param(&callback, "state").as_deref(), Some("st-1"));
    assert!(param(&callback, "code").is_some());

    // The code retired the request_uri.
    let again = browser.get(&authorize_uri(&id, request_uri)).await;
    assert_eq!(again.status(), 400, "a request_uri answers once");
    // Another client cannot open it, nor anyone a made-up one.
    let (other, other_secret) = web_client(&app, false).await;
    let (_, mine) = push(&app, Some((&id, &secret)), &form, None).await;
    let mine = mine["request_uri"].as_str().unwrap();
    assert_eq!(
        browser.get(&authorize_uri(&other, mine)).await.status(),
        400
    );
    let made_up = "urn:ietf:params:oauth:request_uri:guess";
    assert_eq!(
        browser.get(&authorize_uri(&id, made_up)).await.status(),
        400
    );

    // A client that must push cannot send its request through the browser.
    let plain = format!(
        "/oauth2/authorize?response_type=code&client_id={id}&redirect_uri={}&code_challenge={challenge}&code_challenge_method=S256",
        urlencode(REDIRECT)
    );
    let refused = browser.get(&plain).await;
    let to = location(&refused);
    assert!(
        to.starts_with(REDIRECT) && to.contains("error=invalid_request"),
        "{to}"
    );
    // One that need not, may.
    let (_, pushed) = push(&app, Some((&other, &other_secret)), &form, None).await;
    assert!(pushed["request_uri"].is_string());
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[apply(both_backends)]
async fn the_par_endpoint_refuses_what_the_authorization_endpoint_would(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let (id, secret) = web_client(&app, false).await;
    let basic = Some((id.as_str(), secret.as_str()));
    let cases: [(&[(&str, &str)], &str); 5] = [
        (
            &[("response_type", "code"), ("scope", "admin")],
            "invalid_scope",
        ),
        (&[("response_type", "token")], "unsupported_response_type"),
        (
            &[
                ("response_type", "code"),
                ("redirect_uri", "https://evil.example/cb"),
            ],
            "invalid_request",
        ),
        (
            &[("response_type", "code"), ("request_uri", "urn:x")],
            "invalid_request",
        ),
        (
            &[("response_type", "code"), ("request", "eyJ.x.y")],
            "request_not_supported",
        ),
    ];
    for (form, error) in cases {
        let (status, body) = push(&app, basic, form, None).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some(error)),
            "{form:?}: {body}"
        );
    }
    let (status, body) = push(
        &app,
        Some((&id, "wrong")),
        &[("response_type", "code")],
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
}

#[apply(both_backends)]
async fn a_pushed_request_with_a_dpop_proof_binds_the_code_to_its_key(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    user(&app, "ada").await;
    let (id, secret) = web_client(&app, false).await;
    let key = Key::new();
    let (verifier, challenge) = pkce();
    let form = [
        ("response_type", "code"),
        ("scope", "api"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let wrong = [("dpop_jkt", "A".repeat(43))];
    let mut mismatched: Vec<(&str, &str)> = form.to_vec();
    mismatched.push((wrong[0].0, wrong[0].1.as_str()));
    let par = app.url("/oauth2/par");
    let proof = || Some(key.proof("POST", &par, None, &json!({})));
    let (status, body) = push(&app, Some((&id, &secret)), &mismatched, proof()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_dpop_proof")),
        "{body}"
    );
    let (_, pushed) = push(&app, Some((&id, &secret)), &form, proof()).await;
    let request_uri = pushed["request_uri"].as_str().unwrap();
    let callback = Browser::new(&app)
        .authorize(&authorize_uri(&id, request_uri), "ada")
        .await;
    let code = param(&callback, "code").unwrap();
    let redeem = |proof: Option<String>| {
        let mut request = app
            .http
            .post(app.url("/oauth2/token"))
            .basic_auth(&id, Some(&secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", REDIRECT),
                ("code_verifier", verifier.as_str()),
            ]);
        if let Some(proof) = proof {
            request = request.header("DPoP", proof);
        }
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let bare = redeem(None).await;
    assert_eq!(bare["error"], "invalid_dpop_proof", "{bare}");
    let token = app.url("/oauth2/token");
    let tokens = redeem(Some(key.proof("POST", &token, None, &json!({})))).await;
    assert_eq!(tokens["token_type"], "DPoP", "{tokens}");
}

#[apply(both_backends)]
async fn prompt_login_in_a_pushed_request_asks_once(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    user(&app, "ada").await;
    let (id, secret) = web_client(&app, true).await;
    let browser = Browser::new(&app);
    let form = |prompt: Option<&'static str>| {
        let mut form = vec![("response_type", "code"), ("scope", "api")];
        if let Some(p) = prompt {
            form.push(("prompt", p));
        }
        form
    };
    // Signed in once (and consented), then asked to sign in again.
    let (_, first) = push(&app, Some((&id, &secret)), &form(None), None).await;
    browser
        .authorize(
            &authorize_uri(&id, first["request_uri"].as_str().unwrap()),
            "ada",
        )
        .await;
    let (_, again) = push(&app, Some((&id, &secret)), &form(Some("login")), None).await;
    let start = authorize_uri(&id, again["request_uri"].as_str().unwrap());
    let to_login = browser.get(&start).await;
    assert!(
        location(&to_login).starts_with("/login"),
        "prompt=login asks for a sign-in"
    );
    let callback = browser.authorize(&start, "ada").await;
    assert!(
        param(&callback, "code").is_some(),
        "and only once: {callback}"
    );
}

/// A FAPI 2.0 client registered with the CLI, with an ES256 key (its kid) and an RSA key.
async fn fapi_client(app: &TestApp) -> (String, ES256KeyPair, RS256KeyPair) {
    let args = [
        "client",
        "create",
        "--name",
        "Bank",
        "--type",
        "confidential",
        "--redirect-uri",
        REDIRECT,
        "--profile",
        "fapi2",
        "--json",
    ];
    let created = cli(&app.db, &args, None).await.ok().json();
    assert!(
        created.get("client_secret").is_none(),
        "a fapi2 client has no secret: private_key_jwt: {created}"
    );
    assert_eq!(
        created["token_endpoint_auth_method"], "private_key_jwt",
        "{created}"
    );
    assert_eq!(created["profile"], "fapi2", "{created}");
    let id = created["client_id"].as_str().unwrap().to_owned();
    let ec = ES256KeyPair::generate();
    let rsa = RS256KeyPair::generate(2048).unwrap();
    let mut kids = Vec::new();
    for (name, pem) in [
        ("ec.pem", ec.public_key().to_pem().unwrap()),
        ("rsa.pem", rsa.public_key().to_pem().unwrap()),
    ] {
        let file = app.db.path().join(name);
        std::fs::write(&file, pem).unwrap();
        let args = [
            "client",
            "add-key",
            &id,
            "--pem",
            file.to_str().unwrap(),
            "--json",
        ];
        let added = cli(&app.db, &args, None).await.ok().json();
        kids.push(added["kid"].as_str().unwrap().to_owned());
    }
    (id, ec.with_key_id(&kids[0]), rsa.with_key_id(&kids[1]))
}

fn client_assertion(id: &str, aud: &str) -> JWTClaims<NoCustomClaims> {
    Claims::create(Duration::from_secs(60))
        .with_issuer(id)
        .with_subject(id)
        .with_audience(aud)
        .with_jwt_id(uuid::Uuid::new_v4().to_string())
}

#[apply(both_backends)]
async fn a_fapi2_client_is_refused_every_shortcut(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let (id, ec, rsa) = fapi_client(&app).await;
    let issuer = app.url("");
    let (_, challenge) = pkce();
    let signed = |assertion: String| {
        vec![
            ("response_type".to_owned(), "code".to_owned()),
            ("scope".to_owned(), "openid api".to_owned()),
            ("code_challenge".to_owned(), challenge.clone()),
            ("code_challenge_method".to_owned(), "S256".to_owned()),
            (
                "client_assertion_type".to_owned(),
                ASSERTION_TYPE.to_owned(),
            ),
            ("client_assertion".to_owned(), assertion),
        ]
    };
    let send = |form: Vec<(String, String)>| {
        let request = app.http.post(app.url("/oauth2/par")).form(&form);
        async move {
            let res = request.send().await.unwrap();
            (res.status().as_u16(), res.json::<Value>().await.unwrap())
        }
    };
    let good = signed(ec.sign(client_assertion(&id, &issuer)).unwrap());
    let (status, body) = send(good).await;
    assert_eq!(status, 201, "the profile's way works: {body}");

    let rs256 = signed(rsa.sign(client_assertion(&id, &issuer)).unwrap());
    assert_eq!(send(rs256).await.1["error"], "invalid_client", "RS256");
    let token_aud = signed(
        ec.sign(client_assertion(&id, &app.url("/oauth2/token")))
            .unwrap(),
    );
    assert_eq!(
        send(token_aud).await.1["error"],
        "invalid_client",
        "aud other than the issuer"
    );
    let secret = app
        .http
        .post(app.url("/oauth2/par"))
        .basic_auth(&id, Some("anything"))
        .form(&[("response_type", "code")])
        .send()
        .await
        .unwrap();
    assert_eq!(secret.status(), 401, "client_secret_basic");
    let mut no_pkce = signed(ec.sign(client_assertion(&id, &issuer)).unwrap());
    no_pkce.retain(|(k, _)| !k.starts_with("code_challenge"));
    assert_eq!(send(no_pkce).await.1["error"], "invalid_request", "no PKCE");
    let mut plain = signed(ec.sign(client_assertion(&id, &issuer)).unwrap());
    plain.retain(|(k, _)| k != "code_challenge_method");
    plain.push(("code_challenge_method".to_owned(), "plain".to_owned()));
    assert_eq!(
        send(plain).await.1["error"],
        "invalid_request",
        "plain PKCE"
    );

    let unpushed = format!(
        "/oauth2/authorize?response_type=code&client_id={id}&redirect_uri={}&code_challenge={challenge}&code_challenge_method=S256",
        urlencode(REDIRECT)
    );
    let to = location(&app.get(&unpushed).await);
    assert!(to.contains("error=invalid_request"), "no PAR: {to}");
}

#[apply(both_backends)]
async fn the_fapi2_profile_is_fixed_at_registration(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let state = &app.app_state;
    let attempt = |new: NewClient| async move {
        gatehouse::oauth::clients::create(&state.store, state.clock.as_ref(), new).await
    };
    let base = NewClient {
        name: "Bank".to_owned(),
        client_type: "confidential".to_owned(),
        redirect_uris: vec![REDIRECT.to_owned()],
        profile: Some("fapi2".to_owned()),
        ..Default::default()
    };
    let refused = [
        (
            "auth_method",
            NewClient {
                auth_method: Some("client_secret_basic".to_owned()),
                ..base.clone()
            },
        ),
        (
            "type",
            NewClient {
                client_type: "public".to_owned(),
                ..base.clone()
            },
        ),
        (
            "id_token_alg",
            NewClient {
                id_token_alg: Some("RS256".to_owned()),
                ..base.clone()
            },
        ),
        (
            "grant_types",
            NewClient {
                grant_types: vec!["urn:ietf:params:oauth:grant-type:device_code".to_owned()],
                ..base.clone()
            },
        ),
        (
            "profile",
            NewClient {
                profile: Some("fapi1".to_owned()),
                ..base.clone()
            },
        ),
    ];
    for (field, new) in refused {
        match attempt(new).await {
            Err(gatehouse::oauth::RegistryError::Invalid(errors)) => {
                assert!(
                    errors.iter().any(|e| e.field == field),
                    "{field}: {errors:?}"
                );
            }
            other => panic!("{field}: {:?}", other.map(|c| c.client.client_id)),
        }
    }
    let created = attempt(base).await.unwrap().client;
    assert_eq!(
        created.token_endpoint_auth_method.as_str(),
        "private_key_jwt"
    );
    assert!(created.dpop_bound_access_tokens && created.require_pushed_authorization_requests);
    assert_eq!(
        created.id_token_signed_response_alg.map(|a| a.as_str()),
        Some("ES256")
    );
    let shown: Value = serde_json::to_value(&created).unwrap();
    assert_eq!(shown["profile"], "fapi2");
}

/// A token request of a FAPI 2.0 client: `form`, a fresh client assertion, and a proof.
async fn fapi_token(
    app: &TestApp,
    id: &str,
    ec: &ES256KeyPair,
    form: &[(&str, &str)],
    proof: Option<String>,
) -> Value {
    let assertion = ec.sign(client_assertion(id, &app.url(""))).unwrap();
    let mut all = form.to_vec();
    all.push(("client_assertion_type", ASSERTION_TYPE));
    all.push(("client_assertion", &assertion));
    let mut request = app.http.post(app.url("/oauth2/token")).form(&all);
    if let Some(proof) = proof {
        request = request.header("DPoP", proof);
    }
    request.send().await.unwrap().json().await.unwrap()
}

#[apply(both_backends)]
async fn a_fapi2_client_gets_dpop_bound_tokens_and_keeps_its_refresh_token(
    #[case] backend: Backend,
) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    user(&app, "ada").await;
    let (id, ec, _) = fapi_client(&app).await;
    let (verifier, challenge) = pkce();
    let assertion = ec.sign(client_assertion(&id, &app.url(""))).unwrap();
    let form = [
        ("response_type", "code"),
        ("scope", "openid offline_access api"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("client_assertion_type", ASSERTION_TYPE),
        ("client_assertion", assertion.as_str()),
    ];
    let (status, pushed) = push(&app, None, &form, None).await;
    assert_eq!(status, 201, "{pushed}");
    let callback = Browser::new(&app)
        .authorize(
            &authorize_uri(&id, pushed["request_uri"].as_str().unwrap()),
            "ada",
        )
        .await;
    assert_eq!(
        param(&callback, "iss").as_deref(),
        Some(app.url("").as_str())
    );
    let code = param(&callback, "code").unwrap();
    let redeem = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier.as_str()),
    ];
    let bare = fapi_token(&app, &id, &ec, &redeem, None).await;
    assert_eq!(
        bare["error"], "invalid_dpop_proof",
        "DPoP is required: {bare}"
    );
    let key = Key::new();
    let htu = app.url("/oauth2/token");
    let proof = || Some(key.proof("POST", &htu, None, &json!({})));
    let tokens = fapi_token(&app, &id, &ec, &redeem, proof()).await;
    assert_eq!(tokens["token_type"], "DPoP", "{tokens}");
    let refresh_token = tokens["refresh_token"].as_str().unwrap();
    let refresh = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ];
    for round in 0..2 {
        let renewed = fapi_token(&app, &id, &ec, &refresh, proof()).await;
        assert_eq!(renewed["token_type"], "DPoP", "round {round}: {renewed}");
        assert!(
            renewed.get("refresh_token").is_none(),
            "no rotation: {renewed}"
        );
    }
}

#[apply(both_backends)]
async fn a_pushed_request_expires_unopened_after_a_minute(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let clock = gatehouse::clock::ManualClock::at(1_900_000_000);
    let app = TestApp::spawn_with_clock(backend, clock.clone(), |_| {}).await;
    user(&app, "ada").await;
    let (id, secret) = web_client(&app, true).await;
    let form = [("response_type", "code"), ("scope", "api")];
    let (_, late) = push(&app, Some((&id, &secret)), &form, None).await;
    let (_, opened) = push(&app, Some((&id, &secret)), &form, None).await;
    let browser = Browser::new(&app);
    // Opened within the minute: the user then has time to sign in.
    let first = browser
        .get(&authorize_uri(&id, opened["request_uri"].as_str().unwrap()))
        .await;
    assert!(
        location(&first).starts_with("/login"),
        "{}",
        location(&first)
    );
    clock.advance(61);
    let expired = browser
        .get(&authorize_uri(&id, late["request_uri"].as_str().unwrap()))
        .await;
    assert_eq!(expired.status(), 400, "unopened for 61 s: expired");
    let callback = browser
        .authorize(
            &authorize_uri(&id, opened["request_uri"].as_str().unwrap()),
            "ada",
        )
        .await;
    assert!(param(&callback, "code").is_some(), "{callback}");
}
