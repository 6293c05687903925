//! The HTTP foundation: error shapes, limits, request ids, timeouts, graceful shutdown.

use rstest::rstest;
use rstest_reuse::apply;

use crate::support::{both_backends, unavailable};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::support::{
    Backend, Proxy, ServerProcess, TestApp, TestDb, postgres_addr, postgres_available,
};

#[apply(both_backends)]
async fn unknown_paths_and_methods_answer_problem_documents(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let missing = app.get("/no/such/thing").await;
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );
    let body: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(body["status"], 404);
    assert_eq!(body["title"], "Not Found");
    assert!(body["detail"].is_string());

    let wrong = app.http.delete(app.url("/healthz")).send().await.unwrap();
    assert_eq!(wrong.status(), 405);
    assert_eq!(wrong.headers()["content-type"], "application/problem+json");
    assert!(wrong.headers()["allow"].to_str().unwrap().contains("GET"));
    app.stop().await;
}

#[apply(both_backends)]
async fn oversized_body_is_413_problem(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn_with(backend, |c| c.body_limit_bytes = 64 * 1024).await;
    let big = vec![b'x'; 64 * 1024 + 1];
    let res = app
        .http
        .post(app.url("/healthz"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["status"], 413);
    app.stop().await;
}

#[apply(both_backends)]
async fn request_id_is_generated_or_echoed(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let generated = app.get("/healthz").await;
    let id = generated.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let echoed = app
        .http
        .get(app.url("/healthz"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "trace-me-42");
    let missing = app
        .http
        .get(app.url("/nope"))
        .header("x-request-id", "err-7")
        .send()
        .await
        .unwrap();
    assert_eq!(
        missing.headers()["x-request-id"],
        "err-7",
        "error answers carry it too"
    );
    app.stop().await;
}

#[apply(both_backends)]
async fn responses_are_compressed_when_asked(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let res = app
        .http
        .get(app.url("/openapi.json"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-encoding"], "gzip");
    app.stop().await;
}

/// A stalled database makes /readyz a slow request on demand (PostgreSQL through a proxy).
async fn stalled_database() -> Option<(TestDb, Proxy, String)> {
    if !postgres_available("http::stalled_database") {
        return None;
    }
    let db = TestDb::new(Backend::Postgres).await;
    let proxy = Proxy::start(postgres_addr()).await;
    let url = db.url_via(&proxy);
    Some((db, proxy, url))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_requests_time_out_with_408_problem() {
    let Some((db, proxy, url)) = stalled_database().await else {
        return;
    };
    let app = TestApp::spawn_on(db, |c| {
        c.database_url = url;
        c.request_timeout_secs = 1;
    })
    .await;
    proxy.freeze();
    let res = app.get("/readyz").await;
    proxy.thaw();
    assert_eq!(res.status(), 408);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_in_flight_request_finish_then_exits_0() {
    let Some((db, proxy, url)) = stalled_database().await else {
        return;
    };
    // Migrate directly first, so the server's start does not stall on the frozen proxy later.
    let mut server = ServerProcess::start(&db, &[("GATEHOUSE_DATABASE_URL", url.as_str())]).await;
    let mut conn = tokio::net::TcpStream::connect(server.addr).await.unwrap();

    proxy.freeze();
    conn.write_all(b"GET /readyz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await; // the request is now waiting on the database
    server.terminate();
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.thaw();

    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "the in-flight request completed: {answer}"
    );
    assert_eq!(server.wait().await, 0);
    let refused = tokio::net::TcpStream::connect(server.addr).await;
    assert!(refused.is_err(), "the listener is closed after shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_an_idle_server_with_exit_0() {
    let db = TestDb::new(Backend::Sqlite).await;
    let mut server = ServerProcess::start(&db, &[]).await;
    assert_eq!(
        reqwest::get(server.url("/healthz")).await.unwrap().status(),
        200
    );
    server.terminate();
    assert_eq!(server.wait().await, 0);
    let log = server.log.lock().await.join("\n");
    assert!(log.contains("stopped"), "{log}");
}

#[apply(both_backends)]
async fn sigterm_lets_a_request_still_uploading_its_body_finish(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    // The request is in flight while its body arrives: half before SIGTERM, half after.
    let db = TestDb::new(backend).await;
    let mut server = ServerProcess::start(&db, &[]).await;
    let mut conn = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let body = "grant_type=client_credentials&client_id=nobody";
    let head = format!(
        "POST /oauth2/token HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\
         content-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(&body.as_bytes()[..10]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.terminate();
    tokio::time::sleep(Duration::from_millis(300)).await;
    conn.write_all(&body.as_bytes()[10..]).await.unwrap();

    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 401"),
        "the in-flight request got its answer: {answer}"
    );
    assert!(answer.contains("invalid_client"), "{answer}");
    assert_eq!(server.wait().await, 0);
}
