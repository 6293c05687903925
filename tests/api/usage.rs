//! Daily API usage: `Gatehouse-Limit-Info` on every bearer-token answer, the admin view,
//! the cap, and counts summed over processes.

use rstest::rstest;
use rstest_reuse::apply;

use crate::support::{Backend, both_backends, unavailable};
use serde_json::Value;

use crate::support::{TestApp, eventually};

fn limit_info(res: &reqwest::Response) -> String {
    res.headers()["gatehouse-limit-info"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[apply(both_backends)]
async fn each_call_is_counted_shown_capped_and_summed_across_processes(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let a = TestApp::spawn_with(backend, |c| {
        c.api_daily_limit = 5;
        c.sync_interval_ms = 200;
    })
    .await;
    let issuer = a.base.clone();
    let b = TestApp::spawn_on(a.db.share(), |c| {
        c.issuer = Some(issuer);
        c.api_daily_limit = 5;
        c.sync_interval_ms = 200;
    })
    .await;
    let (id, secret) = a.service_client(&["api"]).await;
    let token = a.access_token(&id, &secret, None).await;
    for n in 1..=2 {
        let res = a.get_bearer("/api/v1/me", &token).await;
        assert_eq!(res.status(), 200);
        assert_eq!(limit_info(&res), format!("api-usage={n}/5"));
    }
    // B learns A's calls within a sync interval, and A learns B's.
    let seen = eventually(5, || async {
        let res = b.get_bearer("/api/v1/me", &token).await;
        assert_eq!(res.status(), 200, "{:?}", res.headers());
        (limit_info(&res) != "api-usage=1/5").then(|| limit_info(&res))
    })
    .await;
    assert!(seen.is_some());
    let total = eventually(5, || async {
        let (_, page) = admin_usage(&a, &id).await;
        let calls = page["days"][0]["calls"].as_i64().unwrap_or(0);
        (calls >= 3).then_some(calls)
    })
    .await
    .expect("the calls reach the database");
    assert!((3..=5).contains(&total), "{total}");

    // The cap: refused until midnight UTC, and the refused calls are not counted. (Let
    // both processes learn the totals first: across processes the cap is exact only to
    // within one sync interval.)
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let refused = eventually(5, || async {
        let res = a.get_bearer("/api/v1/me", &token).await;
        (res.status() == 429).then_some(res)
    })
    .await
    .expect("the limit is enforced");
    assert_eq!(limit_info(&refused), "api-usage=5/5");
    let retry: i64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=86_400).contains(&retry));
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(problem["type"], "urn:gatehouse:problem:rate-limited");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("daily API limit")
    );

    let stored = eventually(5, || async {
        let (_, page) = admin_usage(&a, &id).await;
        (page["days"][0]["calls"] == 5).then_some(page)
    })
    .await
    .expect("exactly the allowed calls are stored");
    assert_eq!(stored["daily_limit"], 5);
    assert_eq!(stored["client_id"], id.as_str());
    assert_eq!(stored["days"].as_array().unwrap().len(), 1);

    // Bad input and unknown clients.
    let (admin_id, admin_secret) = a.service_client(&["admin"]).await;
    let admin = a.access_token(&admin_id, &admin_secret, None).await;
    for bad in ["days=0", "days=367", "days=x"] {
        let res = a
            .get_bearer(&format!("/admin/v1/clients/{id}/usage?{bad}"), &admin)
            .await;
        assert!(matches!(res.status().as_u16(), 400 | 422), "{bad}");
    }
    assert_eq!(
        a.get_bearer("/admin/v1/clients/nope/usage", &admin)
            .await
            .status(),
        404
    );
    a.stop().await;
    b.stop().await;
}

/// The admin view of `client`'s usage, with an admin token of its own (whose calls count
/// for the admin client, not for `client`).
async fn admin_usage(app: &TestApp, client: &str) -> (u16, Value) {
    let (id, secret) = app.service_client(&["admin"]).await;
    let admin = app.access_token(&id, &secret, None).await;
    let res = app
        .get_bearer(&format!("/admin/v1/clients/{client}/usage"), &admin)
        .await;
    (res.status().as_u16(), res.json().await.unwrap())
}
