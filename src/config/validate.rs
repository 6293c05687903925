//! Checking a configuration before anything starts: the first unusable value, by key.

use secrecy::ExposeSecret as _;
use url::Url;

use super::{Config, ConfigError, Mode, parse_master_key};

impl Config {
    /// Checks every value; the error names the first key that cannot be used.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let issuer = self.issuer_url()?;
        self.check_connections()?;
        self.check_minimums()?;
        self.check_mail()?;
        self.check_events()?;
        self.check_keys()?;
        if self.mode == Mode::Production {
            self.check_production(&issuer)?;
        }
        Ok(())
    }

    /// The database, Redis, request and body limits.
    fn check_connections(&self) -> Result<(), ConfigError> {
        if !self.database_url.starts_with("sqlite:")
            && !self.database_url.starts_with("postgres://")
            && !self.database_url.starts_with("postgresql://")
        {
            return Err(ConfigError::key(
                "database_url",
                "must start with sqlite: or postgres://",
            ));
        }
        if self.database_max_connections == 0 {
            return Err(ConfigError::key(
                "database_max_connections",
                "must be at least 1",
            ));
        }
        if self.rate_limit_window_secs == 0 {
            return Err(ConfigError::key(
                "rate_limit_window_secs",
                "must be at least 1",
            ));
        }
        if let Some(url) = &self.redis_url
            && redis::Client::open(url.expose_secret()).is_err()
        {
            return Err(ConfigError::key(
                "redis_url",
                "must be a redis:// or rediss:// URL",
            ));
        }
        if self.dpop_replay_store == crate::oauth::dpop::ReplayStore::Redis
            && self.redis_url.is_none()
        {
            return Err(ConfigError::key(
                "dpop_replay_store",
                "redis needs redis_url",
            ));
        }
        if self.request_timeout_secs == 0 {
            return Err(ConfigError::key(
                "request_timeout_secs",
                "must be at least 1",
            ));
        }
        if self.body_limit_bytes < 1024 {
            return Err(ConfigError::key(
                "body_limit_bytes",
                "must be at least 1024",
            ));
        }
        Ok(())
    }

    /// Lifetimes, counts and intervals with a lower bound; the access token lifetime within its maximum.
    fn check_minimums(&self) -> Result<(), ConfigError> {
        for (key, value, min) in [
            ("access_token_ttl_secs", self.access_token_ttl_secs, 1),
            (
                "access_token_max_ttl_secs",
                self.access_token_max_ttl_secs,
                1,
            ),
            ("key_rotation_secs", self.key_rotation_secs, 3600),
            ("key_publish_secs", self.key_publish_secs, 0),
            ("clock_skew_secs", self.clock_skew_secs, 0),
            (
                "assertion_max_lifetime_secs",
                self.assertion_max_lifetime_secs,
                1,
            ),
            ("dpop_proof_lifetime_secs", self.dpop_proof_lifetime_secs, 1),
            ("device_code_ttl_secs", self.device_code_ttl_secs, 60),
            (
                "device_poll_interval_secs",
                self.device_poll_interval_secs,
                1,
            ),
            ("activate_guesses", self.activate_guesses, 1),
            (
                "activate_guesses_per_address",
                self.activate_guesses_per_address,
                1,
            ),
            ("session_ttl_secs", self.session_ttl_secs, 60),
            ("refresh_token_ttl_secs", self.refresh_token_ttl_secs, 0),
            ("refresh_token_idle_secs", self.refresh_token_idle_secs, 60),
            ("login_lock_after", self.login_lock_after, 1),
            (
                "login_lock_after_per_address",
                self.login_lock_after_per_address,
                1,
            ),
            ("login_window_secs", self.login_window_secs, 1),
            ("login_lock_secs", self.login_lock_secs, 1),
            ("mail_max_attempts", self.mail_max_attempts, 1),
            ("mail_retry_secs", self.mail_retry_secs, 1),
            ("mail_lease_secs", self.mail_lease_secs, 2),
            ("audit_retention_days", self.audit_retention_days, 0),
            ("mail_retention_days", self.mail_retention_days, 0),
            ("usage_retention_days", self.usage_retention_days, 0),
            (
                "backchannel_logout_max_attempts",
                self.backchannel_logout_max_attempts,
                1,
            ),
            (
                "backchannel_logout_retry_secs",
                self.backchannel_logout_retry_secs,
                1,
            ),
        ] {
            if value < min {
                return Err(ConfigError::key(key, format!("must be at least {min}")));
            }
        }
        if self.access_token_ttl_secs > self.access_token_max_ttl_secs {
            return Err(ConfigError::key(
                "access_token_ttl_secs",
                "must not exceed access_token_max_ttl_secs",
            ));
        }
        Ok(())
    }

    /// Change events: retention, streams, webhooks and NATS.
    fn check_events(&self) -> Result<(), ConfigError> {
        if !(0..=24 * 365).contains(&self.events_retention_hours) {
            return Err(ConfigError::key(
                "events_retention_hours",
                "must be 0 (forever) to 8760",
            ));
        }
        if !(10..=60_000).contains(&self.events_poll_ms) {
            return Err(ConfigError::key("events_poll_ms", "must be 10 to 60000"));
        }
        if !(1..=300).contains(&self.events_heartbeat_secs) {
            return Err(ConfigError::key(
                "events_heartbeat_secs",
                "must be 1 to 300",
            ));
        }
        if !(1..=100_000).contains(&self.events_max_streams) {
            return Err(ConfigError::key(
                "events_max_streams",
                "must be 1 to 100000",
            ));
        }
        if !(100..=60_000).contains(&self.webhook_timeout_ms) {
            return Err(ConfigError::key(
                "webhook_timeout_ms",
                "must be 100 to 60000",
            ));
        }
        if !(1..=3600).contains(&self.webhook_retry_secs) {
            return Err(ConfigError::key("webhook_retry_secs", "must be 1 to 3600"));
        }
        if !(1..=24 * 30).contains(&self.webhook_retry_hours) {
            return Err(ConfigError::key("webhook_retry_hours", "must be 1 to 720"));
        }
        if self.nats_stream.is_empty()
            || !self
                .nats_stream
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(ConfigError::key(
                "nats_stream",
                "must be letters, digits, _ and - (a JetStream stream name)",
            ));
        }
        if self.nats_subject_prefix.is_empty()
            || self.nats_subject_prefix.split('.').any(|token| {
                token.is_empty()
                    || !token
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            })
        {
            return Err(ConfigError::key(
                "nats_subject_prefix",
                "must be dot-separated tokens of letters, digits, _ and - (no wildcards)",
            ));
        }
        if let Some(url) = &self.nats_url
            && !url.expose_secret().starts_with("nats://")
            && !url.expose_secret().starts_with("tls://")
        {
            return Err(ConfigError::key(
                "nats_url",
                "must be a nats:// (or tls://) URL",
            ));
        }
        Ok(())
    }

    /// Email delivery: polling, the daily limit, allowed domains, sender and SMTP URL.
    fn check_mail(&self) -> Result<(), ConfigError> {
        if !(10..=60_000).contains(&self.mail_poll_ms) {
            return Err(ConfigError::key("mail_poll_ms", "must be 10 to 60000"));
        }
        if !(100..=60_000).contains(&self.backchannel_logout_timeout_ms) {
            return Err(ConfigError::key(
                "backchannel_logout_timeout_ms",
                "must be 100 to 60000",
            ));
        }
        if self.mail_daily_limit < 0 {
            return Err(ConfigError::key("mail_daily_limit", "must be 0 or more"));
        }
        if let Some(bad) = self.mail_allowed_domains.iter().find(|d| {
            d.is_empty()
                || d.contains('@')
                || d.chars().any(|c| c.is_whitespace() || c.is_control())
        }) {
            return Err(ConfigError::key(
                "mail_allowed_domains",
                format!("`{bad}` is not a domain like example.com"),
            ));
        }
        if let Some(from) = &self.mail_from
            && from.parse::<lettre::message::Mailbox>().is_err()
        {
            return Err(ConfigError::key(
                "mail_from",
                "must be an address like Gatehouse <noreply@example.com>",
            ));
        }
        if let Some(url) = &self.smtp_url
            && !["smtp://", "smtps://"]
                .iter()
                .any(|p| url.expose_secret().starts_with(p))
        {
            return Err(ConfigError::key(
                "smtp_url",
                "must start with smtp:// or smtps://",
            ));
        }
        Ok(())
    }

    /// The sync interval, the audience and the master key.
    fn check_keys(&self) -> Result<(), ConfigError> {
        if !(100..=60_000).contains(&self.sync_interval_ms) {
            return Err(ConfigError::key("sync_interval_ms", "must be 100 to 60000"));
        }
        if let Some(aud) = &self.audience
            && aud.trim().is_empty()
        {
            return Err(ConfigError::key("audience", "must not be empty"));
        }
        if self.master_key.is_some() && self.master_key_file.is_some() {
            return Err(ConfigError::key(
                "master_key",
                "set master_key or master_key_file, not both",
            ));
        }
        if let Some(key) = &self.master_key {
            parse_master_key(key.expose_secret()).map_err(|m| ConfigError::key("master_key", m))?;
        }
        if let Some(path) = &self.master_key_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError::key(
                    "master_key_file",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            parse_master_key(text.trim()).map_err(|m| ConfigError::key("master_key_file", m))?;
        }
        Ok(())
    }

    /// Production mode: a public https issuer and an explicit master key.
    fn check_production(&self, issuer: &Url) -> Result<(), ConfigError> {
        if self.issuer.is_none() {
            return Err(ConfigError::key(
                "issuer",
                "production mode needs the public https URL of this server",
            ));
        }
        if issuer.scheme() != "https" {
            return Err(ConfigError::key(
                "issuer",
                "production mode needs an https URL",
            ));
        }
        if self.master_key.is_none() && self.master_key_file.is_none() {
            return Err(ConfigError::key(
                "master_key",
                "production mode needs an explicit master key (or master_key_file)",
            ));
        }
        Ok(())
    }
}
