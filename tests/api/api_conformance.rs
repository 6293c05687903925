//! Schemathesis (PyPI) against the served /openapi.json: generated requests for every
//! operation, with a client and a token that hold every scope, must get no 5xx and no
//! answer the document does not describe (status, content type, headers, body schema),
//! and requests that break the schema must be refused. `tests/schemathesis/schemathesis.toml`
//! holds the settings; `.ci/install-schemathesis` installs the pinned tool.
//! `GATEHOUSE_TEST_SCHEMATHESIS_EXAMPLES=<n>` asks for more generated cases per operation
//! than the configured 10, for a longer search; `GATEHOUSE_TEST_SCHEMATHESIS_SEED=<seed>`
//! replays the seed a failing report printed.
//!
//! The tool runs on one core, so its phases run as two processes at once against one
//! server: the systematic ones (examples, coverage, stateful) and the random one (fuzzing).
//! They share Hypothesis' Unicode tables under target/schemathesis/hypothesis, which a
//! fresh directory would rebuild in every process (some 1.7 s of CPU each). The module
//! name sorts early because libtest starts tests in name order, and this is the longest.

use rstest::rstest;
use rstest_reuse::apply;

use crate::support::{Backend, both_backends, unavailable};
use crate::support::{TestApp, manifest_path, skip};

/// The installed tool: `GATEHOUSE_TEST_SCHEMATHESIS`, else the virtual environment that
/// `.ci/install-schemathesis` makes under target/.
fn schemathesis() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("GATEHOUSE_TEST_SCHEMATHESIS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| manifest_path("target/schemathesis/bin/schemathesis"));
    path.exists().then_some(path)
}

#[apply(both_backends)]
async fn generated_requests_get_only_documented_answers(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let Some(tool) = schemathesis() else {
        skip(
            module_path!(),
            "run .ci/install-schemathesis to install Schemathesis",
        );
        return;
    };
    let app = TestApp::spawn(backend).await;
    let scopes = ["api", "cases.read", "cases.write", "grants", "admin"];
    let (id, secret) = app.service_client(&scopes).await;
    let token = app
        .access_token(&id, &secret, Some(&scopes.join(" ")))
        .await;

    let credentials = [
        ("GATEHOUSE_ST_TOKEN", token.as_str()),
        ("GATEHOUSE_ST_CLIENT_ID", id.as_str()),
        ("GATEHOUSE_ST_CLIENT_SECRET", secret.as_str()),
    ];
    let run = |phases: &'static str| {
        let mut command = tokio::process::Command::new(&tool);
        command
            .arg("--config-file")
            .arg(manifest_path("tests/schemathesis/schemathesis.toml"))
            .args(["run", &app.url("/openapi.json"), "--no-color"])
            .arg(format!("--phases={phases}"));
        if let Ok(examples) = std::env::var("GATEHOUSE_TEST_SCHEMATHESIS_EXAMPLES") {
            command.args(["--max-examples", &examples]);
        }
        if let Ok(seed) = std::env::var("GATEHOUSE_TEST_SCHEMATHESIS_SEED") {
            command.args(["--seed", &seed]);
        }
        command
            .envs(credentials)
            .env(
                "HYPOTHESIS_STORAGE_DIRECTORY",
                manifest_path("target/schemathesis/hypothesis"),
            )
            // Its reports go to the test's own directory.
            .current_dir(app.db.path())
            .kill_on_drop(true);
        async move { (phases, command.output().await.expect("schemathesis runs")) }
    };
    let (systematic, random) = tokio::join!(run("examples,coverage,stateful"), run("fuzzing"));
    for (phases, output) in [systematic, random] {
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "schemathesis ({phases}) found failures:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        // The run reached the API: it generated cases and every one passed.
        assert!(stdout.contains(" passed"), "{phases}:\n{stdout}");
        // Only the two userinfo operations, which need a user's `openid` token, may have
        // seen nothing but 401/403: the token and the client credentials were used.
        let refused = stdout
            .split_once("Authentication failed: ")
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .map_or(0, |n| n.parse::<u32>().unwrap());
        assert!(
            refused <= 2,
            "{phases}: credentials were not used:\n{stdout}"
        );
    }
    app.stop().await;
}
