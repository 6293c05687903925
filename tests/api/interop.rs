//! Interoperability with certified relying-party libraries: `oauth4webapi` and
//! `openid-client` from npm (pinned in `tests/rp/package-lock.json`, installed into
//! `tests/rp/node_modules` by `.ci/install-rp`), driven by `tests/rp/rp.mjs` against a real
//! server, on both backends.

use rstest::rstest;
use rstest_reuse::apply;
use serde_json::{Value, json};

use crate::support::{Backend, TestApp, both_backends, manifest_path, skip, unavailable};

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
    let output = tokio::process::Command::new("node")
        .arg(manifest_path("tests/rp/rp.mjs"))
        .arg(scenario)
        .arg(params.to_string())
        .kill_on_drop(true)
        .output()
        .await
        .expect("node runs");
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
