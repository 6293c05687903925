//! The composite case endpoint over HTTP, on both backends: one transaction for the case,
//! its line items and its notification; validation by field path; visibility.

use rstest::rstest;
use rstest_reuse::apply;

use crate::support::{Backend, both_backends, unavailable};
use serde_json::{Value, json};

use crate::flow::{json, user, user_token};
use crate::support::{TestApp, query_count};

const REDIRECT: &str = "https://app.example/cb";

/// A public app that may ask for the case (and event) scopes.
pub async fn cases_app(app: &TestApp) -> String {
    app.register(gatehouse::oauth::clients::NewClient {
        name: "Field Service".to_owned(),
        client_type: "public".to_owned(),
        redirect_uris: vec![REDIRECT.to_owned()],
        scopes: ["openid", "api", "cases.read", "cases.write", "events.read"]
            .map(String::from)
            .to_vec(),
        ..Default::default()
    })
    .await
    .0
}

pub fn contract_body() -> Value {
    json!({"case": {"subject": "Printer on fire", "description": "Smoke from tray 2",
                    "priority": "High", "origin": "Mobile",
                    "contact": {"name": "Ada", "email": "ada@example.com"}},
           "line_items": [{"sku": "TONER-1", "description": "Toner", "quantity": 2,
                           "unit_price": {"amount_minor": 1999, "currency": "EUR"}},
                          {"sku": "DRUM-7", "quantity": 1,
                           "unit_price": {"amount_minor": 4500, "currency": "EUR"}},
                          {"sku": "FAN", "quantity": 3,
                           "unit_price": {"amount_minor": 0, "currency": "JPY"}}],
           "notification": {"to": "ada@example.com"}})
}

async fn post(app: &TestApp, token: &str, body: &Value) -> reqwest::Response {
    app.http
        .post(app.url("/api/v1/cases"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn post_raw(app: &TestApp, token: &str, body: &str) -> reqwest::Response {
    app.http
        .post(app.url("/api/v1/cases"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

async fn rows(app: &TestApp) -> (i64, i64, i64) {
    (
        query_count(&app.db, "SELECT COUNT(*) FROM cases").await,
        query_count(&app.db, "SELECT COUNT(*) FROM case_line_items").await,
        query_count(&app.db, "SELECT COUNT(*) FROM email_outbox").await,
    )
}

fn fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect()
}

#[apply(both_backends)]
async fn a_composite_create_writes_the_case_its_items_and_one_email(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    user(&app, "ada").await;
    let client = cases_app(&app).await;
    let token = user_token(&app, &client, REDIRECT, "ada", "cases.write").await;

    let response = post(&app, &token, &contract_body()).await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(response.headers()["etag"], "\"1\"");
    let case = json(response).await;
    assert_eq!(
        location,
        format!("/api/v1/cases/{}", case["id"].as_str().unwrap())
    );
    assert_eq!(case["case_number"], "00001024");
    assert_eq!(case["subject"], "Printer on fire");
    assert_eq!(case["status"], "New");
    assert_eq!(case["priority"], "High");
    assert_eq!(case["origin"], "Mobile");
    assert_eq!(
        case["contact"],
        json!({"name": "Ada", "email": "ada@example.com"})
    );
    assert_eq!(case["created_by"], client);
    assert_eq!(case["version"], 1);
    assert_eq!(
        case["notification"],
        json!({"to": "ada@example.com", "status": "queued", "attempts": 0})
    );
    let items = case["line_items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    for (i, item) in items.iter().enumerate() {
        assert_eq!(item["position"], i);
        assert!(item["id"].as_str().is_some_and(|id| !id.is_empty()));
    }
    assert_eq!(
        items[0]["unit_price"],
        json!({"amount_minor": 1999, "currency": "EUR"})
    );
    assert_eq!(items[1]["description"], "");
    assert_eq!(rows(&app).await, (1, 3, 1));

    let read = app.get_bearer(&location, &token).await;
    assert_eq!(read.status(), 200);
    assert_eq!(read.headers()["etag"], "\"1\"");
    let mut read = json(read).await;
    // The dispatcher may have sent the email by now.
    let notification = read
        .as_object_mut()
        .unwrap()
        .remove("notification")
        .unwrap();
    assert!(
        ["queued", "sent"].contains(&notification["status"].as_str().unwrap()),
        "{notification}"
    );
    let mut expected = case.clone();
    expected.as_object_mut().unwrap().remove("notification");
    assert_eq!(read, expected);

    // Numbers increase; a case without items or notification is fine.
    let second = post(&app, &token, &json!({"case": {"subject": "Paper jam"}})).await;
    assert_eq!(second.status(), 201);
    let second = json(second).await;
    assert_eq!(second["case_number"], "00001025");
    assert_eq!(second["priority"], "Medium");
    assert_eq!(second["line_items"], json!([]));
    assert!(second.get("notification").is_none());
    assert_eq!(rows(&app).await, (2, 3, 1));
    app.stop().await;
}

#[apply(both_backends)]
async fn another_users_or_clients_case_is_not_found(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    user(&app, "ada").await;
    user(&app, "bob").await;
    let client = cases_app(&app).await;
    let ada = user_token(&app, &client, REDIRECT, "ada", "cases.write").await;
    let bob = user_token(&app, &client, REDIRECT, "bob", "cases.read").await;
    let (service_id, service_secret) = app.service_client(&["api"]).await;
    let service = app
        .access_token(&service_id, &service_secret, Some("api"))
        .await;
    let (other_id, other_secret) = app.service_client(&["cases.read"]).await;
    let other = app.access_token(&other_id, &other_secret, None).await;

    let adas = json(post(&app, &ada, &contract_body()).await).await;
    let services = json(post(&app, &service, &contract_body()).await).await;
    assert!(
        services.get("owner").is_none(),
        "a client-credentials case has no owner: {services}"
    );
    assert_eq!(services["created_by"], service_id);
    let adas_path = format!("/api/v1/cases/{}", adas["id"].as_str().unwrap());
    let services_path = format!("/api/v1/cases/{}", services["id"].as_str().unwrap());

    assert_eq!(app.get_bearer(&adas_path, &ada).await.status(), 200);
    assert_eq!(app.get_bearer(&services_path, &service).await.status(), 200);
    for (path, token) in [
        (&adas_path, &bob),
        (&adas_path, &service),
        (&services_path, &ada),
        (&services_path, &other),
    ] {
        let response = app.get_bearer(path, token).await;
        assert_eq!(response.status(), 404, "{path}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
    }
    assert_eq!(
        app.get_bearer("/api/v1/cases/no-such-case", &ada)
            .await
            .status(),
        404
    );
    // cases.read may read, not write.
    let refused = post(&app, &bob, &contract_body()).await;
    assert_eq!(refused.status(), 403);
    assert!(
        refused.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("insufficient_scope")
    );
    app.stop().await;
}

#[apply(both_backends)]
async fn validation_names_every_field_by_path_and_writes_nothing(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let (id, secret) = app.service_client(&["cases.write"]).await;
    let token = app.access_token(&id, &secret, None).await;

    let mut body = contract_body();
    body["case"]["subject"] = json!("");
    body["case"]["contact"]["email"] = json!("not-an-address");
    body["line_items"][1]["unit_price"]["currency"] = json!("eur");
    body["line_items"][2]["quantity"] = json!(0);
    body["line_items"][2]["sku"] = json!("x".repeat(65));
    body["notification"]["to"] = json!("nobody");
    let response = post(&app, &token, &body).await;
    assert_eq!(response.status(), 422);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem = json(response).await;
    assert_eq!(problem["status"], 422);
    assert_eq!(
        fields(&problem),
        [
            "case.subject",
            "case.contact.email",
            "line_items[1].unit_price.currency",
            "line_items[2].sku",
            "line_items[2].quantity",
            "notification.to"
        ]
    );

    // Type errors and unknown fields are named by path as well.
    let mut body = contract_body();
    body["line_items"][1]["quantity"] = json!("two");
    assert_eq!(
        fields(&json(post(&app, &token, &body).await).await),
        ["line_items[1].quantity"]
    );
    let mut body = contract_body();
    body["case"]["colour"] = json!("red");
    assert_eq!(
        fields(&json(post(&app, &token, &body).await).await),
        ["case.colour"]
    );
    assert_eq!(
        fields(&json(post(&app, &token, &json!({"line_items": []})).await).await),
        ["body"]
    );

    // An object is an object: serde would fill a struct from an array, field by field.
    let mut body = contract_body();
    body["case"]["contact"] = json!(["Ada", "ada@example.com"]);
    assert_eq!(
        fields(&json(post(&app, &token, &body).await).await),
        ["case.contact"]
    );
    let mut body = contract_body();
    body["line_items"][1] = json!(["TONER-1", "Toner", 2, {"amount_minor": 1, "currency": "EUR"}]);
    assert_eq!(
        fields(&json(post(&app, &token, &body).await).await),
        ["line_items[1]"]
    );
    let mut body = contract_body();
    body["line_items"][0]["unit_price"] = json!([1999, "EUR"]);
    assert_eq!(
        fields(&json(post(&app, &token, &body).await).await),
        ["line_items[0].unit_price"]
    );
    let array = json!([contract_body()["case"], [], null]);
    assert_eq!(
        fields(&json(post(&app, &token, &array).await).await),
        ["body"]
    );
    assert_eq!(rows(&app).await, (0, 0, 0));

    // The line-item limit.
    let mut body = contract_body();
    body["line_items"] = Value::Array(vec![body["line_items"][0].clone(); 201]);
    let problem = json(post(&app, &token, &body).await).await;
    assert_eq!(fields(&problem), ["line_items"]);
    assert_eq!(problem["errors"][0]["code"], "too_many");
    let mut body = contract_body();
    body["line_items"] = Value::Array(vec![body["line_items"][0].clone(); 200]);
    assert_eq!(post(&app, &token, &body).await.status(), 201);
    assert_eq!(rows(&app).await, (1, 200, 1));

    // Malformed JSON is 400 with the position, a wrong media type 415.
    let malformed = post_raw(&app, &token, "{\"case\": {").await;
    assert_eq!(malformed.status(), 400);
    assert!(
        json(malformed).await["detail"]
            .as_str()
            .unwrap()
            .contains("line 1")
    );
    let text = app
        .http
        .post(app.url("/api/v1/cases"))
        .bearer_auth(&token)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(text.status(), 415);
    let trailing = format!("{} {{}}", contract_body());
    assert_eq!(
        post_raw(&app, &token, &trailing).await.status(),
        400,
        "trailing data after the document"
    );
    assert_eq!(
        rows(&app).await,
        (1, 200, 1),
        "no rejected request wrote anything"
    );
    app.stop().await;
}

#[apply(both_backends)]
async fn a_constraint_failing_on_the_fifth_line_item_leaves_nothing(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    use gatehouse::store::cases::{CaseRow, LineItemRow, NewEmail, insert};
    let app = TestApp::spawn(backend).await;
    let (client, _) = app.service_client(&["cases.write"]).await;
    let store = &app.app_state.store;
    let case = CaseRow {
        id: "case-1".into(),
        case_number: 0,
        subject: "Atomic".into(),
        description: String::new(),
        status: "New".into(),
        priority: "Low".into(),
        origin: None,
        contact_name: None,
        contact_email: None,
        owner_id: None,
        created_by: client,
        created_at: 1,
        updated_at: 1,
        version: 1,
    };
    let item = |i: i64, quantity: i64| LineItemRow {
        id: format!("item-{i}"),
        position: i,
        sku: "SKU".into(),
        description: String::new(),
        quantity,
        unit_price_minor: 1,
        currency: "EUR".into(),
    };
    // Past the API's validation, straight at the store: the schema itself refuses.
    let items: Vec<_> = (0..6)
        .map(|i| item(i, if i == 4 { 0 } else { 1 }))
        .collect();
    let email = NewEmail {
        id: "mail-1".into(),
        recipient: "a@example.com".into(),
        template: "case_created".into(),
        message_id: "<mail-1@example.com>".into(),
    };
    let mut tx = store.begin().await.unwrap();
    let failed = insert(&mut tx, &case, &items, Some(&email)).await;
    assert!(failed.is_err(), "quantity 0 violates the CHECK constraint");
    drop(tx);
    assert_eq!(rows(&app).await, (0, 0, 0));

    // The same case with valid items goes in whole.
    let items: Vec<_> = (0..6).map(|i| item(i, 1)).collect();
    let mut tx = store.begin().await.unwrap();
    insert(&mut tx, &case, &items, Some(&email)).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(rows(&app).await, (1, 6, 1));
    app.stop().await;
}

async fn post_keyed(app: &TestApp, token: &str, key: &str, body: &Value) -> reqwest::Response {
    app.http
        .post(app.url("/api/v1/cases"))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .unwrap()
}

#[apply(both_backends)]
async fn an_idempotency_key_replays_refuses_another_body_and_is_per_client(
    #[case] backend: Backend,
) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let clock = gatehouse::clock::ManualClock::at(1_900_000_000);
    let app = TestApp::spawn_with_clock(backend, clock.clone(), |_| {}).await;
    let (id, secret) = app.service_client(&["cases.write"]).await;
    let token = app.access_token(&id, &secret, None).await;

    let first = post_keyed(&app, &token, "order-42", &contract_body()).await;
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let location = first.headers()["location"].clone();
    let first = json(first).await;
    let again = post_keyed(&app, &token, "order-42", &contract_body()).await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.headers()["location"], location);
    assert_eq!(again.headers()["etag"], "\"1\"");
    assert_eq!(json(again).await, first);
    assert_eq!(rows(&app).await, (1, 3, 1));

    let mut other = contract_body();
    other["case"]["subject"] = json!("Another subject");
    let reused = post_keyed(&app, &token, "order-42", &other).await;
    assert_eq!(reused.status(), 422);
    assert_eq!(
        json(reused).await["type"],
        "urn:gatehouse:problem:idempotency-key-reused"
    );

    // Keys belong to a client: another client's "order-42" is its own.
    let (id2, secret2) = app.service_client(&["cases.write"]).await;
    let token2 = app.access_token(&id2, &secret2, None).await;
    assert_eq!(
        post_keyed(&app, &token2, "order-42", &contract_body())
            .await
            .status(),
        201
    );
    assert_eq!(rows(&app).await.0, 2);

    // A failed request writes nothing and frees its key.
    let mut invalid = contract_body();
    invalid["line_items"][0]["quantity"] = json!(0);
    assert_eq!(
        post_keyed(&app, &token, "order-43", &invalid)
            .await
            .status(),
        422
    );
    assert_eq!(
        post_keyed(&app, &token, "order-43", &invalid)
            .await
            .status(),
        422,
        "validated again, not replayed"
    );
    let fixed = post_keyed(&app, &token, "order-43", &contract_body()).await;
    assert_eq!(fixed.status(), 201);
    assert!(fixed.headers().get("idempotent-replayed").is_none());
    assert_eq!(rows(&app).await.0, 3);

    for bad in ["", &"k".repeat(256), "with space"] {
        let response = post_keyed(&app, &token, bad, &contract_body()).await;
        assert_eq!(response.status(), 400, "{bad:?}");
    }

    // After 24 hours the key is forgotten.
    clock.advance(24 * 3600);
    let token = app.access_token(&id, &secret, None).await;
    let later = post_keyed(&app, &token, "order-42", &contract_body()).await;
    assert_eq!(later.status(), 201);
    assert!(later.headers().get("idempotent-replayed").is_none());
    assert_eq!(rows(&app).await.0, 4);
    app.stop().await;
}

#[apply(both_backends)]
async fn twenty_concurrent_requests_with_one_key_create_one_case(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let (id, secret) = app.service_client(&["cases.write"]).await;
    let token = app.access_token(&id, &secret, None).await;
    let body = contract_body();
    let answers =
        futures::future::join_all((0..20).map(|_| post_keyed(&app, &token, "burst", &body))).await;
    let mut created = std::collections::HashSet::new();
    for answer in answers {
        match answer.status().as_u16() {
            201 => {
                created.insert(json(answer).await["id"].as_str().unwrap().to_owned());
            }
            409 => {
                assert_eq!(answer.headers()["retry-after"], "1");
                assert_eq!(
                    json(answer).await["type"],
                    "urn:gatehouse:problem:idempotency-key-in-flight"
                );
            }
            other => panic!("unexpected {other}: {}", answer.text().await.unwrap()),
        }
    }
    assert_eq!(created.len(), 1, "every 201 is the one case");
    assert_eq!(rows(&app).await, (1, 3, 1));
    app.stop().await;
}

#[apply(both_backends)]
async fn concurrent_creates_share_transactions_yet_each_gets_its_own_case(
    #[case] backend: Backend,
) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let (id, secret) = app.service_client(&["cases.write"]).await;
    let token = app.access_token(&id, &secret, None).await;
    // 96 creates at once (more than one batch), every third under an Idempotency-Key,
    // each with its own subject and number of items.
    let bodies: Vec<Value> = (0..96)
        .map(|i| {
            let mut body = contract_body();
            body["case"]["subject"] = json!(format!("case {i}"));
            body["line_items"] = Value::Array(vec![body["line_items"][0].clone(); i % 4]);
            body
        })
        .collect();
    let send_one = |i: usize| {
        let body = &bodies[i];
        let key = format!("batch-{i}");
        let app = &app;
        let token = &token;
        async move {
            if i.is_multiple_of(3) {
                post_keyed(app, token, &key, body).await
            } else {
                post(app, token, body).await
            }
        }
    };
    let answers = futures::future::join_all((0..96).map(send_one)).await;
    let mut numbers = Vec::new();
    for (i, answer) in answers.into_iter().enumerate() {
        assert_eq!(answer.status(), 201, "create {i}");
        let location = answer.headers()["location"].to_str().unwrap().to_owned();
        let case = json(answer).await;
        assert_eq!(case["subject"], format!("case {i}"));
        assert_eq!(case["line_items"].as_array().unwrap().len(), i % 4);
        assert_eq!(
            location,
            format!("/api/v1/cases/{}", case["id"].as_str().unwrap())
        );
        // What was answered is what was stored, and what a replay answers.
        // (The email may have gone out since: its status is compared apart.)
        let mut stored = json(app.get_bearer(&location, &token).await).await;
        assert_eq!(stored["notification"]["to"], case["notification"]["to"]);
        stored["notification"] = case["notification"].clone();
        assert_eq!(stored, case);
        if i.is_multiple_of(3) {
            let replay = post_keyed(&app, &token, &format!("batch-{i}"), &bodies[i]).await;
            assert_eq!(replay.headers()["idempotent-replayed"], "true");
            assert_eq!(json(replay).await, case);
        }
        numbers.push(
            case["case_number"]
                .as_str()
                .unwrap()
                .parse::<i64>()
                .unwrap(),
        );
    }
    numbers.sort_unstable();
    numbers.dedup();
    assert_eq!(numbers.len(), 96, "every case has a number of its own");
    let items: i64 = (0..96).map(|i| (i % 4) as i64).sum();
    assert_eq!(rows(&app).await, (96, items, 96));
    app.stop().await;
}

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Value,
    if_match: Option<&str>,
) -> reqwest::Response {
    let mut request = app
        .http
        .request(method, app.url(path))
        .bearer_auth(token)
        .json(&body);
    if let Some(tag) = if_match {
        request = request.header("if-match", tag);
    }
    request.send().await.unwrap()
}

#[apply(both_backends)]
async fn lists_page_by_cursor_and_filter_by_status_and_time(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let clock = gatehouse::clock::ManualClock::at(1_900_000_000);
    let app = TestApp::spawn_with_clock(backend, clock.clone(), |_| {}).await;
    let (id, secret) = app.service_client(&["cases.write"]).await;
    let token = app.access_token(&id, &secret, None).await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let body = json!({"case": {"subject": format!("case {i}")}});
        ids.push(
            json(post(&app, &token, &body).await).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
        if i % 2 == 1 {
            clock.advance(60);
        }
    }
    // Another client's cases never show.
    let (other, other_secret) = app.service_client(&["cases.write"]).await;
    let other = app.access_token(&other, &other_secret, None).await;
    post(&app, &other, &json!({"case": {"subject": "not yours"}})).await;

    let mut seen = Vec::new();
    let mut path = "/api/v1/cases?limit=3".to_owned();
    loop {
        let page = json(app.get_bearer(&path, &token).await).await;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 3);
        seen.extend(items.iter().map(|c| c["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/cases?limit=3&cursor={cursor}"),
            None => break,
        }
    }
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first, "every case once, newest first");

    // Filters: status and a creation window.
    let patched = send(
        &app,
        reqwest::Method::PATCH,
        &format!("/api/v1/cases/{}", ids[0]),
        &token,
        json!({"status": "Working"}),
        None,
    )
    .await;
    assert_eq!(patched.status(), 200);
    let working = json(app.get_bearer("/api/v1/cases?status=Working", &token).await).await;
    assert_eq!(working["items"].as_array().unwrap().len(), 1);
    assert_eq!(working["items"][0]["id"], ids[0]);
    // 1_900_000_000 is 17:46:40: cases 2 and 3 were created at 17:47:40, 4 and 5 at 17:48:40.
    let from = "2030-03-17T17:47:00Z";
    let to = "2030-03-17T17:48:40Z";
    let window = json(
        app.get_bearer(
            &format!("/api/v1/cases?created_from={from}&created_to={to}"),
            &token,
        )
        .await,
    )
    .await;
    let got: Vec<&str> = window["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["subject"].as_str().unwrap())
        .collect();
    assert_eq!(got, ["case 3", "case 2"]);

    for bad in [
        "limit=0",
        "limit=201",
        "created_from=yesterday",
        "cursor=bm9wZQ",
    ] {
        let response = app
            .get_bearer(&format!("/api/v1/cases?{bad}"), &token)
            .await;
        assert_eq!(response.status(), 422, "{bad}");
    }
    assert_eq!(
        app.get_bearer("/api/v1/cases?status=Lost", &token)
            .await
            .status(),
        400
    );
    assert_eq!(
        app.get_bearer("/api/v1/cases?colour=red", &token)
            .await
            .status(),
        400
    );
    app.stop().await;
}

#[apply(both_backends)]
async fn changes_follow_the_status_rules_and_if_match(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let (id, secret) = app.service_client(&["cases.write"]).await;
    let token = app.access_token(&id, &secret, None).await;
    let case = json(post(&app, &token, &contract_body()).await).await;
    let path = format!("/api/v1/cases/{}", case["id"].as_str().unwrap());
    let patch = |body: Value, tag: Option<&'static str>| {
        send(&app, reqwest::Method::PATCH, &path, &token, body, tag)
    };

    let working = patch(
        json!({"status": "Working", "priority": "Critical"}),
        Some("\"1\""),
    )
    .await;
    assert_eq!(working.status(), 200);
    assert_eq!(working.headers()["etag"], "\"2\"");
    let working = json(working).await;
    assert_eq!(
        (
            working["status"].as_str(),
            working["priority"].as_str(),
            working["version"].as_i64()
        ),
        (Some("Working"), Some("Critical"), Some(2))
    );
    assert_eq!(
        working["line_items"].as_array().unwrap().len(),
        3,
        "items untouched"
    );

    let stale = patch(json!({"subject": "Stale"}), Some("\"1\"")).await;
    assert_eq!(stale.status(), 412);
    assert_eq!(
        json(stale).await["type"],
        "urn:gatehouse:problem:precondition-failed"
    );
    assert_eq!(
        patch(json!({"subject": "x"}), Some("W/\"2\""))
            .await
            .status(),
        400
    );
    assert_eq!(
        patch(json!({"subject": "x"}), Some("\"+2\""))
            .await
            .status(),
        400
    );
    // `*` matches any version; the bare number, as some clients send it, is the ETag.
    assert_eq!(
        patch(json!({"subject": "Any"}), Some("*")).await.headers()["etag"],
        "\"3\""
    );
    assert_eq!(
        patch(json!({"subject": "Bare"}), Some("3")).await.headers()["etag"],
        "\"4\""
    );
    assert_eq!(
        patch(json!({"subject": "Bare"}), Some("3")).await.status(),
        412
    );

    let back = patch(json!({"status": "New"}), None).await;
    assert_eq!(back.status(), 422);
    assert_eq!(json(back).await["errors"][0]["code"], "invalid_transition");
    assert_eq!(patch(json!({"status": "Closed"}), None).await.status(), 200);
    assert_eq!(
        patch(json!({"status": "Escalated"}), None).await.status(),
        422
    );
    let reopened = json(patch(json!({"status": "Working", "subject": ""}), None).await).await;
    assert_eq!(
        reopened["errors"][0]["field"], "subject",
        "nothing applied when a field is invalid"
    );
    assert_eq!(
        json(app.get_bearer(&path, &token).await).await["status"],
        "Closed"
    );
    assert_eq!(
        patch(json!({"status": "Working"}), None).await.status(),
        200
    );

    // Another client cannot change it: 404.
    let (other, other_secret) = app.service_client(&["cases.write"]).await;
    let other = app.access_token(&other, &other_secret, None).await;
    assert_eq!(
        send(
            &app,
            reqwest::Method::PATCH,
            &path,
            &other,
            json!({"status": "Closed"}),
            None
        )
        .await
        .status(),
        404
    );
    app.stop().await;
}

#[apply(both_backends)]
async fn appended_line_items_go_in_whole_after_the_others(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let (id, secret) = app.service_client(&["cases.write"]).await;
    let token = app.access_token(&id, &secret, None).await;
    let case = json(post(&app, &token, &contract_body()).await).await;
    let path = format!("/api/v1/cases/{}/line-items", case["id"].as_str().unwrap());
    let item = json!({"sku": "FUSER-2", "quantity": 1, "unit_price": {"amount_minor": 8900, "currency": "EUR"}});

    let appended = send(
        &app,
        reqwest::Method::POST,
        &path,
        &token,
        json!({"line_items": [item, item]}),
        None,
    )
    .await;
    assert_eq!(appended.status(), 201);
    assert_eq!(appended.headers()["etag"], "\"2\"");
    let appended = json(appended).await;
    let positions: Vec<i64> = appended["line_items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["position"].as_i64().unwrap())
        .collect();
    assert_eq!(positions, [0, 1, 2, 3, 4]);
    assert_eq!(rows(&app).await, (1, 5, 1));

    let mut bad = item.clone();
    bad["quantity"] = json!(0);
    let refused = json(
        send(
            &app,
            reqwest::Method::POST,
            &path,
            &token,
            json!({"line_items": [item, bad]}),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(fields(&refused), ["line_items[1].quantity"]);
    let too_many = json!({"line_items": vec![item.clone(); 196]});
    let refused =
        json(send(&app, reqwest::Method::POST, &path, &token, too_many, None).await).await;
    assert_eq!(refused["errors"][0]["code"], "too_many");
    assert_eq!(
        send(
            &app,
            reqwest::Method::POST,
            &path,
            &token,
            json!({"line_items": []}),
            None
        )
        .await
        .status(),
        422
    );
    assert_eq!(rows(&app).await, (1, 5, 1), "refused appends write nothing");

    // Idempotent like every POST.
    let keyed = |k: &'static str| {
        app.http
            .post(app.url(&path))
            .bearer_auth(&token)
            .header("idempotency-key", k)
            .json(&json!({"line_items": [item]}))
            .send()
    };
    assert_eq!(keyed("more-1").await.unwrap().status(), 201);
    let replay = keyed("more-1").await.unwrap();
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(rows(&app).await, (1, 6, 1));

    let (other, other_secret) = app.service_client(&["cases.write"]).await;
    let other = app.access_token(&other, &other_secret, None).await;
    assert_eq!(
        send(
            &app,
            reqwest::Method::POST,
            &path,
            &other,
            json!({"line_items": [item]}),
            None
        )
        .await
        .status(),
        404
    );
    app.stop().await;
}

#[apply(both_backends)]
async fn a_server_killed_mid_load_loses_no_acknowledged_case_and_sends_every_email(
    #[case] backend: Backend,
) {
    if unavailable(backend, module_path!()) {
        return;
    }
    use crate::support::{ServerProcess, TestDb, cli};
    use std::sync::atomic::{AtomicBool, Ordering};
    let db = TestDb::new(backend).await;
    cli(&db, &["migrate"], None).await.ok();
    let created = cli(
        &db,
        &[
            "client",
            "create",
            "--name",
            "loader",
            "--type",
            "confidential",
            "--grant",
            "client_credentials",
            "--scope",
            "cases.write",
            "--json",
        ],
        None,
    )
    .await
    .ok()
    .json();
    let (id, secret) = (
        created["client_id"].as_str().unwrap().to_owned(),
        created["client_secret"].as_str().unwrap().to_owned(),
    );
    let mut server = ServerProcess::start(&db, &[("GATEHOUSE_MAIL_LEASE_SECS", "2")]).await;
    let http = reqwest::Client::new();
    let token: Value = http
        .post(server.url("/oauth2/token"))
        .basic_auth(&id, Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap().to_owned();

    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (http, url, token, stop) = (
                http.clone(),
                server.url("/api/v1/cases"),
                token.clone(),
                stop.clone(),
            );
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let sent = http
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&contract_body())
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status() == 201 => {
                            if let Ok(case) = r.json::<Value>().await {
                                acknowledged.push(case["id"].as_str().unwrap().to_owned());
                            }
                        }
                        Ok(_) => {}
                        Err(_) => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
                    }
                }
                acknowledged
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    server.child.start_kill().unwrap(); // SIGKILL: no shutdown, no flush
    server.child.wait().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let mut acknowledged = Vec::new();
    for w in workers {
        acknowledged.extend(w.await.unwrap());
    }
    assert!(
        acknowledged.len() >= 8,
        "the load ran: {} cases acknowledged",
        acknowledged.len()
    );

    // Emails the killed process had claimed come due again after the lease.
    let restarted = ServerProcess::start(&db, &[("GATEHOUSE_MAIL_LEASE_SECS", "2")]).await;
    for case_id in &acknowledged {
        let case: Value = http
            .get(restarted.url(&format!("/api/v1/cases/{case_id}")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            case["line_items"].as_array().map(Vec::len),
            Some(3),
            "acknowledged case {case_id} whole: {case}"
        );
    }
    let partial = query_count(&db, "SELECT COUNT(*) FROM cases c WHERE (SELECT COUNT(*) FROM case_line_items i WHERE i.case_id = c.id) <> 3 \
        OR (SELECT COUNT(*) FROM email_outbox o WHERE o.case_id = c.id) <> 1").await;
    assert_eq!(
        partial, 0,
        "every stored case has its 3 items and exactly one email"
    );
    let orphans = query_count(&db, "SELECT COUNT(*) FROM case_line_items i WHERE NOT EXISTS (SELECT 1 FROM cases c WHERE c.id = i.case_id)").await;
    assert_eq!(orphans, 0);
    let delivered = crate::support::eventually(30, || async {
        (query_count(
            &db,
            "SELECT COUNT(*) FROM email_outbox WHERE status <> 'sent'",
        )
        .await
            == 0)
            .then_some(())
    })
    .await;
    assert!(
        delivered.is_some(),
        "every queued email is delivered after the restart"
    );
    let emails = query_count(&db, "SELECT COUNT(*) FROM email_outbox").await;
    let files = std::fs::read_dir(db.path().join("mail"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "eml"))
        })
        .count();
    assert_eq!(files as i64, emails, "one file per email");
    drop(restarted);
}
