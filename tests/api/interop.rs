//! Interoperability with certified relying-party libraries: `oauth4webapi` and
//! `openid-client` from npm (pinned in `tests/rp/package-lock.json`, installed into
//! `tests/rp/node_modules` by `.ci/install-rp`), driven by `tests/rp/rp.mjs` against a real
//! server, on both backends.

use rstest::rstest;
use rstest_reuse::apply;
use serde_json::{Value, json};

use crate::flow::{json, public_client, user, user_token};
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
