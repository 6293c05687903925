//! The audit log: security events written to the database (queried through the admin API
//! with filters and paging) and to the structured log.

use rstest::rstest;
use rstest_reuse::apply;

use crate::support::{both_backends, unavailable};
use serde_json::Value;

use crate::flow::{self, Browser};
use crate::support::{
    Backend, ServerProcess, TestApp, TestDb, cli, cli_service_client, eventually, query_count,
};

async fn audit(app: &TestApp, admin: &str, query: &str) -> (u16, Value) {
    let res = app
        .get_bearer(&format!("/admin/v1/audit?{query}"), admin)
        .await;
    (res.status().as_u16(), res.json().await.unwrap())
}

/// The events of a query once at least `n` are stored.
async fn events(app: &TestApp, admin: &str, query: &str, n: usize) -> Vec<Value> {
    eventually(10, || async {
        let (status, page) = audit(app, admin, query).await;
        assert_eq!(status, 200, "{page}");
        let events = page["events"].as_array().unwrap().clone();
        (events.len() >= n).then_some(events)
    })
    .await
    .unwrap_or_else(|| panic!("fewer than {n} events for {query}"))
}

#[apply(both_backends)]
async fn security_events_are_stored_and_queried_with_filters_and_paging(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let ada = flow::user(&app, "ada").await;
    let (admin_id, admin_secret) = app.service_client(&["admin"]).await;
    let admin = app.access_token(&admin_id, &admin_secret, None).await;

    // Sign-ins: one failed, one good.
    let failed = Browser::new(&app)
        .sign_in("/login", "ada", "not the password")
        .await;
    assert_eq!(failed.status(), 401);
    let ok = Browser::new(&app)
        .sign_in("/login", "ada", flow::PASSWORD)
        .await;
    assert!(ok.status().as_u16() < 400);
    let sign_ins = events(&app, &admin, "event=sign_in", 2).await;
    assert_eq!(sign_ins[0]["outcome"], "success");
    assert_eq!(sign_ins[0]["user_id"], ada.id.as_str());
    assert_eq!(sign_ins[0]["actor"], format!("user:{}", ada.id));
    assert_eq!(sign_ins[0]["address"], "127.0.0.1");
    assert_eq!(sign_ins[1]["outcome"], "failure");
    assert_eq!(sign_ins[1]["detail"]["username"], "ada");
    assert_eq!(sign_ins[1]["detail"]["reason"], "invalid_credentials");
    let only_failed = events(&app, &admin, "event=sign_in&outcome=failure", 1).await;
    assert_eq!(only_failed.len(), 1);

    // Admin changes name the administrator; tokens name their grant; revocations.
    let created = app
        .http
        .post(app.url("/admin/v1/clients"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"name": "svc", "type": "confidential",
                                  "grant_types": ["client_credentials"], "scopes": ["api"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let svc = created["client_id"].as_str().unwrap();
    let secret = created["client_secret"].as_str().unwrap();
    let change = events(&app, &admin, "event=admin.client.created", 1).await;
    assert_eq!(change[0]["client_id"], svc);
    assert_eq!(change[0]["actor"], format!("client:{admin_id}"));
    assert!(
        change[0]["request_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty())
    );

    let token = app.access_token(svc, secret, None).await;
    let issued = events(
        &app,
        &admin,
        &format!("event=token.issued&client_id={svc}"),
        1,
    )
    .await;
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0]["detail"]["grant_type"], "client_credentials");
    assert_eq!(issued[0]["detail"]["scope"], "api");
    assert!(issued[0]["user_id"].is_null());
    let revoked = app
        .post_form(
            "/oauth2/revoke",
            Some((svc, secret)),
            &[("token", token.as_str())],
        )
        .await;
    assert_eq!(revoked.status(), 200);
    let revocation = events(&app, &admin, "event=token.revoked", 1).await;
    assert_eq!(revocation[0]["client_id"], svc);
    assert_eq!(revocation[0]["detail"]["token_type"], "access_token");

    let rotated = app
        .http
        .post(app.url("/admin/v1/keys/rotate"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(rotated.status(), 201);
    events(&app, &admin, "event=key.rotated", 1).await;

    // Paging: newest first, a cursor to the next page, no overlap, an end.
    let all = events(&app, &admin, "limit=200", 7).await;
    let (_, first) = audit(&app, &admin, "limit=3").await;
    let page: Vec<i64> = first["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert_eq!(page.len(), 3);
    assert!(page.windows(2).all(|w| w[0] > w[1]));
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = audit(&app, &admin, &format!("limit=3&cursor={cursor}")).await;
    let next: Vec<i64> = second["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert!(next.iter().all(|id| *id < page[2]));
    let (_, last) = audit(&app, &admin, &format!("limit={}", all.len())).await;
    assert!(last.get("next_cursor").is_none());

    // Time filters and bad input.
    let (_, future) = audit(&app, &admin, "since=2999-01-01T00:00:00Z").await;
    assert_eq!(future["events"].as_array().unwrap().len(), 0);
    for bad in [
        "limit=0",
        "limit=201",
        "since=yesterday",
        "cursor=abc",
        "outcome=maybe",
    ] {
        let (status, problem) = audit(&app, &admin, bad).await;
        assert_eq!(status, 422, "{bad}: {problem}");
    }
    // Only administrators read it.
    let (id, secret) = app.service_client(&["api"]).await;
    let plain = app.access_token(&id, &secret, None).await;
    assert_eq!(audit(&app, &plain, "").await.0, 403);
    app.stop().await;
}

/// Every event is a structured log line (target `audit`) at INFO, except a token's issue:
/// one line per token floods the log at traffic scale, so it is at DEBUG, where
/// `log = "info,audit=debug"` brings it back. Its row is stored either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_also_structured_log_lines() {
    let db = TestDb::new(Backend::Sqlite).await;
    cli(&db, &["migrate"], None).await.ok();
    let (id, secret) = cli_service_client(&db, "api").await;
    let http = reqwest::Client::new();

    // At log=info: the token's revocation is a line, its issue is not.
    let mut server = ServerProcess::start(&db, &[]).await;
    let token = client_credentials(&http, &server, &id, &secret).await;
    let revoked = http
        .post(server.url("/oauth2/revoke"))
        .basic_auth(&id, Some(&secret))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let revocation = audit_line(&server, "token.revoked").await;
    assert_eq!(revocation["level"], "INFO");
    assert_eq!(revocation["fields"]["client_id"], id);
    assert_eq!(revocation["fields"]["outcome"], "success");
    assert!(!revocation.to_string().contains(secret.as_str()));
    assert!(
        audit_lines(&server)
            .await
            .iter()
            .all(|l| l["fields"]["event"] != "token.issued"),
        "a token's issue is not an INFO line"
    );
    server.terminate();
    assert_eq!(server.wait().await, 0);
    let stored = "SELECT COUNT(*) FROM audit_events WHERE event = 'token.issued'";
    assert_eq!(
        query_count(&db, stored).await,
        1,
        "the token's row is stored"
    );

    // With the audit target at debug, each issued token is a line too.
    let server = ServerProcess::start(&db, &[("GATEHOUSE_LOG", "info,audit=debug")]).await;
    client_credentials(&http, &server, &id, &secret).await;
    let line = audit_line(&server, "token.issued").await;
    assert_eq!(line["level"], "DEBUG");
    assert_eq!(line["fields"]["client_id"], id);
    assert_eq!(line["fields"]["outcome"], "success");
    assert!(!line.to_string().contains(secret.as_str()));
}

/// The structured log lines of target `audit` that `server` wrote so far.
async fn audit_lines(server: &ServerProcess) -> Vec<Value> {
    server
        .log
        .lock()
        .await
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["target"] == "audit")
        .collect()
}

/// The audit log line of `event`, once `server` has written it.
async fn audit_line(server: &ServerProcess, event: &str) -> Value {
    eventually(5, || async {
        audit_lines(server)
            .await
            .into_iter()
            .find(|l| l["fields"]["event"] == event)
    })
    .await
    .unwrap_or_else(|| panic!("no audit line of {event}"))
}

/// The writer gathers what arrives within its linger: token requests one after another
/// share a few INSERTs instead of one each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arriving_one_after_another_share_a_few_batches() {
    const REQUESTS: usize = 30;
    let db = TestDb::new(Backend::Sqlite).await;
    cli(&db, &["migrate"], None).await.ok();
    let (id, secret) = cli_service_client(&db, "api").await;
    let server = ServerProcess::start(&db, &[]).await;
    let stored = || server.counter("gatehouse_audit_events_stored_total");
    // Whatever start-up recorded is stored first.
    let mut settled = stored().await;
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let now = stored().await;
        if now == settled {
            break;
        }
        settled = now;
    }
    let batches = server.counter("gatehouse_audit_batches_total").await;
    let http = reqwest::Client::new();
    for _ in 0..REQUESTS {
        client_credentials(&http, &server, &id, &secret).await;
    }
    eventually(10, || async {
        (stored().await >= settled + REQUESTS as f64).then_some(())
    })
    .await
    .expect("every token.issued event stored");
    let used = server.counter("gatehouse_audit_batches_total").await - batches;
    assert!(
        (1.0..=(REQUESTS / 2) as f64).contains(&used),
        "{REQUESTS} events took {used} batches"
    );
}

/// A client_credentials token request to `server`, which must succeed.
async fn client_credentials(
    http: &reqwest::Client,
    server: &ServerProcess,
    id: &str,
    secret: &str,
) -> String {
    let res = http
        .post(server.url("/oauth2/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}
