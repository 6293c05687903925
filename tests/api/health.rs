//! Liveness, readiness, metrics and docs.

use rstest::rstest;
use rstest_reuse::apply;

use crate::support::{
    Backend, Proxy, TestApp, TestDb, eventually, execute_sql, postgres_addr, postgres_available,
};
use crate::support::{both_backends, unavailable};

#[apply(both_backends)]
async fn serves_health_readiness_metrics_and_docs(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let health = app.get("/healthz").await;
    assert_eq!(health.status(), 200);
    assert_eq!(
        health.json::<serde_json::Value>().await.unwrap()["status"],
        "ok"
    );
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    assert_eq!(
        ready.json::<serde_json::Value>().await.unwrap()["status"],
        "ready"
    );

    let metrics = app
        .http
        .get(format!("{}/metrics", app.management))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains(r#"http_requests_total{method="GET",route="/healthz",status="200"}"#),
        "{text}"
    );
    assert!(text.contains(r#"http_request_duration_seconds_bucket{method="GET",route="/readyz",status="200",le="0.005"}"#), "{text}");

    let docs = app.get("/docs/").await;
    assert_eq!(docs.status(), 200);
    let html = docs.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    let bundle = app.get("/docs/swagger-ui-bundle.js").await;
    assert_eq!(
        bundle.status(),
        200,
        "Swagger UI assets are served from the binary"
    );
    let spec: serde_json::Value = app.get("/openapi.json").await.json().await.unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
    let committed: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(crate::support::manifest_path("openapi/openapi.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(spec, committed, "the served document is the committed one");
    app.stop().await;
}

#[apply(both_backends)]
async fn readiness_is_503_while_the_schema_is_behind_the_binary(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    assert_eq!(app.get("/readyz").await.status(), 200);
    execute_sql(
        &app.db,
        "UPDATE _sqlx_migrations SET success = FALSE \
        WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)",
    )
    .await;
    let not_ready = app.get("/readyz").await;
    assert_eq!(not_ready.status(), 503);
    assert_eq!(
        not_ready.headers()["content-type"],
        "application/problem+json"
    );
    let problem: serde_json::Value = not_ready.json().await.unwrap();
    assert_eq!(problem["status"], 503);
    assert_eq!(
        app.get("/healthz").await.status(),
        200,
        "liveness does not depend on the database"
    );
    execute_sql(&app.db, "UPDATE _sqlx_migrations SET success = TRUE").await;
    assert_eq!(app.get("/readyz").await.status(), 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_turns_503_while_postgres_is_unreachable_and_200_when_it_returns() {
    if !postgres_available("health::readiness_turns_503_while_postgres_is_unreachable") {
        return;
    }
    let db = TestDb::new(Backend::Postgres).await;
    let proxy = Proxy::start(postgres_addr()).await;
    let via_proxy = db.url_via(&proxy);
    let app = TestApp::spawn_on(db, |c| c.database_url = via_proxy).await;
    assert_eq!(app.get("/readyz").await.status(), 200);

    proxy.cut();
    let status = eventually(10, || async {
        let s = app.get("/readyz").await.status();
        (s == 503).then_some(s)
    })
    .await;
    assert_eq!(
        status.map(|s| s.as_u16()),
        Some(503),
        "readiness must notice the outage"
    );
    assert_eq!(app.get("/healthz").await.status(), 200);

    proxy.restore();
    let back = eventually(15, || async {
        let s = app.get("/readyz").await.status();
        (s == 200).then_some(s)
    })
    .await;
    assert!(
        back.is_some(),
        "readiness must recover once the database is back"
    );
    app.stop().await;
}
