//! Webhooks: change events POSTed to endpoints that administrators register, signed per
//! Standard Webhooks v1.
//!
//! Every process runs the relay ([`run`]): it fans new events out into deliveries (one per
//! event and endpoint, whichever replica gets there first) and sends the due ones. Each
//! delivery is `POST <url>` with the event as its JSON body and the headers `webhook-id`
//! (the event's id, the same in every attempt), `webhook-timestamp` (Unix seconds of the
//! attempt) and `webhook-signature` (`v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`,
//! one per live secret, space-separated). A 2xx answer delivers it; 410 Gone disables the
//! endpoint; anything else, a timeout or a refused connection is retried with exponential
//! backoff and jitter for `webhook_retry_hours`. Redirects are not followed.
//!
//! Targets on private, loopback or link-local addresses are refused (at registration for
//! an address in the URL, and after every name resolution) unless `webhook_allow_private`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use futures::StreamExt as _;
use rand::Rng as _;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{Ctx, Event, TYPES};
use crate::error::FieldError;
use crate::oauth::keys::MasterKey;
use crate::store::StoreError;
use crate::store::webhooks::{self as store, AttemptRow, DueDelivery, Outcome};

/// The prefix of a Standard Webhooks secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// How long the previous secret keeps signing after a rotation.
pub const ROTATION_OVERLAP_SECS: i64 = 24 * 3600;
/// Deliveries claimed per round: two waves of POSTs, so that a claim's lease (what a
/// process killed mid-round delays its deliveries by) stays near two timeouts.
const BATCH: i64 = 64;
/// POSTs in flight at once.
const CONCURRENCY: usize = 32;
/// The longest wait between two retries.
const MAX_RETRY_SECS: i64 = 6 * 3600;
/// Longest error text kept with an attempt.
const MAX_ERROR_CHARS: usize = 300;

/// A new signing secret: 32 random bytes, and their `whsec_` form (shown once).
pub fn new_secret() -> (Vec<u8>, String) {
    let mut key = vec![0u8; 32];
    crate::oauth::secret::fill_random(&mut key);
    let shown = format!("{SECRET_PREFIX}{}", B64.encode(&key));
    (key, shown)
}

/// The additional data a sealed secret is bound to: its endpoint.
fn aad(endpoint_id: &str) -> String {
    format!("webhook-secret:{endpoint_id}")
}

/// Seals an endpoint's secret under the master key.
pub fn seal(master: &MasterKey, endpoint_id: &str, key: &[u8]) -> anyhow::Result<Vec<u8>> {
    Ok(master.seal(&aad(endpoint_id), key)?)
}

/// The `webhook-signature` value: `v1,<base64>` for each key, space-separated.
pub fn signature(keys: &[Vec<u8>], id: &str, timestamp: i64, body: &str) -> String {
    keys.iter()
        .map(|key| {
            let key = hmac::Key::new(hmac::HMAC_SHA256, key);
            let mut ctx = hmac::Context::with_key(&key);
            ctx.update(id.as_bytes());
            ctx.update(b".");
            ctx.update(timestamp.to_string().as_bytes());
            ctx.update(b".");
            ctx.update(body.as_bytes());
            format!("v1,{}", B64.encode(ctx.sign().as_ref()))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether an address is one a webhook may not reach unless the operator allows private
/// targets: loopback, private (RFC 1918, unique local), link-local, shared (CGNAT),
/// unspecified, broadcast, multicast or documentation ranges, also when IPv4-mapped.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first == 0x2001 && v6.segments()[1] == 0x0db8)
        }
    }
}

/// Checks an endpoint URL: absolute `https` (or `http`), a host, no credentials, no
/// fragment; with private targets refused, no private address literal.
pub fn check_url(url: &str, allow_private: bool) -> Result<url::Url, FieldError> {
    let bad = |message: &str| FieldError::new("url", "invalid", message);
    if url.len() > 2048 {
        return Err(bad("at most 2048 characters"));
    }
    let parsed = url::Url::parse(url).map_err(|_| bad("must be an absolute URL"))?;
    if !matches!(parsed.scheme(), "https" | "http") {
        return Err(bad("must be https (or http)"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad("must not carry credentials"));
    }
    if parsed.fragment().is_some() {
        return Err(bad("must not have a fragment"));
    }
    let ip = match parsed.host() {
        None => return Err(bad("must name a host")),
        Some(url::Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
        Some(url::Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
        Some(url::Host::Domain(d)) if d.eq_ignore_ascii_case("localhost") => {
            Some(IpAddr::from([127, 0, 0, 1]))
        }
        Some(url::Host::Domain(_)) => None,
    };
    if !allow_private && ip.is_some_and(is_private) {
        return Err(FieldError::new(
            "url",
            "private_address",
            "a private, loopback or link-local address is refused (webhook_allow_private)",
        ));
    }
    Ok(parsed)
}

/// Checks event type filters: each a known type, no repeats.
pub fn check_types(types: &[String]) -> Result<(), FieldError> {
    for (i, t) in types.iter().enumerate() {
        if !TYPES.contains(&t.as_str()) {
            return Err(FieldError::new(
                format!("event_types[{i}]"),
                "unknown",
                format!("an event type is one of {}", TYPES.join(", ")),
            ));
        }
        if types[..i].contains(t) {
            return Err(FieldError::new(
                format!("event_types[{i}]"),
                "duplicate",
                "listed twice",
            ));
        }
    }
    Ok(())
}

/// Whether an endpoint whose filter is `types_json` wants events of `event_type`.
fn wants(types_json: &str, event_type: &str) -> bool {
    let types: Vec<String> = serde_json::from_str(types_json).unwrap_or_default();
    types.is_empty() || types.iter().any(|t| t == event_type)
}

/// Resolves names as the system does, keeping only addresses a webhook may reach: a name
/// that resolves (now, or after a DNS change) to a private address is refused.
#[derive(Debug)]
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| !is_private(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!(
                    "{host} resolves to no public address (private targets are refused)"
                )
                .into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// The relay's HTTP client: no redirects, no proxies, a timeout per POST, and (unless
/// private targets are allowed) only public addresses.
pub fn http_client(ctx: &Ctx<'_>) -> reqwest::Result<reqwest::Client> {
    let builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_millis(ctx.config.webhook_timeout_ms))
        .user_agent(concat!("gatehouse-webhooks/", env!("CARGO_PKG_VERSION")));
    let builder = if ctx.config.webhook_allow_private {
        builder
    } else {
        builder.dns_resolver(Arc::new(PublicOnly))
    };
    builder.build()
}

/// The delay before retry number `attempt` (1 = after the first failure): the first
/// delay doubled per attempt, at most six hours, less up to a fifth at random.
pub fn retry_delay(first_secs: i64, attempt: i64) -> i64 {
    let exp = u32::try_from(attempt.clamp(1, 30) - 1).unwrap_or(0);
    let delay = first_secs
        .saturating_mul(1i64 << exp.min(20))
        .min(MAX_RETRY_SECS);
    let jitter = rand::rng().random_range(0..=delay / 5);
    (delay - jitter).max(1)
}

/// Fans out new events and sends due deliveries until `stop`; wakes on `wakeup` (this
/// process committed events) or every `events_poll_ms`.
pub async fn run(ctx: Ctx<'_>, master: &MasterKey, wakeup: &Notify, stop: CancellationToken) {
    let http = match http_client(&ctx) {
        Ok(http) => http,
        Err(e) => {
            tracing::error!(error = %e, "the webhook relay cannot start");
            return;
        }
    };
    let poll = Duration::from_millis(ctx.config.events_poll_ms);
    let mut commits = ctx.hub.subscribe();
    loop {
        // Without an active endpoint, commits do not wake the relay: it polls (and is
        // woken when an endpoint is registered here) instead of reading the database
        // after every commit for nothing.
        let listening = match relay_once(&ctx, master, &http).await {
            Ok(active) => active,
            Err(e) => {
                tracing::warn!(error = %e, "webhook relay round failed");
                true
            }
        };
        tokio::select! {
            () = stop.cancelled() => return,
            () = wakeup.notified() => {}
            Ok(()) = commits.changed(), if listening => {
                tokio::time::sleep(super::WAKE_GATHER).await;
            }
            () = tokio::time::sleep(poll) => {}
        }
    }
}

/// One round: fan out, then send what is due (until nothing is); returns whether there
/// is an active endpoint.
pub async fn relay_once(
    ctx: &Ctx<'_>,
    master: &MasterKey,
    http: &reqwest::Client,
) -> Result<bool, StoreError> {
    let fanned = store::fan_out(ctx.store, ctx.clock.unix(), wants).await?;
    loop {
        let n = dispatch_once(ctx, master, http).await?;
        if n < BATCH as usize {
            return Ok(fanned.active > 0);
        }
    }
}

/// Claims due deliveries and sends them; returns how many were claimed. A round reads
/// its endpoints and events in a few queries and records every attempt in one
/// transaction, so that a busy relay costs the database a handful of statements per
/// `BATCH` deliveries rather than several per delivery.
async fn dispatch_once(
    ctx: &Ctx<'_>,
    master: &MasterKey,
    http: &reqwest::Client,
) -> Result<usize, StoreError> {
    let now = ctx.clock.unix();
    let per_post = ctx.config.webhook_timeout_ms.div_ceil(1000);
    let waves = (BATCH as u64).div_ceil(CONCURRENCY as u64);
    let lease = i64::try_from(per_post * waves).unwrap_or(3600) + 5;
    let due = store::claim_due(ctx.store, now, now + lease, BATCH).await?;
    let claimed = due.len();
    if claimed == 0 {
        return Ok(0);
    }
    let targets = Targets::load(ctx, master, &due).await?;
    let targets = &targets;
    // In order (`buffered`), so that each result lines up with its delivery.
    let attempts: Vec<(AttemptRow, Outcome, bool)> = futures::stream::iter(due.clone())
        .map(|due| async move { attempt(ctx, http, targets, &due).await })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let records: Vec<(AttemptRow, Outcome)> = attempts
        .iter()
        .map(|(row, outcome, _)| (row.clone(), *outcome))
        .collect();
    store::record_attempts(ctx.store, &records).await?;
    for (_, outcome, _) in &attempts {
        metrics::counter!("gatehouse_webhook_attempts_total", "outcome" => match outcome {
            Outcome::Sent => "sent",
            Outcome::Retry(_) => "retry",
            Outcome::GiveUp => "failed",
        })
        .increment(1);
    }
    let gone: std::collections::BTreeSet<&str> = attempts
        .iter()
        .zip(&due)
        .filter(|((_, _, gone), _)| *gone)
        .map(|(_, d)| d.endpoint_id.as_str())
        .collect();
    for endpoint in gone {
        store::set_status(
            ctx.store,
            endpoint,
            Some("the endpoint answered 410 Gone"),
            now,
        )
        .await?;
        tracing::info!(endpoint, "webhook endpoint answered 410 Gone; disabled");
    }
    Ok(claimed)
}

/// An endpoint's URL and live signing keys, or why it cannot be sent to.
type Target = Result<(String, Vec<Vec<u8>>), String>;

/// What a round's deliveries go to: each endpoint's target, and each event.
struct Targets {
    endpoints: HashMap<String, Target>,
    events: HashMap<i64, Event>,
}

impl Targets {
    async fn load(
        ctx: &Ctx<'_>,
        master: &MasterKey,
        due: &[DueDelivery],
    ) -> Result<Self, StoreError> {
        let mut endpoints = HashMap::new();
        for d in due {
            if endpoints.contains_key(&d.endpoint_id) {
                continue;
            }
            let target = match store::get(ctx.store, &d.endpoint_id).await? {
                Some(endpoint) => endpoint_target(ctx, master, endpoint),
                None => Err("the endpoint no longer exists".to_owned()),
            };
            endpoints.insert(d.endpoint_id.clone(), target);
        }
        let seqs: Vec<i64> = due.iter().map(|d| d.event_seq).collect();
        let mut events = HashMap::new();
        for row in crate::store::events::by_seq(ctx.store, &seqs).await? {
            let seq = row.seq;
            match Event::try_from(row) {
                Ok(event) => {
                    events.insert(seq, event);
                }
                Err(e) => tracing::error!(seq, error = %e, "a stored event does not parse"),
            }
        }
        Ok(Self { endpoints, events })
    }
}

/// An endpoint's URL and live secrets (the current one, and the previous one during a
/// rotation); `Err` with the reason it cannot be sent to.
fn endpoint_target(
    ctx: &Ctx<'_>,
    master: &MasterKey,
    endpoint: crate::store::webhooks::EndpointRow,
) -> Target {
    check_url(&endpoint.url, ctx.config.webhook_allow_private).map_err(|e| e.message)?;
    let aad = aad(&endpoint.id);
    let current = master
        .open(&aad, &endpoint.secret_sealed)
        .ok_or("the endpoint's secret cannot be opened (master key changed?)")?;
    let mut keys = vec![current];
    if let (Some(previous), Some(until)) = (
        &endpoint.previous_secret_sealed,
        endpoint.previous_secret_until,
    ) && until > ctx.clock.unix()
        && let Some(previous) = master.open(&aad, previous)
    {
        keys.push(previous);
    }
    Ok((endpoint.url, keys))
}

/// What one POST came to.
struct Answer {
    status: Option<u16>,
    error: Option<String>,
}

/// One attempt of a delivery: the attempt's record, what it came to, and whether the
/// endpoint answered 410 Gone.
async fn attempt(
    ctx: &Ctx<'_>,
    http: &reqwest::Client,
    targets: &Targets,
    due: &DueDelivery,
) -> (AttemptRow, Outcome, bool) {
    let at = ctx.clock.unix();
    let started = Instant::now();
    let target = targets
        .endpoints
        .get(&due.endpoint_id)
        .cloned()
        .unwrap_or_else(|| Err("the endpoint no longer exists".to_owned()));
    let event = targets
        .events
        .get(&due.event_seq)
        .ok_or_else(|| "the event is past retention".to_owned());
    let answer = match (target, event) {
        (Ok((url, keys)), Ok(event)) => post(http, &url, &keys, event, at).await,
        (Err(error), _) | (_, Err(error)) => Answer {
            status: None,
            error: Some(error),
        },
    };
    let gone = answer.status == Some(410);
    let sent = answer.status.is_some_and(|s| (200..300).contains(&s));
    let error = match (&answer.error, answer.status) {
        (Some(e), _) => Some(e.clone()),
        (None, Some(s)) if !sent => Some(format!("the endpoint answered {s}")),
        _ => None,
    };
    let deadline = due.created_at + ctx.config.webhook_retry_hours * 3600;
    let outcome = if sent {
        Outcome::Sent
    } else if gone {
        Outcome::GiveUp
    } else {
        let next = at + retry_delay(ctx.config.webhook_retry_secs, due.attempts);
        if next > deadline {
            Outcome::GiveUp
        } else {
            Outcome::Retry(next)
        }
    };
    let record = AttemptRow {
        delivery_id: due.id.clone(),
        attempt: due.attempts,
        at,
        status_code: answer.status.map(i64::from),
        error: error.map(|e| e.chars().take(MAX_ERROR_CHARS).collect()),
        duration_ms: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
    };
    (record, outcome, gone)
}

async fn post(
    http: &reqwest::Client,
    url: &str,
    keys: &[Vec<u8>],
    event: &Event,
    at: i64,
) -> Answer {
    let body = match serde_json::to_string(event) {
        Ok(body) => body,
        Err(e) => {
            return Answer {
                status: None,
                error: Some(e.to_string()),
            };
        }
    };
    let sent = http
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", &event.id)
        .header("webhook-timestamp", at.to_string())
        .header("webhook-signature", signature(keys, &event.id, at, &body))
        .body(body)
        .send()
        .await;
    match sent {
        Ok(answer) => {
            let status = answer.status().as_u16();
            crate::outbound::drain(answer).await;
            Answer {
                status: Some(status),
                error: None,
            }
        }
        Err(e) => Answer {
            status: None,
            error: Some(describe(&e)),
        },
    }
}

/// A transport error with its causes (reqwest's own text omits them).
fn describe(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() {
        "timed out".to_owned()
    } else {
        e.to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
