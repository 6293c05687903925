//! One typed configuration: defaults < `gatehouse.toml` < `GATEHOUSE_*` environment.

mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

pub use crate::model::SigningAlg;

/// The configuration file read when no `--config` is given (it may be absent).
pub const DEFAULT_CONFIG_FILE: &str = "gatehouse.toml";
/// Prefix of every environment variable the server reads.
pub const ENV_PREFIX: &str = "GATEHOUSE_";

/// Whether the server may take development shortcuts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Seeds a demo client and user on a new database and generates a master key file.
    #[default]
    Dev,
    /// Requires an explicit https issuer and master key; never seeds anything.
    Production,
}

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable, coloured when stderr is a terminal.
    #[default]
    Pretty,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Everything the process can be told. Every field has a default; see the README table.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `dev` (default) or `production`.
    pub mode: Mode,
    /// Address the HTTP server binds.
    pub listen: SocketAddr,
    /// Address of the management listener: `/metrics` (and `/healthz`, `/readyz`). Not on
    /// the public listener; keep it off the internet (a private network, a sidecar).
    pub management_listen: SocketAddr,
    /// Public base URL of this server (the `iss` of every token). Defaults to `http://{listen}`.
    pub issuer: Option<String>,
    /// `sqlite://FILE` (created if missing) or `postgres://…`.
    pub database_url: String,
    /// Upper bound of pooled database connections per process.
    pub database_max_connections: u32,
    /// Base64 of 32 random bytes that encrypts private keys at rest.
    pub master_key: Option<SecretString>,
    /// A file holding the master key (base64), as an alternative to `master_key`.
    pub master_key_file: Option<PathBuf>,
    /// Log filter in `RUST_LOG` syntax (`RUST_LOG` itself wins when set).
    pub log: String,
    /// `pretty` or `json`.
    pub log_format: LogFormat,
    /// Whole-request deadline; a slower request is answered 408.
    pub request_timeout_secs: u64,
    /// Largest accepted request body; a larger one is answered 413.
    pub body_limit_bytes: usize,
    /// How long a shutdown waits for in-flight requests before it gives up.
    pub shutdown_grace_secs: u64,
    /// Dev mode only: seed a demo client and user into a new, empty database.
    pub demo: bool,
    /// `aud` of access tokens (the resource API). Defaults to `{issuer}/api`.
    pub audience: Option<String>,
    /// Access token lifetime unless a client overrides it.
    pub access_token_ttl_secs: i64,
    /// Upper bound of any access token lifetime (client overrides are clamped to it); a
    /// retired signing key stays in JWKS this long after it stops signing.
    pub access_token_max_ttl_secs: i64,
    /// Algorithm of access tokens (and of the server's other JWTs): `ES256`, `EdDSA`,
    /// `RS256` or `PS256`.
    pub signing_alg: SigningAlg,
    /// Algorithm of ID tokens for clients that registered no `id_token_signed_response_alg`.
    pub id_token_signing_alg: SigningAlg,
    /// A signing key older than this is rotated automatically.
    pub key_rotation_secs: i64,
    /// A new key is published in JWKS this long before it starts signing.
    pub key_publish_secs: i64,
    /// Clock skew tolerated on `exp`, `nbf` and `iat` of tokens and assertions.
    pub clock_skew_secs: i64,
    /// Longest lifetime a client assertion may claim (`exp - now`).
    pub assertion_max_lifetime_secs: i64,
    /// How old a DPoP proof may be (its `iat`, give or take `clock_skew_secs`); its `jti`
    /// is remembered this long.
    pub dpop_proof_lifetime_secs: i64,
    /// Require a server nonce in every DPoP proof, of every client (otherwise only of
    /// clients registered with `require_dpop_nonce`).
    pub dpop_nonce_required: bool,
    /// Where spent DPoP proof ids are kept until they expire, so that no replica accepts a
    /// proof twice: `database` (the default) or `redis` (needs `redis_url`).
    pub dpop_replay_store: crate::oauth::dpop::ReplayStore,
    /// Rotate the refresh tokens of `fapi2` clients too (the profile advises against it:
    /// without rotation a client keeps its refresh token for the family's life).
    pub fapi2_refresh_token_rotation: bool,
    /// Lifetime of a device code and its user code (RFC 8628 `expires_in`).
    pub device_code_ttl_secs: i64,
    /// Seconds a device waits between polls (RFC 8628 `interval`).
    pub device_poll_interval_secs: i64,
    /// Wrong user codes one browser may enter on /activate within `login_window_secs`
    /// before it must wait `login_lock_secs`.
    pub activate_guesses: i64,
    /// Wrong user codes from one address within `login_window_secs` before it must wait.
    pub activate_guesses_per_address: i64,
    /// How often every process reloads signing keys and revocations from the database.
    pub sync_interval_ms: u64,
    /// How long a browser stays signed in.
    pub session_ttl_secs: i64,
    /// Refresh token (family) lifetime unless a client overrides it; 0 = until revoked.
    pub refresh_token_ttl_secs: i64,
    /// A refresh token unused this long expires, unless a client overrides it.
    pub refresh_token_idle_secs: i64,
    /// Failed sign-ins for one account within `login_window_secs` that lock it.
    pub login_lock_after: i64,
    /// Failed sign-ins from one address within `login_window_secs` that lock it.
    pub login_lock_after_per_address: i64,
    /// Window in which failed sign-ins are counted.
    pub login_window_secs: i64,
    /// How long a locked account or address stays locked.
    pub login_lock_secs: i64,
    /// SMTP server for outgoing email (`smtp://host:25`, `smtp://user:pass@host:587?tls=required`
    /// for STARTTLS, `smtps://user:pass@host:465` for TLS). Unset: email is written as .eml
    /// files into `mail_dir`. May hold a password: never logged.
    pub smtp_url: Option<SecretString>,
    /// Where .eml files go when no SMTP server is set.
    pub mail_dir: PathBuf,
    /// The From address of outgoing email (default `gatehouse@` + the issuer's host).
    pub mail_from: Option<String>,
    /// Delivery attempts before an email is marked failed.
    pub mail_max_attempts: i64,
    /// First retry delay; doubled for each further attempt (with jitter), at most an hour.
    pub mail_retry_secs: i64,
    /// How long a dispatcher holds the emails it claimed: one claimed by a process that died
    /// is delivered by another (or the restarted one) after this long.
    pub mail_lease_secs: i64,
    /// How often the dispatcher looks for due email (it also wakes at once for email
    /// queued by this process).
    pub mail_poll_ms: u64,
    /// Days audit events are kept (0 = forever).
    pub audit_retention_days: i64,
    /// Days delivered or given-up email is kept in the outbox (0 = forever).
    pub mail_retention_days: i64,
    /// Days of daily API usage kept (0 = forever).
    pub usage_retention_days: i64,
    /// Attempts to deliver a logout token before giving it up (Back-Channel Logout).
    pub backchannel_logout_max_attempts: i64,
    /// First retry delay of a logout token; doubled per attempt (with jitter), at most an
    /// hour.
    pub backchannel_logout_retry_secs: i64,
    /// How long a client's back-channel logout URI has to answer one POST.
    pub backchannel_logout_timeout_ms: u64,
    /// Domains a case notification may go to besides the case contact's own address
    /// (`["example.com"]`; a subdomain is not included). Empty: only the contact.
    pub mail_allowed_domains: Vec<String>,
    /// Case notifications one caller (a user of a client, or a service client) may queue
    /// per UTC day (0 = no cap).
    pub mail_daily_limit: i64,
    /// Load balancers and proxies whose `X-Forwarded-For` is believed (addresses or CIDR
    /// ranges). The client's address is the rightmost one in the header that is not one of
    /// them; without this list the connection's peer is the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Redis (`redis://host:6379/0`) that holds the rate limits every replica shares.
    /// Unset: limits are counted in this process. May hold a password: never logged.
    pub redis_url: Option<SecretString>,
    /// When Redis does not answer within 200 ms: `open` serves the request (logging a
    /// warning and counting `gatehouse_rate_limit_backend_errors_total`), `closed`
    /// answers 503 with `Retry-After: 1`.
    pub rate_limit_redis_failure: crate::ratelimit::FailMode,
    /// Prefix of the Redis keys, so that several deployments can share one Redis.
    pub rate_limit_redis_prefix: String,
    /// The window every rate limit below is counted over.
    pub rate_limit_window_secs: u64,
    /// Token and pushed authorization requests per window of one client (0 = no limit).
    pub rate_limit_token_per_client: u32,
    /// Token and pushed authorization requests per window from one address (0 = no limit).
    pub rate_limit_token_per_address: u32,
    /// Device authorization requests per window of one client (0 = no limit).
    pub rate_limit_device_per_client: u32,
    /// Device authorization requests per window from one address (0 = no limit).
    pub rate_limit_device_per_address: u32,
    /// Requests to /login per window from one address (0 = no limit).
    pub rate_limit_login_per_address: u32,
    /// Requests to /activate per window from one address (0 = no limit).
    pub rate_limit_activate_per_address: u32,
    /// Resource API requests per window of one key (`rate_limit_api_key`; 0 = no limit).
    pub rate_limit_api: u32,
    /// What the API limit and the daily cap are counted per: `subject` (a user of a client;
    /// a client-credentials token for its client), `client` (every token of a client) or
    /// `token` (the rate limit per access token; the daily cap as for `subject`).
    pub rate_limit_api_key: crate::ratelimit::ApiLimitKey,
    /// Resource API calls one client may make per UTC day (0 = counted, not capped).
    pub api_daily_limit: u64,
    /// Hours change events are kept for replay (0 = forever). A subscriber that resumes
    /// from an id older than this is refused (410), never silently skipped ahead.
    pub events_retention_hours: i64,
    /// How often an event stream looks for events written by other replicas (events of
    /// this process wake it at once).
    pub events_poll_ms: u64,
    /// Seconds between heartbeat comments on an idle event stream.
    pub events_heartbeat_secs: u64,
    /// Event streams one process holds open at once; more are answered 503.
    pub events_max_streams: usize,
    /// Let webhook endpoints be private, loopback or link-local addresses (tests, a
    /// receiver on the same host). Off: such targets are refused, at registration and at
    /// every delivery (after name resolution).
    pub webhook_allow_private: bool,
    /// How long an endpoint has to answer one delivery.
    pub webhook_timeout_ms: u64,
    /// First retry delay of a failed delivery; doubled per attempt (with jitter), at
    /// most six hours apart.
    pub webhook_retry_secs: i64,
    /// Hours a delivery is retried before it is given up.
    pub webhook_retry_hours: i64,
    /// NATS server (`nats://host:4222`) whose JetStream receives every event. Unset: no
    /// publishing. May hold credentials: never logged.
    pub nats_url: Option<SecretString>,
    /// The JetStream stream that holds the events (created if missing, over the subjects
    /// `<nats_subject_prefix>.>`).
    pub nats_stream: String,
    /// Events are published on `<prefix>.<type>` (`gatehouse.events.case.created`).
    pub nats_subject_prefix: String,
}

impl Default for Config {
    // One line per setting, as in the README's table: split, it would only be harder to
    // check against it.
    #[allow(clippy::too_many_lines)]
    fn default() -> Self {
        Self {
            mode: Mode::Dev,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            management_listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            issuer: None,
            database_url: "sqlite://gatehouse.db".to_owned(),
            database_max_connections: 10,
            master_key: None,
            master_key_file: None,
            log: "info".to_owned(),
            log_format: LogFormat::Pretty,
            request_timeout_secs: 30,
            body_limit_bytes: 1024 * 1024,
            shutdown_grace_secs: 30,
            demo: true,
            audience: None,
            access_token_ttl_secs: 600,
            access_token_max_ttl_secs: 3600,
            signing_alg: SigningAlg::ES256,
            id_token_signing_alg: SigningAlg::RS256,
            key_rotation_secs: 30 * 24 * 3600,
            key_publish_secs: 600,
            clock_skew_secs: 10,
            assertion_max_lifetime_secs: 300,
            dpop_proof_lifetime_secs: 60,
            dpop_nonce_required: false,
            dpop_replay_store: crate::oauth::dpop::ReplayStore::Database,
            fapi2_refresh_token_rotation: false,
            device_code_ttl_secs: 600,
            device_poll_interval_secs: 5,
            activate_guesses: 5,
            activate_guesses_per_address: 20,
            sync_interval_ms: 1000,
            session_ttl_secs: 8 * 3600,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            refresh_token_idle_secs: 7 * 24 * 3600,
            login_lock_after: 5,
            login_lock_after_per_address: 50,
            login_window_secs: 900,
            login_lock_secs: 900,
            smtp_url: None,
            mail_dir: PathBuf::from("mail"),
            mail_from: None,
            mail_max_attempts: 8,
            mail_retry_secs: 2,
            mail_lease_secs: 60,
            mail_poll_ms: 1000,
            audit_retention_days: 90,
            mail_retention_days: 30,
            usage_retention_days: 400,
            backchannel_logout_max_attempts: 8,
            backchannel_logout_retry_secs: 2,
            backchannel_logout_timeout_ms: 5000,
            mail_allowed_domains: Vec::new(),
            mail_daily_limit: 100,
            trusted_proxies: Vec::new(),
            redis_url: None,
            rate_limit_redis_failure: crate::ratelimit::FailMode::Open,
            rate_limit_redis_prefix: "gatehouse".to_owned(),
            rate_limit_window_secs: 60,
            rate_limit_token_per_client: 6000,
            rate_limit_token_per_address: 3000,
            rate_limit_device_per_client: 120,
            rate_limit_device_per_address: 60,
            rate_limit_login_per_address: 120,
            rate_limit_activate_per_address: 120,
            rate_limit_api: 6000,
            rate_limit_api_key: crate::ratelimit::ApiLimitKey::Subject,
            api_daily_limit: 0,
            events_retention_hours: 72,
            events_poll_ms: 500,
            events_heartbeat_secs: 15,
            events_max_streams: 1000,
            webhook_allow_private: false,
            webhook_timeout_ms: 10_000,
            webhook_retry_secs: 5,
            webhook_retry_hours: 72,
            nats_url: None,
            nats_stream: "GATEHOUSE_EVENTS".to_owned(),
            nats_subject_prefix: "gatehouse.events".to_owned(),
        }
    }
}

/// A configuration value that cannot be used; names the key and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(String);

impl ConfigError {
    fn key(key: &str, message: impl std::fmt::Display) -> Self {
        Self(format!(
            "`{key}` (env {ENV_PREFIX}{}): {message}",
            key.to_ascii_uppercase()
        ))
    }
}

impl Config {
    /// Layers defaults, the TOML file and the environment, then validates the result.
    ///
    /// `file` is an explicit `--config` path, which must exist; without it
    /// `gatehouse.toml` in the working directory is read when present.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let toml = match file {
            Some(path) if !path.is_file() => {
                return Err(ConfigError(format!(
                    "the config file {} does not exist",
                    path.display()
                )));
            }
            Some(path) => Toml::file_exact(path),
            None => Toml::file(DEFAULT_CONFIG_FILE),
        };
        let config: Config = Figment::new()
            .merge(toml)
            .merge(
                // GATEHOUSE_CONFIG names the file; GATEHOUSE_TEST_* belong to the test suite.
                Env::prefixed(ENV_PREFIX).filter(|key| {
                    key != "config" && !key.as_str().to_ascii_lowercase().starts_with("test_")
                }),
            )
            .extract()
            .map_err(|errors| {
                ConfigError(
                    errors
                        .into_iter()
                        .map(describe)
                        .collect::<Vec<_>>()
                        .join("; "),
                )
            })?;
        config.validate()?;
        Ok(config)
    }

    /// The issuer: the configured one, or `http://{listen}` in dev mode.
    pub fn issuer_url(&self) -> Result<Url, ConfigError> {
        let raw = match &self.issuer {
            Some(issuer) => issuer.clone(),
            None => format!("http://{}", self.listen),
        };
        let url = Url::parse(&raw).map_err(|e| ConfigError::key("issuer", e))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ConfigError::key("issuer", "must be an http or https URL"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(ConfigError::key(
                "issuer",
                "must not have a query or fragment (RFC 8414 §2)",
            ));
        }
        Ok(url)
    }

    /// The issuer as the exact string that goes into `iss` (no trailing slash).
    pub fn issuer(&self) -> String {
        match self.issuer_url() {
            Ok(url) => url.as_str().trim_end_matches('/').to_owned(),
            Err(_) => format!("http://{}", self.listen),
        }
    }
}

impl Config {
    /// `aud` of access tokens.
    pub fn audience(&self) -> String {
        self.audience
            .clone()
            .unwrap_or_else(|| format!("{}/api", self.issuer()))
    }
}

/// One figment error as `key: what is wrong (where it came from)`, keys in lower case.
fn describe(e: figment::Error) -> String {
    let key = e.path.join(".").to_ascii_lowercase();
    let source = e.metadata.as_ref().map(|m| {
        let file = m
            .source
            .as_ref()
            .map(|s| format!(" {s}"))
            .unwrap_or_default();
        format!(" (from {}{file})", m.name)
    });
    let source = source.unwrap_or_default();
    if key.is_empty() {
        format!("{}{source}", e.kind)
    } else {
        format!(
            "`{key}` (env {ENV_PREFIX}{}): {}{source}",
            key.to_ascii_uppercase(),
            e.kind
        )
    }
}

/// Decodes a master key: base64 (standard alphabet) of exactly 32 bytes.
pub fn parse_master_key(text: &str) -> Result<[u8; 32], String> {
    let bytes = STANDARD
        .decode(text.trim())
        .map_err(|_| "must be base64 of 32 random bytes".to_owned())?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| format!("must be 32 bytes, got {}", bytes.len()))
}
