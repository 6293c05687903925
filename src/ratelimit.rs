//! Request-rate limits: a quota of requests per window for each (policy, key), enforced
//! with GCRA (a smoothed token bucket: a burst of the whole quota, then one request per
//! `window / quota`). In one process the state lives in memory (governor); with
//! `redis_url` set it lives in Redis, one atomic script per check, so that every replica
//! counts against the same limit.
//!
//! A check records its [`Decision`] in the current request's report (a task-local set by
//! the HTTP layer), which turns every decision of the request into the IETF `RateLimit`
//! and `RateLimit-Policy` headers, and a refusal into `Retry-After`.

use std::cell::RefCell;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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

/// What the resource API's limit is counted per.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ApiLimitKey {
    /// Every token of one client shares one limit.
    #[default]
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

/// Records the caller's daily usage for the `Gatehouse-Limit-Info` header.
pub fn record_usage(usage: DailyUsage) {
    let _ = REPORT.try_with(|r| r.borrow_mut().usage = Some(usage));
}

type MemoryLimiter =
    RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// GCRA in Redis: the key holds the theoretical arrival time (µs, Redis' clock, so that
/// the replicas' clocks do not matter). Returns {allowed, remaining, reset_ms, retry_ms}.
const GCRA_SCRIPT: &str = r"
local quota = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - quota * interval
if now < allow_at then
  return {0, 0, math.ceil((tat - now) / 1000), math.ceil((allow_at - now) / 1000)}
end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, math.floor((now - allow_at) / interval), math.ceil((new_tat - now) / 1000), 0}
";

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

    /// Counts one request of `key` against `policy` and records the decision in the
    /// request's report. `None` when the policy has no limit.
    pub async fn check(&self, policy: Policy, key: &str) -> Option<Decision> {
        let quota = self.quotas.iter().find(|(p, _)| *p == policy)?.1;
        let decision = match &self.backend {
            Backend::Memory(limiters) => {
                let limiter = &limiters.iter().find(|(p, _)| *p == policy)?.1;
                self.memory_check(policy, quota, limiter, key)
            }
            Backend::Redis(shared) => self.redis_check(shared, policy, quota, key).await,
        };
        if decision.refused() {
            metrics::counter!("gatehouse_rate_limited_total", "policy" => policy.name())
                .increment(1);
        }
        record(decision);
        Some(decision)
    }

    fn memory_check(
        &self,
        policy: Policy,
        quota: u32,
        limiter: &MemoryLimiter,
        key: &str,
    ) -> Decision {
        let cell_ms = self.window_secs * 1000 / u64::from(quota.max(1));
        let base = Decision {
            policy,
            quota,
            window_secs: self.window_secs,
            outcome: Outcome::Allowed,
            remaining: 0,
            reset_secs: 0,
            retry_after_secs: 0,
        };
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
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                Decision {
                    outcome: Outcome::Limited,
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

    async fn redis_check(
        &self,
        shared: &Arc<Shared>,
        policy: Policy,
        quota: u32,
        key: &str,
    ) -> Decision {
        let base = Decision {
            policy,
            quota,
            window_secs: self.window_secs,
            outcome: Outcome::Allowed,
            remaining: quota,
            reset_secs: 0,
            retry_after_secs: 0,
        };
        let interval_us = (self.window_secs * 1_000_000 / u64::from(quota.max(1))).max(1);
        let unavailable = match shared.fail {
            FailMode::Open => base,
            FailMode::Closed => Decision {
                outcome: Outcome::Unavailable,
                remaining: 0,
                retry_after_secs: 1,
                ..base
            },
        };
        if shared.elapsed_ms() < shared.skip_until_ms.load(Ordering::Relaxed) {
            // Redis failed less than a second ago.
            return unavailable;
        }
        let answer = tokio::time::timeout(REDIS_TIMEOUT, async {
            let mut connection = shared.connection().await?;
            shared
                .script
                .key(format!("{}:rl:{}:{key}", shared.prefix, policy.name()))
                .arg(quota)
                .arg(interval_us)
                .invoke_async::<(i64, i64, i64, i64)>(&mut connection)
                .await
                .map_err(anyhow::Error::from)
        })
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {} ms", REDIS_TIMEOUT.as_millis()))
        .and_then(|r| r);
        match answer {
            Ok((allowed, remaining, reset_ms, retry_ms)) => Decision {
                outcome: if allowed == 1 {
                    Outcome::Allowed
                } else {
                    Outcome::Limited
                },
                remaining: u32::try_from(remaining.max(0)).unwrap_or(quota),
                reset_secs: ceil_secs(u64::try_from(reset_ms).unwrap_or(0)),
                retry_after_secs: if allowed == 1 {
                    0
                } else {
                    ceil_secs(u64::try_from(retry_ms).unwrap_or(0)).max(1)
                },
                ..base
            },
            Err(e) => {
                shared.failed(&e);
                unavailable
            }
        }
    }

    /// Drops in-memory state of keys whose quota is whole again (bounded memory).
    pub fn forget_idle(&self) {
        if let Backend::Memory(limiters) = &self.backend {
            for (_, limiter) in limiters {
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
        }
    }
}

impl Shared {
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
