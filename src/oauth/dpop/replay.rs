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

/// The store spent proof ids go to, and when its last failure was logged.
pub struct SpentProofs {
    store: Store,
    /// Unix second of the last logged failure: one warning per 10 s, however many
    /// requests a store outage refuses.
    last_warning: AtomicI64,
}

enum Store {
    /// Batched inserts into `used_dpop_proofs`.
    Database(AssertionQueue),
    /// `SET NX EX` in Redis, keys under the deployment's prefix.
    Redis {
        redis: RedisConnection,
        prefix: String,
    },
}

impl SpentProofs {
    /// The store `config` names, on the current runtime.
    pub fn open(
        config: &crate::config::Config,
        store: &crate::store::Store,
    ) -> anyhow::Result<Self> {
        use secrecy::ExposeSecret as _;
        let store = match (config.dpop_replay_store, &config.redis_url) {
            (ReplayStore::Redis, Some(url)) => Store::Redis {
                redis: RedisConnection::open(url.expose_secret())?,
                prefix: config.rate_limit_redis_prefix.clone(),
            },
            (ReplayStore::Redis, None) => {
                anyhow::bail!("dpop_replay_store = redis needs redis_url")
            }
            (ReplayStore::Database, _) => {
                Store::Database(AssertionQueue::spawn(store, JtiTable::DpopProofs))
            }
        };
        Ok(Self {
            store,
            last_warning: AtomicI64::new(i64::MIN),
        })
    }

    /// Marks `proof`'s id as spent until its `expires_at`; false when it was spent before.
    /// An error says only that the store did not answer (its cause is logged here).
    pub async fn spend(&self, proof: UsedAssertion, now: i64) -> Result<bool, String> {
        let spent = match &self.store {
            Store::Database(queue) => queue.use_once(proof).await.map_err(anyhow::Error::from),
            Store::Redis { redis, prefix } => {
                let key = format!("{prefix}:dpop:{}:{}", proof.client_id, proof.jti);
                set_once(redis, &key, (proof.expires_at - now).max(1)).await
            }
        };
        spent.map_err(|e| {
            metrics::counter!("gatehouse_dpop_replay_errors_total").increment(1);
            let last = self.last_warning.load(Ordering::Relaxed);
            if now.saturating_sub(last) >= 10
                && self
                    .last_warning
                    .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                tracing::warn!(error = %e, "the DPoP proof replay check failed; DPoP requests are refused until its store answers");
            }
            "the proof replay check is unavailable".to_owned()
        })
    }
}

/// Sets `key` for `ttl_secs` unless it exists; true when it did not.
async fn set_once(redis: &RedisConnection, key: &str, ttl_secs: i64) -> anyhow::Result<bool> {
    let reply = tokio::time::timeout(REDIS_TIMEOUT, async {
        let mut connection = redis.get().await?;
        redis::cmd("SET")
            .arg(key)
            .arg(1)
            .arg("NX")
            .arg("EX")
            .arg(ttl_secs)
            .query_async::<Option<String>>(&mut connection)
            .await
            .map_err(anyhow::Error::from)
    })
    .await
    .map_err(|_| anyhow::anyhow!("no answer within {} ms", REDIS_TIMEOUT.as_millis()))??;
    Ok(reply.is_some())
}
