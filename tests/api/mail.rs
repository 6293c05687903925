//! The email outbox delivered for real: .eml files, a real SMTP server (Debian's aiosmtpd)
//! that is down for a while, and two dispatchers on one PostgreSQL.

use rstest::rstest;
use rstest_reuse::apply;

use crate::support::{both_backends, unavailable};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::cases::contract_body;
use crate::flow::json;
use crate::support::{Backend, TestApp, eventually, postgres_available, query_count};

async fn create_case(app: &TestApp, token: &str, to: &str) -> Value {
    let mut body = contract_body();
    body["case"]["contact"]["email"] = Value::from(to);
    body["notification"]["to"] = Value::from(to);
    let response = app
        .http
        .post(app.url("/api/v1/cases"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    json(response).await
}

async fn service_token(app: &TestApp) -> String {
    let (id, secret) = app.service_client(&["cases.write"]).await;
    app.access_token(&id, &secret, None).await
}

/// The notification of a case once it is no longer queued.
async fn settled(app: &TestApp, token: &str, case: &Value, secs: u64) -> Value {
    let path = format!("/api/v1/cases/{}", case["id"].as_str().unwrap());
    eventually(secs, || async {
        let case = json(app.get_bearer(&path, token).await).await;
        (case["notification"]["status"] != "queued").then(|| case["notification"].clone())
    })
    .await
    .expect("the notification settles")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    found.retain(|p| p.extension().is_some_and(|e| e == "eml"));
    found.sort();
    found
}

/// Decodes a message's text part as a mail reader would (quoted-printable or not).
fn text_of(raw: &str) -> String {
    raw.replace("=\r\n", "").replace("=3D", "=")
}

#[apply(both_backends)]
async fn queued_email_becomes_an_eml_file_and_the_case_shows_it_sent(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let token = service_token(&app).await;
    let case = create_case(&app, &token, "ada@example.com").await;
    let notification = settled(&app, &token, &case, 10).await;
    assert_eq!(notification["status"], "sent");
    assert_eq!(notification["attempts"], 1);

    let mail_dir = app.db.path().join("mail");
    let written = files(&mail_dir);
    assert_eq!(written.len(), 1, "{written:?}");
    let raw = std::fs::read_to_string(&written[0]).unwrap();
    assert!(raw.contains("To: ada@example.com"), "{raw}");
    assert!(
        raw.contains("Subject: Case 00001024: Printer on fire"),
        "{raw}"
    );
    let host = url::Url::parse(&app.base)
        .unwrap()
        .host_str()
        .unwrap()
        .to_owned();
    assert!(
        raw.contains(&format!("@{host}>")),
        "Message-ID on the issuer's host: {raw}"
    );
    assert!(
        raw.contains("multipart/alternative") && raw.contains("text/html"),
        "{raw}"
    );
    let text = text_of(&raw);
    assert!(
        text.contains("TONER-1") && text.contains("19.99 EUR") && text.contains("0 JPY"),
        "{text}"
    );
    app.stop().await;
}

/// Debian's aiosmtpd on `port`, storing what it receives in a maildir.
struct SmtpSink {
    child: tokio::process::Child,
    maildir: tempfile::TempDir,
}

impl SmtpSink {
    async fn start(port: u16) -> Self {
        let maildir = tempfile::tempdir().unwrap();
        let child = tokio::process::Command::new("/usr/bin/python3")
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            // A path that does not exist yet: the handler creates the maildir only then.
            .arg(maildir.path().join("box"))
            .kill_on_drop(true)
            .spawn()
            .expect("aiosmtpd (apt-get install python3-aiosmtpd)");
        let up = eventually(10, || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
                .map(|_| ())
        })
        .await;
        assert!(up.is_some(), "aiosmtpd listens on {port}");
        Self { child, maildir }
    }

    fn messages(&self) -> Vec<String> {
        let new = self.maildir.path().join("box").join("new");
        let mut all: Vec<String> = std::fs::read_dir(new)
            .map(|entries| {
                entries
                    .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
                    .collect()
            })
            .unwrap_or_default();
        all.sort();
        all
    }

    async fn stop(mut self) {
        self.child.kill().await.unwrap();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[apply(both_backends)]
async fn smtp_delivery_waits_out_a_server_that_is_down(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let port = free_port();
    let app = TestApp::spawn_with(backend, |c| {
        c.smtp_url = Some(format!("smtp://127.0.0.1:{port}").into());
        c.mail_retry_secs = 1;
        c.mail_poll_ms = 100;
        c.mail_from = Some("Support <support@example.com>".to_owned());
    })
    .await;
    let token = service_token(&app).await;
    let case = create_case(&app, &token, "grace@example.com").await;
    let path = format!("/api/v1/cases/{}", case["id"].as_str().unwrap());
    // Nothing listens: attempts fail and the email stays queued.
    let failed_once = eventually(10, || async {
        let case = json(app.get_bearer(&path, &token).await).await;
        (case["notification"]["attempts"].as_i64() >= Some(1)).then_some(case)
    })
    .await
    .expect("an attempt is made");
    assert_eq!(failed_once["notification"]["status"], "queued");

    let sink = SmtpSink::start(port).await;
    let notification = settled(&app, &token, &case, 20).await;
    assert_eq!(notification["status"], "sent");
    let messages = sink.messages();
    assert_eq!(messages.len(), 1, "delivered exactly once");
    let raw = &messages[0];
    assert!(raw.contains("To: grace@example.com"), "{raw}");
    assert!(raw.contains("From: Support <support@example.com>"), "{raw}");
    assert!(
        raw.contains("Subject: Case 00001024: Printer on fire"),
        "{raw}"
    );
    assert!(text_of(raw).contains("TONER-1"), "{raw}");
    sink.stop().await;
    app.stop().await;
}

#[apply(both_backends)]
async fn an_email_is_marked_failed_after_the_last_attempt(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let port = free_port();
    let app = TestApp::spawn_with(backend, |c| {
        c.smtp_url = Some(format!("smtp://127.0.0.1:{port}").into());
        c.mail_retry_secs = 1;
        c.mail_poll_ms = 100;
        c.mail_max_attempts = 2;
    })
    .await;
    let token = service_token(&app).await;
    let case = create_case(&app, &token, "lost@example.com").await;
    let notification = settled(&app, &token, &case, 20).await;
    assert_eq!(notification["status"], "failed");
    assert_eq!(notification["attempts"], 2);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_dispatchers_on_one_postgres_never_send_an_email_twice() {
    if !postgres_available("mail::two_dispatchers_on_one_postgres_never_send_an_email_twice") {
        return;
    }
    // 120 notifications from one caller: more than its daily cap.
    let first = TestApp::spawn_with(Backend::Postgres, |c| c.mail_daily_limit = 0).await;
    let second = TestApp::spawn_on(first.db.share(), |c| c.mail_daily_limit = 0).await;
    let (id, secret) = first.service_client(&["cases.write"]).await;
    // Each replica here has an issuer of its own (its port): a token for each.
    let tokens = [
        first.access_token(&id, &secret, None).await,
        second.access_token(&id, &secret, None).await,
    ];
    let cases: Vec<Value> = futures::future::join_all((0..120).map(|i| {
        let app = if i % 2 == 0 { &first } else { &second };
        create_case(app, &tokens[i % 2], "many@example.com")
    }))
    .await;
    assert_eq!(cases.len(), 120);
    let drained = eventually(30, || async {
        let queued = query_count(
            &first.db,
            "SELECT COUNT(*) FROM email_outbox WHERE status <> 'sent'",
        )
        .await;
        (queued == 0).then_some(())
    })
    .await;
    assert!(drained.is_some(), "every email is sent");
    let a = files(&first.db.path().join("mail"));
    let b = files(&second.db.path().join("mail"));
    let names = |v: &[PathBuf]| {
        v.iter()
            .map(|p| p.file_name().unwrap().to_owned())
            .collect::<std::collections::HashSet<_>>()
    };
    assert!(
        names(&a).is_disjoint(&names(&b)),
        "no email written by both dispatchers"
    );
    assert_eq!(a.len() + b.len(), 120);
    assert_eq!(
        query_count(
            &first.db,
            "SELECT COUNT(*) FROM email_outbox WHERE attempts <> 1"
        )
        .await,
        0
    );
    tokio::time::sleep(Duration::from_millis(10)).await;
    second.stop().await;
    first.stop().await;
}
