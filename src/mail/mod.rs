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

use std::path::{Path, PathBuf};
use std::time::Duration;

use askama::Template;
use futures::StreamExt as _;
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};
use secrecy::ExposeSecret as _;
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::config::Config;
use crate::store::{self, Store, StoreError, cases::CaseRecord, outbox::DueEmail};

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

/// One line item as the templates show it.
struct ItemView {
    sku: String,
    description: String,
    quantity: i64,
    unit_price: String,
}

/// What the case emails show; both templates read it (through `Deref`).
struct CaseMail<'a> {
    case_number: &'a str,
    subject: &'a str,
    description: &'a str,
    priority: &'a str,
    status: &'a str,
    contact_name: Option<&'a str>,
    items: &'a [ItemView],
}

#[derive(Template)]
#[template(
    path = "case_created.txt",
    config = "src/mail/askama.toml",
    escape = "none"
)]
struct CaseCreatedText<'a>(&'a CaseMail<'a>);

#[derive(Template)]
#[template(path = "case_created.html", config = "src/mail/askama.toml")]
struct CaseCreatedHtml<'a>(&'a CaseMail<'a>);

impl<'a> std::ops::Deref for CaseCreatedText<'a> {
    type Target = CaseMail<'a>;
    fn deref(&self) -> &CaseMail<'a> {
        self.0
    }
}

impl<'a> std::ops::Deref for CaseCreatedHtml<'a> {
    type Target = CaseMail<'a>;
    fn deref(&self) -> &CaseMail<'a> {
        self.0
    }
}

/// `amount_minor` in the currency's major unit, e.g. `19.99 EUR`, `500 JPY`.
pub fn format_money(amount_minor: i64, currency: &str) -> String {
    const NO_DECIMALS: &[&str] = &[
        "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND", "VUV",
        "XAF", "XOF", "XPF",
    ];
    const THREE_DECIMALS: &[&str] = &["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];
    let decimals = if NO_DECIMALS.contains(&currency) {
        0
    } else if THREE_DECIMALS.contains(&currency) {
        3
    } else {
        2
    };
    if decimals == 0 {
        return format!("{amount_minor} {currency}");
    }
    let unit = 10_i64.pow(decimals);
    let sign = if amount_minor < 0 { "-" } else { "" };
    let abs = amount_minor.unsigned_abs();
    let unit = unit.unsigned_abs();
    format!(
        "{sign}{}.{:0width$} {currency}",
        abs / unit,
        abs % unit,
        width = decimals as usize
    )
}

/// Builds the message of an outbox row.
fn render(from: &Mailbox, email: &DueEmail, record: &CaseRecord) -> Result<Message, String> {
    let case = &record.case;
    let number = format!("{:08}", case.case_number);
    let items: Vec<ItemView> = record
        .line_items
        .iter()
        .map(|i| ItemView {
            sku: i.sku.clone(),
            description: i.description.clone(),
            quantity: i.quantity,
            unit_price: format_money(i.unit_price_minor, &i.currency),
        })
        .collect();
    let mail = CaseMail {
        case_number: &number,
        subject: &case.subject,
        description: &case.description,
        priority: &case.priority,
        status: &case.status,
        contact_name: case.contact_name.as_deref(),
        items: &items,
    };
    let text = CaseCreatedText(&mail)
        .render()
        .map_err(|e| format!("template: {e}"))?;
    let html = CaseCreatedHtml(&mail)
        .render()
        .map_err(|e| format!("template: {e}"))?;
    let to: Mailbox = email
        .recipient
        .parse()
        .map_err(|e| format!("recipient {}: {e}", email.recipient))?;
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(format!("Case {number}: {}", case.subject))
        .message_id(Some(email.message_id.clone()))
        .multipart(MultiPart::alternative_plain_html(text, html))
        .map_err(|e| format!("message: {e}"))
}

/// Writes `bytes` as `dir/name` so that the name only ever holds a complete file.
fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, dir.join(name))
}

/// The delay before attempt `attempts + 1`: `base · 2^(attempts-1)`, at most an hour,
/// with the upper half jittered so that a burst of failures does not retry in lockstep.
pub fn retry_delay(base: i64, attempts: i64) -> i64 {
    let exp = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    let full = base.saturating_mul(1_i64 << exp).clamp(1, MAX_RETRY_SECS);
    let half = full / 2;
    half + rand::random_range(0..=full - half)
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

/// Claims due email and delivers it; returns how many rows were claimed.
pub async fn dispatch_once(ctx: &Ctx<'_>) -> Result<usize, StoreError> {
    let now = ctx.clock.unix();
    let batch = ctx.mailer.transport.batch();
    let lease = ctx.config.mail_lease_secs;
    let due = store::outbox::claim_due(ctx.store, now, now + lease, batch).await?;
    let claimed = due.len();
    if claimed == 0 {
        return Ok(0);
    }
    let mailer = ctx.mailer;
    // Render every message first; a row whose case is gone or that cannot render fails.
    let mut ready = Vec::with_capacity(claimed);
    let mut failed: Vec<(DueEmail, String)> = Vec::new();
    let case_ids: Vec<String> = due.iter().filter_map(|e| e.case_id.clone()).collect();
    let cases: std::collections::HashMap<String, CaseRecord> =
        store::cases::by_ids(ctx.store, &case_ids)
            .await?
            .into_iter()
            .map(|r| (r.case.id.clone(), r))
            .collect();
    for email in due {
        let record = email.case_id.as_ref().and_then(|id| cases.get(id));
        match record.map(|r| render(&mailer.from, &email, r)) {
            Some(Ok(message)) => ready.push((email, message)),
            Some(Err(e)) => failed.push((email, e)),
            None => failed.push((email, "the case no longer exists".to_owned())),
        }
    }
    let outcomes: Vec<(DueEmail, Result<(), String>)> = match &mailer.transport {
        Transport::Dir(dir) => {
            let dir = dir.clone();
            let files: Vec<(DueEmail, Vec<u8>)> = ready
                .into_iter()
                .map(|(email, message)| (email, message.formatted()))
                .collect();
            // fsync per file is the cost of a file; the filesystem commits concurrent
            // fsyncs together, so the batch is written by several threads at once.
            let per_writer = files.len().div_ceil(FILE_WRITERS).max(1);
            let mut chunks = Vec::new();
            let mut files = files.into_iter().peekable();
            while files.peek().is_some() {
                let chunk: Vec<_> = files.by_ref().take(per_writer).collect();
                let dir = dir.clone();
                chunks.push(tokio::task::spawn_blocking(move || {
                    chunk
                        .into_iter()
                        .map(|(email, bytes)| {
                            let name = format!("{}.eml", email.id);
                            let result = write_file(&dir, &name, &bytes).map_err(|e| e.to_string());
                            (email, result)
                        })
                        .collect::<Vec<_>>()
                }));
            }
            let mut written = Vec::new();
            for chunk in chunks {
                written.extend(
                    chunk
                        .await
                        .map_err(|e| StoreError::Corrupt(format!("mail writer: {e}")))?,
                );
            }
            // The renames are durable once the directory is.
            let synced = tokio::task::spawn_blocking(move || {
                std::fs::File::open(&dir).and_then(|d| d.sync_all())
            })
            .await;
            if !matches!(synced, Ok(Ok(()))) {
                tracing::warn!("could not sync the mail directory");
            }
            written
        }
        Transport::Smtp(smtp) => {
            futures::stream::iter(ready)
                .map(|(email, message)| async move {
                    let result = smtp
                        .send(message)
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string());
                    (email, result)
                })
                .buffer_unordered(SMTP_CONCURRENCY)
                .collect()
                .await
        }
    };
    let now = ctx.clock.unix();
    let mut sent = Vec::new();
    for (email, outcome) in outcomes {
        match outcome {
            Ok(()) => {
                metrics::counter!("mail_delivery_attempts_total", "outcome" => "sent").increment(1);
                metrics::histogram!("mail_delivery_latency_seconds")
                    .record((now - email.created_at).max(0) as f64);
                sent.push(email.id);
            }
            Err(e) => failed.push((email, e)),
        }
    }
    store::outbox::mark_sent(ctx.store, &sent, now).await?;
    for (email, error) in failed {
        let give_up = email.attempts >= ctx.config.mail_max_attempts;
        let next =
            (!give_up).then(|| now + retry_delay(ctx.config.mail_retry_secs, email.attempts));
        let outcome = if give_up { "failed" } else { "retry" };
        metrics::counter!("mail_delivery_attempts_total", "outcome" => outcome).increment(1);
        tracing::warn!(email = %email.id, attempts = email.attempts, error = %error, outcome, "email delivery failed");
        store::outbox::mark_failed_attempt(ctx.store, &email.id, next, &error).await?;
    }
    Ok(claimed)
}

/// The dispatcher: drains due email, then waits for the next poll or for email queued by
/// this process, until `stop`.
pub async fn run(ctx: Ctx<'_>, stop: CancellationToken) {
    let poll = Duration::from_millis(ctx.config.mail_poll_ms);
    loop {
        let claimed = match dispatch_once(&ctx).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "email dispatch failed");
                0
            }
        };
        if let Ok(depth) = store::outbox::queued(ctx.store).await {
            metrics::gauge!("mail_outbox_queued").set(depth as f64);
        }
        if claimed as i64 == ctx.mailer.transport.batch() {
            continue;
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = ctx.wakeup.notified() => {}
            () = tokio::time::sleep(poll) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_uses_the_currency_minor_unit() {
        assert_eq!(format_money(1999, "EUR"), "19.99 EUR");
        assert_eq!(format_money(5, "USD"), "0.05 USD");
        assert_eq!(format_money(500, "JPY"), "500 JPY");
        assert_eq!(format_money(1234, "KWD"), "1.234 KWD");
        assert_eq!(format_money(-150, "EUR"), "-1.50 EUR");
    }

    #[test]
    fn retry_delays_double_with_jitter_and_stop_at_an_hour() {
        for attempts in 1..40 {
            let full = (2_i64 << (attempts - 1).min(30)).min(MAX_RETRY_SECS);
            let d = retry_delay(2, attempts);
            assert!(
                d >= full / 2 && d <= full,
                "attempt {attempts}: {d} of {full}"
            );
        }
    }
}
