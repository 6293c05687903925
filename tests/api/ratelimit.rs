//! Rate limits: per client and per address on the OAuth endpoints and pages, per client or
//! token on the API; in memory for one process and in Redis shared by several; the IETF
//! RateLimit headers, 429 with Retry-After, and the fail mode when Redis is gone.
//! (The limit across replicas behind nginx is in `scaleout`.)

use crate::support::{Backend, Proxy, TestApp, redis_prefix, redis_url};

fn header(res: &reqwest::Response, name: &str) -> String {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

async fn client_credentials(app: &TestApp, id: &str, secret: &str) -> reqwest::Response {
    app.post_form(
        "/oauth2/token",
        Some((id, secret)),
        &[("grant_type", "client_credentials")],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_endpoint_limits_each_client_with_headers_and_retry_after() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.rate_limit_token_per_client = 3;
        c.rate_limit_window_secs = 60;
    })
    .await;
    let (id, secret) = app.service_client(&["api"]).await;
    for remaining in [2, 1, 0] {
        let res = client_credentials(&app, &id, &secret).await;
        assert_eq!(res.status(), 200);
        let policy = header(&res, "ratelimit-policy");
        assert!(
            policy.contains("\"token-client\";q=3;w=60"),
            "policy: {policy}"
        );
        assert!(policy.contains("\"token-address\";q=3000;w=60"));
        let limit = header(&res, "ratelimit");
        assert!(
            limit.contains(&format!("\"token-client\";r={remaining};t=")),
            "limit: {limit}"
        );
        assert!(res.headers().get("retry-after").is_none());
    }
    let res = client_credentials(&app, &id, &secret).await;
    assert_eq!(res.status(), 429);
    assert_eq!(header(&res, "cache-control"), "no-store");
    let retry: u64 = header(&res, "retry-after").parse().unwrap();
    assert!((1..=20).contains(&retry), "retry-after {retry}");
    assert!(header(&res, "ratelimit").contains("\"token-client\";r=0;"));
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("token-client")
    );

    // Another client has its own limit.
    let (other, other_secret) = app.service_client(&["api"]).await;
    assert_eq!(
        client_credentials(&app, &other, &other_secret)
            .await
            .status(),
        200
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_device_and_par_endpoints_limit_each_address() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.rate_limit_login_per_address = 2;
        c.rate_limit_activate_per_address = 1;
        c.rate_limit_device_per_address = 1;
        c.rate_limit_token_per_address = 1;
    })
    .await;
    for _ in 0..2 {
        assert_eq!(app.get("/login").await.status(), 200);
    }
    let res = app.get("/login").await;
    assert_eq!(res.status(), 429);
    assert!(header(&res, "content-type").starts_with("text/html"));
    assert!(header(&res, "retry-after").parse::<u64>().unwrap() >= 1);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("Too many requests from your network")
    );

    assert_eq!(app.get("/activate").await.status(), 200);
    assert_eq!(app.get("/activate").await.status(), 429);

    // Refused before the client is even looked at: the address is over its limit.
    let form = [("client_id", "nobody")];
    let first = app
        .post_form("/oauth2/device_authorization", None, &form)
        .await;
    assert_eq!(first.status(), 401);
    assert!(header(&first, "ratelimit").contains("\"device-address\";r=0;"));
    let second = app
        .post_form("/oauth2/device_authorization", None, &form)
        .await;
    assert_eq!(second.status(), 429);
    let body: serde_json::Value = second.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");

    // A pushed request checks a client secret as the token endpoint does, and shares its
    // per-address limit: guessing secrets there is no cheaper.
    let form = [("response_type", "code"), ("client_id", "nobody")];
    let first = app
        .post_form("/oauth2/par", Some(("nobody", "guess")), &form)
        .await;
    assert_eq!(first.status(), 401);
    assert!(header(&first, "ratelimit").contains("\"token-address\";r=0;"));
    let second = app
        .post_form("/oauth2/par", Some(("nobody", "guess")), &form)
        .await;
    assert_eq!(second.status(), 429);
    assert_eq!(header(&second, "cache-control"), "no-store");
    let body: serde_json::Value = second.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    let token = client_credentials(&app, "nobody", "guess").await;
    assert_eq!(
        token.status(),
        429,
        "the token endpoint counts in the same limit"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_counts_only_behind_a_trusted_proxy() {
    let trusting = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.rate_limit_login_per_address = 1;
        c.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    let get_from = |app: &TestApp, chain: &'static str| {
        app.http
            .get(app.url("/login"))
            .header("x-forwarded-for", chain)
            .send()
    };
    // Each client address behind the proxy has its own limit; a spoofed left part of the
    // chain does not matter, the rightmost untrusted hop does.
    assert_eq!(get_from(&trusting, "10.0.0.1").await.unwrap().status(), 200);
    assert_eq!(get_from(&trusting, "10.0.0.2").await.unwrap().status(), 200);
    assert_eq!(
        get_from(&trusting, "1.2.3.4, 10.0.0.1")
            .await
            .unwrap()
            .status(),
        429
    );
    trusting.stop().await;

    let direct = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.rate_limit_login_per_address = 1;
    })
    .await;
    assert_eq!(get_from(&direct, "10.0.0.1").await.unwrap().status(), 200);
    // Not behind a trusted proxy: the header is the client's own claim and is ignored.
    assert_eq!(get_from(&direct, "10.0.0.2").await.unwrap().status(), 429);
    direct.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_limits_each_client_or_each_token() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| c.rate_limit_api = 2).await;
    let (id, secret) = app.service_client(&["api"]).await;
    let first = app.access_token(&id, &secret, None).await;
    let second = app.access_token(&id, &secret, None).await;
    let ok = app.get_bearer("/api/v1/me", &first).await;
    assert_eq!(ok.status(), 200);
    assert!(header(&ok, "ratelimit-policy").contains("\"api\";q=2;w=60"));
    assert!(header(&ok, "ratelimit").contains("\"api\";r=1;"));
    assert_eq!(app.get_bearer("/api/v1/me", &second).await.status(), 200);
    // The client's two tokens share its limit.
    let res = app.get_bearer("/api/v1/me", &first).await;
    assert_eq!(res.status(), 429);
    assert_eq!(header(&res, "content-type"), "application/problem+json");
    assert!(header(&res, "retry-after").parse::<u64>().unwrap() >= 1);
    let problem: serde_json::Value = res.json().await.unwrap();
    assert_eq!(problem["type"], "urn:gatehouse:problem:rate-limited");
    assert_eq!(problem["status"], 429);
    app.stop().await;

    let per_token = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.rate_limit_api = 1;
        c.rate_limit_api_key = gatehouse::ratelimit::ApiLimitKey::Token;
    })
    .await;
    let (id, secret) = per_token.service_client(&["api"]).await;
    let first = per_token.access_token(&id, &secret, None).await;
    let second = per_token.access_token(&id, &secret, None).await;
    assert_eq!(
        per_token.get_bearer("/api/v1/me", &first).await.status(),
        200
    );
    assert_eq!(
        per_token.get_bearer("/api/v1/me", &second).await.status(),
        200
    );
    assert_eq!(
        per_token.get_bearer("/api/v1/me", &first).await.status(),
        429
    );
    per_token.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_shares_one_limit_between_processes() {
    let Some(redis) = redis_url(module_path!()) else {
        return;
    };
    let prefix = redis_prefix();
    let tweak = |c: &mut gatehouse::config::Config| {
        c.redis_url = Some(redis.clone().into());
        c.rate_limit_redis_prefix = prefix.clone();
        c.rate_limit_token_per_client = 4;
    };
    let a = TestApp::spawn_with(Backend::Sqlite, tweak).await;
    let b = TestApp::spawn_on(a.db.share(), tweak).await;
    let (id, secret) = a.service_client(&["api"]).await;
    let mut statuses = Vec::new();
    for i in 0..8 {
        let app = if i % 2 == 0 { &a } else { &b };
        let res = client_credentials(app, &id, &secret).await;
        if res.status() == 200 {
            let expected = 3 - statuses.len();
            assert!(
                header(&res, "ratelimit").contains(&format!("\"token-client\";r={expected};")),
                "{}",
                header(&res, "ratelimit")
            );
        } else {
            assert!(header(&res, "retry-after").parse::<u64>().unwrap() >= 1);
        }
        statuses.push(res.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 200, 429, 429, 429, 429]);
    a.stop().await;
    b.stop().await;
}

/// The script calls Redis sees for keys under `prefix`, read from MONITOR until `marker`
/// (a key under `prefix` the test touches last) shows up.
async fn script_calls(
    monitor: &mut (impl futures::Stream<Item = String> + Unpin),
    marker: &str,
) -> Vec<String> {
    use futures::StreamExt as _;
    let mut calls = Vec::new();
    loop {
        let line = tokio::time::timeout(std::time::Duration::from_secs(10), monitor.next())
            .await
            .expect("MONITOR answers")
            .expect("MONITOR is open");
        if line.contains(marker) {
            return calls;
        }
        if line.contains("\"EVALSHA\"") || line.contains("\"EVAL\"") {
            calls.push(line);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_limit_costs_one_round_trip_and_refusals_none() {
    let Some(redis) = redis_url(module_path!()) else {
        return;
    };
    let prefix = redis_prefix();
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.redis_url = Some(redis.clone().into());
        c.rate_limit_redis_prefix = prefix.clone();
        // A burst of 2, then one request per 2 s.
        c.rate_limit_window_secs = 4;
        c.rate_limit_token_per_client = 2;
        c.rate_limit_token_per_address = 100;
        c.rate_limit_api = 1;
    })
    .await;
    let (id, secret) = app.service_client(&["api"]).await;
    // Another client's request loads the script into Redis before anything is watched.
    let (other, other_secret) = app.service_client(&["api"]).await;
    app.access_token(&other, &other_secret, None).await;
    let client = redis::Client::open(redis.as_str()).unwrap();
    let mut monitor = Box::pin(
        client
            .get_async_monitor()
            .await
            .unwrap()
            .into_on_message::<String>(),
    );
    let mut marker_connection = client.get_multiplexed_async_connection().await.unwrap();
    let marker = format!("{prefix}:marker");

    // Two allowed and one refused by the client limit: one script call each, carrying the
    // address and the client key together.
    let mut token = String::new();
    for expected in [200, 200, 429] {
        let res = client_credentials(&app, &id, &secret).await;
        assert_eq!(res.status(), expected);
        if token.is_empty() {
            let body: serde_json::Value = res.json().await.unwrap();
            token = body["access_token"].as_str().unwrap().to_owned();
        }
    }
    // Refused again: the client's refusal is remembered, only the address is counted.
    let res = client_credentials(&app, &id, &secret).await;
    assert_eq!(res.status(), 429);
    let retry: u64 = header(&res, "retry-after").parse().unwrap();
    assert!((1..=2).contains(&retry), "retry-after {retry}");
    assert!(header(&res, "ratelimit").contains("\"token-client\";r=0;"));
    // A request that fails client authentication still counts against its address, in
    // one call of its own.
    assert_eq!(client_credentials(&app, &id, "wrong").await.status(), 401);
    // One API call allowed, the next refused by Redis, the third by what it said.
    for expected in [200, 429, 429] {
        let res = app.get_bearer("/api/v1/me", &token).await;
        assert_eq!(res.status(), expected);
    }
    let _: Option<String> = redis::cmd("GET")
        .arg(&marker)
        .query_async(&mut marker_connection)
        .await
        .unwrap();
    let calls = script_calls(&mut monitor, &marker).await;
    assert_eq!(calls.len(), 7, "{calls:#?}");
    let address_key = format!("{prefix}:rl:token-address:");
    let client_key = format!("{prefix}:rl:token-client:{id}");
    let api_key = format!("{prefix}:rl:api:{id}");
    for call in &calls[..3] {
        assert!(
            call.contains(&address_key) && call.contains(&client_key),
            "{call}"
        );
    }
    for call in &calls[3..5] {
        assert!(
            call.contains(&address_key) && !call.contains(&client_key),
            "{call}"
        );
    }
    for call in &calls[5..] {
        assert!(call.contains(&api_key), "{call}");
    }

    // The remembered refusal ends when Redis said it would.
    tokio::time::sleep(std::time::Duration::from_millis(retry * 1000 + 100)).await;
    assert_eq!(client_credentials(&app, &id, &secret).await.status(), 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_the_server_fails_open_or_closed_as_configured() {
    let Some(redis) = redis_url(module_path!()) else {
        return;
    };
    let redis_addr = redis
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let proxy = Proxy::start(redis_addr).await;
    let url = format!("redis://{}", proxy.addr);
    let open = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.redis_url = Some(url.clone().into());
        c.rate_limit_redis_prefix = redis_prefix();
        c.rate_limit_token_per_client = 100;
    })
    .await;
    let (id, secret) = open.service_client(&["api"]).await;
    let res = client_credentials(&open, &id, &secret).await;
    assert_eq!(res.status(), 200);
    assert!(header(&res, "ratelimit").contains("\"token-client\";r=99;"));

    proxy.cut();
    let started = std::time::Instant::now();
    for _ in 0..5 {
        assert_eq!(client_credentials(&open, &id, &secret).await.status(), 200);
    }
    // One request waits out the timeout; the rest are answered at once for a second.
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    let metrics = open.metrics().await;
    let errors = metrics
        .lines()
        .find(|l| l.starts_with("gatehouse_rate_limit_backend_errors_total"))
        .expect("the failure is counted");
    assert!(!errors.ends_with(" 0"), "{errors}");
    open.stop().await;

    let closed = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.redis_url = Some(url.clone().into());
        c.rate_limit_redis_prefix = redis_prefix();
        c.rate_limit_redis_failure = gatehouse::ratelimit::FailMode::Closed;
    })
    .await;
    let (id, secret) = closed.service_client(&["api"]).await;
    let res = client_credentials(&closed, &id, &secret).await;
    assert_eq!(res.status(), 503);
    assert_eq!(header(&res, "retry-after"), "1");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");

    // Once Redis is back, requests are counted again (after the one-second pause).
    proxy.restore();
    let back = crate::support::eventually(10, || async {
        let res = client_credentials(&closed, &id, &secret).await;
        (res.status() == 200).then_some(())
    })
    .await;
    assert!(back.is_some(), "served again once Redis answered");
    closed.stop().await;
}
