//! Back-channel logout (OpenID Connect Back-Channel Logout 1.0): when a browser session
//! ends, each client that received an ID token in it and registered a
//! `backchannel_logout_uri` is sent a signed logout token (§2.4) in a form POST (§2.5).
//!
//! The transaction that ends a session queues the deliveries (`store::logouts`): at most
//! one per session and client. A dispatcher in every process claims due ones, signs each
//! token at the moment it is sent (so it is fresh, under a current key) with the same
//! `jti` in every attempt, and POSTs it. A 2xx answer is success (§2.8); anything else, a
//! timeout or a refused connection is retried with backoff until
//! `backchannel_logout_max_attempts`. Redirects are not followed.

use std::time::Duration;

use futures::StreamExt as _;
use serde::Serialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::keys::KeyError;
use crate::model::Client;
use crate::oauth::Ctx;
use crate::store::{self, StoreError, logouts::DueLogout};

/// The event a logout token carries (§2.4).
pub const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// A logout token's lifetime: the specification suggests about two minutes.
const TOKEN_TTL_SECS: i64 = 120;
/// Deliveries claimed per round.
const BATCH: i64 = 32;
/// POSTs in flight at once.
const CONCURRENCY: usize = 8;

/// The claims of a logout token (§2.4): never a `nonce`, always `sid` and `sub`.
#[derive(Debug, Serialize)]
struct LogoutClaims<'a> {
    iss: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
    jti: &'a str,
    sub: &'a str,
    sid: &'a str,
    events: Events,
}

#[derive(Debug, Serialize)]
struct Events {
    #[serde(rename = "http://schemas.openid.net/event/backchannel-logout")]
    logout: Empty,
}

#[derive(Debug, Serialize)]
struct Empty {}

/// The logout token of `due` for `client`, signed at `now` in the algorithm of the
/// client's ID tokens.
pub fn logout_token(
    ctx: &Ctx<'_>,
    client: &Client,
    due: &DueLogout,
    now: i64,
) -> Result<String, KeyError> {
    super::id_token::signing_key(ctx, client, now)?.sign_logout_token(&LogoutClaims {
        iss: ctx.issuer,
        aud: client.client_id.as_str(),
        iat: now,
        exp: now + TOKEN_TTL_SECS,
        jti: &due.jti,
        sub: &due.user_id,
        sid: &due.sid,
        events: Events { logout: Empty {} },
    })
}

/// The HTTP client of the dispatcher: no redirects, a timeout per POST.
pub fn http_client(ctx: &Ctx<'_>) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_millis(
            ctx.config.backchannel_logout_timeout_ms,
        ))
        .user_agent(concat!("gatehouse/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// What one attempt came to.
type Outcome = (DueLogout, Result<(), String>);

/// Claims due deliveries and sends them; returns how many were claimed.
pub async fn dispatch_once(ctx: &Ctx<'_>, http: &reqwest::Client) -> Result<usize, StoreError> {
    let now = ctx.clock.unix();
    // A lease outlasts a whole round of POSTs, each at most one timeout.
    let per_post = ctx.config.backchannel_logout_timeout_ms.div_ceil(1000);
    let rounds = (BATCH as u64).div_ceil(CONCURRENCY as u64);
    let lease = i64::try_from(per_post * rounds).unwrap_or(3600) + 30;
    let due = store::logouts::claim_due(ctx.store, now, now + lease, BATCH).await?;
    let claimed = due.len();
    if claimed == 0 {
        return Ok(0);
    }
    let outcomes: Vec<Outcome> = futures::stream::iter(due)
        .map(|due| async move {
            let sent = deliver(ctx, http, &due).await;
            (due, sent)
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    record(ctx, outcomes).await?;
    Ok(claimed)
}

/// One attempt: the client's current registration, a fresh token, one POST.
async fn deliver(ctx: &Ctx<'_>, http: &reqwest::Client, due: &DueLogout) -> Result<(), String> {
    let client = ctx
        .client(&due.client_id)
        .await
        .map_err(|e| format!("client lookup failed: {e}"))?
        .ok_or("the client no longer exists")?;
    let uri = client
        .backchannel_logout_uri
        .as_ref()
        .ok_or("the client no longer has a backchannel_logout_uri")?;
    let token = logout_token(ctx, &client, due, ctx.clock.unix()).map_err(|e| e.to_string())?;
    let answer = http
        .post(uri.as_str())
        .form(&[("logout_token", token.as_str())])
        .send()
        .await
        .map_err(|e| describe(&e))?;
    let status = answer.status();
    crate::outbound::drain(answer).await;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("the client answered {status}"))
    }
}

/// A transport error in a few words (no URL: the error log names the client instead).
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "the client did not answer in time".to_owned()
    } else if e.is_connect() {
        "could not connect to the client".to_owned()
    } else {
        let mut text = e.to_string();
        if let Some(url) = e.url() {
            text = text.replace(url.as_str(), "the URI");
        }
        text
    }
}

/// Marks accepted deliveries sent, and schedules a failed one's retry or gives it up.
async fn record(ctx: &Ctx<'_>, outcomes: Vec<Outcome>) -> Result<(), StoreError> {
    let now = ctx.clock.unix();
    let mut sent = Vec::new();
    let mut failed = Vec::new();
    for (due, outcome) in &outcomes {
        match outcome {
            Ok(()) => {
                metrics::counter!("gatehouse_backchannel_logout_deliveries_total", "outcome" => "sent")
                    .increment(1);
                metrics::histogram!("gatehouse_backchannel_logout_latency_seconds")
                    .record((now - due.created_at).max(0) as f64);
                sent.push(due.jti.as_str());
            }
            Err(e) => failed.push((due, e)),
        }
    }
    store::logouts::mark_sent(ctx.store, &sent, now).await?;
    for (due, error) in failed {
        let give_up = due.attempts >= ctx.config.backchannel_logout_max_attempts;
        let next = (!give_up).then(|| {
            now + crate::mail::retry_delay(ctx.config.backchannel_logout_retry_secs, due.attempts)
        });
        let outcome = if give_up { "failed" } else { "retry" };
        metrics::counter!("gatehouse_backchannel_logout_deliveries_total", "outcome" => outcome)
            .increment(1);
        tracing::warn!(client_id = %due.client_id, attempts = due.attempts, error = %error, outcome,
            "back-channel logout delivery failed");
        store::logouts::mark_failed_attempt(ctx.store, &due.jti, next, error).await?;
    }
    Ok(())
}

/// The dispatcher: sends due logout tokens, then waits for the next poll (one sync
/// interval) or for a session this process ended, until `stop`.
pub async fn run(ctx: Ctx<'_>, wakeup: &Notify, stop: CancellationToken) {
    let http = match http_client(&ctx) {
        Ok(http) => http,
        Err(e) => {
            tracing::error!(error = %e, "no HTTP client: back-channel logout tokens are not sent");
            return;
        }
    };
    let poll = Duration::from_millis(ctx.config.sync_interval_ms);
    loop {
        let claimed = match dispatch_once(&ctx, &http).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "back-channel logout dispatch failed");
                0
            }
        };
        if let Ok(depth) = store::logouts::queued(ctx.store).await {
            metrics::gauge!("gatehouse_backchannel_logout_queued").set(depth as f64);
        }
        if claimed as i64 == BATCH {
            continue;
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = wakeup.notified() => {}
            () = tokio::time::sleep(poll) => {}
        }
    }
}
