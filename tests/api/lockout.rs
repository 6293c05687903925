//! Guessing locks: failed sign-ins slow down, then lock the account without saying whether
//! it exists; parallel guesses at passwords and user codes, spread over two replicas, get
//! no more checks than the lock allows.
//!
//! The first test waits out the server's real delays (some 3 s of sleeping, no CPU); the
//! module's name lets libtest start it mid-run rather than last.

use rstest::rstest;
use rstest_reuse::apply;

use crate::flow::{Browser, PASSWORD, input_value, user};
use crate::support::{Backend, ServerProcess, TestApp, both_backends, cli, unavailable};

#[apply(both_backends)]
async fn failed_sign_ins_slow_down_then_lock_without_revealing_the_account(
    #[case] backend: Backend,
) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn_with(backend, |c| c.login_lock_after = 4).await;
    user(&app, "gus").await;
    let browser = Browser::new(&app);
    let attempt = |username: &'static str, password: &'static str| {
        let browser = &browser;
        async move { browser.sign_in("/login", username, password).await }
    };
    let wrong = attempt("gus", "wrong password").await;
    assert_eq!(wrong.status(), 401);
    let wrong_text = wrong.text().await.unwrap();
    let unknown = attempt("nobody", "wrong password").await;
    assert_eq!(unknown.status(), 401);
    let unknown_text = unknown.text().await.unwrap();
    let message = |html: &str| {
        html.split("id=\"login-error\">")
            .nth(1)
            .unwrap()
            .split('<')
            .next()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        message(&wrong_text),
        message(&unknown_text),
        "same answer for unknown users"
    );
    for _ in 0..3 {
        attempt("gus", "wrong password").await;
    }
    // Locked: even the right password is refused for a while, with Retry-After.
    let locked = attempt("gus", PASSWORD).await;
    assert_eq!(locked.status(), 429);
    assert!(
        locked.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<i64>()
            .unwrap()
            > 0
    );
    // Another account is not locked.
    user(&app, "hal").await;
    assert_eq!(attempt("hal", PASSWORD).await.status(), 200);
    app.stop().await;
}

/// Two `gatehouse serve` processes on one fresh database (each with its own metrics).
async fn two_processes(backend: Backend) -> (crate::support::TestDb, ServerProcess, ServerProcess) {
    let db = crate::support::TestDb::new(backend).await;
    cli(&db, &["migrate"], None).await.ok();
    let a = ServerProcess::start(&db, &[]).await;
    let b = ServerProcess::start(&db, &[]).await;
    (db, a, b)
}

/// A cookie-keeping client and the CSRF token of the form at `url`.
async fn form_session(url: &str) -> (reqwest::Client, String) {
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = http.get(url).send().await.unwrap().text().await.unwrap();
    let csrf = input_value(&page, "csrf_token").unwrap();
    (http, csrf)
}

/// Posts 30 forms to `path` at once, alternating between the two replicas; their statuses.
async fn spread(
    http: &reqwest::Client,
    replicas: [&ServerProcess; 2],
    path: &str,
    form: impl Fn(usize) -> Vec<(&'static str, String)>,
) -> Vec<u16> {
    let requests = (0..30).map(|n| {
        let request = http.post(replicas[n % 2].url(path)).form(&form(n));
        async move { request.send().await.unwrap().status().as_u16() }
    });
    futures::future::join_all(requests).await
}

#[apply(both_backends)]
async fn parallel_guesses_get_no_more_checks_than_the_lock_allows_across_replicas(
    #[case] backend: Backend,
) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let (db, a, b) = two_processes(backend).await;
    cli(
        &db,
        &[
            "user",
            "create",
            "--username",
            "ada",
            "--email",
            "ada@example.com",
            "--password-stdin",
        ],
        Some(PASSWORD),
    )
    .await
    .ok();
    let (http, csrf) = form_session(&a.url("/login")).await;

    // 30 wrong passwords at once, half to each replica: at most 5 are checked.
    let statuses = spread(&http, [&a, &b], "/login", |_| {
        vec![
            ("username", "ada".to_owned()),
            ("password", "wrong password".to_owned()),
            ("csrf_token", csrf.clone()),
            ("return_to", String::new()),
        ]
    })
    .await;
    let verified = a.counter(VERIFICATIONS).await + b.counter(VERIFICATIONS).await;
    assert_eq!(verified, 5.0, "password checks for a lock after 5");
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count() as f64,
        verified,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count() as f64,
        30.0 - verified,
        "{statuses:?}"
    );

    // The same for user codes on /activate, from one browser.
    let (http, csrf) = form_session(&a.url("/activate")).await;
    let statuses = spread(&http, [&a, &b], "/activate", |n| {
        let code = format!(
            "BCDF-GH{}{}",
            ["J", "K", "L"][n % 3],
            ["M", "N", "P", "Q", "R", "S", "T", "V", "W", "X"][n % 10]
        );
        vec![("user_code", code), ("csrf_token", csrf.clone())]
    })
    .await;
    let looked_up = a.counter(CODE_CHECKS).await + b.counter(CODE_CHECKS).await;
    assert_eq!(looked_up, 5.0, "user-code lookups for a lock after 5");
    assert_eq!(
        statuses.iter().filter(|s| **s == 400).count(),
        4,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        26,
        "the fifth wrong one locks"
    );
}

const VERIFICATIONS: &str = "gatehouse_password_verifications_total";
const CODE_CHECKS: &str = "gatehouse_user_code_checks_total";
