//! Change events over HTTP, on both backends: written with the change, replayed in order,
//! scoped to what the caller may read, streamed as SSE, kept for the retention window, and
//! pushed to webhooks signed per Standard Webhooks (checked with the `standardwebhooks`
//! package from npm).

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use rstest::rstest;
use rstest_reuse::apply;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::cases::{cases_app, contract_body};
use crate::flow::{json, user, user_token};
use crate::support::{
    Backend, TestApp, both_backends, eventually, manifest_path, skip, unavailable,
};

const REDIRECT: &str = "https://app.example/cb";

pub async fn create(app: &TestApp, token: &str, body: &Value) -> Value {
    let response = app
        .http
        .post(app.url("/api/v1/cases"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    json(response).await
}

async fn page(app: &TestApp, token: &str, query: &str) -> reqwest::Response {
    app.get_bearer(&format!("/api/v1/events?format=json{query}"), token)
        .await
}

async fn items(app: &TestApp, token: &str, query: &str) -> Vec<Value> {
    let response = page(app, token, query).await;
    assert_eq!(response.status(), 200, "{query}");
    json(response).await["items"].as_array().unwrap().clone()
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

/// A token of a client the operator lets read every case's events (an integration such as
/// a warehouse sync), with `scopes`.
async fn warehouse_token(app: &TestApp, scopes: &[&str]) -> String {
    let (id, secret) = app
        .register(gatehouse::oauth::clients::NewClient {
            name: "Warehouse sync".to_owned(),
            client_type: "confidential".to_owned(),
            grant_types: vec!["client_credentials".to_owned()],
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            may_read_all_events: true,
            ..Default::default()
        })
        .await;
    app.access_token(&id, &secret.unwrap(), Some(&scopes.join(" ")))
        .await
}

async fn service_token(app: &TestApp, scope: &str) -> (String, String) {
    let (id, secret) = app
        .service_client(&["cases.read", "cases.write", "events.read"])
        .await;
    let token = app.access_token(&id, &secret, Some(scope)).await;
    (id, token)
}

#[apply(both_backends)]
async fn every_change_is_one_event_in_commit_order_with_the_case_after_it(
    #[case] backend: Backend,
) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    user(&app, "ada").await;
    let client = cases_app(&app).await;
    let token = user_token(&app, &client, REDIRECT, "ada", "cases.write events.read").await;
    let case = create(&app, &token, &contract_body()).await;
    let id = case["id"].as_str().unwrap();
    let patched = app
        .http
        .patch(app.url(&format!("/api/v1/cases/{id}")))
        .bearer_auth(&token)
        .json(&json!({"status": "Working", "subject": "Printer on fire"}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
    let appended = app
        .http
        .post(app.url(&format!("/api/v1/cases/{id}/line-items")))
        .bearer_auth(&token)
        .json(&json!({"line_items": [{"sku": "FUSE", "quantity": 1,
            "unit_price": {"amount_minor": 300, "currency": "EUR"}}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(appended.status(), 201);

    let events = items(&app, &token, "").await;
    assert_eq!(
        types(&events),
        [
            "case.created",
            "case.line_items_added",
            "case.updated",
            "case.line_items_added"
        ]
    );
    let ids: Vec<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(ids, sorted, "replay ids are ordered and unique");
    // The composite create is one transaction: one key, numbered 1 and 2.
    let (created, items_added) = (&events[0], &events[1]);
    assert_eq!(created["transaction_key"], items_added["transaction_key"]);
    assert_eq!(created["sequence_number"], 1);
    assert_eq!(items_added["sequence_number"], 2);
    assert_ne!(events[2]["transaction_key"], created["transaction_key"]);
    assert_eq!(created["entity"], "case");
    assert_eq!(created["record_id"], id);
    assert_eq!(created["change_type"], "CREATE");
    assert_eq!(created["client_id"], client);
    assert_eq!(created["data"], case, "the case as the API answered it");
    assert!(
        created["changed_fields"]
            .as_array()
            .unwrap()
            .contains(&json!("subject"))
    );
    assert!(created["commit_timestamp"].as_str().unwrap().ends_with('Z'));
    // An update names only what it changed (the subject was sent unchanged).
    let updated = &events[2];
    assert_eq!(updated["change_type"], "UPDATE");
    assert_eq!(updated["changed_fields"], json!(["status"]));
    assert_eq!(updated["data"]["status"], "Working");
    assert_eq!(updated["data"]["version"], 2);
    assert_eq!(events[3]["changed_fields"], json!(["line_items"]));
    assert_eq!(events[3]["data"]["line_items"].as_array().unwrap().len(), 4);
    assert_eq!(created["commit_user"], updated["commit_user"]);

    // Paging: one at a time, resuming after each id, gives the same events.
    let mut after = String::new();
    let mut walked = Vec::new();
    loop {
        let answer = json(page(&app, &token, &format!("&limit=1{after}")).await).await;
        walked.extend(answer["items"].as_array().unwrap().clone());
        match answer["next_cursor"].as_str() {
            Some(cursor) => after = format!("&after={cursor}"),
            None => break,
        }
    }
    assert_eq!(walked, events);
    let rest = items(&app, &token, &format!("&after={}", ids[1])).await;
    assert_eq!(rest, events[2..]);
    assert!(items(&app, &token, "&from=latest").await.is_empty());
}

#[apply(both_backends)]
async fn a_subscriber_sees_only_the_events_of_cases_its_token_may_read(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    user(&app, "ada").await;
    user(&app, "bob").await;
    let client = cases_app(&app).await;
    let ada = user_token(&app, &client, REDIRECT, "ada", "cases.write events.read").await;
    let bob = user_token(&app, &client, REDIRECT, "bob", "cases.write events.read").await;
    let (_, service) = service_token(&app, "cases.write events.read").await;
    let (_, other_service) = service_token(&app, "events.read").await;
    let ada_case = create(&app, &ada, &contract_body()).await;
    let bob_case = create(&app, &bob, &json!({"case": {"subject": "Bob's"}})).await;
    let service_case = create(&app, &service, &json!({"case": {"subject": "Service"}})).await;

    let records = |events: Vec<Value>| -> Vec<String> {
        let mut ids: Vec<String> = events
            .iter()
            .map(|e| e["record_id"].as_str().unwrap().to_owned())
            .collect();
        ids.dedup();
        ids
    };
    assert_eq!(
        records(items(&app, &ada, "").await),
        [ada_case["id"].as_str().unwrap()]
    );
    assert_eq!(
        records(items(&app, &bob, "").await),
        [bob_case["id"].as_str().unwrap()]
    );
    assert_eq!(
        records(items(&app, &service, "").await),
        [service_case["id"].as_str().unwrap()]
    );
    assert!(items(&app, &other_service, "").await.is_empty());

    // An integration the operator allows reads every case's events.
    let token = warehouse_token(&app, &["events.read"]).await;
    assert_eq!(items(&app, &token, "").await.len(), 4);

    // events.read is needed; cases.read is not enough.
    let (_, reader) = service_token(&app, "cases.read").await;
    let refused = page(&app, &reader, "").await;
    assert_eq!(refused.status(), 403);
    assert!(
        refused.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("insufficient_scope")
    );
    // A public client cannot be made an integration.
    let state = &app.app_state;
    let refused = gatehouse::oauth::clients::register(
        &state.store,
        state.clock.as_ref(),
        state.tokens.ring.master(),
        gatehouse::oauth::clients::NewClient {
            name: "Public reader".to_owned(),
            client_type: "public".to_owned(),
            redirect_uris: vec![REDIRECT.to_owned()],
            scopes: vec!["events.read".to_owned()],
            may_read_all_events: true,
            ..Default::default()
        },
    )
    .await;
    assert!(refused.is_err());
}

#[apply(both_backends)]
async fn replay_ids_are_checked_and_retention_refuses_a_gap(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let clock = gatehouse::clock::ManualClock::at(1_800_000_000);
    let app = TestApp::spawn_with_clock(backend, clock.clone(), |_| {}).await;
    let (service, secret) = app.service_client(&["cases.write", "events.read"]).await;
    let token = app
        .access_token(&service, &secret, Some("cases.write events.read"))
        .await;
    create(&app, &token, &json!({"case": {"subject": "old"}})).await;
    let first = items(&app, &token, "").await;
    let first_id = first[0]["id"].as_str().unwrap().to_owned();

    for (query, status, field) in [
        ("&after=zz", 422, "after"),
        ("&after=00000000000003e8", 422, "after"),
        ("&after=0000000000000000&from=latest", 422, "from"),
        ("&limit=0", 422, "limit"),
        ("&limit=1001", 422, "limit"),
        ("&bogus=1", 400, ""),
    ] {
        let response = page(&app, &token, query).await;
        assert_eq!(response.status(), status, "{query}");
        let problem = json(response).await;
        if !field.is_empty() {
            assert_eq!(problem["errors"][0]["field"], field, "{query}: {problem}");
        }
    }

    // 73 hours later a new event is written and the old one pruned.
    clock.advance(73 * 3600);
    let token = app
        .access_token(&service, &secret, Some("cases.write events.read"))
        .await;
    create(&app, &token, &json!({"case": {"subject": "new"}})).await;
    // (The maintenance loop may have pruned it first: it runs on the same clock.)
    gatehouse::events::prune(&app.app_state.events())
        .await
        .unwrap();
    let left = crate::support::query_count(&app.db, "SELECT COUNT(*) FROM change_log").await;
    assert_eq!(left, 1);
    let mark = crate::support::query_count(
        &app.db,
        "SELECT value FROM event_counters WHERE name = 'pruned_through'",
    )
    .await;
    assert_eq!(mark, 1);
    // Resuming from before the gap is refused, never silently skipped.
    let refused = page(&app, &token, "&after=0000000000000000").await;
    assert_eq!(refused.status(), 410);
    assert_eq!(
        json(refused).await["type"],
        "urn:gatehouse:problem:replay-expired"
    );
    // From the pruned event's own id nothing is missed: the next one is kept.
    let kept = items(&app, &token, &format!("&after={first_id}")).await;
    assert_eq!(types(&kept), ["case.created"]);
    assert_eq!(kept[0]["data"]["subject"], "new");
    assert_eq!(items(&app, &token, "&from=earliest").await, kept);
    let sse = app
        .http
        .get(app.url("/api/v1/events"))
        .bearer_auth(&token)
        .header("last-event-id", "0000000000000000")
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 410);
}

/// Reads SSE frames from `response` until `n` events arrived (heartbeat comments skipped).
async fn sse_events(response: &mut reqwest::Response, buffer: &mut String, n: usize) -> Vec<Value> {
    let mut events = Vec::new();
    while events.len() < n {
        if let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            let mut id = None;
            let mut kind = None;
            let mut data = None;
            for line in frame.lines() {
                if let Some(v) = line.strip_prefix("id: ") {
                    id = Some(v.to_owned());
                } else if let Some(v) = line.strip_prefix("event: ") {
                    kind = Some(v.to_owned());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = Some(v.to_owned());
                }
            }
            if let Some(data) = data {
                let event: Value = serde_json::from_str(&data).unwrap();
                assert_eq!(id.as_deref(), event["id"].as_str(), "id: is the event's id");
                assert_eq!(
                    kind.as_deref(),
                    event["type"].as_str(),
                    "event: is its type"
                );
                events.push(event);
            }
            continue;
        }
        let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk())
            .await
            .expect("an event within 10 s")
            .unwrap()
            .expect("the stream stays open");
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    events
}

#[apply(both_backends)]
async fn the_stream_delivers_live_events_and_resumes_after_a_reconnect(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn_with(backend, |c| c.events_heartbeat_secs = 1).await;
    let (_, token) = service_token(&app, "cases.write events.read").await;
    create(&app, &token, &json!({"case": {"subject": "before"}})).await;

    let mut stream = app
        .http
        .get(app.url("/api/v1/events?from=earliest"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert!(
        stream.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut buffer = String::new();
    let seen = sse_events(&mut stream, &mut buffer, 1).await;
    assert_eq!(seen[0]["data"]["subject"], "before");
    // A live event arrives while the stream is open.
    create(&app, &token, &json!({"case": {"subject": "live"}})).await;
    let live = sse_events(&mut stream, &mut buffer, 1).await;
    assert_eq!(live[0]["data"]["subject"], "live");
    // An idle stream sends heartbeats.
    let beat = tokio::time::timeout(Duration::from_secs(5), stream.chunk())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&beat).contains(": heartbeat"));
    let last_id = live[0]["id"].as_str().unwrap().to_owned();
    drop(stream);

    // Missed while disconnected: exactly these come back after Last-Event-ID.
    for subject in ["missed 1", "missed 2"] {
        create(&app, &token, &json!({"case": {"subject": subject}})).await;
    }
    let mut again = app
        .http
        .get(app.url("/api/v1/events?from=latest"))
        .bearer_auth(&token)
        .header("last-event-id", &last_id)
        .send()
        .await
        .unwrap();
    let mut buffer = String::new();
    let missed = sse_events(&mut again, &mut buffer, 2).await;
    let subjects: Vec<&str> = missed
        .iter()
        .map(|e| e["data"]["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, ["missed 1", "missed 2"]);
}

#[apply(both_backends)]
async fn a_revoked_token_ends_its_stream(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn_with(backend, |c| c.events_poll_ms = 100).await;
    let (id, secret) = app.service_client(&["events.read"]).await;
    let token = app.access_token(&id, &secret, Some("events.read")).await;
    let mut stream = app
        .http
        .get(app.url("/api/v1/events"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let revoked = app
        .post_form("/oauth2/revoke", Some((&id, &secret)), &[("token", &token)])
        .await;
    assert_eq!(revoked.status(), 200);
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(_)) = stream.chunk().await {}
    })
    .await;
    assert!(
        ended.is_ok(),
        "the stream stays open after its token was revoked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_event_goes_to_each_endpoint_once_across_replicas() {
    if unavailable(Backend::Postgres, module_path!()) {
        return;
    }
    let tweak = |c: &mut gatehouse::config::Config| {
        c.webhook_allow_private = true;
        c.events_poll_ms = 20;
    };
    let first = TestApp::spawn_with(Backend::Postgres, tweak).await;
    let issuer = first.base.clone();
    let second = TestApp::spawn_on(first.db.share(), |c| {
        tweak(c);
        c.issuer = Some(issuer);
    })
    .await;
    let admin = admin_token(&first).await;
    let receivers = [Receiver::start().await, Receiver::start().await];
    for r in &receivers {
        let hook = register_hook(&first, &admin, json!({"url": r.url})).await;
        assert_eq!(hook.status(), 201);
    }
    let writing = write_cases(
        [first.base.clone(), second.base.clone()],
        admin.clone(),
        8,
        10,
    );
    writing.await.unwrap();
    let total = 8 * 10 * 2;
    for r in &receivers {
        eventually(30, || async { (r.count().await >= total).then_some(()) })
            .await
            .expect("every event delivered");
    }
    // Both relays ran the whole time; give a double delivery the chance to show.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for r in &receivers {
        let seen = r.seen.lock().await;
        let ids: std::collections::BTreeSet<&str> = seen
            .iter()
            .map(|(h, _)| h["webhook-id"].to_str().unwrap())
            .collect();
        assert_eq!(seen.len(), total, "each event once per endpoint");
        assert_eq!(ids.len(), total);
    }
}

/// `writers` tasks, alternating between the two replicas, each creating `per_writer`
/// cases with one line item.
fn write_cases(
    bases: [String; 2],
    token: String,
    writers: usize,
    per_writer: usize,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let http = reqwest::Client::new();
        let tasks: Vec<_> = (0..writers)
            .map(|w| {
                let (http, token, base) = (http.clone(), token.clone(), bases[w % 2].clone());
                tokio::spawn(async move {
                    for i in 0..per_writer {
                        let body = json!({"case": {"subject": format!("w{w} #{i}")},
                            "line_items": [{"sku": "X", "quantity": 1,
                                "unit_price": {"amount_minor": 1, "currency": "EUR"}}]});
                        let r = http
                            .post(format!("{base}/api/v1/cases"))
                            .bearer_auth(&token)
                            .json(&body)
                            .send()
                            .await
                            .unwrap();
                        assert_eq!(r.status(), 201);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_on_several_replicas_never_hide_an_event_behind_a_resumed_id() {
    if unavailable(Backend::Postgres, module_path!()) {
        return;
    }
    let first = TestApp::spawn(Backend::Postgres).await;
    let issuer = first.base.clone();
    let second = TestApp::spawn_on(first.db.share(), |c| c.issuer = Some(issuer)).await;
    let token = warehouse_token(&first, &["cases.write", "events.read"]).await;
    let (writers, per_writer) = (16, 25);
    let writing = write_cases(
        [first.base.clone(), second.base.clone()],
        token.clone(),
        writers,
        per_writer,
    );
    // A subscriber that only ever resumes after the last id it saw, while the writes run.
    let total = writers * per_writer * 2;
    let mut seen: Vec<String> = Vec::new();
    let mut after = "0000000000000000".to_owned();
    let started = std::time::Instant::now();
    while seen.len() < total {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "saw {} of {total}",
            seen.len()
        );
        let app = if seen.len().is_multiple_of(2) {
            &first
        } else {
            &second
        };
        let answer = json(page(app, &token, &format!("&limit=37&after={after}")).await).await;
        for event in answer["items"].as_array().unwrap() {
            let id = event["id"].as_str().unwrap().to_owned();
            assert!(id > after, "ids only grow");
            after = id.clone();
            seen.push(id);
        }
    }
    writing.await.unwrap();
    // Every event the log holds was seen, in order: none committed behind a resumed id.
    let all = items(&first, &token, "&limit=1000").await;
    assert_eq!(all.len(), total);
    let ids: Vec<String> = all
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(seen, ids);
    // Each create's two events share its transaction key, numbered 1 and 2.
    for pair in all.chunks(2) {
        assert_eq!(pair[0]["transaction_key"], pair[1]["transaction_key"]);
        assert_eq!(types(pair), ["case.created", "case.line_items_added"]);
    }
}

/// A webhook receiver on loopback: records every request and answers `status`.
pub struct Receiver {
    pub url: String,
    pub status: Arc<AtomicU16>,
    pub seen: Arc<Mutex<Vec<(axum::http::HeaderMap, String)>>>,
}

impl Receiver {
    pub async fn start() -> Self {
        let status = Arc::new(AtomicU16::new(204));
        let seen: Arc<Mutex<Vec<(axum::http::HeaderMap, String)>>> = Arc::default();
        let router = {
            let (status, seen) = (status.clone(), seen.clone());
            axum::Router::new().route(
                "/hook",
                axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
                    let (status, seen) = (status.clone(), seen.clone());
                    async move {
                        seen.lock().await.push((headers, body));
                        axum::http::StatusCode::from_u16(status.load(Ordering::SeqCst)).unwrap()
                    }
                }),
            )
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self { url, status, seen }
    }

    pub async fn count(&self) -> usize {
        self.seen.lock().await.len()
    }
}

async fn admin_token(app: &TestApp) -> String {
    let (id, secret) = app.service_client(&["admin", "cases.write"]).await;
    app.access_token(&id, &secret, Some("admin cases.write"))
        .await
}

async fn register_hook(app: &TestApp, admin: &str, body: Value) -> reqwest::Response {
    app.http
        .post(app.url("/admin/v1/webhooks"))
        .bearer_auth(admin)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn deliveries(app: &TestApp, admin: &str, hook: &str) -> Vec<Value> {
    let response = app
        .get_bearer(&format!("/admin/v1/webhooks/{hook}/deliveries"), admin)
        .await;
    assert_eq!(response.status(), 200);
    json(response).await["items"].as_array().unwrap().clone()
}

/// Verifies each recorded delivery with the `standardwebhooks` package (npm): the
/// payloads it accepted, or `None` (said why) when Node.js or the package is missing.
async fn verify_with_standardwebhooks(
    test: &str,
    secret: &str,
    seen: &[(axum::http::HeaderMap, String)],
) -> Option<Vec<Value>> {
    if !manifest_path("tests/rp/node_modules/standardwebhooks").exists() {
        skip(
            test,
            "run .ci/install-rp to install the standardwebhooks package",
        );
        return None;
    }
    let messages: Vec<Value> = seen
        .iter()
        .map(|(headers, body)| {
            let header = |name: &str| headers[name].to_str().unwrap().to_owned();
            json!({"body": body, "headers": {
                "webhook-id": header("webhook-id"),
                "webhook-timestamp": header("webhook-timestamp"),
                "webhook-signature": header("webhook-signature")}})
        })
        .collect();
    let script = r#"
        const { Webhook } = require("standardwebhooks");
        const [secret, messages] = [process.argv[1], JSON.parse(process.argv[2])];
        const out = messages.map((m) => {
            try { return { ok: new Webhook(secret).verify(m.body, m.headers) }; }
            catch (e) { return { error: String(e.message || e) }; }
        });
        console.log(JSON.stringify(out));
    "#;
    let output = tokio::process::Command::new("node")
        .current_dir(manifest_path("tests/rp"))
        .arg("-e")
        .arg(script)
        .arg(secret)
        .arg(Value::Array(messages).to_string())
        .output()
        .await;
    let Ok(output) = output else {
        skip(test, "install Node.js 20 or later to run it");
        return None;
    };
    let answer: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON from node ({e}): {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    Some(answer)
}

#[apply(both_backends)]
async fn webhooks_are_signed_per_standard_webhooks_and_filtered_by_type(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn_with(backend, |c| {
        c.webhook_allow_private = true;
        c.events_poll_ms = 50;
    })
    .await;
    let admin = admin_token(&app).await;
    let receiver = Receiver::start().await;
    let created = register_hook(
        &app,
        &admin,
        json!({"url": receiver.url, "event_types": ["case.created", "case.updated"],
               "description": "ERP"}),
    )
    .await;
    assert_eq!(created.status(), 201);
    let hook = json(created).await;
    let secret = hook["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let hook_id = hook["id"].as_str().unwrap().to_owned();
    // The secret is never shown again.
    let listed = json(app.get_bearer("/admin/v1/webhooks", &admin).await).await;
    assert_eq!(listed["items"][0]["id"], hook_id.as_str());
    assert!(listed["items"][0].get("secret").is_none());

    let case = create(&app, &admin, &contract_body()).await;
    let id = case["id"].as_str().unwrap();
    app.http
        .patch(app.url(&format!("/api/v1/cases/{id}")))
        .bearer_auth(&admin)
        .json(&json!({"priority": "Low"}))
        .send()
        .await
        .unwrap();
    eventually(10, || async { (receiver.count().await >= 2).then_some(()) })
        .await
        .expect("two deliveries");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Webhooks promise no order (two deliveries may be in flight at once): by event id.
    let mut seen = receiver.seen.lock().await.clone();
    seen.sort_by_key(|(h, _)| h["webhook-id"].to_str().unwrap().to_owned());
    // case.line_items_added is filtered out.
    assert_eq!(seen.len(), 2);
    let bodies: Vec<Value> = seen
        .iter()
        .map(|(_, b)| serde_json::from_str(b).unwrap())
        .collect();
    assert_eq!(types(&bodies), ["case.created", "case.updated"]);
    for ((headers, _), body) in seen.iter().zip(&bodies) {
        assert_eq!(
            headers["webhook-id"].to_str().unwrap(),
            body["id"].as_str().unwrap()
        );
        assert!(
            headers["webhook-signature"]
                .to_str()
                .unwrap()
                .starts_with("v1,")
        );
    }
    if let Some(verified) = verify_with_standardwebhooks(module_path!(), &secret, &seen).await {
        for (v, body) in verified.iter().zip(&bodies) {
            assert_eq!(&v["ok"], body, "standardwebhooks accepts it: {v}");
        }
        // A tampered body is refused by the same library (the check can fail).
        let mut tampered = seen[..1].to_vec();
        tampered[0].1 = tampered[0].1.replace("Printer", "Scanner");
        let refused = verify_with_standardwebhooks(module_path!(), &secret, &tampered)
            .await
            .unwrap();
        assert!(refused[0].get("error").is_some(), "{refused:?}");
    }

    // After a rotation both secrets verify, each by its own signature.
    let rotated = app
        .http
        .post(app.url(&format!("/admin/v1/webhooks/{hook_id}/rotate-secret")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let new_secret = json(rotated).await["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    create(
        &app,
        &admin,
        &json!({"case": {"subject": "after rotation"}}),
    )
    .await;
    eventually(10, || async { (receiver.count().await >= 3).then_some(()) })
        .await
        .expect("a third delivery");
    let last = receiver.seen.lock().await[2..].to_vec();
    assert_eq!(
        last[0].0["webhook-signature"]
            .to_str()
            .unwrap()
            .split(' ')
            .count(),
        2
    );
    for s in [&secret, &new_secret] {
        if let Some(verified) = verify_with_standardwebhooks(module_path!(), s, &last).await {
            assert!(verified[0].get("ok").is_some(), "{verified:?}");
        }
    }
    let history = deliveries(&app, &admin, &hook_id).await;
    assert_eq!(history.len(), 3);
    assert!(history.iter().all(|d| d["status"] == "sent"));
    assert_eq!(history[0]["attempts"][0]["status_code"], 204);

    // Redelivery on request: the same webhook-id again.
    let first_delivery = history[2]["id"].as_str().unwrap();
    let again = app
        .http
        .post(app.url(&format!(
            "/admin/v1/webhooks/{hook_id}/deliveries/{first_delivery}/redeliver"
        )))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 202);
    eventually(10, || async { (receiver.count().await >= 4).then_some(()) })
        .await
        .expect("the redelivery");
    let seen = receiver.seen.lock().await;
    assert_eq!(
        seen[3].0["webhook-id"],
        history[2]["event_id"].as_str().unwrap()
    );
    assert_eq!(history[2]["event_type"], "case.created");
}

#[apply(both_backends)]
async fn a_failing_endpoint_is_retried_on_schedule_and_a_410_disables_it(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let clock = gatehouse::clock::ManualClock::at(1_800_000_000);
    let app = TestApp::spawn_with_clock(backend, clock.clone(), |c| {
        c.webhook_allow_private = true;
        c.events_poll_ms = 50;
        c.webhook_retry_secs = 60;
    })
    .await;
    let admin = admin_token(&app).await;
    let receiver = Receiver::start().await;
    receiver.status.store(500, Ordering::SeqCst);
    let hook = json(register_hook(&app, &admin, json!({"url": receiver.url})).await).await;
    let hook_id = hook["id"].as_str().unwrap().to_owned();
    create(&app, &admin, &json!({"case": {"subject": "retry me"}})).await;
    eventually(10, || async { (receiver.count().await >= 1).then_some(()) })
        .await
        .expect("the first attempt");
    // Not again before the backoff (48 to 60 s after a first failure) has passed.
    clock.advance(40);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(receiver.count().await, 1);
    let history = deliveries(&app, &admin, &hook_id).await;
    assert_eq!(history[0]["status"], "queued");
    assert_eq!(history[0]["attempts"][0]["status_code"], 500);
    assert!(history[0]["last_error"].as_str().unwrap().contains("500"));
    clock.advance(21);
    eventually(10, || async { (receiver.count().await >= 2).then_some(()) })
        .await
        .expect("the second attempt, after the first backoff");
    // The second backoff doubles (96 to 120 s).
    clock.advance(90);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(receiver.count().await, 2);
    receiver.status.store(410, Ordering::SeqCst);
    clock.advance(31);
    eventually(10, || async { (receiver.count().await >= 3).then_some(()) })
        .await
        .expect("the third attempt");
    let endpoint = eventually(10, || async {
        let e = json(
            app.get_bearer(&format!("/admin/v1/webhooks/{hook_id}"), &admin)
                .await,
        )
        .await;
        (e["status"] == "disabled").then_some(e)
    })
    .await
    .expect("a 410 disables the endpoint");
    assert!(
        endpoint["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("410")
    );
    let history = deliveries(&app, &admin, &hook_id).await;
    assert_eq!(history[0]["status"], "failed");
    let codes: Vec<&Value> = history[0]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["status_code"])
        .collect();
    assert_eq!(codes, [&json!(500), &json!(500), &json!(410)]);
    // A disabled endpoint gets nothing, however much time passes.
    create(
        &app,
        &admin,
        &json!({"case": {"subject": "while disabled"}}),
    )
    .await;
    clock.advance(3600);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(receiver.count().await, 3);
    let admin = admin_token(&app).await;
    // Enabled again, what queued meanwhile goes out.
    receiver.status.store(200, Ordering::SeqCst);
    let enabled = app
        .http
        .post(app.url(&format!("/admin/v1/webhooks/{hook_id}/enable")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(enabled.status(), 200, "{:?}", enabled.text().await);
    eventually(10, || async { (receiver.count().await >= 4).then_some(()) })
        .await
        .expect("the queued event after enabling");
}

#[apply(both_backends)]
async fn private_targets_are_refused_unless_the_operator_allows_them(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn_with(backend, |c| c.events_poll_ms = 50).await;
    let admin = admin_token(&app).await;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[::ffff:192.168.0.1]/hook",
    ] {
        let refused = register_hook(&app, &admin, json!({"url": url})).await;
        assert_eq!(refused.status(), 422, "{url}");
        assert_eq!(
            json(refused).await["errors"][0]["code"],
            "private_address",
            "{url}"
        );
    }
    for (body, field) in [
        (json!({"url": "ftp://example.com/x"}), "url"),
        (json!({"url": "https://user:pw@example.com/x"}), "url"),
        (
            json!({"url": "https://example.com/x", "event_types": ["case.deleted"]}),
            "event_types[0]",
        ),
    ] {
        let refused = register_hook(&app, &admin, body).await;
        assert_eq!(refused.status(), 422);
        assert_eq!(json(refused).await["errors"][0]["field"], field);
    }
    // A name is checked where it resolves, at every delivery: the machine's own host name
    // passes the registration check (it is no address) but resolves to a loopback or
    // private address, and the attempt is refused.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_owned();
    let resolves_private = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), 80))
        .map(|addrs| {
            let addrs: Vec<_> = addrs.collect();
            !addrs.is_empty()
                && addrs
                    .iter()
                    .all(|a| gatehouse::events::webhooks::is_private(a.ip()))
        })
        .unwrap_or(false);
    if !resolves_private {
        crate::support::skip(
            module_path!(),
            "the host name does not resolve to a private address here",
        );
        return;
    }
    let receiver = Receiver::start().await;
    let port = receiver
        .url
        .split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let hook = register_hook(
        &app,
        &admin,
        json!({"url": format!("http://{host}:{port}/hook")}),
    )
    .await;
    assert_eq!(hook.status(), 201);
    let hook_id = json(hook).await["id"].as_str().unwrap().to_owned();
    create(&app, &admin, &json!({"case": {"subject": "ssrf"}})).await;
    let history = eventually(10, || async {
        let d = deliveries(&app, &admin, &hook_id).await;
        (!d.is_empty() && !d[0]["attempts"].as_array().unwrap().is_empty()).then_some(d)
    })
    .await
    .expect("an attempt");
    assert!(
        history[0]["attempts"][0]["error"]
            .as_str()
            .unwrap()
            .contains("no public address"),
        "{history:?}"
    );
    assert_eq!(receiver.count().await, 0);
}

/// Events written before a composite create's events shared one row of the log (one row
/// per event, migration 17) read back unchanged after the upgrade, and new events
/// continue after them.
#[apply(both_backends)]
async fn events_written_before_the_upgrade_read_back_unchanged(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let db = crate::support::TestDb::new(backend).await;
    let dir = match backend {
        Backend::Sqlite => {
            // The test database comes migrated: start from an empty file instead.
            std::fs::remove_file(db.path().join("gatehouse.db")).unwrap();
            "migrations/sqlite"
        }
        Backend::Postgres => "migrations/postgres",
    };
    let mut before = sqlx::migrate::Migrator::new(manifest_path(dir))
        .await
        .unwrap();
    before.migrations = before
        .migrations
        .iter()
        .filter(|m| m.version <= 20261206000017)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    const ROWS: &str = "INSERT INTO change_events (seq, type, entity, record_id, change_type, \
        changed_fields, committed_at, transaction_key, sequence_number, commit_user, client_id, \
        owner_id, created_by, data) VALUES \
        (1, 'case.created', 'case', 'c1', 'CREATE', '[\"subject\",\"line_items\"]', \
         1765000000000, 'tx1', 1, 'svc', 'svc', NULL, 'svc', '{\"id\":\"c1\",\"subject\":\"old\"}'), \
        (2, 'case.line_items_added', 'case', 'c1', 'UPDATE', '[\"line_items\"]', \
         1765000000000, 'tx1', 2, 'svc', 'svc', NULL, 'svc', '{\"id\":\"c1\",\"subject\":\"old\"}')";
    const LAST: &str = "UPDATE event_counters SET value = 2 WHERE name = 'last_seq'";
    match backend {
        Backend::Sqlite => {
            let options = std::str::FromStr::from_str(&db.url)
                .map(|o: sqlx::sqlite::SqliteConnectOptions| o.create_if_missing(true))
                .unwrap();
            let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
            before.run(&pool).await.unwrap();
            sqlx::query(ROWS).execute(&pool).await.unwrap();
            sqlx::query(LAST).execute(&pool).await.unwrap();
            pool.close().await;
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            before.run(&pool).await.unwrap();
            sqlx::query(ROWS).execute(&pool).await.unwrap();
            sqlx::query(LAST).execute(&pool).await.unwrap();
            pool.close().await;
        }
    }

    // Kept forever: the events are from a year before.
    let app = TestApp::spawn_on(db, |c| c.events_retention_hours = 0).await;
    let token = warehouse_token(&app, &["events.read"]).await;
    let old = items(&app, &token, "&from=earliest").await;
    assert_eq!(
        old,
        [
            ("case.created", "CREATE", json!(["subject", "line_items"])),
            ("case.line_items_added", "UPDATE", json!(["line_items"])),
        ]
        .into_iter()
        .zip(1..)
        .map(|((kind, change, fields), n)| json!({
            "id": format!("{n:016x}"),
            "type": kind,
            "entity": "case",
            "record_id": "c1",
            "change_type": change,
            "changed_fields": fields,
            "commit_timestamp": "2025-12-06T05:46:40.000Z",
            "transaction_key": "tx1",
            "sequence_number": n,
            "commit_user": "svc",
            "client_id": "svc",
            "data": {"id": "c1", "subject": "old"},
        }))
        .collect::<Vec<_>>()
    );
    // One at a time, too.
    let second = items(
        &app,
        &token,
        &format!("&after={}&limit=1", "0000000000000001"),
    )
    .await;
    assert_eq!(second, old[1..]);

    let (_, writer) = service_token(&app, "cases.write").await;
    create(&app, &writer, &contract_body()).await;
    let new = items(&app, &token, "&after=0000000000000002").await;
    assert_eq!(types(&new), ["case.created", "case.line_items_added"]);
    assert_eq!(new[0]["id"], "0000000000000003");
    assert_eq!(new[1]["id"], "0000000000000004");
    assert_eq!(new[1]["sequence_number"], 2);
    assert_eq!(new[0]["data"], new[1]["data"]);
}
