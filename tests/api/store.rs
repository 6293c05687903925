//! The store on both backends: concurrent writers, and the single-use and at-most-N rules
//! each aggregate enforces in one statement (idempotency keys, codes, the mail quota).

use rstest::rstest;
use rstest_reuse::apply;

use crate::support::{Backend, both_backends, unavailable};
use gatehouse::clock::SystemClock;
use gatehouse::oauth::clients::{self, NewClient};
use gatehouse::store::Store;

use crate::support::{ServerProcess, TestApp, TestDb, cli, execute_sql, query_count};

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

/// A migrated store on a fresh database of `backend`.
async fn store_on(backend: Backend) -> (TestDb, Store) {
    let db = TestDb::new(backend).await;
    let store = Store::connect(&db.url, 10).await.unwrap();
    store.migrate().await.unwrap();
    (db, store)
}

#[apply(both_backends)]
async fn an_idempotency_key_is_claimed_once_completed_with_the_writes_and_replayed(
    #[case] backend: Backend,
) {
    use gatehouse::store::idempotency::{self, Claim, NewClaim, Owner, StoredResponse};
    if unavailable(backend, module_path!()) {
        return;
    }
    let (_db, store) = store_on(backend).await;
    let app = clients::create(&store, &SystemClock, new_client(1))
        .await
        .unwrap();
    let app = app.client.client_id.to_string();
    let owner = Owner {
        client_id: &app,
        subject: "ada",
    };
    let claim = |id: &'static str, hash: &'static [u8; 32], now: i64| NewClaim {
        owner,
        key: "k-1",
        request_hash: hash,
        claim: id,
        now,
        lease_until: now + 30,
        expires_at: now + 86_400,
    };
    let (first, other) = (&[1u8; 32], &[2u8; 32]);
    assert!(
        idempotency::claim(&store, &claim("c1", first, 1000))
            .await
            .unwrap()
            .is_ok()
    );
    let in_flight = idempotency::claim(&store, &claim("c2", first, 1001))
        .await
        .unwrap();
    assert!(
        in_flight.is_err_and(|row| row.status.is_none()),
        "held while it runs"
    );
    // Another user of the same app has a key space of its own.
    let theirs = NewClaim {
        owner: Owner {
            client_id: &app,
            subject: "bob",
        },
        ..claim("c3", first, 1001)
    };
    assert!(idempotency::claim(&store, &theirs).await.unwrap().is_ok());

    let held = Claim {
        client_id: app.clone(),
        subject: "ada".to_owned(),
        key: "k-1".to_owned(),
        claim: "c1".to_owned(),
    };
    let response = StoredResponse {
        status: 201,
        headers: vec![("etag", "\"1\"".to_owned())],
        body: "{\"id\":1}".to_owned(),
    };
    let mut tx = store.begin().await.unwrap();
    held.complete(&mut tx, &response).await.unwrap();
    tx.commit().await.unwrap();
    let replay = idempotency::claim(&store, &claim("c4", first, 1002))
        .await
        .unwrap();
    let stored = replay.unwrap_err();
    assert_eq!(
        (stored.status, stored.body.as_deref()),
        (Some(201), Some("{\"id\":1}"))
    );
    let reused = idempotency::claim(&store, &claim("c5", other, 1002))
        .await
        .unwrap();
    let stored = reused.unwrap_err();
    assert_eq!(
        stored.request_hash,
        first.to_vec(),
        "another request finds the first one's"
    );
}

#[apply(both_backends)]
async fn a_lapsed_claim_is_taken_over_and_can_no_longer_complete(#[case] backend: Backend) {
    use gatehouse::store::StoreError;
    use gatehouse::store::idempotency::{self, Claim, NewClaim, Owner, StoredResponse};
    if unavailable(backend, module_path!()) {
        return;
    }
    let (_db, store) = store_on(backend).await;
    let app = clients::create(&store, &SystemClock, new_client(1))
        .await
        .unwrap();
    let app = app.client.client_id.to_string();
    let owner = Owner {
        client_id: &app,
        subject: "ada",
    };
    let claim = |id: &'static str, now: i64| NewClaim {
        owner,
        key: "k-1",
        request_hash: &[7; 32],
        claim: id,
        now,
        lease_until: now + 30,
        expires_at: now + 86_400,
    };
    assert!(
        idempotency::claim(&store, &claim("dead", 1000))
            .await
            .unwrap()
            .is_ok()
    );
    // The first process died; its lease ends and the retry takes the key over.
    assert!(
        idempotency::claim(&store, &claim("retry", 1031))
            .await
            .unwrap()
            .is_ok()
    );
    let dead = Claim {
        client_id: app.clone(),
        subject: "ada".to_owned(),
        key: "k-1".to_owned(),
        claim: "dead".to_owned(),
    };
    let response = StoredResponse {
        status: 201,
        headers: Vec::new(),
        body: "{}".to_owned(),
    };
    let mut tx = store.begin().await.unwrap();
    let late = dead.complete(&mut tx, &response).await;
    assert!(matches!(late, Err(StoreError::ClaimLapsed)), "{late:?}");
    drop(tx); // the request's writes roll back with it
    // Releasing it touches nothing either: the retry still holds the key.
    dead.release(&store).await;
    let held = idempotency::claim(&store, &claim("third", 1032))
        .await
        .unwrap();
    assert!(held.is_err_and(|row| row.claim == "retry"));
}

#[apply(both_backends)]
async fn a_code_is_redeemed_once_and_a_second_redemption_names_what_it_issued(
    #[case] backend: Backend,
) {
    use gatehouse::store::grants::{self, CodeRow, Issued, Redeemed};
    if unavailable(backend, module_path!()) {
        return;
    }
    let (_db, store) = store_on(backend).await;
    let client = clients::create(&store, &SystemClock, new_client(1))
        .await
        .unwrap();
    let passwords = gatehouse::oauth::password::Passwords::start().unwrap();
    let ada = gatehouse::oauth::users::create(
        &store,
        &SystemClock,
        &passwords,
        gatehouse::oauth::users::NewUser {
            username: "ada".to_owned(),
            email: "ada@example.com".to_owned(),
            display_name: None,
            password: "correct horse battery".to_owned().into(),
        },
    )
    .await
    .unwrap();
    let row = CodeRow {
        client_id: client.client.client_id.to_string(),
        user_id: ada.id.clone(),
        redirect_uri: "https://app.example/cb".to_owned(),
        scope: "api".to_owned(),
        code_challenge: None,
        nonce: None,
        auth_time: 1000,
        expires_at: 1060,
        id_token_claims: None,
        sid: None,
        dpop_jkt: None,
    };
    let hash = [9u8; 32];
    grants::insert_code(&store, &hash, &row, 1000)
        .await
        .unwrap();

    let mut tx = store.begin().await.unwrap();
    let Redeemed::First(found) = grants::redeem_code(&mut tx, &hash, 1001).await.unwrap() else {
        panic!("the first redemption wins");
    };
    assert_eq!(found.user_id, ada.id);
    let issued = Issued {
        access_jti: Some("jti-1".to_owned()),
        access_exp: Some(1600),
        family_id: None,
    };
    grants::record_code_issue(&mut tx, &hash, &issued)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = store.begin().await.unwrap();
    match grants::redeem_code(&mut tx, &hash, 1002).await.unwrap() {
        Redeemed::Replayed { client_id, issued } => {
            assert_eq!(client_id, row.client_id);
            assert_eq!(issued.access_jti.as_deref(), Some("jti-1"));
        }
        _ => panic!("a second redemption is a replay"),
    }
    let unknown = grants::redeem_code(&mut tx, &[0u8; 32], 1002)
        .await
        .unwrap();
    assert!(matches!(unknown, Redeemed::Unknown));
}

#[apply(both_backends)]
async fn concurrent_notifications_never_take_more_than_the_daily_quota(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let (_db, store) = store_on(backend).await;
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                gatehouse::store::outbox::take_mail_quota(&store, "app", "ada", 20_000, 5).await
            })
        })
        .collect();
    let mut taken = 0;
    for task in tasks {
        taken += usize::from(task.await.unwrap().unwrap());
    }
    assert_eq!(taken, 5);
    let other_day = gatehouse::store::outbox::take_mail_quota(&store, "app", "ada", 20_001, 5);
    assert!(other_day.await.unwrap(), "each day starts again");
}

#[apply(both_backends)]
async fn retention_prunes_what_outlived_its_use_in_batches_and_keeps_the_rest(
    #[case] backend: Backend,
) {
    use gatehouse::store::audit::{AuditRow, insert_many};
    use gatehouse::store::prune::{self, Cutoff};
    if unavailable(backend, module_path!()) {
        return;
    }
    let (db, store) = store_on(backend).await;
    const DAY: i64 = 86_400;
    let now = 1_800_000_000;
    let row = |at: i64| AuditRow {
        id: 0,
        at,
        event: "token.issued".to_owned(),
        outcome: "success".to_owned(),
        actor: "client:c".to_owned(),
        client_id: Some("c".to_owned()),
        user_id: None,
        address: None,
        request_id: None,
        detail: "{}".to_owned(),
    };
    // 23 events older than 90 days, 4 within them.
    let mut rows: Vec<AuditRow> = (0..23).map(|i| row(now - 91 * DAY - i)).collect();
    rows.extend((0..4).map(|i| row(now - 89 * DAY + i)));
    insert_many(&store, &rows).await.unwrap();
    execute_sql(
        &db,
        "INSERT INTO api_usage (client_id, subject, day, calls) VALUES \
         ('c', '', '2025-06-01', 5), ('c', 'u', '2025-06-01', 1), ('c', '', '2027-01-14', 2)",
    )
    .await;

    // Seven at a time: four full batches and a short one.
    let gone = prune::prune(&store, &prune::AUDIT, &Cutoff::Unix(now - 90 * DAY), 7)
        .await
        .unwrap();
    assert_eq!(gone, 23);
    assert_eq!(
        query_count(&db, "SELECT COUNT(*) FROM audit_events").await,
        4
    );
    assert_eq!(
        query_count(
            &db,
            "SELECT COUNT(*) FROM audit_events WHERE at < 1800000000 - 90 * 86400"
        )
        .await,
        0
    );

    // The configured rules: 400 days of usage are kept (2025-06-01 is older), and a
    // retention of 0 days keeps audit events forever.
    let config = gatehouse::config::Config {
        audit_retention_days: 0,
        ..Default::default()
    };
    let pruned = gatehouse::retention::run(&store, &config, now)
        .await
        .unwrap();
    assert!(pruned.iter().all(|(table, _)| *table != "audit_events"));
    assert!(pruned.contains(&("api_usage", 2)), "{pruned:?}");
    assert_eq!(query_count(&db, "SELECT COUNT(*) FROM api_usage").await, 1);
    assert_eq!(
        query_count(&db, "SELECT COUNT(*) FROM audit_events").await,
        4
    );
}

/// An operator who switched PostgreSQL's autovacuum off hears at start-up that queries will
/// slow down as tables grow (its analyses keep the planner's statistics); SQLite, which
/// plans without statistics, never warns.
#[apply(both_backends)]
async fn the_server_warns_at_start_up_exactly_when_autovacuum_is_off(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let db = TestDb::new(backend).await;
    let off =
        match backend {
            Backend::Sqlite => false,
            Backend::Postgres => query_count(
                &db,
                "SELECT CASE WHEN current_setting('autovacuum') = 'off' THEN 1 ELSE 0 END::bigint",
            )
            .await
                == 1,
        };
    let mut server = ServerProcess::start(&db, &[]).await;
    server.terminate();
    server.wait().await;
    let warned = server
        .log
        .lock()
        .await
        .iter()
        .filter(|line| line.contains("autovacuum is off") && line.contains("WARN"))
        .count();
    assert_eq!(warned, usize::from(off), "autovacuum off: {off}");
}
