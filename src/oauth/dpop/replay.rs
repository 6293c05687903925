//! Where spent proof ids are kept until their proofs are too old anyway: in the database,
//! batched with the other requests of the moment, or in the Redis every replica shares,
//! one `SET NX` each, pipelined over one connection. Either way a replica refuses a proof
//! another one accepted; when the store cannot answer, the proof is refused (fail closed).

use std::sync::atomic::{AtomicI64, Ordering};

use serde::Deserialize;

use crate::redis_connection::{REDIS_TIMEOUT, RedisConnection};
use crate::store::revocations::{AssertionQueue, JtiTable, UsedAssertion};

/// The `dpop_replay_store` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplayStore {
    /// The `used_dpop_proofs` table.
    #[default]
    Database,
    /// Keys `<rate_limit_redis_prefix>:dpop:<jkt>:<jti>` in `redis_url`'s Redis.
    Redis,
}

/// The store spent proof ids go to.
pub enum SpentProofs {
    /// Batched inserts into `used_dpop_proofs`.
    Database(AssertionQueue),
    /// `SET NX EX` in Redis.
    Redis {
        /// The shared connection.
        redis: RedisConnection,
        /// The deployment's key prefix.
        prefix: String,
        /// Unix second of the last logged failure: one warning per 10 s.
        last_warning: AtomicI64,
    },
}

impl SpentProofs {
    /// The store `config` names, on the current runtime.
    pub fn open(
        config: &crate::config::Config,
        store: &crate::store::Store,
    ) -> anyhow::Result<Self> {
        use secrecy::ExposeSecret as _;
        Ok(match (config.dpop_replay_store, &config.redis_url) {
            (ReplayStore::Redis, Some(url)) => Self::Redis {
                redis: RedisConnection::open(url.expose_secret())?,
                prefix: config.rate_limit_redis_prefix.clone(),
                last_warning: AtomicI64::new(i64::MIN),
            },
            (ReplayStore::Redis, None) => {
                anyhow::bail!("dpop_replay_store = redis needs redis_url")
            }
            (ReplayStore::Database, _) => {
                Self::Database(AssertionQueue::spawn(store, JtiTable::DpopProofs))
            }
        })
    }

    /// Marks `proof`'s id as spent until its `expires_at`; false when it was spent before.
    /// An error says only that the store did not answer (its cause is logged here).
    pub async fn spend(&self, proof: UsedAssertion, now: i64) -> Result<bool, String> {
        match self {
            Self::Database(queue) => queue.use_once(proof).await.map_err(|e| {
                tracing::error!(error = %e, "the DPoP proof replay check failed");
                "the proof replay check failed".to_owned()
            }),
            Self::Redis {
                redis,
                prefix,
                last_warning,
            } => {
                let key = format!("{prefix}:dpop:{}:{}", proof.client_id, proof.jti);
                let ttl = (proof.expires_at - now).max(1);
                let set = tokio::time::timeout(REDIS_TIMEOUT, async {
                    let mut connection = redis.get().await?;
                    redis::cmd("SET")
                        .arg(&key)
                        .arg(1)
                        .arg("NX")
                        .arg("EX")
                        .arg(ttl)
                        .query_async::<Option<String>>(&mut connection)
                        .await
                        .map_err(anyhow::Error::from)
                })
                .await
                .map_err(|_| anyhow::anyhow!("no answer within {} ms", REDIS_TIMEOUT.as_millis()))
                .and_then(|r| r);
                set.map(|reply| reply.is_some()).map_err(|e| {
                    metrics::counter!("gatehouse_dpop_replay_errors_total").increment(1);
                    let last = last_warning.load(Ordering::Relaxed);
                    if now.saturating_sub(last) >= 10
                        && last_warning
                            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                            .is_ok()
                    {
                        tracing::warn!(error = %e, "Redis did not answer the DPoP proof replay check; DPoP requests are refused until it does");
                    }
                    "the proof replay check is unavailable".to_owned()
                })
            }
        }
    }
}
