//! Traces reach a real OTLP/HTTP receiver; logs come out as JSON.

use rstest::rstest;
use rstest_reuse::apply;

use crate::support::{both_backends, unavailable};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;
use tokio::sync::Mutex;

use crate::support::{Backend, ServerProcess, TestDb, eventually};

/// An OTLP/HTTP (protobuf) trace receiver on a random port; collects span names.
async fn otlp_receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let spans = Arc::new(Mutex::new(Vec::new()));
    let sink = spans.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: Bytes| {
            let sink = sink.clone();
            async move {
                let request =
                    ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf export");
                let mut names = sink.lock().await;
                for resource in request.resource_spans {
                    for scope in resource.scope_spans {
                        names.extend(scope.spans.into_iter().map(|s| s.name));
                    }
                }
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), spans)
}

#[apply(both_backends)]
async fn request_spans_arrive_at_an_otlp_receiver(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let (endpoint, spans) = otlp_receiver().await;
    let db = TestDb::new(backend).await;
    let mut server = ServerProcess::start(
        &db,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    )
    .await;
    let res = reqwest::get(server.url("/readyz")).await.unwrap();
    assert_eq!(res.status(), 200);
    let found = eventually(15, || async {
        spans
            .lock()
            .await
            .iter()
            .any(|n| n == "GET /readyz")
            .then_some(())
    })
    .await;
    server.terminate();
    assert_eq!(server.wait().await, 0);
    assert!(
        found.is_some(),
        "no `GET /readyz` span arrived; got {:?}",
        spans.lock().await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_per_line() {
    let db = TestDb::new(Backend::Sqlite).await;
    let mut server = ServerProcess::start(&db, &[]).await;
    server.terminate();
    server.wait().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let log = server.log.lock().await;
    assert!(!log.is_empty());
    for line in log.iter() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
    }
}
