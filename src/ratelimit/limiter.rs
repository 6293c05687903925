//! The limiter: quotas per policy, in memory (governor) or in Redis.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota as GovernorQuota, RateLimiter};
use secrecy::ExposeSecret as _;

use super::in_redis::{Shared, ceil_secs};
use super::*;
use crate::config::Config;

pub(super) type MemoryLimiter =
    RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

pub(super) enum Backend {
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
            Some(url) => Backend::Redis(Arc::new(Shared::open(
                url.expose_secret(),
                config.rate_limit_redis_prefix.clone(),
                config.rate_limit_redis_failure,
            )?)),
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

    pub(super) fn quota(&self, policy: Policy) -> Option<u32> {
        self.quotas
            .iter()
            .find(|(p, _)| *p == policy)
            .map(|(_, q)| *q)
    }

    /// Checks in order, stopping at the first refusal; records and returns as
    /// [`Limiter::check`] does.
    pub(super) async fn check_all(&self, checks: &[(Policy, &str)]) -> Option<Decision> {
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
            // Boxed: the Redis exchange's future is large, and every request that counts a
            // limit would otherwise carry (and copy) its size even when counting in memory.
            Backend::Redis(shared) => Box::pin(self.redis_checks(shared, &limited)).await,
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

    pub(super) fn recorded(&self, decision: Decision) {
        if decision.refused() {
            metrics::counter!("gatehouse_rate_limited_total", "policy" => decision.policy.name())
                .increment(1);
        }
        record(decision);
    }

    /// An allowed decision of `policy` with nothing known yet.
    pub(super) fn base(&self, policy: Policy, quota: u32) -> Decision {
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

    pub(super) fn memory_check(
        &self,
        base: Decision,
        limiter: &MemoryLimiter,
        key: &str,
    ) -> Decision {
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
    pub(super) async fn redis_checks(
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
