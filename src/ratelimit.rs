//! Request-rate limits: a quota of requests per window for each (policy, key), enforced
//! with GCRA (a smoothed token bucket: a burst of the whole quota, then one request per
//! `window / quota`). In one process the state lives in memory (governor); with
//! `redis_url` set it lives in Redis, one atomic script per check, so that every replica
//! counts against the same limit.
//!
//! A check records its [`Decision`] in the current request's report (a task-local set by
//! the HTTP layer), which turns every decision of the request into the IETF `RateLimit`
//! and `RateLimit-Policy` headers, and a refusal into `Retry-After`.
//!
//! Latency: a request pays at most one Redis round trip. An endpoint that counts a
//! per-address limit and, once the client is known, a per-client one [`defer`]s the first
//! so that the second check sends both in one script call (or, when the request ends
//! before that, the HTTP layer checks the deferred one alone). A refusal Redis gave is
//! remembered until the moment it names, so refused keys are answered without a round
//! trip; GCRA state only moves forward, so that answer is the one Redis would give.

use std::cell::RefCell;
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use governor::clock::{Clock as _, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota as GovernorQuota, RateLimiter};
use secrecy::ExposeSecret as _;
use serde::Deserialize;

use crate::config::Config;

/// What a limit is counted per, and on which endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Policy {
    /// Token requests of one authenticated client.
    TokenClient,
    /// Token requests from one address.
    TokenAddress,
    /// Device authorization requests of one client.
    DeviceClient,
    /// Device authorization requests from one address.
    DeviceAddress,
    /// Requests to /login from one address.
    LoginAddress,
    /// Requests to /activate from one address.
    ActivateAddress,
    /// Resource API requests of one client (or one token, see `rate_limit_api_key`).
    Api,
}

impl Policy {
    /// Every policy.
    pub const ALL: [Policy; 7] = [
        Policy::TokenClient,
        Policy::TokenAddress,
        Policy::DeviceClient,
        Policy::DeviceAddress,
        Policy::LoginAddress,
        Policy::ActivateAddress,
        Policy::Api,
    ];

    /// The policy's name in `RateLimit-Policy` and `RateLimit` headers, metrics and keys.
    pub fn name(self) -> &'static str {
        match self {
            Policy::TokenClient => "token-client",
            Policy::TokenAddress => "token-address",
            Policy::DeviceClient => "device-client",
            Policy::DeviceAddress => "device-address",
            Policy::LoginAddress => "login-address",
            Policy::ActivateAddress => "activate-address",
            Policy::Api => "api",
        }
    }

    /// Requests allowed per window by `config` (0 = no limit).
    fn quota(self, config: &Config) -> u32 {
        match self {
            Policy::TokenClient => config.rate_limit_token_per_client,
            Policy::TokenAddress => config.rate_limit_token_per_address,
            Policy::DeviceClient => config.rate_limit_device_per_client,
            Policy::DeviceAddress => config.rate_limit_device_per_address,
            Policy::LoginAddress => config.rate_limit_login_per_address,
            Policy::ActivateAddress => config.rate_limit_activate_per_address,
            Policy::Api => config.rate_limit_api,
        }
    }
}

/// The key an address is counted under: the address itself, or for IPv6 its /64 (one
/// host or home network is usually given a whole /64, and can pick any address in it).
pub fn address_bucket(address: &str) -> std::borrow::Cow<'_, str> {
    match address.parse::<std::net::Ipv6Addr>() {
        Ok(ip) if ip.to_ipv4_mapped().is_none() => {
            let net = ipnet::Ipv6Net::new(ip, 64).map(|n| n.trunc());
            net.map_or(std::borrow::Cow::Borrowed(address), |n| {
                std::borrow::Cow::Owned(n.to_string())
            })
        }
        _ => std::borrow::Cow::Borrowed(address),
    }
}

/// The key a client's token and device limits count: a confidential client's id; for a
/// public client, whose `client_id` is no secret, the id and the caller's address bucket,
/// so that nobody can spend the app's quota for its other users.
pub fn client_key<'a>(
    client: &'a crate::model::Client,
    address: &str,
) -> std::borrow::Cow<'a, str> {
    match client.client_type {
        crate::model::ClientType::Public => {
            std::borrow::Cow::Owned(format!("{}@{address}", client.client_id))
        }
        crate::model::ClientType::Confidential => {
            std::borrow::Cow::Borrowed(client.client_id.as_str())
        }
    }
}

/// What the resource API's limit is counted per.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ApiLimitKey {
    /// A user's tokens of one client share one limit (one user cannot spend the app's
    /// limit for its other users); a client-credentials token counts for its client.
    #[default]
    Subject,
    /// Every token of one client shares one limit.
    Client,
    /// Each access token has its own limit.
    Token,
}

/// What to do when Redis cannot answer a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FailMode {
    /// Let the request through (and log and count the failure).
    #[default]
    Open,
    /// Refuse the request with 503 and `Retry-After: 1`.
    Closed,
}

/// The answer to one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Within the limit.
    Allowed,
    /// Over the limit: wait `retry_after_secs`.
    Limited,
    /// The shared limiter did not answer and the server fails closed.
    Unavailable,
}

/// One policy's decision for one request.
#[derive(Debug, Clone, Copy)]
pub struct Decision {
    /// The policy.
    pub policy: Policy,
    /// Requests per window.
    pub quota: u32,
    /// The window, in seconds.
    pub window_secs: u64,
    /// Allowed, limited, or not known.
    pub outcome: Outcome,
    /// Requests still allowed right now.
    pub remaining: u32,
    /// Seconds until the whole quota is available again.
    pub reset_secs: u64,
    /// Seconds until the next request would be allowed (0 when allowed).
    pub retry_after_secs: u64,
}

impl Decision {
    /// Whether the request must be refused.
    pub fn refused(&self) -> bool {
        self.outcome != Outcome::Allowed
    }

    /// Why a refused request was refused, for the caller's developer.
    pub fn describe(&self) -> String {
        match self.outcome {
            Outcome::Unavailable => "the rate limiter is unavailable; retry shortly".to_owned(),
            _ => format!(
                "rate limit {} exceeded ({} requests per {} s); retry after {} s",
                self.policy.name(),
                self.quota,
                self.window_secs,
                self.retry_after_secs
            ),
        }
    }
}

/// The caller's daily API usage, as counted for this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DailyUsage {
    /// Calls today, this one included.
    pub used: u64,
    /// `api_daily_limit` (0 = none).
    pub limit: u64,
    /// When the limit is spent: seconds until it starts again (UTC midnight).
    pub refused_for_secs: Option<u64>,
}

/// What the limits said about one request.
#[derive(Debug, Default)]
pub struct Report {
    /// Every rate limit the request met.
    pub decisions: Vec<Decision>,
    /// The caller's daily usage (bearer-token routes).
    pub usage: Option<DailyUsage>,
    /// A check put off until the next one, to share its round trip (see [`defer`]).
    deferred: Option<(Policy, String)>,
}

tokio::task_local! {
    /// The report of the request the current task serves.
    static REPORT: RefCell<Report>;
}

/// Runs `future` (a request) with an empty report; returns its output and the report.
pub async fn reporting<F: Future>(future: F) -> (F::Output, Report) {
    REPORT
        .scope(RefCell::new(Report::default()), async move {
            let output = future.await;
            let report = REPORT.with(|r| r.take());
            (output, report)
        })
        .await
}

fn record(decision: Decision) {
    // Outside a request (a CLI command, a test of the domain) there is nothing to report to.
    let _ = REPORT.try_with(|r| r.borrow_mut().decisions.push(decision));
}

/// Puts off counting `key` against `policy` until the request's next check, which then
/// counts both in one round trip; [`Limiter::check_deferred`] counts it alone if no check
/// follows. Outside a request it does nothing.
pub fn defer(policy: Policy, key: String) {
    let _ = REPORT.try_with(|r| r.borrow_mut().deferred = Some((policy, key)));
}

fn take_deferred() -> Option<(Policy, String)> {
    REPORT
        .try_with(|r| r.borrow_mut().deferred.take())
        .ok()
        .flatten()
}

/// Records the caller's daily usage for the `Gatehouse-Limit-Info` header.
pub fn record_usage(usage: DailyUsage) {
    let _ = REPORT.try_with(|r| r.borrow_mut().usage = Some(usage));
}

type MemoryLimiter =
    RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// GCRA in Redis, for each key in order: the key holds the theoretical arrival time (µs,
/// Redis' clock, so that the replicas' clocks do not matter); ARGV holds quota and
/// interval (µs) per key. Appends {allowed, remaining, reset_us, retry_us} per key and
/// stops at the first refusal (the keys after it are not counted), as separate checks
/// would.
const GCRA_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local out = {}
for i, key in ipairs(KEYS) do
  local quota = tonumber(ARGV[2 * i - 1])
  local interval = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local new_tat = tat + interval
  local allow_at = new_tat - quota * interval
  local n = #out
  if now < allow_at then
    out[n + 1], out[n + 2], out[n + 3], out[n + 4] = 0, 0, tat - now, allow_at - now
    return out
  end
  redis.call('SET', key, string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
  out[n + 1], out[n + 2] = 1, math.floor((now - allow_at) / interval)
  out[n + 3], out[n + 4] = new_tat - now, 0
end
return out
";

/// At most this many refusals are remembered (each is dropped once it ends).
const MAX_REMEMBERED_REFUSALS: usize = 65_536;

/// How long a check may wait for Redis before the fail mode decides.
const REDIS_TIMEOUT: Duration = Duration::from_millis(200);
/// After a failure, how long the fail mode answers before Redis is asked again.
const REDIS_RETRY_MS: u64 = 1000;

struct Shared {
    client: redis::Client,
    connection: ArcSwapOption<redis::aio::ConnectionManager>,
    script: redis::Script,
    prefix: String,
    fail: FailMode,
    /// Measures the two times below (monotonic).
    started: Instant,
    /// Milliseconds after `started` before which Redis is not asked again: after a failure
    /// the fail mode answers at once for a second instead of every request waiting out
    /// the timeout.
    skip_until_ms: AtomicU64,
    /// Milliseconds after `started` of the last logged failure: one warning per 10 s.
    last_warning_ms: AtomicU64,
    /// Refusals Redis gave, until the instant each ends (see the module documentation).
    refusals: Mutex<HashMap<(Policy, String), Refusal>>,
}

/// A remembered refusal: the request is refused until `until`; the whole quota is back at
/// `reset`.
#[derive(Clone, Copy)]
struct Refusal {
    until: Instant,
    reset: Instant,
}

enum Backend {
    Memory(Vec<(Policy, Arc<MemoryLimiter>)>),
    Redis(Arc<Shared>),
}

/// The process's limiter.
pub struct Limiter {
    quotas: Vec<(Policy, u32)>,
    window_secs: u64,
    backend: Backend,
}

impl Limiter {
    /// The limiter `config` describes: in Redis when `redis_url` is set, else in memory.
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let window_secs = config.rate_limit_window_secs.max(1);
        let quotas: Vec<(Policy, u32)> = Policy::ALL
            .iter()
            .map(|p| (*p, p.quota(config)))
            .filter(|(_, q)| *q > 0)
            .collect();
        let backend = match &config.redis_url {
            Some(url) => {
                let client = redis::Client::open(url.expose_secret())
                    .map_err(|e| anyhow::anyhow!("redis_url: {e}"))?;
                Backend::Redis(Arc::new(Shared {
                    client,
                    connection: ArcSwapOption::empty(),
                    script: redis::Script::new(GCRA_SCRIPT),
                    prefix: config.rate_limit_redis_prefix.clone(),
                    fail: config.rate_limit_redis_failure,
                    started: Instant::now(),
                    skip_until_ms: AtomicU64::new(0),
                    last_warning_ms: AtomicU64::new(0),
                    refusals: Mutex::new(HashMap::new()),
                }))
            }
            None => Backend::Memory(
                quotas
                    .iter()
                    .filter_map(|(policy, quota)| {
                        let quota = NonZeroU32::new(*quota)?;
                        let cell = Duration::from_secs(window_secs) / quota.get();
                        let limit = GovernorQuota::with_period(cell)?.allow_burst(quota);
                        Some((
                            *policy,
                            Arc::new(RateLimiter::keyed(limit).with_middleware()),
                        ))
                    })
                    .collect(),
            ),
        };
        Ok(Self {
            quotas,
            window_secs,
            backend,
        })
    }

    /// Whether limits are shared through Redis.
    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Redis(_))
    }

    /// Counts one request of `key` against `policy` (and, first, the check the request
    /// [`defer`]red, in the same round trip) and records the decisions in the request's
    /// report. Returns the refusal if there is one, else the last decision (`policy`'s
    /// when it has a limit); `None` when neither policy has one.
    pub async fn check(&self, policy: Policy, key: &str) -> Option<Decision> {
        let deferred = take_deferred();
        let mut checks = Vec::with_capacity(2);
        if let Some((policy, key)) = &deferred {
            checks.push((*policy, key.as_str()));
        }
        checks.push((policy, key));
        self.check_all(&checks).await
    }

    /// Counts the check the request [`defer`]red if no check has taken it along; `None`
    /// when there is none (or its policy has no limit).
    pub async fn check_deferred(&self) -> Option<Decision> {
        let (policy, key) = take_deferred()?;
        self.check_all(&[(policy, &key)]).await
    }

    /// A refusal of `key` by `policy` this process already knows of (shared limits
    /// only), answered without a round trip and recorded like a check.
    pub fn known_refusal(&self, policy: Policy, key: &str) -> Option<Decision> {
        let Backend::Redis(shared) = &self.backend else {
            return None;
        };
        let quota = self.quota(policy)?;
        let decision = shared.remembered(self.base(policy, quota), key)?;
        self.recorded(decision);
        Some(decision)
    }

    fn quota(&self, policy: Policy) -> Option<u32> {
        self.quotas
            .iter()
            .find(|(p, _)| *p == policy)
            .map(|(_, q)| *q)
    }

    /// Checks in order, stopping at the first refusal; records and returns as
    /// [`Limiter::check`] does.
    async fn check_all(&self, checks: &[(Policy, &str)]) -> Option<Decision> {
        let limited: Vec<(Decision, &str)> = checks
            .iter()
            .filter_map(|(policy, key)| Some((self.base(*policy, self.quota(*policy)?), *key)))
            .collect();
        let decisions = match &self.backend {
            Backend::Memory(limiters) => {
                let mut decisions = Vec::with_capacity(limited.len());
                for (base, key) in &limited {
                    let Some((_, limiter)) = limiters.iter().find(|(p, _)| *p == base.policy)
                    else {
                        continue;
                    };
                    let decision = self.memory_check(*base, limiter, key);
                    decisions.push(decision);
                    if decision.refused() {
                        break;
                    }
                }
                decisions
            }
            Backend::Redis(shared) => self.redis_checks(shared, &limited).await,
        };
        for decision in &decisions {
            self.recorded(*decision);
        }
        decisions
            .iter()
            .find(|d| d.refused())
            .or(decisions.last())
            .copied()
    }

    fn recorded(&self, decision: Decision) {
        if decision.refused() {
            metrics::counter!("gatehouse_rate_limited_total", "policy" => decision.policy.name())
                .increment(1);
        }
        record(decision);
    }

    /// An allowed decision of `policy` with nothing known yet.
    fn base(&self, policy: Policy, quota: u32) -> Decision {
        Decision {
            policy,
            quota,
            window_secs: self.window_secs,
            outcome: Outcome::Allowed,
            remaining: quota,
            reset_secs: 0,
            retry_after_secs: 0,
        }
    }

    fn memory_check(&self, base: Decision, limiter: &MemoryLimiter, key: &str) -> Decision {
        let quota = base.quota;
        let cell_ms = self.window_secs * 1000 / u64::from(quota.max(1));
        match limiter.check_key(&key.to_owned()) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                Decision {
                    remaining,
                    reset_secs: ceil_secs(u64::from(quota - remaining) * cell_ms),
                    ..base
                }
            }
            Err(not_until) => {
                // The limiter's own clock: making one per call costs ~20 µs (CPUID) in a VM.
                let wait = not_until.wait_time_from(limiter.clock().now());
                Decision {
                    outcome: Outcome::Limited,
                    remaining: 0,
                    reset_secs: ceil_secs(u64::from(quota) * cell_ms),
                    retry_after_secs: ceil_secs(
                        u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    )
                    .max(1),
                    ..base
                }
            }
        }
    }

    /// The decisions for `checks` (in order, up to the first refusal) from one script
    /// call, or from refusals already known, or from the fail mode.
    async fn redis_checks(
        &self,
        shared: &Arc<Shared>,
        checks: &[(Decision, &str)],
    ) -> Vec<Decision> {
        // A known refusal ends the list there; only the checks before it go to Redis.
        let known = checks
            .iter()
            .enumerate()
            .find_map(|(i, (base, key))| Some((i, shared.remembered(*base, key)?)));
        let checks = &checks[..known.map_or(checks.len(), |(i, _)| i)];
        let mut decisions = if checks.is_empty() {
            Vec::new()
        } else {
            shared.ask(self.window_secs, checks).await
        };
        if let Some((_, decision)) = known
            && decisions.iter().all(|d| !d.refused())
        {
            decisions.push(decision);
        }
        decisions
    }

    /// Drops in-memory state of keys whose quota is whole again (bounded memory).
    pub fn forget_idle(&self) {
        match &self.backend {
            Backend::Memory(limiters) => {
                for (_, limiter) in limiters {
                    limiter.retain_recent();
                    limiter.shrink_to_fit();
                }
            }
            Backend::Redis(shared) => shared.forget_ended(),
        }
    }
}

impl Shared {
    /// One script call for `checks`; the fail mode's answer for each when Redis does not
    /// answer.
    async fn ask(&self, window_secs: u64, checks: &[(Decision, &str)]) -> Vec<Decision> {
        let unavailable = |base: Decision| match self.fail {
            FailMode::Open => base,
            FailMode::Closed => Decision {
                outcome: Outcome::Unavailable,
                remaining: 0,
                retry_after_secs: 1,
                ..base
            },
        };
        if self.elapsed_ms() < self.skip_until_ms.load(Ordering::Relaxed) {
            // Redis failed less than a second ago.
            return checks.iter().map(|(base, _)| unavailable(*base)).collect();
        }
        let mut invocation = self.script.prepare_invoke();
        for (base, key) in checks {
            let interval_us = (window_secs * 1_000_000 / u64::from(base.quota.max(1))).max(1);
            invocation
                .key(format!("{}:rl:{}:{key}", self.prefix, base.policy.name()))
                .arg(base.quota)
                .arg(interval_us);
        }
        // Before Redis reads its clock: a refusal remembered from here ends no later than
        // Redis' own.
        let sent = Instant::now();
        let answer = tokio::time::timeout(REDIS_TIMEOUT, async {
            let mut connection = self.connection().await?;
            invocation
                .invoke_async::<Vec<i64>>(&mut connection)
                .await
                .map_err(anyhow::Error::from)
        })
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {} ms", REDIS_TIMEOUT.as_millis()))
        .and_then(|r| r)
        .and_then(|values| {
            let answered = values.len() / 4;
            if values.len() % 4 != 0 || answered == 0 || answered > checks.len() {
                anyhow::bail!("unexpected answer of {} values", values.len());
            }
            Ok(values)
        });
        let values = match answer {
            Ok(values) => values,
            Err(e) => {
                self.failed(&e);
                return checks.iter().map(|(base, _)| unavailable(*base)).collect();
            }
        };
        let micros = |v: i64| Duration::from_micros(u64::try_from(v).unwrap_or(0));
        values
            .chunks_exact(4)
            .zip(checks)
            .map(|(v, (base, key))| {
                let (allowed, remaining, reset, retry) =
                    (v[0] == 1, v[1], micros(v[2]), micros(v[3]));
                if !allowed {
                    self.remember(
                        base.policy,
                        key,
                        Refusal {
                            until: sent + retry,
                            reset: sent + reset,
                        },
                    );
                }
                Decision {
                    outcome: if allowed {
                        Outcome::Allowed
                    } else {
                        Outcome::Limited
                    },
                    remaining: u32::try_from(remaining.max(0)).unwrap_or(base.quota),
                    reset_secs: ceil_secs_of(reset),
                    retry_after_secs: if allowed {
                        0
                    } else {
                        ceil_secs_of(retry).max(1)
                    },
                    ..*base
                }
            })
            .collect()
    }

    /// The refusal of `key` remembered for `base.policy`, if it has not ended.
    fn remembered(&self, base: Decision, key: &str) -> Option<Decision> {
        let now = Instant::now();
        let mut refusals = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
        let lookup = (base.policy, key.to_owned());
        let refusal = *refusals.get(&lookup)?;
        if refusal.until <= now {
            refusals.remove(&lookup);
            return None;
        }
        Some(Decision {
            outcome: Outcome::Limited,
            remaining: 0,
            reset_secs: ceil_secs_of(refusal.reset.saturating_duration_since(now)),
            retry_after_secs: ceil_secs_of(refusal.until - now).max(1),
            ..base
        })
    }

    fn remember(&self, policy: Policy, key: &str, refusal: Refusal) {
        let mut refusals = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
        if refusals.len() >= MAX_REMEMBERED_REFUSALS {
            let now = Instant::now();
            refusals.retain(|_, r| r.until > now);
            if refusals.len() >= MAX_REMEMBERED_REFUSALS {
                return;
            }
        }
        refusals.insert((policy, key.to_owned()), refusal);
    }

    /// Drops the refusals that have ended.
    fn forget_ended(&self) {
        let now = Instant::now();
        let mut refusals = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
        refusals.retain(|_, r| r.until > now);
    }

    /// The shared connection, connecting on first use (and again after a failed connect).
    async fn connection(&self) -> anyhow::Result<redis::aio::ConnectionManager> {
        if let Some(connection) = self.connection.load_full() {
            return Ok((*connection).clone());
        }
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let connection = self
            .client
            .get_connection_manager_with_config(config)
            .await?;
        self.connection.store(Some(Arc::new(connection.clone())));
        Ok(connection)
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn failed(&self, error: &anyhow::Error) {
        metrics::counter!("gatehouse_rate_limit_backend_errors_total").increment(1);
        let now = self.elapsed_ms();
        self.skip_until_ms
            .fetch_max(now + REDIS_RETRY_MS, Ordering::Relaxed);
        let last = self.last_warning_ms.load(Ordering::Relaxed);
        if (last == 0 || now.saturating_sub(last) >= 10_000)
            && self
                .last_warning_ms
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let mode = match self.fail {
                FailMode::Open => "letting requests through (fail-open)",
                FailMode::Closed => "refusing limited requests (fail-closed)",
            };
            tracing::warn!(error = %error, "rate limiter: Redis did not answer; {mode}");
        }
    }
}

fn ceil_secs(ms: u64) -> u64 {
    ms.div_ceil(1000)
}

fn ceil_secs_of(duration: Duration) -> u64 {
    duration
        .as_micros()
        .div_ceil(1_000_000)
        .try_into()
        .unwrap_or(u64::MAX)
}
