//! Publishing the event log to NATS JetStream (`nats_url`).
//!
//! One process at a time publishes (a lease on the relay's row passes to another replica
//! when its holder stops renewing it). It reads the log after the relay's position,
//! publishes each event on `<nats_subject_prefix>.<type>` with `Nats-Msg-Id` = the event's
//! id, waits for JetStream's acknowledgements, and only then moves the position. A
//! process that dies between publishing and moving publishes those events again; JetStream
//! drops them as duplicates by their `Nats-Msg-Id` (within the stream's duplicate window),
//! and a subscriber can drop any that slip through by the same id. While NATS is down the
//! position stays where it is and retention keeps what it has not published.

use std::time::Duration;

use async_nats::jetstream::{self, Context};
use futures::StreamExt as _;
use secrecy::{ExposeSecret as _, SecretString};
use tokio_util::sync::CancellationToken;

use super::{Ctx, Event};
use crate::store::events as log;

/// The relay's name in the database.
pub const RELAY: &str = "nats";
/// Events published per round.
const BATCH: i64 = 256;
/// How long a publisher holds the relay without renewing it.
const LEASE_SECS: i64 = 15;
/// The stream's duplicate window: a republish within it is dropped by JetStream.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(300);
/// Waits between attempts to reach NATS, at most.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Publishes until `stop`. Reconnects (with backoff) whenever NATS fails.
pub async fn run(ctx: Ctx<'_>, url: SecretString, stop: CancellationToken) {
    let holder = uuid::Uuid::new_v4().to_string();
    // The position is registered before NATS is first reached: what commits while it is
    // down from the start is published once it answers.
    while let Err(e) = log::relay_position(ctx.store, RELAY, ctx.clock.unix()).await {
        tracing::warn!(error = %e, "registering the NATS publisher failed; retrying");
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(MAX_BACKOFF) => {}
        }
    }
    let mut backoff = Duration::from_millis(200);
    loop {
        let result = async {
            let js = connect(&ctx, &url).await?;
            backoff = Duration::from_millis(200);
            publish_loop(&ctx, &js, &holder, &stop).await
        }
        .await;
        if stop.is_cancelled() {
            return;
        }
        if let Err(e) = result {
            metrics::counter!("gatehouse_nats_errors_total").increment(1);
            tracing::warn!(
                error = format!("{e:#}"),
                "publishing events to NATS failed; retrying"
            );
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// A JetStream context on `url`, with the events' stream created if it is missing.
async fn connect(ctx: &Ctx<'_>, url: &SecretString) -> anyhow::Result<Context> {
    let client = async_nats::ConnectOptions::new()
        .name(concat!("gatehouse/", env!("CARGO_PKG_VERSION")))
        .connection_timeout(Duration::from_secs(5))
        .connect(url.expose_secret())
        .await?;
    let js = jetstream::new(client);
    js.get_or_create_stream(jetstream::stream::Config {
        name: ctx.config.nats_stream.clone(),
        subjects: vec![format!("{}.>", ctx.config.nats_subject_prefix)],
        duplicate_window: DUPLICATE_WINDOW,
        ..Default::default()
    })
    .await?;
    Ok(js)
}

/// Publishes rounds until NATS fails (an error) or `stop`.
async fn publish_loop(
    ctx: &Ctx<'_>,
    js: &Context,
    holder: &str,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    let mut commits = ctx.hub.subscribe();
    let poll = Duration::from_millis(ctx.config.events_poll_ms);
    loop {
        let published = publish_once(ctx, js, holder).await?;
        if published == BATCH as usize {
            continue;
        }
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            Ok(()) = commits.changed() => tokio::time::sleep(super::WAKE_GATHER).await,
            () = tokio::time::sleep(poll) => {}
        }
    }
}

/// One round: if this process holds the relay, publishes the next events and moves the
/// position past those JetStream acknowledged; returns how many.
pub async fn publish_once(ctx: &Ctx<'_>, js: &Context, holder: &str) -> anyhow::Result<usize> {
    let now = ctx.clock.unix();
    // Reads first: an idle publisher, or one another process holds, writes nothing (on
    // SQLite a write would wait for, and hold up, the one writer the requests need).
    let (after, held_by, held_until) = match log::relay(ctx.store, RELAY).await? {
        Some(relay) => relay,
        None => (
            log::relay_position(ctx.store, RELAY, now).await?,
            None,
            None,
        ),
    };
    let mine = held_by.as_deref() == Some(holder);
    let until = held_until.unwrap_or(0);
    if !mine && until >= now {
        return Ok(0);
    }
    let rows = log::after_all(ctx.store, after, BATCH).await?;
    if rows.is_empty() {
        return Ok(0);
    }
    // The lease is taken, or renewed once half of it has passed.
    if (!mine || until - now < LEASE_SECS / 2)
        && !log::hold_relay(ctx.store, RELAY, holder, now, now + LEASE_SECS).await?
    {
        return Ok(0);
    }
    let prefix = &ctx.config.nats_subject_prefix;
    let mut acks = Vec::with_capacity(rows.len());
    for row in rows {
        let seq = row.seq;
        let event = Event::try_from(row).map_err(|e| anyhow::anyhow!("{e}"))?;
        let payload = serde_json::to_vec(&event)?;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, event.id.as_str());
        let subject = format!("{prefix}.{}", event.event_type);
        acks.push((
            seq,
            js.publish_with_headers(subject, headers, payload.into())
                .await?,
        ));
    }
    // The acknowledgements, in order: the position moves past the acknowledged prefix.
    let count = acks.len();
    let mut acked = futures::stream::iter(acks)
        .map(|(seq, ack)| async move { ack.await.map(|_| seq) })
        .buffered(64);
    let mut through = None;
    let mut failure = None;
    while let Some(result) = acked.next().await {
        match result {
            Ok(seq) => through = Some(seq),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    drop(acked);
    if let Some(seq) = through {
        log::advance_relay(ctx.store, RELAY, seq, ctx.clock.unix()).await?;
        metrics::counter!("gatehouse_nats_published_total")
            .increment(u64::try_from(seq - after).unwrap_or(0));
    }
    match failure {
        Some(e) => Err(anyhow::anyhow!("a publish was not acknowledged: {e}")),
        None => Ok(count),
    }
}
