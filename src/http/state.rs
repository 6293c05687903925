//! The one shared state of a running server.

use std::ops::Deref;
use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;

use crate::clock::SharedClock;
use crate::config::Config;
use crate::oauth::password::Passwords;
use crate::oauth::tokens::Tokens;
use crate::store::{self, Store};

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
    /// Clients and their assertion keys, cached for one sync interval.
    pub clients: crate::oauth::ClientCache,
    /// Each polling device's last poll and interval, by device-code hash (RFC 8628 §3.5).
    pub device_polls: crate::oauth::DevicePolls,
    /// Assertion ids marked used, batched across concurrent requests.
    pub assertions: store::revocations::AssertionQueue,
    /// DPoP proofs (their ids marked used in batches) and nonces.
    pub dpop: crate::oauth::dpop::Dpop,
    /// Signs the CSRF tokens of the HTML forms (derived from the master key).
    pub csrf_key: aws_lc_rs::hmac::Key,
    /// Browser origins registered by any client (CORS), refreshed every sync interval.
    pub cors_origins: crate::http::cors::Origins,
    /// Refresh-token reads and rotations, batched across concurrent requests.
    pub refresh: store::grants::RefreshQueue,
    /// Composite case creates of every request, written in batches.
    pub cases: crate::cases::CreateQueue,
    /// Renders and delivers the outbox's email.
    pub mailer: crate::mail::Mailer,
    /// Wakes the dispatcher when this process queued email.
    pub mail_wakeup: tokio::sync::Notify,
    /// Wakes the back-channel logout dispatcher when this process ended a session.
    pub logout_wakeup: tokio::sync::Notify,
    /// Each client's API calls today, counted here and summed in the database.
    pub usage: crate::usage::Usage,
    /// The audit log (structured log and database).
    pub audit: crate::audit::Audit,
    /// Request-rate limits (in memory, or in Redis shared by every replica).
    pub limiter: crate::ratelimit::Limiter,
    /// Wakes event streams when this process committed events.
    pub events: crate::events::Hub,
    /// Event streams open now (at most `events_max_streams`).
    pub event_streams: Arc<tokio::sync::Semaphore>,
    /// Wakes the webhook relay when this process committed events.
    pub webhook_wakeup: tokio::sync::Notify,
}

impl AppState {
    /// Wraps the parts into a state.
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }
}

impl AppState {
    /// The parts the OAuth domain works with.
    pub fn oauth(&self) -> crate::oauth::Ctx<'_> {
        crate::oauth::Ctx {
            store: &self.store,
            clock: &self.clock,
            config: &self.config,
            issuer: &self.issuer,
            tokens: &self.tokens,
            clients: &self.clients,
            device_polls: &self.device_polls,
            assertions: &self.assertions,
            dpop: &self.dpop,
            refresh: &self.refresh,
            passwords: &self.passwords,
            audit: &self.audit,
            limiter: &self.limiter,
        }
    }

    /// The parts the cases domain works with.
    pub fn cases(&self) -> crate::cases::Ctx<'_> {
        crate::cases::Ctx {
            store: &self.store,
            clock: &self.clock,
            config: &self.config,
            issuer: &self.issuer,
            creates: &self.cases,
            mail_wakeup: &self.mail_wakeup,
            events: &self.events,
        }
    }

    /// The parts the event log works with.
    pub fn events(&self) -> crate::events::Ctx<'_> {
        crate::events::Ctx {
            store: &self.store,
            clock: &self.clock,
            config: &self.config,
            hub: &self.events,
        }
    }

    /// The parts the email dispatcher works with.
    pub fn mail(&self) -> crate::mail::Ctx<'_> {
        crate::mail::Ctx {
            store: &self.store,
            clock: &self.clock,
            config: &self.config,
            mailer: &self.mailer,
            wakeup: &self.mail_wakeup,
        }
    }

    /// The domain of Message-IDs and of the default sender: the issuer's host.
    pub fn mail_domain(&self) -> String {
        crate::mail::domain_of(&self.issuer)
    }
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
