//! Events leaving the server: published to the machine's real NATS JetStream (through a
//! proxy that plays an outage), and — after `kill -9` under composite-create load — every
//! acknowledged write's events delivered to a webhook and to NATS, duplicates only with
//! the same id.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rstest::rstest;
use rstest_reuse::apply;
use serde_json::{Value, json};

use crate::events::Receiver;
use crate::support::{
    Backend, Proxy, ServerProcess, TestApp, TestDb, both_backends, eventually, gatehouse, nats_url,
    run, unavailable,
};

/// A stream name and subject prefix no other test uses.
fn unique_stream() -> (String, String) {
    let tag = uuid::Uuid::new_v4().simple().to_string();
    (format!("GH_TEST_{tag}"), format!("ghtest.{tag}"))
}

/// Every message of `stream`: (subject, Nats-Msg-Id, payload).
async fn stream_messages(nats: &str, stream: &str) -> Vec<(String, String, Value)> {
    let client = async_nats::connect(nats).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream(stream).await.unwrap();
    let last = stream.info().await.unwrap().state.last_sequence;
    let mut out = Vec::new();
    for seq in 1..=last {
        let Ok(message) = stream.get_raw_message(seq).await else {
            continue;
        };
        let id = message
            .headers
            .get(async_nats::header::NATS_MESSAGE_ID)
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default();
        let payload: Value = serde_json::from_slice(&message.payload).unwrap();
        out.push((message.subject.to_string(), id, payload));
    }
    out
}

async fn delete_stream(nats: &str, stream: &str) {
    let client = async_nats::connect(nats).await.unwrap();
    let _ = async_nats::jetstream::new(client)
        .delete_stream(stream)
        .await;
}

fn addr_of(url: &str) -> SocketAddr {
    let hostport = url.trim_start_matches("nats://");
    std::net::ToSocketAddrs::to_socket_addrs(hostport)
        .unwrap()
        .next()
        .unwrap()
}

async fn all_events(base: &str, token: &str) -> Vec<Value> {
    all_events_after(base, token, "0000000000000000").await
}

async fn all_events_after(base: &str, token: &str, after: &str) -> Vec<Value> {
    let http = reqwest::Client::new();
    let mut after = after.to_owned();
    let mut events = Vec::new();
    loop {
        let page: Value = http
            .get(format!(
                "{base}/api/v1/events?format=json&limit=1000&after={after}"
            ))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let items = page["items"].as_array().unwrap();
        if items.is_empty() {
            return events;
        }
        after = items.last().unwrap()["id"].as_str().unwrap().to_owned();
        events.extend(items.iter().cloned());
    }
}

#[apply(both_backends)]
async fn events_reach_jetstream_once_each_and_wait_out_an_outage(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let Some(nats) = nats_url(module_path!()) else {
        return;
    };
    let proxy = Proxy::start(addr_of(&nats)).await;
    let (stream, prefix) = unique_stream();
    let app = TestApp::spawn_with(backend, |c| {
        c.nats_url = Some(format!("nats://{}", proxy.addr).into());
        c.nats_stream = stream.clone();
        c.nats_subject_prefix = prefix.clone();
        c.events_poll_ms = 50;
    })
    .await;
    let (id, secret) = app.service_client(&["cases.write", "events.read"]).await;
    let token = app
        .access_token(&id, &secret, Some("cases.write events.read"))
        .await;
    let create = |subject: &'static str| {
        let body = json!({"case": {"subject": subject}, "line_items": [{"sku": "A",
            "quantity": 1, "unit_price": {"amount_minor": 5, "currency": "EUR"}}]});
        let (app, token) = (&app, &token);
        async move {
            crate::events::create(app, token, &body).await;
        }
    };
    // The publisher starts at the log's end when it first runs: wait for it to be up.
    eventually(10, || async {
        let n: i64 = sqlx_count(&app).await;
        (n == 1).then_some(())
    })
    .await
    .expect("the publisher registered");
    create("one").await;
    create("two").await;
    let published = eventually(10, || async {
        let m = stream_messages(&nats, &stream).await;
        (m.len() >= 4).then_some(m)
    })
    .await
    .expect("four messages");
    let events = all_events(&app.base, &token).await;
    assert_eq!(published.len(), 4);
    for ((subject, msg_id, payload), event) in published.iter().zip(&events) {
        assert_eq!(
            msg_id,
            event["id"].as_str().unwrap(),
            "Nats-Msg-Id is the event id"
        );
        assert_eq!(
            subject,
            &format!("{prefix}.{}", event["type"].as_str().unwrap())
        );
        assert_eq!(payload, event);
    }

    // NATS unreachable: the events wait, and flow when it is back.
    proxy.cut();
    create("three").await;
    create("four").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(stream_messages(&nats, &stream).await.len(), 4);
    proxy.restore();
    let published = eventually(30, || async {
        let m = stream_messages(&nats, &stream).await;
        (m.len() >= 8).then_some(m)
    })
    .await
    .expect("the waiting events after the outage");
    let ids: Vec<&str> = published.iter().map(|(_, id, _)| id.as_str()).collect();
    let events = all_events(&app.base, &token).await;
    let expected: Vec<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids, expected, "each once, in order");
    delete_stream(&nats, &stream).await;
}

/// Rows in `event_relays` (the publisher registers itself there).
async fn sqlx_count(app: &TestApp) -> i64 {
    crate::support::query_count(&app.db, "SELECT COUNT(*) FROM event_relays").await
}

/// A CLI command on `db` with extra environment; its JSON output.
async fn cli_json(db: &TestDb, env: &[(&str, &str)], args: &[&str]) -> Value {
    let mut cmd = gatehouse(db);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd, None).await.ok().json()
}

#[apply(both_backends)]
async fn after_kill_9_under_load_every_acknowledged_write_is_delivered(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let Some(nats) = nats_url(module_path!()) else {
        return;
    };
    let db = TestDb::new(backend).await;
    let receiver = Receiver::start().await;
    let (stream, prefix) = unique_stream();
    let env = [
        ("GATEHOUSE_WEBHOOK_ALLOW_PRIVATE", "true"),
        ("GATEHOUSE_EVENTS_POLL_MS", "50"),
        ("GATEHOUSE_WEBHOOK_TIMEOUT_MS", "2000"),
        ("GATEHOUSE_NATS_URL", nats.as_str()),
        ("GATEHOUSE_NATS_STREAM", stream.as_str()),
        ("GATEHOUSE_NATS_SUBJECT_PREFIX", prefix.as_str()),
        ("GATEHOUSE_MAIL_DAILY_LIMIT", "0"),
    ];
    let client = cli_json(
        &db,
        &env,
        &[
            "client",
            "create",
            "--name",
            "load",
            "--type",
            "confidential",
            "--grant",
            "client_credentials",
            "--scope",
            "cases.write",
            "--scope",
            "events.read",
            "--json",
        ],
    )
    .await;
    let hook = cli_json(
        &db,
        &env,
        &["webhook", "create", "--url", &receiver.url, "--json"],
    )
    .await;
    assert!(hook["secret"].as_str().unwrap().starts_with("whsec_"));
    let mut server = ServerProcess::start(&db, &env).await;
    let base = server.url("");
    let token: String = reqwest::Client::new()
        .post(server.url("/oauth2/token"))
        .basic_auth(
            client["client_id"].as_str().unwrap(),
            client["client_secret"].as_str(),
        )
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "cases.write events.read"),
        ])
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // The publisher has registered (it starts at the log's end).
    eventually(10, || async {
        let n = crate::support::query_count(&db, "SELECT COUNT(*) FROM event_relays").await;
        (n == 1).then_some(())
    })
    .await
    .expect("the publisher registered");

    // Composite creates from 8 writers; the ids of the acknowledged ones are kept.
    let acked = Arc::new(tokio::sync::Mutex::new(BTreeSet::new()));
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let (base, token, acked) = (base.clone(), token.clone(), acked.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                for i in 0.. {
                    let body = json!({"case": {"subject": format!("w{w} #{i}")},
                        "line_items": [{"sku": "A", "quantity": 1,
                            "unit_price": {"amount_minor": 5, "currency": "EUR"}}]});
                    let Ok(r) = http
                        .post(format!("{base}/api/v1/cases"))
                        .bearer_auth(&token)
                        .json(&body)
                        .send()
                        .await
                    else {
                        return;
                    };
                    if r.status() != 201 {
                        return;
                    }
                    let Ok(case) = r.json::<Value>().await else {
                        return;
                    };
                    acked
                        .lock()
                        .await
                        .insert(case["id"].as_str().unwrap().to_owned());
                }
            })
        })
        .collect();
    // A subscriber reads what is there halfway, and keeps the last id it saw.
    tokio::time::sleep(Duration::from_millis(750)).await;
    let last_seen = all_events(&base, &token)
        .await
        .last()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .expect("events halfway");
    tokio::time::sleep(Duration::from_millis(750)).await;
    server.child.start_kill().unwrap();
    let _ = server.child.wait().await;
    for w in writers {
        let _ = w.await;
    }
    let acked = acked.lock().await.clone();
    assert!(acked.len() > 20, "the load wrote {} cases", acked.len());

    // Started again on the same database.
    let server = ServerProcess::start(&db, &env).await;
    let events = all_events(&server.url(""), &token).await;
    let created: BTreeSet<String> = events
        .iter()
        .filter(|e| e["type"] == "case.created")
        .map(|e| e["record_id"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        acked.is_subset(&created),
        "every acknowledged create has its event"
    );
    let ids: BTreeSet<String> = events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    // The subscriber resumes after the restart from its last id: exactly what it missed.
    let missed: Vec<Value> = events
        .iter()
        .filter(|e| e["id"].as_str().unwrap() > last_seen.as_str())
        .cloned()
        .collect();
    let resumed = all_events_after(&server.url(""), &token, &last_seen).await;
    assert!(!resumed.is_empty());
    assert_eq!(resumed, missed);

    // The webhook gets every event; a repeat carries the same webhook-id and body.
    let delivered = eventually(60, || async {
        let seen = receiver.seen.lock().await;
        let mut by_id: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (headers, body) in seen.iter() {
            let id = headers["webhook-id"].to_str().unwrap().to_owned();
            by_id.entry(id).or_default().insert(body.clone());
        }
        let all: BTreeSet<String> = by_id.keys().cloned().collect();
        ids.is_subset(&all).then_some(by_id)
    })
    .await
    .expect("every event reaches the webhook");
    assert!(
        delivered.values().all(|bodies| bodies.len() == 1),
        "a duplicate is the same event"
    );

    // JetStream holds each event once (Nats-Msg-Id drops republished ones).
    let published = eventually(60, || async {
        let m = stream_messages(&nats, &stream).await;
        let got: BTreeSet<String> = m.iter().map(|(_, id, _)| id.clone()).collect();
        ids.is_subset(&got).then_some(m)
    })
    .await
    .expect("every event reaches JetStream");
    let unique: BTreeSet<&str> = published.iter().map(|(_, id, _)| id.as_str()).collect();
    assert_eq!(
        unique.len(),
        published.len(),
        "no event twice in the stream"
    );
    drop(server);
    delete_stream(&nats, &stream).await;
}
