//! Several replicas behave as one server: two `gatehouse serve` processes on one
//! PostgreSQL (and one Redis for the rate limits) behind Debian's nginx, round-robin,
//! configured with the proxy settings deploy/ ships. Flows start on one replica and end on
//! the other; a replica is killed with SIGKILL under load.

use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::flow::{self, Browser};
use crate::support::{
    Backend, ServerProcess, TestApp, TestDb, eventually, kids, manifest_path, postgres_available,
    redis_prefix, redis_url, skip,
};

const NGINX: &str = "/usr/sbin/nginx";

/// nginx in the foreground, with its files in a directory of its own.
pub struct Nginx {
    child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

/// A port for nginx, held bound until nginx is about to take it: released at once, the
/// OS could hand it to a listener of another test while the replicas start (a management
/// listener answers /healthz too, and the cluster then talked to it instead of nginx).
fn reserve_port() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

/// The nginx configuration of the tests: `upstreams` round-robin, `deploy/nginx/proxy.conf`.
fn nginx_conf(dir: &Path, port: u16, upstreams: &[std::net::SocketAddr]) -> String {
    let servers: String = upstreams
        .iter()
        .map(|a| format!("    server {a} max_fails=1 fail_timeout=10s;\n"))
        .collect();
    let d = dir.display();
    format!(
        "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
         upstream gatehouse {{\n{servers}    keepalive 32;\n  }}\n\
         server {{\n    listen 127.0.0.1:{port};\n    location / {{\n      include {proxy};\n    }}\n  }}\n}}\n",
        proxy = manifest_path("deploy/nginx/proxy.conf").display()
    )
}

impl Nginx {
    async fn start(
        (reserved, port): (TcpListener, u16),
        upstreams: &[std::net::SocketAddr],
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, nginx_conf(dir.path(), port, upstreams)).unwrap();
        drop(reserved);
        let child = tokio::process::Command::new(NGINX)
            .arg("-c")
            .arg(&conf)
            .arg("-p")
            .arg(dir.path())
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}/healthz");
        // Answered by nginx (it names itself), not by whatever else listens there.
        let up = eventually(10, || async {
            reqwest::get(&url)
                .await
                .ok()
                .filter(|r| {
                    r.status() == 200
                        && r.headers()
                            .get("server")
                            .is_some_and(|v| v.as_bytes().starts_with(b"nginx"))
                })
                .map(|_| ())
        })
        .await;
        assert!(
            up.is_some(),
            "nginx did not start: {}",
            std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
        );
        Self { child, _dir: dir }
    }
}

/// Whether the scale-out tests can run here (PostgreSQL, Redis and nginx).
fn available(test: &str) -> Option<String> {
    if !postgres_available(test) {
        return None;
    }
    let redis = redis_url(test)?;
    if !Path::new(NGINX).exists() {
        skip(test, "install nginx (Debian nginx-light) to run it");
        return None;
    }
    Some(redis)
}

/// Two replicas on one PostgreSQL database and one Redis, behind nginx.
pub struct Cluster {
    /// Replica processes, in the order of `direct`.
    pub replicas: Vec<ServerProcess>,
    /// Talks to the load balancer (and registers clients and users through the library).
    pub lb: TestApp,
    _nginx: Nginx,
}

impl Cluster {
    async fn start(redis: &str, env: &[(&str, &str)]) -> Self {
        let db = TestDb::new(Backend::Postgres).await;
        let (reserved, port) = reserve_port();
        let issuer = format!("http://127.0.0.1:{port}");
        // Migrated and seeded once, before the replicas start.
        let lb = TestApp::unserved(db, &issuer).await;
        let prefix = redis_prefix();
        let mut common = vec![
            ("GATEHOUSE_ISSUER", issuer.as_str()),
            ("GATEHOUSE_TRUSTED_PROXIES", "[\"127.0.0.1/32\"]"),
            ("GATEHOUSE_REDIS_URL", redis),
            ("GATEHOUSE_RATE_LIMIT_REDIS_PREFIX", prefix.as_str()),
            ("GATEHOUSE_MAIL_POLL_MS", "200"),
            // The load tests queue more notifications than one caller's daily cap.
            ("GATEHOUSE_MAIL_DAILY_LIMIT", "0"),
        ];
        common.extend_from_slice(env);
        let mut replicas = Vec::new();
        for _ in 0..2 {
            replicas.push(ServerProcess::start(&lb.db, &common).await);
        }
        let addrs: Vec<_> = replicas.iter().map(|r| r.addr).collect();
        let nginx = Nginx::start((reserved, port), &addrs).await;
        Self {
            replicas,
            lb,
            _nginx: nginx,
        }
    }

    /// Talks to replica `i` directly.
    fn direct(&self, i: usize) -> TestApp {
        self.lb.at(&self.replicas[i].url(""))
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_issued_on_one_replica_is_redeemed_on_the_other_and_reuse_is_caught_across() {
    let Some(redis) = available(module_path!()) else {
        return;
    };
    let cluster = Cluster::start(&redis, &[]).await;
    let (a, b) = (cluster.direct(0), cluster.direct(1));
    flow::user(&a, "ada").await;
    let redirect = "https://app.example/cb";
    let client = flow::public_client(&a, redirect).await;

    // Authorize, sign in and consent on A; redeem on B.
    let (verifier, challenge) = flow::pkce();
    let path = flow::authorize_path(&[
        ("response_type", "code"),
        ("client_id", &client),
        ("redirect_uri", redirect),
        ("scope", "openid offline_access api"),
        ("state", "s"),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ]);
    let code = flow::param(&Browser::new(&a).authorize(&path, "ada").await, "code").unwrap();
    let res = flow::redeem(&b, &client, &code, redirect, Some(&verifier)).await;
    assert_eq!(res.status(), 200);
    let tokens = flow::json(res).await;
    // Rotation on A, reuse of the rotated token on B: the family is revoked for both.
    let first = tokens["refresh_token"].as_str().unwrap();
    let rotated = flow::json(flow::refresh(&a, &client, first, None).await).await;
    let second = rotated["refresh_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{rotated}"));
    let reuse = flow::refresh(&b, &client, first, None).await;
    assert_eq!(reuse.status(), 400);
    let gone = flow::refresh(&a, &client, second, None).await;
    assert_eq!(gone.status(), 400, "the family is revoked after reuse");
    // The code is spent everywhere (and its replay revokes what it issued).
    let again = flow::redeem(&a, &client, &code, redirect, Some(&verifier)).await;
    assert_eq!(again.status(), 400);
    assert_eq!(flow::json(again).await["error"], "invalid_grant");

    // An access token revoked on B is refused by A within 2 s.
    let access = tokens["access_token"].as_str().unwrap();
    let fresh = flow::json(
        flow::redeem(
            &b,
            &client,
            &flow::param(&Browser::new(&b).authorize(&path, "ada").await, "code").unwrap(),
            redirect,
            Some(&verifier),
        )
        .await,
    )
    .await;
    let live = fresh["access_token"].as_str().unwrap();
    assert_ne!(live, access);
    assert_eq!(a.get_bearer("/api/v1/me", live).await.status(), 200);
    let revoked = b
        .post_form(
            "/oauth2/revoke",
            None,
            &[("client_id", client.as_str()), ("token", live)],
        )
        .await;
    assert_eq!(revoked.status(), 200);
    let started = Instant::now();
    let refused = eventually(5, || async {
        (a.get_bearer("/api/v1/me", live).await.status() == 401).then(|| started.elapsed())
    })
    .await
    .expect("the other replica refuses the revoked token");
    assert!(refused <= Duration::from_secs(2), "took {refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_approved_on_one_replica_is_polled_on_the_other() {
    let Some(redis) = available(module_path!()) else {
        return;
    };
    let cluster = Cluster::start(&redis, &[("GATEHOUSE_DEVICE_POLL_INTERVAL_SECS", "1")]).await;
    let (a, b) = (cluster.direct(0), cluster.direct(1));
    flow::user(&a, "ada").await;
    let grant = "urn:ietf:params:oauth:grant-type:device_code";
    let (tv, _) = a
        .register(gatehouse::oauth::clients::NewClient {
            name: "TV".to_owned(),
            client_type: "public".to_owned(),
            grant_types: vec![grant.to_owned()],
            scopes: vec!["api".to_owned()],
            ..Default::default()
        })
        .await;
    let started = flow::json(
        a.post_form(
            "/oauth2/device_authorization",
            None,
            &[("client_id", tv.as_str()), ("scope", "api")],
        )
        .await,
    )
    .await;
    let device_code = started["device_code"].as_str().unwrap();
    let user_code = started["user_code"].as_str().unwrap();
    let form = [
        ("grant_type", grant),
        ("client_id", tv.as_str()),
        ("device_code", device_code),
    ];
    let poll = |app: &TestApp| app.http.post(app.url("/oauth2/token")).form(&form).send();
    assert_eq!(
        flow::json(poll(&a).await.unwrap()).await["error"],
        "authorization_pending"
    );

    // The person signs in and approves on B.
    let browser = Browser::new(&b);
    let signed_in = browser.sign_in("/login", "ada", flow::PASSWORD).await;
    assert!(signed_in.status().as_u16() < 400, "{}", signed_in.status());
    browser.approve_device(user_code, "ada").await;

    // A hands the tokens out once; B knows they were.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let res = poll(&a).await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(flow::json(res).await["access_token"].is_string());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(poll(&b).await.unwrap().status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotated_on_one_replica_is_published_and_used_by_all() {
    let Some(redis) = available(module_path!()) else {
        return;
    };
    let cluster = Cluster::start(&redis, &[]).await;
    let (a, b) = (cluster.direct(0), cluster.direct(1));
    let (id, secret) = a.service_client(&["admin", "api"]).await;
    let admin = a.access_token(&id, &secret, Some("admin")).await;
    let before = kids(&b.at(&b.base)).await;
    let rotated = a
        .http
        .post(a.url("/admin/v1/keys/rotate?immediately=true"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(rotated.status(), 201, "{}", rotated.text().await.unwrap());
    let started = Instant::now();
    let after = eventually(5, || async {
        let now = kids(&b.at(&b.base)).await;
        (now.len() > before.len()).then_some(now)
    })
    .await
    .expect("B publishes the new key");
    assert!(started.elapsed() <= Duration::from_secs(2));
    let new_kid = after.iter().find(|k| !before.contains(k)).unwrap().clone();

    // B signs with it within a sync interval, and A accepts what B signed.
    let token = eventually(5, || async {
        let token = b.access_token(&id, &secret, Some("api")).await;
        let header = jsonwebtoken::decode_header(&token).unwrap();
        (header.kid.as_deref() == Some(new_kid.as_str())).then_some(token)
    })
    .await
    .expect("B signs with the new key");
    assert_eq!(a.get_bearer("/api/v1/me", &token).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_lockout_and_rate_limits_are_shared_by_the_replicas() {
    let Some(redis) = available(module_path!()) else {
        return;
    };
    let n = 10;
    let cluster = Cluster::start(
        &redis,
        &[
            ("GATEHOUSE_LOGIN_LOCK_AFTER", "3"),
            ("GATEHOUSE_RATE_LIMIT_TOKEN_PER_CLIENT", "10"),
        ],
    )
    .await;
    let (a, b) = (cluster.direct(0), cluster.direct(1));
    flow::user(&a, "ada").await;
    for app in [&a, &b, &a] {
        let res = Browser::new(app)
            .sign_in("/login", "ada", "wrong password")
            .await;
        assert_eq!(res.status(), 401);
    }
    let locked = Browser::new(&b)
        .sign_in("/login", "ada", flow::PASSWORD)
        .await;
    assert_eq!(locked.status(), 429, "the lock made on A holds on B");

    // 3N token requests spread by nginx over both replicas: exactly N succeed.
    let (id, secret) = cluster.lb.service_client(&["api"]).await;
    let mut ok = 0;
    let mut limited = 0;
    for _ in 0..3 * n {
        let res = cluster
            .lb
            .post_form(
                "/oauth2/token",
                Some((&id, &secret)),
                &[("grant_type", "client_credentials")],
            )
            .await;
        match res.status().as_u16() {
            200 => ok += 1,
            429 => limited += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((ok, limited), (n, 2 * n));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dispatcher_drains_the_outbox_and_no_email_goes_twice() {
    let Some(redis) = available(module_path!()) else {
        return;
    };
    let cluster = Cluster::start(&redis, &[]).await;
    let lb = &cluster.lb;
    let (id, secret) = lb.service_client(&["cases.write"]).await;
    let token = lb.access_token(&id, &secret, None).await;
    let cases = 60;
    for i in 0..cases {
        let res = lb
            .http
            .post(lb.url("/api/v1/cases"))
            .bearer_auth(&token)
            .json(&case(i))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
    }
    let mail = lb.db.path().join("mail");
    let sent = eventually(30, || async {
        let n = std::fs::read_dir(&mail).map_or(0, |d| d.count());
        (n >= cases).then_some(n)
    })
    .await;
    assert_eq!(sent, Some(cases));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(std::fs::read_dir(&mail).unwrap().count(), cases);
    let once = crate::support::query_count(
        &lb.db,
        "SELECT COUNT(*) FROM email_outbox WHERE status = 'sent' AND attempts = 1",
    )
    .await;
    assert_eq!(once, i64::try_from(cases).unwrap());
}

fn case(i: usize) -> Value {
    json!({"case": {"subject": format!("Replica test {i}"),
                    "contact": {"name": "Ada", "email": "ada@example.com"}},
           "line_items": [{"sku": "A-1", "quantity": 1,
                           "unit_price": {"amount_minor": 100, "currency": "EUR"}}],
           "notification": {"to": "ada@example.com"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_under_load_loses_no_acknowledged_write() {
    let Some(redis) = available(module_path!()) else {
        return;
    };
    let mut cluster = Cluster::start(&redis, &[]).await;
    let (id, secret) = cluster
        .lb
        .service_client(&["cases.write", "cases.read"])
        .await;
    let token = cluster.lb.access_token(&id, &secret, None).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..4 {
        let (lb, token, stop) = (cluster.lb.at(&cluster.lb.base), token.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut failed = 0;
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                i += 1;
                let res = lb
                    .http
                    .post(lb.url("/api/v1/cases"))
                    .bearer_auth(&token)
                    .json(&case(w * 100_000 + i))
                    .send()
                    .await;
                match res {
                    Ok(r) if r.status() == 201 => {
                        let body: Value = r.json().await.unwrap();
                        acknowledged
                            .push((Instant::now(), body["id"].as_str().unwrap().to_owned()));
                    }
                    _ => failed += 1,
                }
            }
            (acknowledged, failed)
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cluster.replicas[0].child.start_kill().unwrap();
    let killed_at = Instant::now();
    cluster.replicas[0].child.wait().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut acknowledged = Vec::new();
    let mut failed = 0;
    for w in workers {
        let (a, f) = w.await.unwrap();
        acknowledged.extend(a);
        failed += f;
    }
    let after_kill = acknowledged.iter().filter(|(t, _)| *t > killed_at).count();
    assert!(after_kill > 0, "the survivor kept serving");
    // Requests in flight on the killed replica may fail (nginx does not resend a POST);
    // none that was acknowledged may be lost.
    assert!(failed < acknowledged.len(), "{failed} failed");
    let reader = cluster.lb.at(&cluster.replicas[1].url(""));
    for (_, id) in &acknowledged {
        let res = reader
            .get_bearer(&format!("/api/v1/cases/{id}"), &token)
            .await;
        assert_eq!(res.status(), 200, "acknowledged case {id} is there");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["line_items"].as_array().unwrap().len(), 1);
    }
    let cases = crate::support::query_count(&cluster.lb.db, "SELECT COUNT(*) FROM cases").await;
    assert!(cases >= i64::try_from(acknowledged.len()).unwrap());
    let orphans = crate::support::query_count(
        &cluster.lb.db,
        "SELECT COUNT(*) FROM case_line_items i WHERE NOT EXISTS (SELECT 1 FROM cases c WHERE c.id = i.case_id)",
    )
    .await;
    assert_eq!(orphans, 0);
}
