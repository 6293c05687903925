//! The fuzz targets' harness: one real Gatehouse (router, SQLite store, key ring) per fuzz
//! process, driven in memory through the router exactly as a request from the network
//! would be. Every target asserts the same thing: no answer is a 500 (a panic is turned
//! into one by the router's catch-panic layer) and none takes the process down.

use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{HeaderValue, Request, StatusCode, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http_body_util::BodyExt as _;
use secrecy::ExposeSecret as _;
use tower::ServiceExt as _;

/// What the targets share: the app and the credentials they use.
pub struct Harness {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    /// A confidential client_credentials client with every API scope and `admin`.
    pub service: (String, String),
    /// An access token of `service`.
    pub token: String,
    /// A private_key_jwt partner client (client assertions and the JWT bearer grant).
    pub partner: String,
    _dir: tempfile::TempDir,
}

static HARNESS: OnceLock<Harness> = OnceLock::new();

/// The process's harness, built on first use.
pub fn harness() -> &'static Harness {
    HARNESS.get_or_init(|| Harness::build().unwrap_or_else(|e| panic!("harness: {e:#}")))
}

impl Harness {
    fn build() -> anyhow_free::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let dir = tempfile::tempdir()?;
        let config = gatehouse::config::Config {
            database_url: format!("sqlite://{}", dir.path().join("fuzz.db").display()),
            master_key: Some(
                base64::engine::general_purpose::STANDARD
                    .encode([7u8; 32])
                    .into(),
            ),
            demo: false,
            log: "off".to_owned(),
            mail_dir: dir.path().join("mail"),
            mail_daily_limit: 0,
            // The targets' token must outlive a long run.
            access_token_ttl_secs: 3600,
            rate_limit_token_per_client: 0,
            rate_limit_token_per_address: 0,
            rate_limit_device_per_client: 0,
            rate_limit_device_per_address: 0,
            rate_limit_login_per_address: 0,
            rate_limit_activate_per_address: 0,
            rate_limit_api: 0,
            ..Default::default()
        };
        let (app, service, partner) = runtime.block_on(async {
            let app = gatehouse::App::build(config).await?;
            let state = app.state();
            let new = |name: &str, grant: &str, auth: Option<&str>| {
                gatehouse::oauth::clients::NewClient {
                    name: name.to_owned(),
                    client_type: "confidential".to_owned(),
                    grant_types: vec![grant.to_owned()],
                    scopes: ["api", "cases.read", "cases.write"]
                        .map(str::to_owned)
                        .to_vec(),
                    auth_method: auth.map(str::to_owned),
                    ..Default::default()
                }
            };
            let mut service = new("fuzz", "client_credentials", None);
            service.scopes.push("admin".to_owned());
            let service =
                gatehouse::oauth::clients::create(&state.store, state.clock.as_ref(), service)
                    .await?;
            let partner = gatehouse::oauth::clients::create(
                &state.store,
                state.clock.as_ref(),
                new("partner", "client_credentials", Some("private_key_jwt")),
            )
            .await?;
            Ok::<_, anyhow_free::Error>((
                app,
                (
                    service.client.client_id.to_string(),
                    service
                        .secret
                        .map(|s| s.expose_secret().to_owned())
                        .unwrap_or_default(),
                ),
                partner.client.client_id.to_string(),
            ))
        })?;
        let router = app.router();
        let mut harness = Self {
            runtime,
            router,
            service,
            token: String::new(),
            partner,
            _dir: dir,
        };
        let form = "grant_type=client_credentials&scope=api%20cases.read%20cases.write%20admin";
        let (status, body) = harness.send(
            Request::post("/oauth2/token")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::AUTHORIZATION, harness.basic())
                .body(Body::from(form))?,
        );
        if status != StatusCode::OK {
            return Err(format!("no token: {status} {}", String::from_utf8_lossy(&body)).into());
        }
        let answer: serde_json::Value = serde_json::from_slice(&body)?;
        harness.token = answer["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        Ok(harness)
    }

    /// `Authorization: Basic` of the service client.
    pub fn basic(&self) -> String {
        let (id, secret) = &self.service;
        let pair = format!("{id}:{secret}");
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }

    /// Sends `request` through the router: its status and body.
    pub fn send(&self, request: Request<Body>) -> (StatusCode, Vec<u8>) {
        self.runtime.block_on(async {
            let response = match self.router.clone().oneshot(request).await {
                Ok(response) => response,
                Err(infallible) => match infallible {},
            };
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes().to_vec())
                .unwrap_or_default();
            (status, body)
        })
    }

    /// Sends `request` and fails the run on a 500 (a panic, or an error the input caused).
    pub fn check(&self, request: Request<Body>) {
        let (status, body) = self.send(request);
        assert!(
            status != StatusCode::INTERNAL_SERVER_ERROR,
            "500 for fuzz input: {}",
            String::from_utf8_lossy(&body)
        );
    }
}

/// A form POST to `path` with an optional `Authorization` header.
pub fn form_post(path: &str, authorization: Option<&[u8]>, body: Vec<u8>) -> Request<Body> {
    let mut request = Request::post(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .unwrap_or_default();
    if let Some(value) = authorization.and_then(|v| HeaderValue::from_bytes(v).ok()) {
        request.headers_mut().insert(header::AUTHORIZATION, value);
    }
    request
}

/// A JWT-shaped string from fuzz bytes: up to three parts split at 0xFF, each
/// base64url-encoded (so that the parsers behind the JWS decoding are reached too).
pub fn jwt_from(data: &[u8]) -> String {
    data.split(|b| *b == 0xFF)
        .take(3)
        .map(|part| URL_SAFE_NO_PAD.encode(part))
        .collect::<Vec<_>>()
        .join(".")
}

/// `value` form-encoded.
pub fn encode(value: &str) -> String {
    url_encode(value)
}

fn url_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Errors of the harness set-up (no extra crate for it).
mod anyhow_free {
    pub type Error = Box<dyn std::error::Error + Send + Sync>;
    pub type Result<T> = std::result::Result<T, Error>;
}
