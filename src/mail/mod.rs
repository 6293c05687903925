//! Outgoing email: the outbox dispatcher and its transports.
//!
//! Requests never send email; their transactions queue outbox rows. The dispatcher claims
//! due rows, renders each (text and HTML from templates, a Message-ID fixed per row) and
//! delivers it over SMTP (lettre) or, by default, as an `.eml` file named after the row in
//! `mail_dir` (written to a temporary name, synced, then renamed: a file that exists is
//! complete). Failures retry with exponential backoff and jitter; after
//! `mail_max_attempts` the row is marked failed. Delivery is at least once: a dispatcher
//! that dies between delivering and recording it delivers that email again (same
//! Message-ID, and for files the same name).

mod dispatch;
mod render;

pub use dispatch::*;
pub use render::*;

use std::path::PathBuf;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, Tokio1Executor};
use secrecy::ExposeSecret as _;

use crate::clock::SharedClock;
use crate::config::Config;
use crate::store::Store;

/// Rows claimed per round when writing files.
const FILE_BATCH: i64 = 200;
/// Threads writing one batch of files.
const FILE_WRITERS: usize = 8;
/// SMTP deliveries in flight at once.
const SMTP_CONCURRENCY: usize = 4;
/// Rows claimed per round over SMTP: two deliveries per connection, each at most a quarter
/// of the lease, so a round always ends well inside its lease.
const SMTP_BATCH: i64 = 2 * SMTP_CONCURRENCY as i64;
/// The longest retry delay.
const MAX_RETRY_SECS: i64 = 3600;

/// Where email goes.
enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Dir(PathBuf),
}

impl Transport {
    fn batch(&self) -> i64 {
        match self {
            Transport::Smtp(_) => SMTP_BATCH,
            Transport::Dir(_) => FILE_BATCH,
        }
    }
}

/// Renders and delivers email.
pub struct Mailer {
    transport: Transport,
    from: Mailbox,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let transport = match &self.transport {
            Transport::Smtp(_) => "smtp".to_owned(),
            Transport::Dir(dir) => format!("files in {}", dir.display()),
        };
        f.debug_struct("Mailer")
            .field("transport", &transport)
            .field("from", &self.from.to_string())
            .finish()
    }
}

impl Mailer {
    /// The transport the configuration names; `mail_domain` completes the default sender.
    pub fn from_config(config: &Config, mail_domain: &str) -> anyhow::Result<Self> {
        let from = match &config.mail_from {
            Some(from) => from
                .parse()
                .map_err(|e| anyhow::anyhow!("mail_from: {e}"))?,
            None => format!("Gatehouse <gatehouse@{mail_domain}>")
                .parse()
                .map_err(|e| anyhow::anyhow!("the default sender for {mail_domain}: {e}"))?,
        };
        let transport = match &config.smtp_url {
            Some(url) => Transport::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
                    // The URL may hold a password: say what is wrong, not what it was.
                    .map_err(|e| anyhow::anyhow!("smtp_url is not usable: {e}"))?
                    .timeout(Some(Duration::from_secs(
                        u64::try_from(config.mail_lease_secs / 4)
                            .unwrap_or(1)
                            .max(1),
                    )))
                    .build(),
            ),
            None => {
                std::fs::create_dir_all(&config.mail_dir)
                    .map_err(|e| anyhow::anyhow!("mail_dir {}: {e}", config.mail_dir.display()))?;
                Transport::Dir(config.mail_dir.clone())
            }
        };
        Ok(Self { transport, from })
    }
}

/// The domain of Message-IDs and of the default sender: the issuer's host (`localhost`
/// if it has none).
pub fn domain_of(issuer: &str) -> String {
    url::Url::parse(issuer)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| "localhost".to_owned())
}

/// What the dispatcher works with: borrowed parts of the running server.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    /// The database (the outbox and the cases its email is about).
    pub store: &'a Store,
    /// The only source of wall time.
    pub clock: &'a SharedClock,
    /// Lease, retry and poll settings.
    pub config: &'a Config,
    /// Renders and delivers.
    pub mailer: &'a Mailer,
    /// Notified when this process queued email.
    pub wakeup: &'a tokio::sync::Notify,
}
