//! Storage under concurrent load, on both backends.

use rstest::rstest;
use rstest_reuse::apply;

use crate::support::{Backend, both_backends, unavailable};
use gatehouse::clock::SystemClock;
use gatehouse::oauth::clients::{self, NewClient};
use gatehouse::store::Store;

use crate::support::{TestApp, TestDb, cli};

fn new_client(i: usize) -> NewClient {
    NewClient {
        name: format!("app {i}"),
        client_type: "confidential".to_owned(),
        grant_types: vec!["client_credentials".to_owned()],
        ..NewClient::default()
    }
}

#[apply(both_backends)]
async fn fifty_concurrent_writers_all_succeed(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let db = TestDb::new(backend).await;
    let store = Store::connect(&db.url, 10).await.unwrap();
    store.migrate().await.unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                clients::create(&store, &SystemClock, new_client(i))
                    .await
                    .map(|c| c.client.client_id)
            })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(
            task.await
                .unwrap()
                .expect("every concurrent write succeeds"),
        );
    }
    ids.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    ids.dedup();
    assert_eq!(ids.len(), 50);
    assert_eq!(gatehouse::store::clients::count(&store).await.unwrap(), 50);
}

#[apply(both_backends)]
async fn cli_processes_write_while_the_server_writes(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    // Several processes on one database: the server plus eight CLI invocations at once.
    let app = TestApp::spawn(backend).await;
    let state = app.app_state.clone();
    let server_side = tokio::spawn(async move {
        for i in 0..20 {
            clients::create(&state.store, state.clock.as_ref(), new_client(i))
                .await
                .unwrap();
        }
    });
    let runs: Vec<_> = (0..8)
        .map(|i| {
            let name = format!("cli app {i}");
            let db = &app.db;
            async move {
                cli(
                    db,
                    &[
                        "client",
                        "create",
                        "--name",
                        &name,
                        "--type",
                        "confidential",
                        "--json",
                    ],
                    None,
                )
                .await
            }
        })
        .collect();
    for out in futures::future::join_all(runs).await {
        out.ok();
    }
    server_side.await.unwrap();
    assert_eq!(
        gatehouse::store::clients::count(&app.app_state.store)
            .await
            .unwrap(),
        28 + 1,
        "28 written, and the docs client"
    );
    app.stop().await;
}
