//! Interoperability with certified relying-party libraries: `oauth4webapi` and
//! `openid-client` from npm (pinned in `tests/rp/package-lock.json`, installed into
//! `tests/rp/node_modules` by `.ci/install-rp`), driven by `tests/rp/rp.mjs` against a real
//! server, on both backends.

use rstest::rstest;
use rstest_reuse::apply;
use serde_json::{Value, json};

use crate::flow::{Browser, json, public_client, user, user_token};
use crate::support::{Backend, TestApp, both_backends, manifest_path, skip, unavailable};

const REDIRECT: &str = "https://app.example/cb";

/// Runs `scenario` of `tests/rp/rp.mjs` with `params`: what the library returned
/// (`{"ok": …}`) or the error it threw. `None` (said why) when Node.js or the libraries are
/// not installed.
async fn rp(test: &str, scenario: &str, params: Value) -> Option<Value> {
    if !manifest_path("tests/rp/node_modules/openid-client").exists() {
        skip(
            test,
            "run .ci/install-rp to install the relying-party libraries",
        );
        return None;
    }
    let run = tokio::process::Command::new("node")
        .arg(manifest_path("tests/rp/rp.mjs"))
        .arg(scenario)
        .arg(params.to_string())
        .kill_on_drop(true)
        .output()
        .await;
    let Ok(output) = run else {
        skip(test, "install Node.js 20 or later to run it");
        return None;
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let answer = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "{scenario}: no JSON answer ({e}):\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    Some(answer)
}

/// openid-client's authorization-code flow for the client in `params` (`client_id`,
/// `client_secret`, `metadata`, `scope`, `extra` request parameters): the library builds
/// the request, the test's browser signs in as `username` (consenting when asked), the
/// library redeems the code and checks what came back. `None` when the libraries are not
/// installed.
async fn rp_code_flow(test: &str, app: &TestApp, username: &str, params: Value) -> Option<Value> {
    rp_code_flow_in(test, &Browser::new(app), username, params).await
}

/// [`rp_code_flow`] in `browser` (which stays signed in).
async fn rp_code_flow_in(
    test: &str,
    browser: &Browser<'_>,
    username: &str,
    params: Value,
) -> Option<Value> {
    let app = browser.app;
    let mut params = params;
    params["issuer"] = json!(app.url(""));
    params["redirect_uri"] = json!(REDIRECT);
    let request = rp(test, "authorization_url", params.clone()).await?;
    let request = &request["ok"];
    let url = request["url"].as_str().expect("an authorization URL");
    let callback = browser.authorize(url, username).await;
    for field in ["code_verifier", "state", "nonce"] {
        params[field] = request[field].clone();
    }
    params["callback"] = json!(callback.as_str());
    rp(test, "code_grant", params).await
}

/// A client of the authorization-code flow with `REDIRECT`: public, or confidential
/// (with its secret) when `confidential`, registering `id_token_alg`.
async fn code_client(
    app: &TestApp,
    confidential: bool,
    id_token_alg: Option<&str>,
) -> (String, Option<String>) {
    app.register(gatehouse::oauth::clients::NewClient {
        name: "RP".to_owned(),
        client_type: if confidential {
            "confidential"
        } else {
            "public"
        }
        .to_owned(),
        redirect_uris: vec![REDIRECT.to_owned()],
        id_token_alg: id_token_alg.map(str::to_owned),
        ..Default::default()
    })
    .await
}

async fn discovery(app: &TestApp) -> Value {
    json(app.get("/.well-known/openid-configuration").await).await
}

#[apply(both_backends)]
async fn id_tokens_are_rs256_by_default_and_in_the_algorithm_a_client_registered(
    #[case] backend: Backend,
) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    user(&app, "ada").await;
    // One line of keys per algorithm in use: access tokens (ES256) and RS256, which
    // OpenID Discovery requires.
    let metadata = discovery(&app).await;
    assert_eq!(
        metadata["id_token_signing_alg_values_supported"],
        json!(["ES256", "RS256"])
    );
    assert_eq!(
        metadata["access_token_signing_alg_values_supported"],
        json!(["ES256"])
    );

    // openid-client expects RS256 from a client that registered nothing.
    let (id, _) = code_client(&app, false, None).await;
    let params = json!({"client_id": id, "scope": "openid profile"});
    let Some(flow) = rp_code_flow(module_path!(), &app, "ada", params).await else {
        return;
    };
    let ok = &flow["ok"];
    assert_eq!(ok["id_token_header"]["alg"], "RS256", "{flow}");
    assert_eq!(ok["id_token_header"]["typ"], "JWT", "{flow}");
    assert_eq!(ok["access_token_header"]["alg"], "ES256", "{flow}");
    assert_eq!(ok["claims"]["aud"], id.as_str(), "{flow}");

    // Each other algorithm a client registers gets its own line, in JWKS and discovery,
    // and openid-client verifies the ID tokens with the algorithm it was told to expect.
    for (alg, kty) in [("PS256", "RSA"), ("EdDSA", "OKP"), ("ES256", "EC")] {
        let (id, secret) = code_client(&app, true, Some(alg)).await;
        let params = json!({"client_id": id, "client_secret": secret,
            "metadata": {"id_token_signed_response_alg": alg}, "scope": "openid"});
        let flow = rp_code_flow(module_path!(), &app, "ada", params)
            .await
            .unwrap();
        let header = &flow["ok"]["id_token_header"];
        assert_eq!(header["alg"], alg, "{flow}");
        let jwks = json(app.get("/oauth2/jwks").await).await;
        let jwk = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == header["kid"]);
        assert_eq!(
            jwk.map(|k| (&k["alg"], &k["kty"])),
            Some((&json!(alg), &json!(kty))),
            "{jwks}"
        );
    }
    assert_eq!(
        discovery(&app).await["id_token_signing_alg_values_supported"],
        json!(["ES256", "EdDSA", "RS256", "PS256"])
    );

    // A client cannot register an algorithm the server does not sign with.
    let refused = gatehouse::oauth::clients::create(
        &app.app_state.store,
        app.app_state.clock.as_ref(),
        gatehouse::oauth::clients::NewClient {
            name: "RP".to_owned(),
            client_type: "public".to_owned(),
            redirect_uris: vec![REDIRECT.to_owned()],
            id_token_alg: Some("HS256".to_owned()),
            ..Default::default()
        },
    )
    .await;
    assert!(
        matches!(&refused, Err(gatehouse::oauth::RegistryError::Invalid(f)) if f[0].field == "id_token_signed_response_alg"),
        "{:?}",
        refused.err()
    );
    app.stop().await;
}

#[apply(both_backends)]
async fn a_resource_server_introspects_any_clients_tokens_and_others_only_their_own(
    #[case] backend: Backend,
) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let ada = user(&app, "ada").await;
    let (app_id, app_secret) = code_client(&app, true, None).await;
    let app_secret = app_secret.unwrap();
    let params = json!({"client_id": app_id, "client_secret": app_secret, "scope": "openid offline_access api"});
    let Some(flow) = rp_code_flow(module_path!(), &app, "ada", params).await else {
        return;
    };
    let access = flow["ok"]["access_token"].as_str().unwrap().to_owned();
    let refresh = flow["ok"]["refresh_token"].as_str().unwrap().to_owned();

    let rs = app
        .register(gatehouse::oauth::clients::NewClient {
            name: "Resource server".to_owned(),
            client_type: "confidential".to_owned(),
            grant_types: vec!["client_credentials".to_owned()],
            may_introspect: true,
            ..Default::default()
        })
        .await;
    let (other_id, other_secret) = app.service_client(&["api"]).await;
    let rs = (rs.0, rs.1.unwrap());

    // The resource server sees another client's access token, with the user's username.
    let seen = app.introspect(&rs.0, &rs.1, &access).await;
    assert_eq!(seen["active"], true, "{seen}");
    assert_eq!(seen["client_id"], app_id.as_str());
    assert_eq!(seen["sub"], ada.id.as_str());
    assert_eq!(seen["username"], "ada");
    assert_eq!(seen["token_type"], "Bearer");
    assert_eq!(seen["scope"], "openid offline_access api");
    assert_eq!(seen["iss"], app.url(""));
    assert!(
        seen["aud"].is_string() && seen["exp"].is_i64() && seen["iat"].is_i64(),
        "{seen}"
    );
    // … and its refresh token.
    let seen = app.introspect(&rs.0, &rs.1, &refresh).await;
    assert_eq!(seen["active"], true, "{seen}");
    assert_eq!(seen["token_type"], "refresh_token");
    assert_eq!(seen["client_id"], app_id.as_str());
    assert_eq!(seen["username"], "ada");
    assert_eq!(seen["sub"], ada.id.as_str());
    assert!(seen["iat"].is_i64(), "{seen}");

    // The client it was issued to sees both; another client sees neither.
    for token in [&access, &refresh] {
        let own = app.introspect(&app_id, &app_secret, token).await;
        assert_eq!(own["active"], true, "{own}");
        let foreign = app.introspect(&other_id, &other_secret, token).await;
        assert_eq!(foreign, json!({"active": false}));
    }
    // A client's own client-credentials token has no user behind it.
    let own = app.access_token(&other_id, &other_secret, None).await;
    let seen = app.introspect(&rs.0, &rs.1, &own).await;
    assert_eq!(seen["active"], true);
    assert_eq!(seen["sub"], other_id.as_str());
    assert!(seen.get("username").is_none(), "{seen}");

    // A rotated refresh token is inactive, to everyone.
    let rotated = app
        .post_form(
            "/oauth2/token",
            Some((&app_id, &app_secret)),
            &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
        )
        .await;
    assert_eq!(rotated.status(), 200);
    let seen = app.introspect(&rs.0, &rs.1, &refresh).await;
    assert_eq!(seen, json!({"active": false}));

    // Only a confidential client may be a resource server.
    let refused = gatehouse::oauth::clients::create(
        &app.app_state.store,
        app.app_state.clock.as_ref(),
        gatehouse::oauth::clients::NewClient {
            name: "SPA".to_owned(),
            client_type: "public".to_owned(),
            redirect_uris: vec![REDIRECT.to_owned()],
            may_introspect: true,
            ..Default::default()
        },
    )
    .await;
    assert!(
        matches!(&refused, Err(gatehouse::oauth::RegistryError::Invalid(f)) if f[0].field == "may_introspect"),
        "{:?}",
        refused.err()
    );
    app.stop().await;
}

#[apply(both_backends)]
async fn a_failed_basic_client_authentication_names_invalid_client_in_its_challenge(
    #[case] backend: Backend,
) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let (id, secret) = app.service_client(&["api"]).await;
    let params = |secret: &str| json!({"issuer": app.url(""), "client_id": id, "client_secret": secret, "scope": "api"});
    let Some(good) = rp(module_path!(), "client_credentials", params(&secret)).await else {
        return;
    };
    assert_eq!(good["ok"]["token_type"], "bearer", "{good}");

    let bad = rp(module_path!(), "client_credentials", params("wrong secret"))
        .await
        .unwrap();
    // oauth4webapi reads the challenge before the body: the error must be in it.
    assert_eq!(bad["threw"], "WWWAuthenticateChallengeError", "{bad}");
    assert_eq!(bad["status"], 401, "{bad}");
    let challenge = &bad["challenges"][0];
    assert_eq!(challenge["scheme"], "basic", "{bad}");
    assert_eq!(challenge["parameters"]["realm"], "gatehouse", "{bad}");
    assert_eq!(challenge["parameters"]["error"], "invalid_client", "{bad}");
    assert!(
        challenge["parameters"]["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{bad}"
    );
    app.stop().await;
}

#[apply(both_backends)]
async fn userinfo_takes_the_token_in_a_form_body_once_and_never_in_the_query(
    #[case] backend: Backend,
) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let ada = user(&app, "ada").await;
    let client = public_client(&app, REDIRECT).await;
    let token = user_token(&app, &client, REDIRECT, "ada", "openid profile").await;
    let post = |form: Vec<(&'static str, String)>| {
        app.http
            .post(app.url("/oauth2/userinfo"))
            .form(&form)
            .send()
    };

    // RFC 6750 §2.2: `access_token` in a form-encoded POST body.
    let res = post(vec![("access_token", token.clone())]).await.unwrap();
    assert_eq!(res.status(), 200);
    let info = json(res).await;
    assert_eq!(info["sub"], ada.id.as_str());
    assert_eq!(info["preferred_username"], "ada");

    // A token that does not verify is invalid_token, as in the header.
    let res = post(vec![("access_token", "not-a-token".to_owned())])
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let challenge = res.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );

    // One method per request: twice in the body, or in the header and the body, is refused.
    let twice = post(vec![
        ("access_token", token.clone()),
        ("access_token", token.clone()),
    ])
    .await
    .unwrap();
    let both = app
        .http
        .post(app.url("/oauth2/userinfo"))
        .bearer_auth(&token)
        .form(&[("access_token", &token)])
        .send()
        .await
        .unwrap();
    let empty = post(vec![("access_token", String::new())]).await.unwrap();
    for res in [twice, both, empty] {
        assert_eq!(res.status(), 400);
        let challenge = res.headers()["www-authenticate"].to_str().unwrap();
        assert!(
            challenge.contains(r#"error="invalid_request""#),
            "{challenge}"
        );
    }

    // The query string stays refused, on POST as on GET; no token at all is a bare 401.
    let query = app
        .http
        .post(app.url(&format!("/oauth2/userinfo?access_token={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(query.status(), 400);
    let none = post(vec![]).await.unwrap();
    assert_eq!(none.status(), 401);
    assert_eq!(
        none.headers()["www-authenticate"],
        r#"Bearer realm="gatehouse""#
    );
    app.stop().await;
}

/// A stand-in for a relying party on its own port: `/start` is a page whose form POSTs
/// the parameters of `authorize` (a URL) to the authorization endpoint; `/cb` keeps the
/// body of what is POSTed to it (the form post response mode).
struct RelyingParty {
    callback: String,
    start: String,
    posted: std::sync::Arc<tokio::sync::Mutex<Option<String>>>,
    page: std::sync::Arc<std::sync::Mutex<String>>,
}

impl RelyingParty {
    async fn spawn() -> Self {
        use std::sync::{Arc, Mutex};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let posted: Arc<tokio::sync::Mutex<Option<String>>> = Arc::default();
        let page: Arc<Mutex<String>> = Arc::default();
        let (keep, show) = (posted.clone(), page.clone());
        let router = axum::Router::new()
            .route(
                "/start",
                axum::routing::get(move || {
                    let html = show.lock().unwrap().clone();
                    async move { axum::response::Html(html) }
                }),
            )
            .route(
                "/cb",
                axum::routing::post(move |body: String| async move {
                    *keep.lock().await = Some(body);
                    axum::response::Html("<h1>Back in the app</h1>")
                }),
            );
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self {
            callback: format!("http://{addr}/cb"),
            start: format!("http://{addr}/start"),
            posted,
            page,
        }
    }

    /// The start page POSTs the query parameters of `authorize` to its path.
    fn post_from_start(&self, authorize: &str) {
        let url = url::Url::parse(authorize).unwrap();
        let mut action = url.clone();
        action.set_query(None);
        let fields: String = url
            .query_pairs()
            .map(|(k, v)| {
                format!(
                    r#"<input type="hidden" name="{}" value="{}">"#,
                    escape(&k),
                    escape(&v)
                )
            })
            .collect();
        *self.page.lock().unwrap() = format!(
            r#"<form method="post" action="{action}">{fields}<button id="go">Sign in</button></form>"#
        );
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
}

#[apply(both_backends)]
async fn a_posted_authorization_request_signs_in_and_answers_by_form_post_in_chromium(
    #[case] backend: Backend,
) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let Some(browser) = crate::chromium::Chromium::start(module_path!()).await else {
        return;
    };
    let app = TestApp::spawn(backend).await;
    let ada = user(&app, "ada").await;
    let relying_party = RelyingParty::spawn().await;
    let (id, _) = app
        .register(gatehouse::oauth::clients::NewClient {
            name: "Form Post RP".to_owned(),
            client_type: "public".to_owned(),
            redirect_uris: vec![relying_party.callback.clone()],
            ..Default::default()
        })
        .await;
    let mut params = json!({"issuer": app.url(""), "client_id": id, "redirect_uri": relying_party.callback,
        "scope": "openid profile", "extra": {"response_mode": "form_post"}});
    let Some(request) = rp(module_path!(), "authorization_url", params.clone()).await else {
        return;
    };
    let request = &request["ok"];
    relying_party.post_from_start(request["url"].as_str().unwrap());

    // The relying party's page POSTs the request; signing in continues it.
    browser.client.goto(&relying_party.start).await.unwrap();
    browser.find("#go").await.click().await.unwrap();
    browser.sign_in("ada", crate::flow::PASSWORD).await;
    browser.click("button[name=decision][value=approve]").await;
    // The form post page submits itself (its script runs under the page's CSP).
    browser.wait_for_text("h1", "Back in the app").await;
    let posted = relying_party
        .posted
        .lock()
        .await
        .clone()
        .expect("a POST to the callback");
    for field in ["code_verifier", "state", "nonce"] {
        params[field] = request[field].clone();
    }
    params["form_post"] = json!(posted);
    let grant = rp(module_path!(), "code_grant", params).await.unwrap();
    assert_eq!(grant["ok"]["claims"]["sub"], ada.id.as_str(), "{grant}");
    browser.close().await;

    // Without scripts the page still works: one form to the callback, with a button, and
    // a CSP that lets only our own script run.
    let signed_in = Browser::new(&app);
    signed_in
        .sign_in("/login", "ada", crate::flow::PASSWORD)
        .await;
    let again = rp(module_path!(), "authorization_url", json!({"issuer": app.url(""), "client_id": id,
        "redirect_uri": relying_party.callback, "scope": "openid", "extra": {"response_mode": "form_post"}}))
        .await
        .unwrap();
    let page = signed_in.get(again["ok"]["url"].as_str().unwrap()).await;
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    let html = page.text().await.unwrap();
    assert!(
        html.contains(&format!(r#"action="{}""#, relying_party.callback)),
        "{html}"
    );
    assert!(
        html.contains(r#"name="code""#) && html.contains(r#"name="iss""#),
        "{html}"
    );
    assert!(html.contains(r#"<button type="submit">"#), "{html}");
    assert_eq!(
        discovery(&app).await["response_modes_supported"],
        json!(["query", "form_post"])
    );
    app.stop().await;
}

#[apply(both_backends)]
async fn the_authorization_endpoint_takes_a_form_body_like_a_query(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    user(&app, "ada").await;
    let (id, _) = code_client(&app, false, None).await;
    let (_, challenge) = crate::flow::pkce();
    let form = [
        ("response_type", "code"),
        ("client_id", id.as_str()),
        ("redirect_uri", REDIRECT),
        ("scope", "openid"),
        ("state", "posted"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    // Without a session cookie (a cross-site POST sends none): on as the same GET.
    let browser = Browser::new(&app);
    let res = browser.post("/oauth2/authorize", &form).await;
    assert_eq!(res.status(), 303);
    let location = crate::flow::location(&res);
    assert!(location.starts_with("/oauth2/authorize?"), "{location}");
    let callback = browser.authorize(&location, "ada").await;
    assert_eq!(
        crate::flow::param(&callback, "state").as_deref(),
        Some("posted")
    );
    assert!(crate::flow::param(&callback, "code").is_some());
    // Signed in (and consented), the POST itself answers.
    let res = browser.post("/oauth2/authorize", &form).await;
    assert_eq!(res.status(), 302);
    assert!(crate::flow::location(&res).starts_with(REDIRECT));
    // An invalid request is refused as on GET: at the client once it is trusted.
    let mut bad = form.to_vec();
    bad[0] = ("response_type", "token");
    let res = browser.post("/oauth2/authorize", &bad).await;
    assert!(crate::flow::location(&res).contains("error=unsupported_response_type"));
    // Parameters in the URL of a POST, or a body that is not a form: an error page.
    let res = browser
        .http
        .post(app.url(&format!("/oauth2/authorize?client_id={id}")))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let res = browser
        .http
        .post(app.url("/oauth2/authorize"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);
    app.stop().await;
}

#[apply(both_backends)]
async fn the_claims_parameter_and_acr_values_shape_the_id_token(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let ada = user(&app, "ada").await;
    let (id, _) = code_client(&app, false, None).await;
    let claims = json!({"id_token": {"email": null, "name": {"essential": true}, "acr": null,
        "unknown_claim": null}, "userinfo": {"email": null}});
    let params = json!({"client_id": id, "scope": "openid profile email",
        "extra": {"claims": claims.to_string()}, "userinfo": true});
    let Some(flow) = rp_code_flow(module_path!(), &app, "ada", params).await else {
        return;
    };
    let id_token = &flow["ok"]["claims"];
    assert_eq!(id_token["email"], "ada@example.com", "{flow}");
    assert_eq!(id_token["name"], "ada Example", "{flow}");
    assert_eq!(id_token["amr"], json!(["pwd"]), "{flow}");
    assert_eq!(id_token["acr"], "urn:gatehouse:acr:password", "{flow}");
    assert!(
        id_token.get("unknown_claim").is_none() && id_token.get("preferred_username").is_none(),
        "{flow}"
    );
    assert_eq!(flow["ok"]["userinfo"]["email"], "ada@example.com", "{flow}");
    assert_eq!(flow["ok"]["userinfo"]["sub"], ada.id.as_str(), "{flow}");

    // Within the scopes: `email` without the email scope is not released; with no
    // request, the ID token has amr but no acr; acr_values asks for acr.
    let params = json!({"client_id": id, "scope": "openid",
        "extra": {"claims": json!({"id_token": {"email": null}}).to_string()}});
    let flow = rp_code_flow(module_path!(), &app, "ada", params)
        .await
        .unwrap();
    let id_token = &flow["ok"]["claims"];
    assert!(
        id_token.get("email").is_none() && id_token.get("acr").is_none(),
        "{flow}"
    );
    assert_eq!(id_token["amr"], json!(["pwd"]), "{flow}");
    let params = json!({"client_id": id, "scope": "openid", "extra": {"acr_values": "urn:gatehouse:acr:password"}});
    let flow = rp_code_flow(module_path!(), &app, "ada", params)
        .await
        .unwrap();
    assert_eq!(
        flow["ok"]["claims"]["acr"], "urn:gatehouse:acr:password",
        "{flow}"
    );

    // An essential acr the server cannot assert is a failed authentication; a claims
    // parameter that is not a JSON object is invalid_request — both at the client.
    for (claims, error) in [
        (
            json!({"id_token": {"acr": {"essential": true, "values": ["urn:example:mfa"]}}})
                .to_string(),
            "access_denied",
        ),
        ("not json".to_owned(), "invalid_request"),
        (
            json!({"id_token": {"email": {"essential": "yes"}}}).to_string(),
            "invalid_request",
        ),
    ] {
        let params = json!({"client_id": id, "scope": "openid", "extra": {"claims": claims}});
        let refused = rp_code_flow(module_path!(), &app, "ada", params)
            .await
            .unwrap();
        assert_eq!(refused["error"], error, "{refused}");
    }
    let metadata = discovery(&app).await;
    assert_eq!(metadata["claims_parameter_supported"], true);
    assert_eq!(
        metadata["acr_values_supported"],
        json!(["urn:gatehouse:acr:password"])
    );
    app.stop().await;
}

#[apply(both_backends)]
async fn a_device_user_who_signs_in_lands_on_the_confirmation_page(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn_with(backend, |c| c.device_poll_interval_secs = 1).await;
    let ada = user(&app, "ada").await;
    let (id, _) = app
        .register(gatehouse::oauth::clients::NewClient {
            name: "Living Room TV".to_owned(),
            client_type: "public".to_owned(),
            grant_types: vec!["urn:ietf:params:oauth:grant-type:device_code".to_owned()],
            scopes: vec!["openid".to_owned(), "api".to_owned()],
            ..Default::default()
        })
        .await;
    let client = json!({"issuer": app.url(""), "client_id": id, "scope": "openid api"});
    let Some(started) = rp(module_path!(), "device_start", client.clone()).await else {
        return;
    };
    let started = started["ok"].clone();
    let user_code = started["user_code"].as_str().unwrap().to_owned();

    // Not signed in: the code is entered once, then the sign-in, then the confirmation.
    let browser = Browser::new(&app);
    let entry = browser.get("/activate").await.text().await.unwrap();
    let csrf = crate::flow::input_value(&entry, "csrf_token").unwrap();
    let res = browser
        .post(
            "/activate",
            &[
                ("user_code", user_code.as_str()),
                ("csrf_token", csrf.as_str()),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    let login = crate::flow::location(&res);
    let res = browser.sign_in(&login, "ada", crate::flow::PASSWORD).await;
    let back = crate::flow::location(&res);
    assert!(back.starts_with("/activate?"), "{back}");
    // The way back proves nothing in another browser: there it is the code form again.
    let other = Browser::new(&app);
    other.sign_in("/login", "ada", crate::flow::PASSWORD).await;
    let page = other.get(&back).await.text().await.unwrap();
    assert!(!page.contains(r#"value="approve""#), "{page}");
    let confirm = browser.get(&back).await;
    assert_eq!(confirm.status(), 200);
    let html = confirm.text().await.unwrap();
    assert!(html.contains("Living Room TV"), "{html}");
    assert!(
        html.contains(r#"value="approve""#) && html.contains(r#"value="deny""#),
        "{html}"
    );
    let csrf = crate::flow::input_value(&html, "csrf_token").unwrap();
    let done = browser
        .post(
            "/activate",
            &[
                ("user_code", user_code.as_str()),
                ("csrf_token", csrf.as_str()),
                ("decision", "approve"),
            ],
        )
        .await;
    assert!(done.text().await.unwrap().contains("Device connected"));

    // The device gets its tokens.
    let mut poll = client.clone();
    poll["started"] = started;
    let tokens = rp(module_path!(), "device_poll", poll).await.unwrap();
    assert_eq!(tokens["ok"]["claims"]["sub"], ada.id.as_str(), "{tokens}");

    app.stop().await;
}

#[apply(both_backends)]
async fn rp_initiated_logout_ends_the_session_and_returns_to_the_registered_uri(
    #[case] backend: Backend,
) {
    if unavailable(backend, module_path!()) {
        return;
    }
    const BACK: &str = "https://app.example/signed-out";
    let app = TestApp::spawn(backend).await;
    user(&app, "ada").await;
    let rp_side = LogoutReceiver::spawn("none").await;
    let (id, _) = app
        .register(gatehouse::oauth::clients::NewClient {
            name: "Portal".to_owned(),
            client_type: "public".to_owned(),
            redirect_uris: vec![REDIRECT.to_owned()],
            post_logout_redirect_uris: vec![BACK.to_owned()],
            backchannel_logout_uri: Some(rp_side.uri("portal")),
            ..Default::default()
        })
        .await;
    let browser = Browser::new(&app);
    let params = json!({"client_id": id, "scope": "openid"});
    let Some(flow) = rp_code_flow_in(module_path!(), &browser, "ada", params).await else {
        return;
    };
    let id_token = flow["ok"]["id_token"].as_str().unwrap().to_owned();
    let end_session = |logout: Value| {
        let app = &app;
        let id = id.clone();
        async move {
            let url = rp(
                module_path!(),
                "end_session_url",
                json!({"issuer": app.url(""), "client_id": id, "logout": logout}),
            )
            .await
            .unwrap();
            url["ok"]["url"].as_str().unwrap().to_owned()
        }
    };

    // The ID token proves who asks: signed out at once, back with state.
    let url = end_session(
        json!({"id_token_hint": id_token, "post_logout_redirect_uri": BACK, "state": "bye"}),
    )
    .await;
    assert!(url.starts_with(&app.url("/oauth2/logout?")), "{url}");
    let res = browser.get(&url).await;
    assert_eq!(res.status(), 303);
    assert_eq!(crate::flow::location(&res), format!("{BACK}?state=bye"));
    assert!(!signed_in(&browser).await);
    // The client is told over the back channel too.
    let sid = flow["ok"]["claims"]["sid"].as_str().unwrap();
    rp_side.exactly("portal", sid, 1).await;

    // Without the hint the user is asked; the answer signs out and goes back.
    browser
        .sign_in("/login", "ada", crate::flow::PASSWORD)
        .await;
    let url = end_session(json!({"post_logout_redirect_uri": BACK, "state": "asked"})).await;
    let question = browser.get(&url).await;
    assert_eq!(question.status(), 200);
    let html = question.text().await.unwrap();
    assert!(
        html.contains("<strong>Portal</strong> asks to sign you out"),
        "{html}"
    );
    assert!(signed_in(&browser).await, "asking signs nobody out");
    let csrf = crate::flow::input_value(&html, "csrf_token").unwrap();
    let request = crate::flow::input_value(&html, "request").unwrap();
    let res = browser
        .post(
            "/logout",
            &[("csrf_token", csrf.as_str()), ("request", request.as_str())],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(crate::flow::location(&res), format!("{BACK}?state=asked"));
    assert!(!signed_in(&browser).await);

    // A hint for someone else is no proof: asked again.
    let other = user(&app, "bob").await;
    browser
        .sign_in("/login", "bob", crate::flow::PASSWORD)
        .await;
    let url = end_session(json!({"id_token_hint": id_token})).await;
    let res = browser.get(&url).await;
    assert_eq!(res.status(), 200);
    assert!(signed_in(&browser).await, "{}", other.username.as_str());

    // Refused with a page, never redirected: an unregistered URI, a hint that is not an
    // ID token of this server (an access token is not one), a client that is not the
    // hint's audience.
    let access = flow["ok"]["access_token"].as_str().unwrap();
    let (service, _) = app.service_client(&["api"]).await;
    for query in [
        format!("client_id={id}&post_logout_redirect_uri=https%3A%2F%2Fevil.example%2F"),
        format!("id_token_hint={access}"),
        "id_token_hint=not.a.jwt".to_owned(),
        format!("id_token_hint={id_token}&client_id={service}"),
        "post_logout_redirect_uri=https%3A%2F%2Fapp.example%2Fsigned-out".to_owned(),
    ] {
        let res = browser.get(&format!("/oauth2/logout?{query}")).await;
        assert_eq!(res.status(), 400, "{query}");
    }
    assert_eq!(
        discovery(&app).await["end_session_endpoint"],
        app.url("/oauth2/logout")
    );
    app.stop().await;
}

/// Whether `browser` has a signed-in session (the sign-out page says so).
async fn signed_in(browser: &Browser<'_>) -> bool {
    let page = browser.get("/logout").await.text().await.unwrap();
    !page.contains("You are not signed in")
}

/// A relying party's back-channel logout endpoints on its own port: `/bcl/{name}` keeps
/// each POST (content type and body) and answers 200, except 503 to the first POST to
/// `/bcl/{fail_first}`.
struct LogoutReceiver {
    base: String,
    posts: std::sync::Arc<std::sync::Mutex<Vec<(String, String, String)>>>,
}

impl LogoutReceiver {
    async fn spawn(fail_first: &'static str) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Mutex};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let posts: Arc<Mutex<Vec<(String, String, String)>>> = Arc::default();
        let failed = Arc::new(AtomicBool::new(false));
        let keep = posts.clone();
        let router = axum::Router::new().route(
            "/bcl/{name}",
            axum::routing::post(
                move |axum::extract::Path(name): axum::extract::Path<String>,
                      headers: axum::http::HeaderMap,
                      body: String| async move {
                    let content_type = headers
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    let fail = name == fail_first && !failed.swap(true, Ordering::SeqCst);
                    keep.lock().unwrap().push((name, content_type, body));
                    if fail {
                        axum::http::StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        axum::http::StatusCode::OK
                    }
                },
            ),
        );
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self { base, posts }
    }

    fn uri(&self, name: &str) -> String {
        format!("{}/bcl/{name}", self.base)
    }

    /// The logout tokens POSTed to `name` for session `sid` so far (each POST checked to be
    /// a form with one `logout_token`).
    fn tokens(&self, name: &str, sid: &str) -> Vec<String> {
        self.posts
            .lock()
            .unwrap()
            .iter()
            .filter(|(n, _, _)| n == name)
            .map(|(_, content_type, body)| {
                assert_eq!(content_type, "application/x-www-form-urlencoded");
                let fields: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes())
                    .into_owned()
                    .collect();
                assert_eq!(fields.len(), 1, "{body}");
                assert_eq!(fields[0].0, "logout_token", "{body}");
                fields[0].1.clone()
            })
            .filter(|token| unverified_claims(token)["sid"] == sid)
            .collect()
    }

    /// Waits up to 10 s for `n` tokens to `name` for `sid`, then 1.5 s more to see that no
    /// more come; returns them.
    async fn exactly(&self, name: &str, sid: &str, n: usize) -> Vec<String> {
        crate::support::eventually(10, || async {
            (self.tokens(name, sid).len() >= n).then_some(())
        })
        .await;
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        let tokens = self.tokens(name, sid);
        assert_eq!(tokens.len(), n, "{name}, session {sid}: {tokens:?}");
        tokens
    }
}

/// A JWT's payload, not verified (to sort tokens; they are verified by the RP library).
fn unverified_claims(jwt: &str) -> Value {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[apply(both_backends)]
async fn back_channel_logout_tells_each_client_of_an_ended_session_once(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn_with(backend, |c| c.backchannel_logout_retry_secs = 1).await;
    let ada = user(&app, "ada").await;
    // The first POST to portal fails: it is retried.
    let rp_side = LogoutReceiver::spawn("portal").await;
    let told = |name: &str, alg: Option<&str>| gatehouse::oauth::clients::NewClient {
        name: name.to_owned(),
        client_type: "public".to_owned(),
        redirect_uris: vec![REDIRECT.to_owned()],
        backchannel_logout_uri: Some(rp_side.uri(name)),
        id_token_alg: alg.map(str::to_owned),
        ..Default::default()
    };
    let (portal, _) = app.register(told("portal", None)).await;
    let (shop, _) = app.register(told("shop", Some("ES256"))).await;
    let (quiet, _) = code_client(&app, false, None).await;
    let browser = Browser::new(&app);
    let openid = |client: &str| json!({"client_id": client, "scope": "openid"});
    let Some(first) = rp_code_flow_in(module_path!(), &browser, "ada", openid(&portal)).await
    else {
        return;
    };
    let sid = first["ok"]["claims"]["sid"].as_str().unwrap().to_owned();
    for client in [&shop, &quiet] {
        let flow = rp_code_flow_in(module_path!(), &browser, "ada", openid(client)).await;
        assert_eq!(flow.unwrap()["ok"]["claims"]["sid"], sid.as_str());
    }
    // The same user signing in again in the same browser continues the session.
    browser
        .sign_in("/login", "ada", crate::flow::PASSWORD)
        .await;
    let admin = {
        let (id, secret) = app.service_client(&["admin"]).await;
        app.access_token(&id, &secret, None).await
    };
    let sessions = json(app.get_bearer("/admin/v1/users/ada/sessions", &admin).await).await;
    let listed = &sessions["sessions"];
    assert_eq!(listed.as_array().unwrap().len(), 1, "{sessions}");
    assert_eq!(listed[0]["sid"], sid.as_str());
    let mut clients = vec![portal.clone(), shop.clone(), quiet.clone()];
    clients.sort();
    assert_eq!(listed[0]["clients"], json!(clients));

    // Signing out tells the two clients with a URI, once each; portal's first POST failed
    // and was retried with the same token id.
    let page = browser.get("/logout").await.text().await.unwrap();
    let csrf = crate::flow::input_value(&page, "csrf_token").unwrap();
    let res = browser
        .post("/logout", &[("csrf_token", csrf.as_str())])
        .await;
    assert_eq!(res.status(), 200);
    let portal_tokens = rp_side.exactly("portal", &sid, 2).await;
    let shop_tokens = rp_side.exactly("shop", &sid, 1).await;
    assert_eq!(
        unverified_claims(&portal_tokens[0])["jti"],
        unverified_claims(&portal_tokens[1])["jti"]
    );
    for (client, token, alg) in [
        (&portal, &portal_tokens[1], "RS256"),
        (&shop, &shop_tokens[0], "ES256"),
    ] {
        let verified = rp(
            module_path!(),
            "logout_token",
            json!({"issuer": app.url(""), "client_id": client, "token": token, "alg": alg}),
        )
        .await
        .unwrap();
        let ok = &verified["ok"];
        assert_eq!(ok["header"]["typ"], "logout+jwt", "{verified}");
        assert_eq!(ok["header"]["alg"], alg, "{verified}");
        assert_eq!(ok["claims"]["sub"], ada.id.as_str(), "{verified}");
        assert_eq!(ok["claims"]["sid"], sid.as_str(), "{verified}");
        assert_eq!(ok["claims"]["aud"], client.as_str(), "{verified}");
    }
    assert!(
        rp_side
            .posts
            .lock()
            .unwrap()
            .iter()
            .all(|(n, _, _)| n != "quiet")
    );

    // An administrator ends a session. A code of that session redeemed afterwards still
    // gets its tokens, and its client is told at once; a client told already is not told
    // twice.
    let second = rp_code_flow_in(module_path!(), &browser, "ada", openid(&portal))
        .await
        .unwrap();
    let sid2 = second["ok"]["claims"]["sid"].as_str().unwrap().to_owned();
    assert_ne!(
        sid2, sid,
        "a new sign-in after signing out is a new session"
    );
    let held = |client: &str| {
        let (browser, client) = (&browser, client.to_owned());
        async move {
            let mut params = openid(&client);
            params["issuer"] = json!(browser.app.url(""));
            params["redirect_uri"] = json!(REDIRECT);
            let request = rp(module_path!(), "authorization_url", params.clone())
                .await
                .unwrap();
            let request = &request["ok"];
            let url = request["url"].as_str().unwrap();
            let callback = browser.authorize(url, "ada").await;
            for field in ["code_verifier", "state", "nonce"] {
                params[field] = request[field].clone();
            }
            params["callback"] = json!(callback.as_str());
            params
        }
    };
    let (held_shop, held_portal) = (held(&shop).await, held(&portal).await);
    let end = |path: String| {
        let (app, admin) = (&app, &admin);
        async move {
            app.http
                .delete(app.url(&path))
                .bearer_auth(admin)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let path = format!("/admin/v1/users/ada/sessions/{sid2}");
    assert_eq!(end(path.clone()).await, 204);
    assert_eq!(end(path).await, 404, "that session has ended");
    assert!(!signed_in(&browser).await);
    for params in [held_shop, held_portal] {
        let late = rp(module_path!(), "code_grant", params).await.unwrap();
        assert_eq!(late["ok"]["claims"]["sid"], sid2.as_str(), "{late}");
    }
    rp_side.exactly("portal", &sid2, 1).await;
    rp_side.exactly("shop", &sid2, 1).await;

    // Another user signing in over the session in the same browser ends it.
    let third = rp_code_flow_in(module_path!(), &browser, "ada", openid(&portal))
        .await
        .unwrap();
    let sid3 = third["ok"]["claims"]["sid"].as_str().unwrap().to_owned();
    user(&app, "bob").await;
    browser
        .sign_in("/login", "bob", crate::flow::PASSWORD)
        .await;
    rp_side.exactly("portal", &sid3, 1).await;
    // An administrator signs a user out of every browser.
    assert!(signed_in(&browser).await);
    assert_eq!(end("/admin/v1/users/bob/sessions".to_owned()).await, 204);
    assert!(!signed_in(&browser).await);
    assert_eq!(end("/admin/v1/users/nobody/sessions".to_owned()).await, 404);

    // Disabling the user ends their sessions, and every session's clients are told.
    let mut sids = Vec::new();
    for _ in 0..2 {
        let other = Browser::new(&app);
        let flow = rp_code_flow_in(module_path!(), &other, "ada", openid(&portal))
            .await
            .unwrap();
        sids.push(flow["ok"]["claims"]["sid"].as_str().unwrap().to_owned());
    }
    let res = app
        .http
        .post(app.url("/admin/v1/users/ada/disable"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    for sid in &sids {
        rp_side.exactly("portal", sid, 1).await;
    }

    let discovered = discovery(&app).await;
    assert_eq!(discovered["backchannel_logout_supported"], true);
    assert_eq!(discovered["backchannel_logout_session_supported"], true);
    assert!(
        discovered["claims_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("sid"))
    );
    app.stop().await;
}

/// oauth4webapi's DPoP (RFC 9449) against a server that requires nonces: it is told the
/// nonce (use_dpop_nonce), retries, gets a DPoP-bound token for its own key, and calls
/// the API with proofs; the same token sent as a bearer token is refused.
#[apply(both_backends)]
async fn oauth4webapi_gets_and_uses_dpop_bound_tokens_with_server_nonces(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn_with(backend, |c| c.dpop_nonce_required = true).await;
    let (id, secret) = app.service_client(&["api"]).await;
    for alg in ["ES256", "EdDSA", "PS256"] {
        let params = json!({"issuer": app.url(""), "client_id": id, "client_secret": secret,
            "scope": "api", "resource": app.url("/api/v1/me"), "alg": alg});
        let Some(answer) = rp(module_path!(), "dpop_client_credentials", params).await else {
            return;
        };
        let ok = &answer["ok"];
        assert_eq!(ok["token_type"], "dpop", "{alg}: {answer}");
        assert_eq!(ok["status"], 200, "{alg}: {answer}");
        assert_eq!(ok["body"]["client_id"], id.as_str(), "{alg}: {answer}");
        assert_eq!(
            ok["retries"], 1,
            "{alg}: one nonce retry, at the token endpoint: {answer}"
        );
        let token = ok["access_token"].as_str().unwrap();
        let claims: Value = serde_json::from_slice(
            &base64::Engine::decode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                token.split('.').nth(1).unwrap(),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(
            claims["cnf"]["jkt"], ok["jkt"],
            "{alg}: bound to the library's key"
        );
        let as_bearer = app.get_bearer("/api/v1/me", token).await;
        assert_eq!(as_bearer.status(), 401, "{alg}");
    }
    app.stop().await;
}

/// oauth4webapi pushes an authorization request (RFC 9126) found through discovery; the
/// browser opens its request_uri, and the code redeems as any other.
#[apply(both_backends)]
async fn oauth4webapi_pushes_an_authorization_request(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    user(&app, "ada").await;
    let (id, secret) = app
        .register(gatehouse::oauth::clients::NewClient {
            name: "Pushing app".to_owned(),
            client_type: "confidential".to_owned(),
            redirect_uris: vec![REDIRECT.to_owned()],
            require_pushed_authorization_requests: true,
            ..Default::default()
        })
        .await;
    let secret = secret.unwrap();
    let params = json!({"issuer": app.url(""), "client_id": id, "client_secret": secret,
        "redirect_uri": REDIRECT, "scope": "openid api", "extra": {"state": "par-1"}});
    let Some(pushed) = rp(module_path!(), "par", params).await else {
        return;
    };
    let ok = &pushed["ok"];
    assert_eq!(ok["endpoint"], app.url("/oauth2/par"), "{pushed}");
    assert_eq!(ok["expires_in"], 60, "{pushed}");
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", &id)
        .append_pair("request_uri", ok["request_uri"].as_str().unwrap())
        .finish();
    let callback = Browser::new(&app)
        .authorize(&format!("/oauth2/authorize?{query}"), "ada")
        .await;
    assert_eq!(
        crate::flow::param(&callback, "state").as_deref(),
        Some("par-1")
    );
    let code = crate::flow::param(&callback, "code").unwrap();
    let tokens = json(
        app.post_form(
            "/oauth2/token",
            Some((&id, &secret)),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", ok["code_verifier"].as_str().unwrap()),
            ],
        )
        .await,
    )
    .await;
    assert!(tokens["id_token"].is_string(), "{tokens}");
    app.stop().await;
}
