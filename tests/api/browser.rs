//! The pages in a real browser: a public client's whole PKCE flow, and the docs page's
//! Authorize button followed by a "Try it out" call.

use rstest::rstest;
use rstest_reuse::apply;

use crate::support::{Backend, both_backends, unavailable};
use std::time::Duration;

use fantoccini::Locator;

use crate::chromium::Chromium;
use crate::flow::{PASSWORD, authorize_path, json, param, pkce, redeem, user};
use crate::support::TestApp;

/// A stand-in for the client app: a page at /cb on its own port.
async fn client_app() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = axum::Router::new().route(
        "/cb",
        axum::routing::get(|| async { axum::response::Html("<h1>Back in the app</h1>") }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}/cb")
}

#[apply(both_backends)]
async fn a_person_signs_in_and_approves_in_chromium(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let Some(browser) = Chromium::start(module_path!()).await else {
        return;
    };
    let app = TestApp::spawn(backend).await;
    let ada = user(&app, "ada").await;
    let redirect = client_app().await;
    let client = app
        .register(gatehouse::oauth::clients::NewClient {
            name: "Ada's Phone App".to_owned(),
            client_type: "public".to_owned(),
            redirect_uris: vec![redirect.clone()],
            ..Default::default()
        })
        .await
        .0;
    let (verifier, challenge) = pkce();
    let start = app.url(&authorize_path(&[
        ("response_type", "code"),
        ("client_id", &client),
        ("redirect_uri", &redirect),
        ("scope", "openid profile api"),
        ("state", "af0ifjsldkj"),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ]));
    browser.client.goto(&start).await.unwrap();

    // The sign-in page: labelled fields, the app's name, a wrong password first.
    browser.find("label[for=username]").await;
    let heading = browser.find("p.lead").await.text().await.unwrap();
    assert!(heading.contains("Ada's Phone App"), "{heading}");
    browser
        .find("input[name=username]")
        .await
        .send_keys("ada")
        .await
        .unwrap();
    browser
        .find("input[name=password]")
        .await
        .send_keys("not my password")
        .await
        .unwrap();
    browser
        .find("button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    let error = browser.find("#login-error").await.text().await.unwrap();
    assert_eq!(error, "The username or password is incorrect.");
    let name = browser.find("input[name=username]").await;
    assert_eq!(
        name.prop("value").await.unwrap().as_deref(),
        Some("ada"),
        "the username is kept"
    );
    browser
        .find("input[name=password]")
        .await
        .send_keys(PASSWORD)
        .await
        .unwrap();
    browser
        .find("button[type=submit]")
        .await
        .click()
        .await
        .unwrap();

    // The consent page names each scope; approve.
    let approve = browser.find("button[name=decision][value=approve]").await;
    let page = browser.client.source().await.unwrap();
    assert!(
        page.contains("see your name and username") && page.contains("use the API on your behalf")
    );
    approve.click().await.unwrap();

    // Back at the app with a code, which it redeems and uses.
    let back = browser
        .wait_for_url("the client app", |u| u.path() == "/cb")
        .await;
    assert_eq!(param(&back, "state").as_deref(), Some("af0ifjsldkj"));
    let code = param(&back, "code").unwrap();
    let tokens = json(redeem(&app, &client, &code, &redirect, Some(&verifier)).await).await;
    let me = json(
        app.get_bearer("/api/v1/me", tokens["access_token"].as_str().unwrap())
            .await,
    )
    .await;
    assert_eq!(me["sub"], ada.id.as_str());

    // Signed in now: a second request goes straight back (consent remembered).
    let (_, challenge2) = pkce();
    browser
        .client
        .goto(&app.url(&authorize_path(&[
            ("response_type", "code"),
            ("client_id", &client),
            ("redirect_uri", &redirect),
            ("scope", "api"),
            ("state", "2"),
            ("code_challenge", &challenge2),
            ("code_challenge_method", "S256"),
        ])))
        .await
        .unwrap();
    let again = browser
        .wait_for_url("the client app again", |u| u.path() == "/cb")
        .await;
    assert_eq!(param(&again, "state").as_deref(), Some("2"));

    // Sign out through the page.
    browser.client.goto(&app.url("/logout")).await.unwrap();
    browser
        .find("button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    browser.wait_for_text("h1", "Signed out").await;
    browser.close().await;
    app.stop().await;
}

#[apply(both_backends)]
async fn the_docs_page_signs_in_and_tries_a_call(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let Some(browser) = Chromium::start(module_path!()).await else {
        return;
    };
    let app = TestApp::spawn(backend).await;
    user(&app, "dev").await;
    browser.client.goto(&app.url("/docs/")).await.unwrap();
    browser
        .find("button.authorize")
        .await
        .click()
        .await
        .unwrap();
    // The authorization-code flow's own Authorize button in the dialog.
    let flow_button = browser.client.wait().at_most(Duration::from_secs(15)).for_element(Locator::XPath(
        "//div[contains(@class,'auth-container')][.//*[contains(text(),'authorizationCode')]]//button[contains(@class,'authorize')]",
    )).await.unwrap();
    let main = browser.client.window().await.unwrap();
    flow_button.click().await.unwrap();

    // Swagger UI opens the sign-in in a popup.
    let mut popup = None;
    for _ in 0..100 {
        let windows = browser.client.windows().await.unwrap();
        if let Some(w) = windows.into_iter().find(|w| *w != main) {
            popup = Some(w);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    browser
        .client
        .switch_to_window(popup.expect("a sign-in popup"))
        .await
        .unwrap();
    browser.sign_in("dev", PASSWORD).await;
    browser.click("button[name=decision][value=approve]").await;
    // The popup hands the code to the docs page and closes.
    for _ in 0..100 {
        if browser.client.windows().await.unwrap().len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    browser.client.switch_to_window(main).await.unwrap();
    // Authorized: the flow's button now offers to log out.
    browser
        .find("button[aria-label='Remove authorization']")
        .await;
    browser.find("button.btn-done").await.click().await.unwrap();

    // Try GET /api/v1/me.
    browser
        .find("#operations-api-get_me")
        .await
        .click()
        .await
        .unwrap();
    browser
        .find("#operations-api-get_me button.try-out__btn")
        .await
        .click()
        .await
        .unwrap();
    browser
        .find("#operations-api-get_me button.execute")
        .await
        .click()
        .await
        .unwrap();
    let status = browser
        .find("#operations-api-get_me .live-responses-table tbody .response-col_status")
        .await;
    let mut code = String::new();
    for _ in 0..100 {
        code = status.text().await.unwrap();
        if !code.trim().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        code.trim(),
        "200",
        "the call went out with the docs client's token"
    );
    let body = browser
        .find("#operations-api-get_me .live-responses-table tbody .response-col_description pre")
        .await
        .text()
        .await
        .unwrap();
    assert!(body.contains("gatehouse-docs"), "{body}");
    browser.close().await;
    app.stop().await;
}
