//! Gatehouse: an OAuth 2.0 / OpenID Connect authorization server and the resource API it
//! protects, in one binary. `Config -> AppState -> Router`; [`App`] ties them together.

pub mod audit;
pub mod cases;
pub mod cli;
pub mod clock;
pub mod config;
pub mod error;
pub mod events;
pub mod fields;
pub mod http;
pub mod mail;
pub mod model;
pub mod oauth;
pub mod outbound;
pub mod paging;
pub mod ratelimit;
pub mod redis_connection;
pub mod retention;
pub mod seed;
pub mod store;
pub mod telemetry;
pub mod usage;

use std::future::{Future, IntoFuture as _};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use utoipa_axum::router::OpenApiRouter;

use crate::clock::{SharedClock, SystemClock};
use crate::config::Config;
use crate::http::state::{AppState, Inner};
use crate::oauth::keys::{self, KeyRing, MasterKey};
use crate::oauth::password::Passwords;
use crate::oauth::tokens::Tokens;
use crate::store::Store;

/// Every route of the public listener, each surface's router merged here and nowhere
/// else. The OpenAPI document is generated from this same value, so a documented route
/// cannot exist without its documentation.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(http::docs::base())
        .merge(http::health::router())
        .merge(http::oauth::router())
        .merge(http::web::router())
        .merge(http::api::router())
        .merge(http::admin::router())
}

/// A built application: connected, migrated and seeded, ready to serve.
pub struct App {
    state: AppState,
}

impl App {
    /// Builds the application on the real clock.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    /// Builds the application on the given clock (tests move a `ManualClock`).
    pub async fn build_with_clock(config: Config, clock: SharedClock) -> anyhow::Result<Self> {
        config.validate()?;
        let store = Store::connect(&config.database_url, config.database_max_connections).await?;
        store.migrate().await?;
        if store.autovacuum_off().await? {
            tracing::warn!(
                "PostgreSQL's autovacuum is off: without its analyses, queries slow down as \
                 tables grow; switch it on, or run ANALYZE regularly"
            );
        }
        let master = MasterKey::from_config(&config)?;
        let csrf_key = master.derive_hmac("csrf")?;
        let dpop = oauth::dpop::Dpop::spawn(&master, &config, &store)?;
        let lines = keys::wanted_lines(&store, &config).await?;
        keys::ensure_lines(&store, clock.as_ref(), &master, &lines).await?;
        let ring = KeyRing::new(
            master,
            config.access_token_max_ttl_secs + config.clock_skew_secs,
        );
        ring.refresh(&store).await?;
        let issuer = config.issuer();
        let tokens = Tokens::new(
            ring,
            config.signing_alg,
            issuer.clone(),
            config.audience(),
            config.clock_skew_secs,
            config.access_token_max_ttl_secs,
        );
        tokens.revoked.sync(&store, clock.unix()).await?;
        tokens.cutoffs.sync(&store, clock.unix()).await?;
        let clients = oauth::ClientCache::new(config.sync_interval_ms);
        let assertions = store::revocations::AssertionQueue::spawn(
            &store,
            store::revocations::JtiTable::Assertions,
        );
        let device_polls = oauth::device_polls(config.device_code_ttl_secs);
        let metrics = telemetry::metrics_handle();
        let refresh = store::grants::RefreshQueue::spawn(&store);
        let cases = cases::CreateQueue::spawn(&store);
        let mailer = mail::Mailer::from_config(&config, &mail::domain_of(&issuer))?;
        let limiter = ratelimit::Limiter::from_config(&config)?;
        let audit = audit::Audit::spawn(&store, clock.clone());
        let config_streams = config.events_max_streams;
        let state = AppState::new(Inner {
            refresh,
            cases,
            mailer,
            mail_wakeup: tokio::sync::Notify::new(),
            logout_wakeup: tokio::sync::Notify::new(),
            limiter,
            audit,
            usage: usage::Usage::default(),
            store,
            clock,
            issuer,
            config,
            passwords: Passwords::start()?,
            metrics,
            tokens,
            clients,
            device_polls,
            assertions,
            dpop,
            csrf_key,
            cors_origins: http::cors::Origins::default(),
            events: events::Hub::default(),
            event_streams: Arc::new(tokio::sync::Semaphore::new(config_streams)),
            webhook_wakeup: tokio::sync::Notify::new(),
        });
        state.cors_origins.refresh(&state.store).await?;
        seed::first_run(&state).await?;
        seed::docs_client(&state).await?;
        Ok(Self { state })
    }

    /// The shared state.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The HTTP router with every layer.
    pub fn router(&self) -> Router {
        http::router(self.state.clone())
    }

    /// Serves on `listener`, and metrics and health on `management`, until `shutdown`
    /// completes, then lets in-flight requests finish for at most `shutdown_grace_secs`.
    pub async fn serve(
        self,
        listener: TcpListener,
        management: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let grace = Duration::from_secs(self.state.config.shutdown_grace_secs);
        let stopping = CancellationToken::new();
        tokio::spawn(sync_loop(self.state.clone(), stopping.clone()));
        tokio::spawn(maintenance_loop(self.state.clone(), stopping.clone()));
        tokio::spawn(metrics_upkeep_loop(self.state.clone(), stopping.clone()));
        let workers = Workers::spawn(&self.state, &stopping);
        let trigger = stopping.clone();
        tokio::spawn(async move {
            shutdown.await;
            trigger.cancel();
        });
        let management_server =
            axum::serve(management, http::management_router(self.state.clone()))
                .with_graceful_shutdown(stopping.clone().cancelled_owned());
        tokio::spawn(async move {
            if let Err(e) = management_server.await {
                tracing::error!(error = %e, "the management listener failed");
            }
        });
        let server = axum::serve(
            listener,
            self.router()
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(stopping.clone().cancelled_owned());
        tokio::select! {
            served = server.into_future() => served?,
            () = async { stopping.cancelled().await; tokio::time::sleep(grace).await } => {
                tracing::warn!(grace_secs = grace.as_secs(), "shutdown grace elapsed; dropping open requests");
            }
        }
        // Each worker finishes the batch it holds, so that what it claimed is not left
        // claimed (and delayed by the lease) when the process exits.
        workers.finish(grace).await;
        if let Err(e) = self
            .state
            .usage
            .flush(&self.state.store, self.state.clock.unix())
            .await
        {
            tracing::warn!(error = %e, "API usage flush failed at shutdown");
        }
        if tokio::time::timeout(grace, self.state.audit.flush())
            .await
            .is_err()
        {
            tracing::warn!("audit events were still being written when the grace period ended");
        }
        // A connection stuck in a query must not keep the process from exiting.
        if tokio::time::timeout(grace, self.state.store.close())
            .await
            .is_err()
        {
            tracing::warn!("database connections did not close within the grace period");
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// The background workers that deliver what the database queued: email, webhooks, the
/// NATS publisher (with `nats_url`) and back-channel logout tokens.
struct Workers(Vec<(&'static str, tokio::task::JoinHandle<()>)>);

impl Workers {
    fn spawn(state: &AppState, stopping: &CancellationToken) -> Self {
        let mut workers = Vec::with_capacity(4);
        let (s, stop) = (state.clone(), stopping.clone());
        let mail = tokio::spawn(async move { mail::run(s.mail(), stop).await });
        workers.push(("email dispatcher", mail));
        let (s, stop) = (state.clone(), stopping.clone());
        let webhooks = tokio::spawn(async move {
            let master = s.tokens.ring.master();
            events::webhooks::run(s.events(), master, &s.webhook_wakeup, stop).await;
        });
        workers.push(("webhook relay", webhooks));
        if let Some(url) = state.config.nats_url.clone() {
            let (s, stop) = (state.clone(), stopping.clone());
            let nats = tokio::spawn(async move { events::nats::run(s.events(), url, stop).await });
            workers.push(("NATS publisher", nats));
        }
        let (s, stop) = (state.clone(), stopping.clone());
        let logouts = tokio::spawn(async move {
            oauth::backchannel::run(s.oauth(), &s.logout_wakeup, stop).await;
        });
        workers.push(("logout dispatcher", logouts));
        let (s, stop) = (state.clone(), stopping.clone());
        let checkpoints = tokio::spawn(async move { checkpoint_loop(&s.store, stop).await });
        workers.push(("SQLite checkpointer", checkpoints));
        Self(workers)
    }

    /// Waits for each worker to stop, at most `grace` each.
    async fn finish(self, grace: Duration) {
        for (name, worker) in self.0 {
            if tokio::time::timeout(grace, worker).await.is_err() {
                tracing::warn!(
                    worker = name,
                    "a worker did not finish its batch within the grace period"
                );
            }
        }
    }
}

/// Keeps a SQLite file's WAL short from off the writer's path ([`Store::checkpoint`]).
async fn checkpoint_loop(store: &Store, stop: CancellationToken) {
    if store.backend() != store::Backend::Sqlite {
        return;
    }
    let mut tick = tokio::time::interval(store::SQLITE_CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = store.checkpoint().await {
            tracing::debug!(error = %e, "WAL checkpoint failed");
        }
    }
}

/// Every sync interval: reload signing keys and revocations, so that rotations and
/// revocations made by any process are honoured here.
async fn sync_loop(state: AppState, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_millis(state.config.sync_interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = state.tokens.ring.refresh(&state.store).await {
            tracing::warn!(error = %e, "key ring refresh failed");
        }
        if let Err(e) = state
            .tokens
            .revoked
            .sync(&state.store, state.clock.unix())
            .await
        {
            tracing::warn!(error = %e, "revocation sync failed");
        }
        if let Err(e) = state
            .tokens
            .cutoffs
            .sync(&state.store, state.clock.unix())
            .await
        {
            tracing::warn!(error = %e, "token cut-off sync failed");
        }
        if let Err(e) = state.usage.flush(&state.store, state.clock.unix()).await {
            tracing::warn!(error = %e, "API usage flush failed");
        }
        if let Err(e) = state.cors_origins.refresh(&state.store).await {
            tracing::warn!(error = %e, "CORS origin refresh failed");
        }
    }
}

/// How often a process checks whether a signing key is due for rotation.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(60);

/// Every minute: rotate each line's signing key when it is due, and prune what has
/// outlived its use (`retention`).
async fn maintenance_loop(state: AppState, stop: CancellationToken) {
    let mut tick = tokio::time::interval(MAINTENANCE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        state.limiter.forget_idle();
        let ring = &state.tokens.ring;
        match keys::maintain(
            &state.store,
            state.clock.as_ref(),
            ring.master(),
            &state.config,
        )
        .await
        {
            Ok(rotated) => {
                for kid in rotated {
                    let event = audit::Event::new("key.rotated")
                        .actor("system".to_owned())
                        .detail("kid", kid)
                        .detail("reason", "scheduled");
                    state.audit.record(event).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "key maintenance failed"),
        }
        let now = state.clock.unix();
        let horizon = now - state.config.clock_skew_secs;
        if let Err(e) = store::revocations::forget_assertions(&state.store, horizon).await {
            tracing::warn!(error = %e, "used assertion cleanup failed");
        }
        let oldest = state.tokens.cutoffs.oldest_relevant(now);
        if let Err(e) = store::cutoffs::delete_before(&state.store, oldest).await {
            tracing::warn!(error = %e, "token cut-off cleanup failed");
        }
        if let Err(e) =
            store::outbox::forget_mail_quota(&state.store, now.div_euclid(86_400) - 1).await
        {
            tracing::warn!(error = %e, "notification quota cleanup failed");
        }
        if let Err(e) = store::sessions::forget_throttles(
            &state.store,
            now,
            now - state.config.login_window_secs,
        )
        .await
        {
            tracing::warn!(error = %e, "sign-in throttle cleanup failed");
        }
        // Every table that grows with traffic, in bounded batches (see `retention`).
        match retention::run(&state.store, &state.config, now).await {
            Ok(pruned) => {
                for (table, rows) in pruned.into_iter().filter(|(_, n)| *n > 0) {
                    tracing::debug!(table, rows, "pruned");
                }
            }
            Err(e) => tracing::warn!(error = %e, "pruning failed"),
        }
        if let Err(e) = store::logouts::forget_orphans(&state.store).await {
            tracing::warn!(error = %e, "session client cleanup failed");
        }
        match events::prune(&state.events()).await {
            Ok(0) => {}
            Ok(rows) => {
                metrics::counter!("gatehouse_pruned_rows_total", "table" => "change_log")
                    .increment(rows);
                tracing::debug!(table = "change_log", rows, "pruned");
            }
            Err(e) => tracing::warn!(error = %e, "event pruning failed"),
        }
    }
}

/// Histograms keep raw samples until upkeep folds them into buckets: without it they
/// grow with every request between two scrapes.
async fn metrics_upkeep_loop(state: AppState, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => state.metrics.run_upkeep(),
        }
    }
}
