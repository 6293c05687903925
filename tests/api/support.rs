//! Test harness: fresh databases on both backends, the app on a random port, the binary as
//! a child process, and a TCP proxy that can cut the database off.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use gatehouse::App;
use gatehouse::config::Config;
use sqlx::Connection as _;
use tokio::io::AsyncBufReadExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

pub use gatehouse::store::Backend;

/// Runs an async test body once on SQLite and once on PostgreSQL.
///
/// The PostgreSQL run needs `GATEHOUSE_TEST_POSTGRES_URL`; without it the test says that it
/// skipped and why, unless `GATEHOUSE_TEST_REQUIRE_ALL=1` (CI), where skipping is a failure.
macro_rules! on_both_backends {
    ($(#[$meta:meta])* async fn $name:ident($backend:ident: Backend) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn run($backend: $crate::support::Backend) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                run($crate::support::Backend::Sqlite).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if $crate::support::postgres_available(concat!(module_path!(), "::postgres")) {
                    run($crate::support::Backend::Postgres).await
                }
            }
        }
    };
}
pub(crate) use on_both_backends;

/// Whether PostgreSQL tests can run; says so on stderr when they skip.
pub fn postgres_available(test: &str) -> bool {
    if std::env::var("GATEHOUSE_TEST_POSTGRES_URL").is_ok_and(|v| !v.is_empty()) {
        return true;
    }
    assert!(
        !require_all(),
        "{test}: GATEHOUSE_TEST_REQUIRE_ALL=1 but GATEHOUSE_TEST_POSTGRES_URL is not set"
    );
    // Written to the stream directly: the test harness swallows eprintln! of passing tests.
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: set GATEHOUSE_TEST_POSTGRES_URL=postgres://… to run it on PostgreSQL"
    );
    false
}

/// CI sets this: no test may skip.
pub fn require_all() -> bool {
    std::env::var("GATEHOUSE_TEST_REQUIRE_ALL").is_ok_and(|v| v == "1")
}

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// A fresh, empty database: a SQLite file in a temporary directory, or a PostgreSQL schema
/// of its own in the test database.
pub struct TestDb {
    /// The URL the server and CLI use.
    pub url: String,
    /// Which backend.
    pub backend: Backend,
    /// Working directory for child processes (and the SQLite file).
    pub dir: tempfile::TempDir,
    /// The master key the server and the CLI share for this database.
    pub master_key: String,
    schema: Option<String>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let master_key = {
            use base64::Engine as _;
            let mut bytes = [0u8; 32];
            gatehouse::oauth::secret::fill_random(&mut bytes);
            base64::engine::general_purpose::STANDARD.encode(bytes)
        };
        match backend {
            Backend::Sqlite => {
                let url = format!("sqlite://{}", dir.path().join("gatehouse.db").display());
                Self {
                    url,
                    backend,
                    dir,
                    master_key,
                    schema: None,
                }
            }
            Backend::Postgres => {
                let base = std::env::var("GATEHOUSE_TEST_POSTGRES_URL").unwrap();
                let schema = unique("t");
                let mut conn = sqlx::PgConnection::connect(&base).await.unwrap();
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                conn.close().await.unwrap();
                let url = with_search_path(&base, &schema);
                Self {
                    url,
                    backend,
                    dir,
                    master_key,
                    schema: Some(schema),
                }
            }
        }
    }

    /// The same database (and master key) for a second server; dropping it drops nothing.
    pub fn share(&self) -> TestDb {
        TestDb {
            url: self.url.clone(),
            backend: self.backend,
            dir: tempfile::tempdir().unwrap(),
            master_key: self.master_key.clone(),
            schema: None,
        }
    }

    /// Working directory for child processes.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The same database reached through `proxy` (PostgreSQL only).
    pub fn url_via(&self, proxy: &Proxy) -> String {
        let mut url = url::Url::parse(&self.url).unwrap();
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(proxy.addr.port())).unwrap();
        url.to_string()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(schema) = self.schema.take() {
            // Best effort, on its own thread: Drop cannot await and the runtime may be gone.
            let base = std::env::var("GATEHOUSE_TEST_POSTGRES_URL").unwrap_or_default();
            let _ = std::thread::spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async {
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&base).await {
                        let sql = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
                        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                            .execute(&mut conn)
                            .await;
                    }
                });
            })
            .join();
        }
    }
}

fn with_search_path(base: &str, schema: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}

/// A server running in-process on a random port, with its own fresh database.
pub struct TestApp {
    pub base: String,
    /// The management listener (metrics, health).
    pub management: String,
    pub http: reqwest::Client,
    pub db: TestDb,
    pub app_state: gatehouse::http::state::AppState,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, |_| {}).await
    }

    pub async fn spawn_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Self {
        let db = TestDb::new(backend).await;
        Self::spawn_on(db, tweak).await
    }

    /// Serves on an existing test database (its URL may be overridden by `tweak`).
    pub async fn spawn_on(db: TestDb, tweak: impl FnOnce(&mut Config)) -> Self {
        Self::spawn_full(
            db,
            std::sync::Arc::new(gatehouse::clock::SystemClock),
            tweak,
        )
        .await
    }

    /// Serves on a fresh database with a clock the test moves.
    pub async fn spawn_with_clock(
        backend: Backend,
        clock: gatehouse::clock::SharedClock,
        tweak: impl FnOnce(&mut Config),
    ) -> Self {
        Self::spawn_full(TestDb::new(backend).await, clock, tweak).await
    }

    async fn spawn_full(
        db: TestDb,
        clock: gatehouse::clock::SharedClock,
        tweak: impl FnOnce(&mut Config),
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut config = Config {
            database_url: db.url.clone(),
            listen: addr,
            issuer: Some(format!("http://{addr}")),
            master_key: Some(db.master_key.clone().into()),
            demo: false,
            mail_dir: db.dir.path().join("mail"),
            ..Config::default()
        };
        tweak(&mut config);
        let app = App::build_with_clock(config, clock).await.unwrap();
        let app_state = app.state().clone();
        let shutdown = CancellationToken::new();
        let management = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let management_base = format!("http://{}", management.local_addr().unwrap());
        let task =
            tokio::spawn(app.serve(listener, management, shutdown.clone().cancelled_owned()));
        Self {
            base: format!("http://{addr}"),
            management: management_base,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            db,
            app_state,
            shutdown,
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.unwrap()
    }

    /// The management listener's Prometheus text.
    pub async fn metrics(&self) -> String {
        let url = format!("{}/metrics", self.management);
        self.http
            .get(url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Registers a client through the library; returns its id and secret.
    pub async fn register(
        &self,
        new: gatehouse::oauth::clients::NewClient,
    ) -> (String, Option<String>) {
        use secrecy::ExposeSecret as _;
        let created = gatehouse::oauth::clients::create(
            &self.app_state.store,
            self.app_state.clock.as_ref(),
            new,
        )
        .await
        .unwrap();
        (
            created.client.client_id.to_string(),
            created.secret.map(|s| s.expose_secret().to_owned()),
        )
    }

    /// A confidential client_credentials client with these scopes.
    pub async fn service_client(&self, scopes: &[&str]) -> (String, String) {
        let (id, secret) = self
            .register(gatehouse::oauth::clients::NewClient {
                name: "service".to_owned(),
                client_type: "confidential".to_owned(),
                grant_types: vec!["client_credentials".to_owned()],
                scopes: scopes.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            })
            .await;
        (id, secret.unwrap())
    }

    /// POSTs a form to `path` with HTTP Basic client credentials.
    pub async fn post_form(
        &self,
        path: &str,
        basic: Option<(&str, &str)>,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self.http.post(self.url(path)).form(form);
        if let Some((id, secret)) = basic {
            request = request.basic_auth(id, Some(secret));
        }
        request.send().await.unwrap()
    }

    /// A client_credentials access token.
    pub async fn access_token(&self, id: &str, secret: &str, scope: Option<&str>) -> String {
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        let res = self
            .post_form("/oauth2/token", Some((id, secret)), &form)
            .await;
        assert_eq!(res.status(), 200);
        res.json::<serde_json::Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// GET with a bearer token.
    pub async fn get_bearer(&self, path: &str, token: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// The same database and library state, with HTTP helpers that talk to `base` (a
    /// replica or the load balancer of a [`crate::scaleout::Cluster`]).
    pub fn at(&self, base: &str) -> TestApp {
        TestApp {
            base: base.trim_end_matches('/').to_owned(),
            management: String::new(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            db: self.db.share(),
            app_state: self.app_state.clone(),
            shutdown: CancellationToken::new(),
            task: None,
        }
    }

    /// The library on `db` (to register clients and users), serving nothing: its HTTP
    /// helpers talk to `base`.
    pub async fn unserved(db: TestDb, base: &str) -> TestApp {
        let config = Config {
            database_url: db.url.clone(),
            issuer: Some(base.to_owned()),
            master_key: Some(db.master_key.clone().into()),
            demo: false,
            mail_dir: db.dir.path().join("mail"),
            ..Config::default()
        };
        let app = App::build(config).await.unwrap();
        let shutdown = CancellationToken::new();
        TestApp {
            base: base.to_owned(),
            management: String::new(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            db,
            app_state: app.state().clone(),
            shutdown,
            task: None,
        }
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The `gatehouse` binary, run in the test database's directory with its URL.
pub fn gatehouse(db: &TestDb) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    cmd.current_dir(db.path())
        .env("GATEHOUSE_DATABASE_URL", &db.url)
        .env("GATEHOUSE_MASTER_KEY", &db.master_key)
        .env("GATEHOUSE_LOG", "warn")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// What a finished command printed.
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {}\nstderr: {}",
                self.stdout, self.stderr
            )
        })
    }

    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "command failed: {}\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// Runs the CLI with `args`, feeding `stdin` when given.
pub async fn cli(db: &TestDb, args: &[&str], stdin: Option<&str>) -> Output {
    run(gatehouse(db).args(args), stdin).await
}

pub async fn run(cmd: &mut tokio::process::Command, stdin: Option<&str>) -> Output {
    use tokio::io::AsyncWriteExt as _;
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(input.as_bytes()).await.unwrap();
        drop(pipe);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the command did not finish within 60 s")
        .unwrap();
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `gatehouse serve` as a child process, logging JSON, on a port the OS picked.
pub struct ServerProcess {
    pub child: tokio::process::Child,
    pub addr: SocketAddr,
    /// The management listener (metrics, health).
    pub management: SocketAddr,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl ServerProcess {
    pub async fn start(db: &TestDb, env: &[(&str, &str)]) -> Self {
        let mut cmd = gatehouse(db);
        cmd.arg("serve")
            .env("GATEHOUSE_LISTEN", "127.0.0.1:0")
            .env("GATEHOUSE_MANAGEMENT_LISTEN", "127.0.0.1:0")
            .env("GATEHOUSE_LOG_FORMAT", "json")
            .env("GATEHOUSE_LOG", "info")
            .env("GATEHOUSE_DEMO", "false");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (mtx, mrx) = tokio::sync::oneshot::channel();
        let sink = log.clone();
        tokio::spawn(async move {
            let (mut tx, mut mtx) = (Some(tx), Some(mtx));
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(addr) = logged_address(&line, "listening")
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(addr);
                }
                if let Some(addr) = logged_address(&line, "management listening (metrics, health)")
                    && let Some(mtx) = mtx.take()
                {
                    let _ = mtx.send(addr);
                }
                sink.lock().await.push(line);
            }
        });
        let started = async { (rx.await, mrx.await) };
        let (addr, management) = match tokio::time::timeout(Duration::from_secs(30), started).await
        {
            Ok((Ok(addr), Ok(management))) => (addr, management),
            _ => panic!("the server did not start: {:?}", log.lock().await),
        };
        Self {
            child,
            addr,
            management,
            log,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The value of the counter `name` (without labels) on the management listener.
    pub async fn counter(&self, name: &str) -> f64 {
        let text = reqwest::get(format!("http://{}/metrics", self.management))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0.0)
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let pid = self.child.id().unwrap();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub async fn wait(&mut self) -> i32 {
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("the server did not exit within 30 s")
            .unwrap()
            .code()
            .unwrap_or(-1)
    }
}

fn logged_address(line: &str, message: &str) -> Option<SocketAddr> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    if v["fields"]["message"] != message {
        return None;
    }
    v["fields"]["address"].as_str()?.parse().ok()
}

/// A TCP proxy in front of the database that can be cut off and frozen, to play outages.
pub struct Proxy {
    pub addr: SocketAddr,
    up: Arc<AtomicBool>,
    frozen: Arc<AtomicBool>,
    generation: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let frozen = Arc::new(AtomicBool::new(false));
        let generation = Arc::new(tokio::sync::watch::channel(0u64).0);
        let (u, f, g) = (up.clone(), frozen.clone(), generation.clone());
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if !u.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let (f, mut cut) = (f.clone(), g.subscribe());
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = pipe(inbound, outbound, f) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Self {
            addr,
            up,
            frozen,
            generation,
        }
    }

    /// Refuses new connections and drops every open one.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }

    /// Holds every byte in either direction until `thaw` (a database that stalls).
    pub fn freeze(&self) {
        self.frozen.store(true, Ordering::SeqCst);
    }

    pub fn thaw(&self) {
        self.frozen.store(false, Ordering::SeqCst);
    }
}

async fn pipe(a: TcpStream, b: TcpStream, frozen: Arc<AtomicBool>) {
    let (ar, aw) = a.into_split();
    let (br, bw) = b.into_split();
    tokio::join!(copy(ar, bw, frozen.clone()), copy(br, aw, frozen));
}

async fn copy(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: Arc<AtomicBool>,
) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while frozen.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// The PostgreSQL server's address, from the test URL.
pub fn postgres_addr() -> SocketAddr {
    let url = url::Url::parse(&std::env::var("GATEHOUSE_TEST_POSTGRES_URL").unwrap()).unwrap();
    let host = url.host_str().unwrap_or("127.0.0.1");
    let host = if host == "localhost" {
        "127.0.0.1"
    } else {
        host
    };
    format!("{host}:{}", url.port().unwrap_or(5432))
        .parse()
        .unwrap()
}

/// The key ids `app` publishes in its JWKS, in order.
pub async fn kids(app: &TestApp) -> Vec<String> {
    let jwks: serde_json::Value = app.get("/oauth2/jwks").await.json().await.unwrap();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// A confidential client_credentials client with `scope`, created with the CLI (for a
/// server the test starts as a process): its id and secret.
pub async fn cli_service_client(db: &TestDb, scope: &str) -> (String, String) {
    let created = cli(
        db,
        &[
            "client",
            "create",
            "--name",
            "svc",
            "--type",
            "confidential",
            "--grant",
            "client_credentials",
            "--scope",
            scope,
            "--json",
        ],
        None,
    )
    .await
    .ok()
    .json();
    let field = |name: &str| created[name].as_str().unwrap().to_owned();
    (field("client_id"), field("client_secret"))
}

/// Polls `f` until it returns `Some`, for at most `secs` seconds.
pub async fn eventually<T, F, Fut>(secs: u64, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if tokio::time::Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[allow(dead_code)]
pub fn manifest_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Runs one SQL statement directly on a test database (to play operator mishaps).
pub async fn execute_sql(db: &TestDb, sql: &'static str) {
    match db.backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            sqlx::query(sql).execute(&mut conn).await.unwrap();
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::query(sql).execute(&mut conn).await.unwrap();
        }
    }
}

/// The single number one SQL query answers (row counts), read directly from a test database.
#[allow(dead_code)]
pub async fn query_count(db: &TestDb, sql: &'static str) -> i64 {
    match db.backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
        }
    }
}

/// The Redis of the shared rate-limit tests (`GATEHOUSE_TEST_REDIS_URL`), or `None` after
/// saying on stderr that the test skipped (a failure under `GATEHOUSE_TEST_REQUIRE_ALL=1`).
pub fn redis_url(test: &str) -> Option<String> {
    if let Ok(url) = std::env::var("GATEHOUSE_TEST_REDIS_URL")
        && !url.is_empty()
    {
        return Some(url);
    }
    assert!(
        !require_all(),
        "{test}: GATEHOUSE_TEST_REDIS_URL=redis://… is required under GATEHOUSE_TEST_REQUIRE_ALL=1"
    );
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: set GATEHOUSE_TEST_REDIS_URL=redis://127.0.0.1:6379 to run it"
    );
    None
}

/// A Redis key prefix no other test uses.
pub fn redis_prefix() -> String {
    unique("gatehouse_test")
}
