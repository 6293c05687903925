//! Configuration: layering and validation at start.

use crate::support::{Backend, TestDb, gatehouse, run};

/// Environment variables of one case.
type Env = &'static [(&'static str, &'static str)];

async fn serve_with(env: &[(&str, &str)], toml: Option<&str>) -> crate::support::Output {
    let db = TestDb::new(Backend::Sqlite).await;
    if let Some(text) = toml {
        std::fs::write(db.path().join("gatehouse.toml"), text).unwrap();
    }
    let mut cmd = gatehouse(&db);
    cmd.arg("serve")
        .env("GATEHOUSE_LISTEN", "127.0.0.1:0")
        .env("GATEHOUSE_MANAGEMENT_LISTEN", "127.0.0.1:0")
        .env_remove("GATEHOUSE_MASTER_KEY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    // A valid configuration would serve forever; every case here must exit by itself.
    run(&mut cmd, None).await
}

#[tokio::test]
async fn bad_values_exit_2_and_name_the_key() {
    let cases: &[(Env, Option<&str>, &str)] = &[
        (&[("GATEHOUSE_LISTEN", "not-an-address")], None, "listen"),
        (
            &[("GATEHOUSE_BODY_LIMIT_BYTES", "lots")],
            None,
            "body_limit_bytes",
        ),
        (
            &[("GATEHOUSE_BODY_LIMIT_BYTES", "10")],
            None,
            "body_limit_bytes",
        ),
        (
            &[("GATEHOUSE_DATABASE_URL", "mysql://localhost/db")],
            None,
            "database_url",
        ),
        (&[("GATEHOUSE_ISSUER", "ftp://example.com")], None, "issuer"),
        (
            &[("GATEHOUSE_ISSUER", "https://example.com/?x=1")],
            None,
            "issuer",
        ),
        (&[("GATEHOUSE_MASTER_KEY", "c2hvcnQ=")], None, "master_key"),
        (&[("GATEHOUSE_MODE", "staging")], None, "mode"),
        (
            &[],
            Some("request_timeout_secs = 0\n"),
            "request_timeout_secs",
        ),
        (
            &[],
            Some("listen_adress = \"127.0.0.1:1\"\n"),
            "listen_adress",
        ),
        (&[], Some("log_format = \"xml\"\n"), "log_format"),
        (
            &[("GATEHOUSE_DPOP_REPLAY_STORE", "redis")],
            None,
            "dpop_replay_store",
        ),
        (
            &[("GATEHOUSE_DPOP_REPLAY_STORE", "memory")],
            None,
            "dpop_replay_store",
        ),
    ];
    for (env, toml, key) in cases {
        let out = serve_with(env, *toml).await;
        assert_eq!(
            out.code, 2,
            "{env:?} {toml:?} should exit 2: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains(key),
            "{env:?} {toml:?}: stderr should name `{key}`: {}",
            out.stderr
        );
    }
}

#[tokio::test]
async fn production_mode_refuses_to_start_without_https_issuer_and_master_key() {
    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let cases: &[(Env, &str)] = &[
        (
            &[
                ("GATEHOUSE_MODE", "production"),
                ("GATEHOUSE_MASTER_KEY", KEY),
            ],
            "issuer",
        ),
        (
            &[
                ("GATEHOUSE_MODE", "production"),
                ("GATEHOUSE_MASTER_KEY", KEY),
                ("GATEHOUSE_ISSUER", "http://id.example.com"),
            ],
            "https",
        ),
        (
            &[
                ("GATEHOUSE_MODE", "production"),
                ("GATEHOUSE_ISSUER", "https://id.example.com"),
            ],
            "master_key",
        ),
    ];
    for (env, needle) in cases {
        let out = serve_with(env, None).await;
        assert_eq!(out.code, 2, "{env:?}: {}", out.stderr);
        assert!(
            out.stderr.contains(needle),
            "{env:?}: stderr should mention {needle}: {}",
            out.stderr
        );
    }
}

#[tokio::test]
async fn explicit_config_file_must_exist() {
    let out = serve_with(&[("GATEHOUSE_CONFIG", "/nonexistent/gatehouse.toml")], None).await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("does not exist"), "{}", out.stderr);
}

#[test]
#[allow(clippy::result_large_err)] // figment's Jail API returns its own large error
fn environment_overrides_the_file_which_overrides_defaults() {
    // Jail runs the closure in a temporary working directory with its own environment.
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "gatehouse.toml",
            "body_limit_bytes = 4096\nrequest_timeout_secs = 7\n",
        )?;
        jail.set_env("GATEHOUSE_REQUEST_TIMEOUT_SECS", "9");
        let config = gatehouse::config::Config::load(None).map_err(|e| e.to_string())?;
        assert_eq!(config.body_limit_bytes, 4096, "from the file");
        assert_eq!(config.request_timeout_secs, 9, "from the environment");
        assert_eq!(config.shutdown_grace_secs, 30, "the default");
        Ok(())
    });
}
