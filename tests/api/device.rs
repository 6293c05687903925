//! The device authorization grant (RFC 8628): a device asks for codes and polls; a person
//! enters the code on /activate in a real browser, signs in and approves (or denies);
//! expiry and slow_down with a moved clock; wrong-code throttling.

use rstest::rstest;
use rstest_reuse::apply;

use crate::support::{Backend, both_backends, unavailable};
use serde_json::Value;

use crate::chromium::Chromium;
use crate::flow::{Browser, PASSWORD, input_value, json, user};
use crate::support::TestApp;

pub const GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// A public TV app registered for the device grant (and refresh tokens).
pub async fn tv_app(app: &TestApp) -> String {
    app.register(gatehouse::oauth::clients::NewClient {
        name: "Living Room TV".to_owned(),
        client_type: "public".to_owned(),
        grant_types: vec![GRANT.to_owned(), "refresh_token".to_owned()],
        scopes: ["openid", "profile", "offline_access", "api"]
            .map(str::to_owned)
            .to_vec(),
        ..Default::default()
    })
    .await
    .0
}

pub async fn start(app: &TestApp, client: &str, scope: &str) -> Value {
    let res = app
        .post_form(
            "/oauth2/device_authorization",
            None,
            &[("client_id", client), ("scope", scope)],
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    json(res).await
}

async fn poll(app: &TestApp, client: &str, device_code: &str) -> (u16, Value) {
    let res = app
        .post_form(
            "/oauth2/token",
            None,
            &[
                ("grant_type", GRANT),
                ("client_id", client),
                ("device_code", device_code),
            ],
        )
        .await;
    (res.status().as_u16(), json(res).await)
}

#[apply(both_backends)]
async fn a_person_approves_a_device_in_chromium_while_it_polls(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let Some(browser) = Chromium::start(module_path!()).await else {
        return;
    };
    // The device's clock is moved, not waited for: each poll comes one interval later.
    let clock = gatehouse::clock::ManualClock::at(1_900_000_000);
    let app = TestApp::spawn_with_clock(backend, clock.clone(), |c| {
        c.device_poll_interval_secs = 1;
    })
    .await;
    let ada = user(&app, "ada").await;
    let client = tv_app(&app).await;
    let codes = start(&app, &client, "openid offline_access api").await;
    let user_code = codes["user_code"].as_str().unwrap().to_owned();
    assert_eq!(user_code.len(), 9);
    assert_eq!(&user_code[4..5], "-");
    assert!(
        user_code
            .chars()
            .filter(|c| *c != '-')
            .all(|c| "BCDFGHJKLMNPQRSTVWXZ".contains(c))
    );
    assert_eq!(codes["verification_uri"], app.url("/activate"));
    assert_eq!(
        codes["verification_uri_complete"],
        app.url(&format!("/activate?user_code={user_code}"))
    );
    assert_eq!(
        (codes["expires_in"].as_i64(), codes["interval"].as_i64()),
        (Some(600), Some(1))
    );
    let device_code = codes["device_code"].as_str().unwrap().to_owned();

    // The device polls, keeping its interval, while the person acts.
    let poller = {
        let base = app.base.clone();
        let (client, device_code, clock) = (client.clone(), device_code.clone(), clock.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut pending = 0;
            loop {
                if pending > 0 {
                    clock.advance(1);
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                let res = http
                    .post(format!("{base}/oauth2/token"))
                    .form(&[
                        ("grant_type", GRANT),
                        ("client_id", &client),
                        ("device_code", &device_code),
                    ])
                    .send()
                    .await
                    .unwrap();
                let status = res.status().as_u16();
                let body: Value = res.json().await.unwrap();
                if status == 200 {
                    return (pending, body);
                }
                assert_eq!(body["error"], "authorization_pending", "{body}");
                pending += 1;
                // Well inside the code's 600 s, however slowly the browser goes.
                assert!(pending < 500, "never approved");
            }
        })
    };

    // The QR code's link fills the code in; the person still confirms it.
    browser
        .client
        .goto(codes["verification_uri_complete"].as_str().unwrap())
        .await
        .unwrap();
    let field = browser.find("input[name=user_code]").await;
    assert_eq!(
        field.prop("value").await.unwrap().as_deref(),
        Some(user_code.as_str())
    );
    browser
        .find("button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    // Not signed in: the sign-in page first, then straight to that code's confirmation.
    browser.sign_in("ada", PASSWORD).await;
    // What the app asks for, and the code to compare with the device's.
    let approve = browser.find("button[name=decision][value=approve]").await;
    assert_eq!(
        browser.find("#user-code").await.text().await.unwrap(),
        user_code
    );
    let page = browser.client.source().await.unwrap();
    assert!(
        page.contains("Living Room TV") && page.contains("use the API on your behalf"),
        "{page}"
    );
    approve.click().await.unwrap();
    browser.wait_for_text("h1", "Device connected").await;

    let (pending, tokens) = poller.await.unwrap();
    assert!(pending >= 1, "the device was told to wait at least once");
    assert!(
        tokens["refresh_token"].is_string(),
        "offline_access was granted"
    );
    assert!(tokens["id_token"].is_string(), "openid was granted");
    let me = json(
        app.get_bearer("/api/v1/me", tokens["access_token"].as_str().unwrap())
            .await,
    )
    .await;
    assert_eq!(me["sub"], ada.id.as_str());
    assert_eq!(me["client_id"], client.as_str());
    // The device code is spent.
    clock.advance(1);
    let (status, again) = poll(&app, &client, &device_code).await;
    assert_eq!(
        (status, again["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    // A second device: typed by hand (lower case, no hyphen), and denied.
    let codes = start(&app, &client, "api").await;
    let typed = codes["user_code"]
        .as_str()
        .unwrap()
        .replace('-', "")
        .to_lowercase();
    browser.client.goto(&app.url("/activate")).await.unwrap();
    browser
        .find("input[name=user_code]")
        .await
        .send_keys(&typed)
        .await
        .unwrap();
    browser
        .find("button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    browser
        .find("button[name=decision][value=deny]")
        .await
        .click()
        .await
        .unwrap();
    browser.wait_for_text("h1", "Request denied").await;
    let (status, denied) = poll(&app, &client, codes["device_code"].as_str().unwrap()).await;
    assert_eq!(
        (status, denied["error"].as_str()),
        (400, Some("access_denied"))
    );

    // A code is decided once: the used one is no longer accepted on the page.
    browser.client.goto(&app.url("/activate")).await.unwrap();
    browser
        .find("input[name=user_code]")
        .await
        .send_keys(&typed)
        .await
        .unwrap();
    browser
        .find("button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    let error = browser.find("#activate-error").await.text().await.unwrap();
    assert!(error.contains("not valid or has expired"), "{error}");
    browser.close().await;
    app.stop().await;
}

#[apply(both_backends)]
async fn polling_too_fast_slows_down_and_codes_expire(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let clock = gatehouse::clock::ManualClock::at(1_900_000_000);
    let app = TestApp::spawn_with_clock(backend, clock.clone(), |_| {}).await;
    let client = tv_app(&app).await;
    let codes = start(&app, &client, "api").await;
    let device_code = codes["device_code"].as_str().unwrap();

    let (status, body) = poll(&app, &client, device_code).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("authorization_pending"))
    );
    // Again at once: slow_down, and the interval is now 10 s for good.
    let (_, body) = poll(&app, &client, device_code).await;
    assert_eq!(body["error"], "slow_down");
    assert!(
        body["error_description"].as_str().unwrap().contains("10 s"),
        "{body}"
    );
    clock.advance(5);
    assert_eq!(
        poll(&app, &client, device_code).await.1["error"],
        "slow_down",
        "5 s is no longer enough"
    );
    clock.advance(15);
    assert_eq!(
        poll(&app, &client, device_code).await.1["error"],
        "authorization_pending"
    );

    // Another client cannot poll this code.
    let other = tv_app(&app).await;
    clock.advance(20);
    assert_eq!(
        poll(&app, &other, device_code).await.1["error"],
        "invalid_grant"
    );
    assert_eq!(
        poll(&app, &client, "not-a-device-code").await.1["error"],
        "invalid_grant"
    );

    // After expires_in: expired_token.
    clock.advance(600);
    let (status, body) = poll(&app, &client, device_code).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("expired_token"))
    );
    app.stop().await;
}

/// Enters `code` on /activate in `browser`.
async fn guess(browser: &Browser<'_>, code: String) -> reqwest::Response {
    let page = browser.get("/activate").await.text().await.unwrap();
    let csrf = input_value(&page, "csrf_token").unwrap();
    browser
        .post("/activate", &[("user_code", &code), ("csrf_token", &csrf)])
        .await
}

#[apply(both_backends)]
async fn wrong_codes_lock_the_browser_and_the_address(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn_with(backend, |c| {
        c.activate_guesses = 3;
        c.activate_guesses_per_address = 5;
    })
    .await;
    user(&app, "ada").await;
    let client = tv_app(&app).await;
    let real = start(&app, &client, "api").await["user_code"]
        .as_str()
        .unwrap()
        .to_owned();

    let first = Browser::new(&app);
    for n in 0..2 {
        let res = guess(&first, format!("BCDF-GHJ{}", ["K", "L"][n])).await;
        assert_eq!(res.status(), 400);
        assert!(
            res.text()
                .await
                .unwrap()
                .contains("not valid or has expired")
        );
    }
    // Not a code at all counts too; the third wrong one locks this browser.
    let locked = guess(&first, "hello".to_owned()).await;
    assert_eq!(locked.status(), 429);
    assert!(locked.headers().contains_key("retry-after"));
    assert!(
        locked
            .text()
            .await
            .unwrap()
            .contains("Too many wrong codes")
    );
    let still = guess(&first, real.clone()).await;
    assert_eq!(
        still.status(),
        429,
        "even the right code waits out the lock"
    );

    // A fresh browser on the same address has two guesses left before the address locks.
    let second = Browser::new(&app);
    assert_eq!(guess(&second, "BCDF-GHJM".to_owned()).await.status(), 400);
    assert_eq!(guess(&second, "BCDF-GHJN".to_owned()).await.status(), 429);
    let third = Browser::new(&app);
    assert_eq!(guess(&third, real.clone()).await.status(), 429);
    app.stop().await;
}

#[apply(both_backends)]
async fn only_device_clients_get_codes(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let (id, secret) = app.service_client(&["api"]).await;
    let res = app
        .post_form("/oauth2/device_authorization", Some((&id, &secret)), &[])
        .await;
    assert_eq!(res.status(), 400);
    assert_eq!(json(res).await["error"], "unauthorized_client");
    let client = tv_app(&app).await;
    let res = app
        .post_form(
            "/oauth2/device_authorization",
            None,
            &[("client_id", &client), ("scope", "admin")],
        )
        .await;
    assert_eq!(json(res).await["error"], "invalid_scope");
    let res = app
        .post_form("/oauth2/device_authorization", None, &[])
        .await;
    assert_eq!(res.status(), 401);
    let discovery = json(app.get("/.well-known/oauth-authorization-server").await).await;
    assert_eq!(
        discovery["device_authorization_endpoint"],
        app.url("/oauth2/device_authorization")
    );
    assert!(
        discovery["grant_types_supported"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g == GRANT)
    );
    app.stop().await;
}
