//! The one shared state of a running server.

use std::ops::Deref;
use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;

use crate::clock::SharedClock;
use crate::config::Config;
use crate::oauth::clients::Client;
use crate::oauth::password::Passwords;
use crate::oauth::tokens::Tokens;
use crate::store::{self, Store, StoreError};

/// Everything a handler may reach; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// The fields behind [`AppState`].
pub struct Inner {
    /// The database.
    pub store: Store,
    /// The only source of wall time.
    pub clock: SharedClock,
    /// The validated configuration.
    pub config: Config,
    /// `iss` of every token: the issuer URL without a trailing slash.
    pub issuer: String,
    /// argon2id hashing off the async threads.
    pub passwords: Passwords,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Signing keys, access tokens and the revocation list.
    pub tokens: Tokens,
    /// Clients by id, for one sync interval: client authentication stays off the database
    /// on the hot path, and a change made on another replica is seen within that interval.
    pub clients: moka::sync::Cache<String, Arc<Client>>,
    /// Clients' assertion keys, parsed, by client id, for one sync interval.
    pub client_keys: moka::sync::Cache<String, Arc<Vec<crate::oauth::client_auth::VerifyKey>>>,
    /// Each polling device's last poll and interval, by device-code hash (RFC 8628 §3.5).
    pub device_polls: moka::sync::Cache<[u8; 32], (i64, i64)>,
    /// Assertion ids marked used, batched across concurrent requests.
    pub assertions: store::revocations::AssertionQueue,
    /// Signs the CSRF tokens of the HTML forms (derived from the master key).
    pub csrf_key: aws_lc_rs::hmac::Key,
    /// Browser origins registered by any client (CORS), refreshed every sync interval.
    pub cors_origins: crate::http::cors::Origins,
    /// Refresh-token reads and rotations, batched across concurrent requests.
    pub refresh: store::grants::RefreshQueue,
    /// Composite case creates of every request, written in batches.
    pub cases: crate::api::cases::CreateQueue,
    /// Renders and delivers the outbox's email.
    pub mailer: crate::mail::Mailer,
    /// Wakes the dispatcher when this process queued email.
    pub mail_wakeup: tokio::sync::Notify,
    /// Each client's API calls today, counted here and summed in the database.
    pub usage: crate::usage::Usage,
    /// The audit log (structured log and database).
    pub audit: crate::audit::Audit,
    /// Request-rate limits (in memory, or in Redis shared by every replica).
    pub limiter: crate::ratelimit::Limiter,
}

impl AppState {
    /// Wraps the parts into a state.
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }
}

impl AppState {
    /// The client with this id (cached for one sync interval).
    pub async fn client(&self, client_id: &str) -> Result<Option<Arc<Client>>, StoreError> {
        if let Some(client) = self.clients.get(client_id) {
            return Ok(Some(client));
        }
        let Some(client) = store::clients::get(&self.store, client_id).await? else {
            return Ok(None);
        };
        let client = Arc::new(client);
        self.clients.insert(client_id.to_owned(), client.clone());
        Ok(Some(client))
    }

    /// Access token lifetime for `client`: its override or the default, at most the maximum.
    pub fn access_token_ttl(&self, client: &Client) -> i64 {
        client
            .access_token_ttl_secs
            .unwrap_or(self.config.access_token_ttl_secs)
            .min(self.config.access_token_max_ttl_secs)
    }

    /// The domain of Message-IDs and of the default sender: the issuer's host.
    pub fn mail_domain(&self) -> String {
        mail_domain(&self.issuer)
    }

    /// Forgets a cached client (and its keys) after this process changed it.
    pub fn client_changed(&self, client_id: &str) {
        self.clients.invalidate(client_id);
        self.client_keys.invalidate(client_id);
    }

    /// A client's assertion keys, parsed (cached for one sync interval, like clients).
    pub async fn client_keys(
        &self,
        client_id: &str,
    ) -> Result<Arc<Vec<crate::oauth::client_auth::VerifyKey>>, StoreError> {
        if let Some(keys) = self.client_keys.get(client_id) {
            return Ok(keys);
        }
        let rows = store::client_keys::for_client(&self.store, client_id).await?;
        let keys = Arc::new(
            rows.iter()
                .filter_map(crate::oauth::client_auth::VerifyKey::from_row)
                .collect::<Vec<_>>(),
        );
        self.client_keys.insert(client_id.to_owned(), keys.clone());
        Ok(keys)
    }
}

/// The host of `issuer` (`localhost` if it has none).
pub fn mail_domain(issuer: &str) -> String {
    url::Url::parse(issuer)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| "localhost".to_owned())
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
