//! The one shared state of a running server.

use std::ops::Deref;
use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;

use crate::clock::SharedClock;
use crate::config::Config;
use crate::oauth::password::Passwords;
use crate::store::Store;

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
}

impl AppState {
    /// Wraps the parts into a state.
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
