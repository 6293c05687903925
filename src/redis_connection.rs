//! The process's connection to the Redis every replica shares (`redis_url`): opened on
//! first use, multiplexed (concurrent requests pipeline over it) and re-established by
//! itself after a failure. Rate limits and spent DPoP proof ids each hold one.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use redis::aio::ConnectionManager;

/// How long a caller waits for Redis (to connect, or for an answer) before it gives up.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(200);

/// A Redis client and, once connected, its connection.
pub struct RedisConnection {
    client: redis::Client,
    connection: ArcSwapOption<ConnectionManager>,
}

impl RedisConnection {
    /// The Redis at `url`; nothing is connected until [`Self::get`].
    pub fn open(url: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url).map_err(|e| anyhow::anyhow!("redis_url: {e}"))?;
        Ok(Self {
            client,
            connection: ArcSwapOption::empty(),
        })
    }

    /// The connection, made on the first call (within [`REDIS_TIMEOUT`]).
    pub async fn get(&self) -> anyhow::Result<ConnectionManager> {
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
}
