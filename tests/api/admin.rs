//! The admin API: JSON error shapes, limits and the registry over HTTP.

use rstest::rstest;
use rstest_reuse::apply;

use crate::support::{Backend, both_backends, unavailable};
use serde_json::{Value, json};

use crate::support::TestApp;

async fn admin_token(app: &TestApp) -> String {
    let (id, secret) = app.service_client(&["admin"]).await;
    app.access_token(&id, &secret, None).await
}

#[apply(both_backends)]
async fn malformed_unsupported_oversized_and_invalid_bodies_get_problem_documents(
    #[case] backend: Backend,
) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn_with(backend, |c| c.body_limit_bytes = 16 * 1024).await;
    let token = admin_token(&app).await;
    let post = |body: Vec<u8>, ct: &'static str| {
        app.http
            .post(app.url("/admin/v1/clients"))
            .bearer_auth(&token)
            .header("content-type", ct)
            .body(body)
            .send()
    };

    let malformed = post(b"{\"name\": \"x\",".to_vec(), "application/json")
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    assert_eq!(
        malformed.headers()["content-type"],
        "application/problem+json"
    );
    let body: Value = malformed.json().await.unwrap();
    assert_eq!(body["status"], 400);
    assert!(
        body["detail"].as_str().unwrap().contains("malformed JSON"),
        "{body}"
    );

    let wrong_type = post(b"name=x".to_vec(), "application/x-www-form-urlencoded")
        .await
        .unwrap();
    assert_eq!(wrong_type.status(), 415);
    assert_eq!(
        wrong_type.headers()["content-type"],
        "application/problem+json"
    );

    let huge = format!(
        "{{\"name\": \"{}\", \"type\": \"public\"}}",
        "x".repeat(20 * 1024)
    );
    let oversized = post(huge.into_bytes(), "application/json").await.unwrap();
    assert_eq!(oversized.status(), 413);
    assert_eq!(
        oversized.headers()["content-type"],
        "application/problem+json"
    );

    let shape = post(
        json!({"name": 5}).to_string().into_bytes(),
        "application/json",
    )
    .await
    .unwrap();
    assert_eq!(shape.status(), 422);

    let invalid = post(
        json!({"name": "x", "type": "public",
        "redirect_uris": ["https://ok.example/cb", "http://evil.example/cb"],
        "scopes": ["api", "root"]})
        .to_string()
        .into_bytes(),
        "application/json",
    )
    .await
    .unwrap();
    assert_eq!(invalid.status(), 422);
    let body: Value = invalid.json().await.unwrap();
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, vec!["redirect_uris[1]", "scopes[1]"], "{body}");

    let listed: Value = app
        .get_bearer("/admin/v1/clients", &token)
        .await
        .json()
        .await
        .unwrap();
    // The admin's own client and the built-in docs client: nothing was written by the
    // failed requests.
    assert_eq!(listed["clients"].as_array().unwrap().len(), 2, "{listed}");
    app.stop().await;
}

#[apply(both_backends)]
async fn admin_api_mirrors_the_cli(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let token = admin_token(&app).await;
    let created = app.http.post(app.url("/admin/v1/clients")).bearer_auth(&token)
        .json(&json!({"name": "Partner", "type": "confidential", "grant_types": ["client_credentials"], "scopes": ["cases.read"]}))
        .send().await.unwrap();
    assert_eq!(created.status(), 201);
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = created.json().await.unwrap();
    let id = body["client_id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/admin/v1/clients/{id}"));
    let secret = body["client_secret"].as_str().unwrap().to_owned();
    app.access_token(&id, &secret, None).await;

    let shown: Value = app
        .get_bearer(&location, &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shown["name"], "Partner");
    assert!(shown.get("client_secret").is_none());
    assert_eq!(
        app.get_bearer("/admin/v1/clients/nope", &token)
            .await
            .status(),
        404
    );

    let user = app.http.post(app.url("/admin/v1/users")).bearer_auth(&token)
        .json(&json!({"username": "Ada", "email": "ada@example.com", "password": "correct horse battery"}))
        .send().await.unwrap();
    assert_eq!(user.status(), 201);
    let user: Value = user.json().await.unwrap();
    assert_eq!(user["username"], "ada");
    assert!(user.get("password_hash").is_none());
    let dup = app.http.post(app.url("/admin/v1/users")).bearer_auth(&token)
        .json(&json!({"username": "ada", "email": "a@example.com", "password": "correct horse battery"}))
        .send().await.unwrap();
    assert_eq!(dup.status(), 409);
    let disabled: Value = app
        .http
        .post(app.url("/admin/v1/users/ada/disable"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(disabled["enabled"], false);
    let users: Value = app
        .get_bearer("/admin/v1/users", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(users["users"][0]["username"], "ada");
    let keys: Value = app
        .get_bearer("/admin/v1/keys", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(keys["keys"][0]["state"], "active");
    app.stop().await;
}
