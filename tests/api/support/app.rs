//! The server in-process on a random port, with its own fresh database.

use gatehouse::App;
use gatehouse::config::Config;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::*;

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

    /// Registers a client through the library (with the signing keys its ID tokens
    /// need); returns its id and secret.
    pub async fn register(
        &self,
        new: gatehouse::oauth::clients::NewClient,
    ) -> (String, Option<String>) {
        use secrecy::ExposeSecret as _;
        let state = &self.app_state;
        let created = gatehouse::oauth::clients::register(
            &state.store,
            state.clock.as_ref(),
            state.tokens.ring.master(),
            new,
        )
        .await
        .unwrap();
        state.tokens.ring.refresh(&state.store).await.unwrap();
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

    /// What introspection answers client `id` (Basic `secret`) about `token`.
    pub async fn introspect(&self, id: &str, secret: &str, token: &str) -> serde_json::Value {
        let res = self
            .post_form(
                "/oauth2/introspect",
                Some((id, secret)),
                &[("token", token)],
            )
            .await;
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
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

/// The ids of the access-token keys (the `signing_alg` line) `app` publishes in its JWKS,
/// in order.
pub async fn kids(app: &TestApp) -> Vec<String> {
    let jwks: serde_json::Value = app.get("/oauth2/jwks").await.json().await.unwrap();
    let alg = app.app_state.config.signing_alg.as_str();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["alg"] == alg)
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}
