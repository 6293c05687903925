//! What the authorization-server domain works with: borrowed parts of the running server,
//! never the whole application state, so that every grant runs without HTTP.

use std::sync::Arc;
use std::time::Duration;

use super::client_auth::VerifyKey;
use super::password::Passwords;
use super::tokens::Tokens;
use crate::audit::Audit;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::model::Client;
use crate::ratelimit::Limiter;
use crate::store::{self, Store, StoreError};

/// The parts of the server the OAuth domain reads and writes; cheap to copy.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    /// The database.
    pub store: &'a Store,
    /// The only source of wall time.
    pub clock: &'a SharedClock,
    /// The validated configuration (lifetimes, skew, device polling).
    pub config: &'a Config,
    /// `iss` of every token: the issuer URL without a trailing slash.
    pub issuer: &'a str,
    /// Signing keys, access tokens, revocations and cut-offs.
    pub tokens: &'a Tokens,
    /// Clients and their assertion keys, cached for one sync interval.
    pub clients: &'a ClientCache,
    /// Each polling device's last poll and interval (RFC 8628 §3.5).
    pub device_polls: &'a DevicePolls,
    /// Assertion ids marked used, batched across concurrent requests.
    pub assertions: &'a store::revocations::AssertionQueue,
    /// DPoP proofs and nonces.
    pub dpop: &'a super::dpop::Dpop,
    /// Refresh-token reads and rotations, batched across concurrent requests.
    pub refresh: &'a store::grants::RefreshQueue,
    /// argon2id hashing off the async threads.
    pub passwords: &'a Passwords,
    /// The audit log.
    pub audit: &'a Audit,
    /// Request-rate limits (the token endpoint counts each client after authenticating it).
    pub limiter: &'a Limiter,
}

/// Each polling device's last poll and interval, by device-code hash.
pub type DevicePolls = moka::sync::Cache<[u8; 32], (i64, i64)>;

/// A device-poll cache whose entries outlive a device code of `ttl_secs` by a minute.
pub fn device_polls(ttl_secs: i64) -> DevicePolls {
    moka::sync::Cache::builder()
        .max_capacity(1_000_000)
        .time_to_live(Duration::from_secs(
            u64::try_from(ttl_secs).unwrap_or(600) + 60,
        ))
        .build()
}

impl Ctx<'_> {
    /// The client with this id (cached for one sync interval).
    pub async fn client(&self, client_id: &str) -> Result<Option<Arc<Client>>, StoreError> {
        self.clients.client(self.store, client_id).await
    }

    /// A client's assertion keys, parsed (cached for one sync interval, like clients).
    pub async fn client_keys(&self, client_id: &str) -> Result<Arc<Vec<VerifyKey>>, StoreError> {
        self.clients.keys(self.store, client_id).await
    }

    /// Access token lifetime for `client`: its override or the default, at most the maximum.
    pub fn access_token_ttl(&self, client: &Client) -> i64 {
        client
            .access_token_ttl_secs
            .unwrap_or(self.config.access_token_ttl_secs)
            .min(self.config.access_token_max_ttl_secs)
    }
}

/// Clients and their parsed assertion keys by client id, for one sync interval: client
/// authentication stays off the database on the hot path, and a change made on another
/// replica is seen within that interval.
pub struct ClientCache {
    clients: moka::sync::Cache<String, Arc<Client>>,
    keys: moka::sync::Cache<String, Arc<Vec<VerifyKey>>>,
    /// A token subject's username (`None`: the subject is no user, a client).
    usernames: moka::sync::Cache<String, Option<Arc<str>>>,
}

impl ClientCache {
    /// Caches whose entries live `sync_interval_ms`.
    pub fn new(sync_interval_ms: u64) -> Self {
        Self {
            clients: synced_cache(sync_interval_ms),
            keys: synced_cache(sync_interval_ms),
            usernames: synced_cache(sync_interval_ms),
        }
    }

    /// The username of the user whose id is `sub`, if `sub` is a user (usernames never
    /// change; the entry lives one sync interval to bound memory).
    pub async fn username(&self, store: &Store, sub: &str) -> Result<Option<Arc<str>>, StoreError> {
        if let Some(name) = self.usernames.get(sub) {
            return Ok(name);
        }
        // Boxed, here and below: a miss is rare, and the query's future is large enough
        // that every request carrying it inline would pay for copying it.
        let name = Box::pin(store::users::by_id(store, sub))
            .await?
            .map(|u| Arc::from(u.username.as_str()));
        self.usernames.insert(sub.to_owned(), name.clone());
        Ok(name)
    }

    /// The client with this id.
    pub async fn client(
        &self,
        store: &Store,
        client_id: &str,
    ) -> Result<Option<Arc<Client>>, StoreError> {
        if let Some(client) = self.clients.get(client_id) {
            return Ok(Some(client));
        }
        let Some(client) = Box::pin(store::clients::get(store, client_id)).await? else {
            return Ok(None);
        };
        let client = Arc::new(client);
        self.clients.insert(client_id.to_owned(), client.clone());
        Ok(Some(client))
    }

    /// The client's assertion keys (an unparsable row is skipped).
    pub async fn keys(
        &self,
        store: &Store,
        client_id: &str,
    ) -> Result<Arc<Vec<VerifyKey>>, StoreError> {
        if let Some(keys) = self.keys.get(client_id) {
            return Ok(keys);
        }
        let rows = Box::pin(store::client_keys::for_client(store, client_id)).await?;
        let keys = Arc::new(
            rows.iter()
                .filter_map(VerifyKey::from_row)
                .collect::<Vec<_>>(),
        );
        self.keys.insert(client_id.to_owned(), keys.clone());
        Ok(keys)
    }

    /// Forgets a cached client (and its keys) after this process changed it.
    pub fn changed(&self, client_id: &str) {
        self.clients.invalidate(client_id);
        self.keys.invalidate(client_id);
    }
}

/// A cache of rows that another replica may change: entries live one sync interval.
fn synced_cache<K, V>(sync_interval_ms: u64) -> moka::sync::Cache<K, V>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    moka::sync::Cache::builder()
        .max_capacity(10_000)
        .time_to_live(Duration::from_millis(sync_interval_ms))
        .build()
}
