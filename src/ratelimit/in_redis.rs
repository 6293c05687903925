//! GCRA in Redis: one atomic script per check, refusals remembered, the fail mode when Redis is away.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::redis_connection::RedisConnection;

use super::*;

/// GCRA in Redis, for each key in order: the key holds the theoretical arrival time (µs,
/// Redis' clock, so that the replicas' clocks do not matter); ARGV holds quota and
/// interval (µs) per key. Appends {allowed, remaining, reset_us, retry_us} per key and
/// stops at the first refusal (the keys after it are not counted), as separate checks
/// would.
pub(super) const GCRA_SCRIPT: &str = r"
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
pub(super) const MAX_REMEMBERED_REFUSALS: usize = 65_536;

/// How long a check may wait for Redis before the fail mode decides.
pub(super) use crate::redis_connection::REDIS_TIMEOUT;
/// After a failure, how long the fail mode answers before Redis is asked again.
pub(super) const REDIS_RETRY_MS: u64 = 1000;

pub(super) struct Shared {
    redis: RedisConnection,
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
pub(super) struct Refusal {
    until: Instant,
    reset: Instant,
}

impl Shared {
    /// The limiter state at `url`, keys under `prefix`; connects on first use.
    pub(super) fn open(url: &str, prefix: String, fail: FailMode) -> anyhow::Result<Self> {
        Ok(Self {
            redis: RedisConnection::open(url)?,
            script: redis::Script::new(GCRA_SCRIPT),
            prefix,
            fail,
            started: Instant::now(),
            skip_until_ms: AtomicU64::new(0),
            last_warning_ms: AtomicU64::new(0),
            refusals: Mutex::new(HashMap::new()),
        })
    }

    /// The script's raw answer for `checks`: four values per check counted, stopping at
    /// the first refusal.
    async fn invoke(
        &self,
        window_secs: u64,
        checks: &[(Decision, &str)],
    ) -> anyhow::Result<Vec<i64>> {
        let mut invocation = self.script.prepare_invoke();
        for (base, key) in checks {
            let interval_us = (window_secs * 1_000_000 / u64::from(base.quota.max(1))).max(1);
            invocation
                .key(format!("{}:rl:{}:{key}", self.prefix, base.policy.name()))
                .arg(base.quota)
                .arg(interval_us);
        }
        tokio::time::timeout(REDIS_TIMEOUT, async {
            let mut connection = self.redis.get().await?;
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
        })
    }

    /// One script call for `checks`; the fail mode's answer for each when Redis does not
    /// answer.
    pub(super) async fn ask(&self, window_secs: u64, checks: &[(Decision, &str)]) -> Vec<Decision> {
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
        // Before Redis reads its clock: a refusal remembered from here ends no later than
        // Redis' own.
        let sent = Instant::now();
        let answer = self.invoke(window_secs, checks).await;
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
    pub(super) fn remembered(&self, base: Decision, key: &str) -> Option<Decision> {
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

    pub(super) fn remember(&self, policy: Policy, key: &str, refusal: Refusal) {
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
    pub(super) fn forget_ended(&self) {
        let now = Instant::now();
        let mut refusals = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
        refusals.retain(|_, r| r.until > now);
    }

    pub(super) fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub(super) fn failed(&self, error: &anyhow::Error) {
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

pub(super) fn ceil_secs(ms: u64) -> u64 {
    ms.div_ceil(1000)
}

pub(super) fn ceil_secs_of(duration: Duration) -> u64 {
    duration
        .as_micros()
        .div_ceil(1_000_000)
        .try_into()
        .unwrap_or(u64::MAX)
}
