//! The dispatcher: claims due rows, delivers them as files or over SMTP, and records each
//! outcome (a failure retries with backoff until `mail_max_attempts`).

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt as _;
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};
use tokio_util::sync::CancellationToken;

use super::render::render;
use super::{Ctx, FILE_WRITERS, MAX_RETRY_SECS, SMTP_CONCURRENCY, Transport};
use crate::store::{self, StoreError, cases::CaseRecord, outbox::DueEmail};

/// A claimed row and what delivering it came to.
type Outcome = (DueEmail, Result<(), String>);

/// Writes `bytes` as `dir/name` so that the name only ever holds a complete file: a
/// uniquely named temporary file in `dir`, synced, then renamed over `name`.
fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = tempfile::Builder::new()
        .prefix(".")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    file.write_all(bytes)?;
    file.as_file().sync_all()?;
    file.persist(dir.join(name))
        .map(|_| ())
        .map_err(|e| e.error)
}

/// The delay before attempt `attempts + 1`: `base · 2^(attempts-1)`, at most an hour,
/// with the upper half jittered so that a burst of failures does not retry in lockstep.
pub fn retry_delay(base: i64, attempts: i64) -> i64 {
    let exp = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    let full = base.saturating_mul(1_i64 << exp).clamp(1, MAX_RETRY_SECS);
    let half = full / 2;
    half + rand::random_range(0..=full - half)
}

/// Claims due email and delivers it; returns how many rows were claimed.
pub async fn dispatch_once(ctx: &Ctx<'_>) -> Result<usize, StoreError> {
    let now = ctx.clock.unix();
    let lease = ctx.config.mail_lease_secs;
    let batch = ctx.mailer.transport.batch();
    let due = store::outbox::claim_due(ctx.store, now, now + lease, batch).await?;
    let claimed = due.len();
    if claimed == 0 {
        return Ok(0);
    }
    let (ready, mut outcomes) = render_all(ctx, due).await?;
    outcomes.extend(match &ctx.mailer.transport {
        Transport::Dir(dir) => write_files(dir.clone(), ready).await?,
        Transport::Smtp(smtp) => send_all(smtp, ready).await,
    });
    record(ctx, outcomes).await?;
    Ok(claimed)
}

/// Renders every claimed row; a row whose case is gone or that cannot render has failed.
async fn render_all(
    ctx: &Ctx<'_>,
    due: Vec<DueEmail>,
) -> Result<(Vec<(DueEmail, Message)>, Vec<Outcome>), StoreError> {
    let case_ids: Vec<String> = due.iter().filter_map(|e| e.case_id.clone()).collect();
    let cases: HashMap<String, CaseRecord> = store::cases::by_ids(ctx.store, &case_ids)
        .await?
        .into_iter()
        .map(|r| (r.case.id.clone(), r))
        .collect();
    let mut ready = Vec::with_capacity(due.len());
    let mut failed = Vec::new();
    for email in due {
        let record = email.case_id.as_ref().and_then(|id| cases.get(id));
        match record.map(|r| render(&ctx.mailer.from, &email, r)) {
            Some(Ok(message)) => ready.push((email, message)),
            Some(Err(e)) => failed.push((email, Err(e))),
            None => failed.push((email, Err("the case no longer exists".to_owned()))),
        }
    }
    Ok((ready, failed))
}

/// Writes each message as `<row id>.eml` into `dir`. An fsync per file is the cost of a
/// file; the filesystem commits concurrent fsyncs together, so several threads write.
async fn write_files(
    dir: PathBuf,
    ready: Vec<(DueEmail, Message)>,
) -> Result<Vec<Outcome>, StoreError> {
    let per_writer = ready.len().div_ceil(FILE_WRITERS).max(1);
    let mut files = ready
        .into_iter()
        .map(|(email, message)| (email, message.formatted()))
        .peekable();
    let mut writers = Vec::new();
    while files.peek().is_some() {
        let chunk: Vec<_> = files.by_ref().take(per_writer).collect();
        let dir = dir.clone();
        writers.push(tokio::task::spawn_blocking(move || {
            chunk
                .into_iter()
                .map(|(email, bytes)| {
                    let name = format!("{}.eml", email.id);
                    let written = write_file(&dir, &name, &bytes).map_err(|e| e.to_string());
                    (email, written)
                })
                .collect::<Vec<_>>()
        }));
    }
    let mut outcomes = Vec::new();
    for writer in writers {
        let written = writer.await;
        outcomes.extend(written.map_err(|e| StoreError::Corrupt(format!("mail writer: {e}")))?);
    }
    // The renames are durable once the directory is.
    let synced =
        tokio::task::spawn_blocking(move || std::fs::File::open(&dir).and_then(|d| d.sync_all()))
            .await;
    if !matches!(synced, Ok(Ok(()))) {
        tracing::warn!("could not sync the mail directory");
    }
    Ok(outcomes)
}

/// Sends each message over SMTP, a few at once.
async fn send_all(
    smtp: &AsyncSmtpTransport<Tokio1Executor>,
    ready: Vec<(DueEmail, Message)>,
) -> Vec<Outcome> {
    futures::stream::iter(ready)
        .map(|(email, message)| async move {
            let sent = smtp
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string());
            (email, sent)
        })
        .buffer_unordered(SMTP_CONCURRENCY)
        .collect()
        .await
}

/// Marks delivered rows sent, and schedules a failed row's retry or gives it up.
async fn record(ctx: &Ctx<'_>, outcomes: Vec<Outcome>) -> Result<(), StoreError> {
    let now = ctx.clock.unix();
    let mut sent = Vec::new();
    let mut failed = Vec::new();
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
    Ok(())
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
