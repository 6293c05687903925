//! CLI round trips against a real database.

use rstest::rstest;
use rstest_reuse::apply;

use crate::support::{Backend, TestDb, cli};
use crate::support::{both_backends, unavailable};

#[apply(both_backends)]
async fn client_round_trip_create_show_list_rotate_disable(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let db = TestDb::new(backend).await;
    let created = cli(
        &db,
        &[
            "client",
            "create",
            "--name",
            "Partner portal",
            "--type",
            "confidential",
            "--grant",
            "client_credentials",
            "--scope",
            "cases.read",
            "--scope",
            "cases.write",
            "--json",
        ],
        None,
    )
    .await
    .ok()
    .json();
    let id = created["client_id"].as_str().unwrap().to_owned();
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 43, "256-bit secret, base64url");
    assert_eq!(created["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(
        created["grant_types"],
        serde_json::json!(["client_credentials"])
    );
    assert_eq!(
        created["scopes"],
        serde_json::json!(["cases.read", "cases.write"])
    );
    assert_eq!(created["enabled"], true);

    // The secret is shown once and stored only as its SHA-256.
    let shown = cli(&db, &["client", "show", &id, "--json"], None)
        .await
        .ok()
        .json();
    assert!(shown.get("client_secret").is_none());
    assert!(shown.get("secret_hash").is_none());
    assert_eq!(shown["name"], "Partner portal");
    let store = gatehouse::store::Store::connect(&db.url, 2).await.unwrap();
    let stored = gatehouse::store::clients::get(&store, &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.secret_hash,
        Some(gatehouse::oauth::secret::hash(&secret))
    );

    let listed = cli(&db, &["client", "list", "--json"], None)
        .await
        .ok()
        .json();
    let ids: Vec<&str> = listed["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![id.as_str()]);

    let rotated = cli(&db, &["client", "rotate-secret", &id, "--json"], None)
        .await
        .ok()
        .json();
    let new_secret = rotated["client_secret"].as_str().unwrap();
    assert_ne!(new_secret, secret);
    let stored = gatehouse::store::clients::get(&store, &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.secret_hash,
        Some(gatehouse::oauth::secret::hash(new_secret))
    );

    let disabled = cli(&db, &["client", "disable", &id, "--json"], None)
        .await
        .ok()
        .json();
    assert_eq!(disabled["enabled"], false);
    let shown = cli(&db, &["client", "show", &id, "--json"], None)
        .await
        .ok()
        .json();
    assert_eq!(shown["enabled"], false);
    let enabled = cli(&db, &["client", "enable", &id, "--json"], None)
        .await
        .ok()
        .json();
    assert_eq!(enabled["enabled"], true);

    let human = cli(&db, &["client", "show", &id], None).await.ok();
    assert!(human.stdout.contains(&id) && !human.stdout.contains(&secret));
}

#[apply(both_backends)]
async fn public_client_gets_pkce_defaults_and_no_secret(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let db = TestDb::new(backend).await;
    let c = cli(
        &db,
        &[
            "client",
            "create",
            "--name",
            "Mobile app",
            "--type",
            "public",
            "--redirect-uri",
            "com.example.app:/oauth/callback",
            "--redirect-uri",
            "http://127.0.0.1/cb",
            "--cors-origin",
            "https://app.example.com",
            "--backchannel-logout-uri",
            "https://app.example.com/logout/back-channel",
            "--json",
        ],
        None,
    )
    .await
    .ok()
    .json();
    assert!(c.get("client_secret").is_none());
    assert_eq!(
        c["backchannel_logout_uri"],
        "https://app.example.com/logout/back-channel"
    );
    assert_eq!(c["token_endpoint_auth_method"], "none");
    assert_eq!(
        c["grant_types"],
        serde_json::json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(
        c["redirect_uris"],
        serde_json::json!(["com.example.app:/oauth/callback", "http://127.0.0.1/cb"])
    );
    assert_eq!(
        c["cors_origins"],
        serde_json::json!(["https://app.example.com"])
    );
    let rotate = cli(
        &db,
        &["client", "rotate-secret", c["client_id"].as_str().unwrap()],
        None,
    )
    .await;
    assert_eq!(
        rotate.code, 2,
        "a public client has no secret to rotate: {}",
        rotate.stderr
    );
}

#[apply(both_backends)]
async fn invalid_client_input_exits_2_naming_each_field(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let db = TestDb::new(backend).await;
    let out = cli(
        &db,
        &[
            "client",
            "create",
            "--name",
            "x",
            "--type",
            "public",
            "--redirect-uri",
            "http://evil.example/cb",
            "--redirect-uri",
            "https://ok.example/cb#frag",
            "--grant",
            "client_credentials",
            "--scope",
            "root",
            "--backchannel-logout-uri",
            "http://rp.example/logout",
        ],
        None,
    )
    .await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    for field in [
        "redirect_uris[0]",
        "redirect_uris[1]",
        "scopes[0]",
        "grant_types",
        "backchannel_logout_uri",
    ] {
        assert!(
            out.stderr.contains(field),
            "stderr should name {field}: {}",
            out.stderr
        );
    }
    let out = cli(
        &db,
        &["client", "create", "--name", "x", "--type", "sometimes"],
        None,
    )
    .await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("type"), "{}", out.stderr);
    let out = cli(
        &db,
        &[
            "client",
            "create",
            "--name",
            "x",
            "--type",
            "confidential",
            "--pre-authorize",
            "nobody",
        ],
        None,
    )
    .await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("nobody"), "{}", out.stderr);
    let listed = cli(&db, &["client", "list", "--json"], None)
        .await
        .ok()
        .json();
    assert_eq!(
        listed["clients"],
        serde_json::json!([]),
        "nothing was written"
    );
    let missing = cli(&db, &["client", "show", "no-such-client"], None).await;
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.contains("not found"), "{}", missing.stderr);
}

#[apply(both_backends)]
async fn user_round_trip_with_password_from_stdin_or_file(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let db = TestDb::new(backend).await;
    let ada = cli(
        &db,
        &[
            "user",
            "create",
            "--username",
            "Ada",
            "--email",
            "ada@example.com",
            "--name",
            "Ada Lovelace",
            "--password-stdin",
            "--json",
        ],
        Some("correct horse battery\n"),
    )
    .await
    .ok()
    .json();
    assert_eq!(ada["username"], "ada", "usernames are kept in lower case");
    assert_eq!(ada["display_name"], "Ada Lovelace");
    assert!(ada.get("password_hash").is_none());

    let pw_file = db.path().join("pw.txt");
    std::fs::write(&pw_file, "another long password\n").unwrap();
    cli(
        &db,
        &[
            "user",
            "create",
            "--username",
            "bob",
            "--email",
            "bob@example.com",
            "--password-file",
            pw_file.to_str().unwrap(),
        ],
        None,
    )
    .await
    .ok();

    let listed = cli(&db, &["user", "list", "--json"], None)
        .await
        .ok()
        .json();
    let names: Vec<&str> = listed["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["ada", "bob"]);

    // The stored hash is argon2id and verifies the password that went in on stdin.
    let store = gatehouse::store::Store::connect(&db.url, 2).await.unwrap();
    let user = gatehouse::oauth::users::find(&store, "ada").await.unwrap();
    assert!(
        user.password_hash
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{}",
        user.password_hash
    );
    let passwords = gatehouse::oauth::password::Passwords::start().unwrap();
    assert!(
        passwords
            .verify(
                "correct horse battery".to_owned().into(),
                user.password_hash.clone()
            )
            .await
            .unwrap()
    );
    assert!(
        !passwords
            .verify("wrong".to_owned().into(), user.password_hash)
            .await
            .unwrap()
    );

    let shown = cli(&db, &["user", "show", "ADA", "--json"], None)
        .await
        .ok()
        .json();
    assert_eq!(shown["email"], "ada@example.com");
    let disabled = cli(&db, &["user", "disable", "ada", "--json"], None)
        .await
        .ok()
        .json();
    assert_eq!(disabled["enabled"], false);
    let enabled = cli(&db, &["user", "enable", "ada", "--json"], None)
        .await
        .ok()
        .json();
    assert_eq!(enabled["enabled"], true);

    let dup = cli(
        &db,
        &[
            "user",
            "create",
            "--username",
            "ada",
            "--email",
            "a2@example.com",
            "--password-stdin",
        ],
        Some("yet another password\n"),
    )
    .await;
    assert_eq!(dup.code, 1);
    assert!(dup.stderr.contains("taken"), "{}", dup.stderr);
    let short = cli(
        &db,
        &[
            "user",
            "create",
            "--username",
            "carol",
            "--email",
            "c@example.com",
            "--password-stdin",
        ],
        Some("short\n"),
    )
    .await;
    assert_eq!(short.code, 2);
    assert!(short.stderr.contains("password"), "{}", short.stderr);
    let no_pw = cli(
        &db,
        &[
            "user",
            "create",
            "--username",
            "dave",
            "--email",
            "d@example.com",
        ],
        None,
    )
    .await;
    assert_eq!(no_pw.code, 2);
    assert!(
        no_pw.stderr.contains("--password-stdin"),
        "{}",
        no_pw.stderr
    );
}

#[apply(both_backends)]
async fn client_pre_authorizes_existing_users(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let db = TestDb::new(backend).await;
    cli(
        &db,
        &[
            "user",
            "create",
            "--username",
            "ada",
            "--email",
            "ada@example.com",
            "--password-stdin",
        ],
        Some("correct horse battery\n"),
    )
    .await
    .ok();
    let c = cli(
        &db,
        &[
            "client",
            "create",
            "--name",
            "Partner",
            "--type",
            "confidential",
            "--auth-method",
            "private_key_jwt",
            "--grant",
            "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "--pre-authorize",
            "ada",
            "--admin-approved-only",
            "--json",
        ],
        None,
    )
    .await
    .ok()
    .json();
    assert!(
        c.get("client_secret").is_none(),
        "private_key_jwt clients have keys, not secrets"
    );
    assert_eq!(c["pre_authorized_users"], serde_json::json!(["ada"]));
    assert_eq!(c["admin_approved_only"], true);
    let shown = cli(
        &db,
        &["client", "show", c["client_id"].as_str().unwrap(), "--json"],
        None,
    )
    .await
    .ok()
    .json();
    assert_eq!(shown["pre_authorized_users"], serde_json::json!(["ada"]));
}

#[tokio::test]
async fn openapi_command_prints_the_committed_document() {
    let db = TestDb::new(Backend::Sqlite).await;
    let out = cli(&db, &["openapi"], None).await.ok();
    let committed =
        std::fs::read_to_string(crate::support::manifest_path("openapi/openapi.json")).unwrap();
    assert_eq!(out.stdout, committed);
}

#[apply(both_backends)]
async fn generated_client_ids_are_alphanumeric_so_the_cli_takes_them(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let db = TestDb::new(backend).await;
    for _ in 0..20 {
        let c = cli(
            &db,
            &[
                "client",
                "create",
                "--name",
                "x",
                "--type",
                "confidential",
                "--json",
            ],
            None,
        )
        .await
        .ok()
        .json();
        let id = c["client_id"].as_str().unwrap();
        assert_eq!(id.len(), 22);
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric()), "{id}");
    }
}
