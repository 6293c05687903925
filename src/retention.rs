//! Retention: how long each table that grows with traffic keeps its rows (README,
//! *Retention*). Every process's maintenance loop applies the rules once a minute through
//! `store::prune`, in bounded batches.

use crate::config::Config;
use crate::store::prune::{self, Cutoff, Rule};
use crate::store::{Store, StoreError};

const DAY: i64 = 86_400;

/// Each rule with its cut-off at `now`. A retention of 0 days keeps that table forever,
/// and its rule is left out.
pub fn rules(config: &Config, now: i64) -> Vec<(Rule, Cutoff)> {
    let mut rules = vec![
        (prune::CODES, Cutoff::Unix(now - DAY)),
        (prune::FAMILIES, Cutoff::Unix(now - DAY)),
        (prune::SESSIONS, Cutoff::Unix(now)),
        (
            prune::REVOCATIONS,
            Cutoff::Unix(now - config.clock_skew_secs),
        ),
        (prune::DEVICE_CODES, Cutoff::Unix(now - DAY)),
        (prune::PUSHED_REQUESTS, Cutoff::Unix(now)),
        (prune::IDEMPOTENCY, Cutoff::Unix(now)),
        (prune::LOGOUTS, Cutoff::Unix(now - DAY)),
    ];
    if config.audit_retention_days > 0 {
        let cutoff = now - config.audit_retention_days * DAY;
        rules.push((prune::AUDIT, Cutoff::Unix(cutoff)));
    }
    if config.mail_retention_days > 0 {
        let cutoff = now - config.mail_retention_days * DAY;
        rules.push((prune::EMAIL, Cutoff::Unix(cutoff)));
    }
    if config.events_retention_hours > 0 {
        let cutoff = now - config.events_retention_hours * 3600;
        rules.push((prune::WEBHOOK_DELIVERIES, Cutoff::Unix(cutoff)));
    }
    if config.usage_retention_days > 0 {
        let first_kept = now - config.usage_retention_days * DAY;
        rules.push((prune::USAGE, Cutoff::Day(crate::usage::day_of(first_kept))));
    }
    rules
}

/// Applies every rule once; returns the rows each table let go.
pub async fn run(
    store: &Store,
    config: &Config,
    now: i64,
) -> Result<Vec<(&'static str, u64)>, StoreError> {
    let mut pruned = Vec::new();
    for (rule, cutoff) in rules(config, now) {
        let n = prune::prune(store, &rule, &cutoff, prune::BATCH).await?;
        if n > 0 {
            metrics::counter!("gatehouse_pruned_rows_total", "table" => rule.table).increment(n);
        }
        pruned.push((rule.table, n));
    }
    Ok(pruned)
}
