//! Gatehouse: an OAuth 2.0 / OpenID Connect authorization server and the resource API it
//! protects, in one binary. `Config -> AppState -> Router`; [`App`] ties them together.

pub mod cli;
pub mod clock;
pub mod config;
pub mod error;
pub mod http;
pub mod oauth;
pub mod seed;
pub mod state;
pub mod store;
pub mod telemetry;

use std::future::{Future, IntoFuture as _};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::clock::{SharedClock, SystemClock};
use crate::config::Config;
use crate::oauth::password::Passwords;
use crate::state::{AppState, Inner};
use crate::store::Store;

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
        let state = AppState::new(Inner {
            store,
            clock,
            issuer: config.issuer(),
            config,
            passwords: Passwords::default(),
            metrics: telemetry::metrics_handle(),
        });
        seed::first_run(&state).await?;
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

    /// Serves on `listener` until `shutdown` completes, then lets in-flight requests finish
    /// for at most `shutdown_grace_secs`.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let grace = Duration::from_secs(self.state.config.shutdown_grace_secs);
        let stopping = CancellationToken::new();
        let trigger = stopping.clone();
        tokio::spawn(async move {
            shutdown.await;
            trigger.cancel();
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
        self.state.store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}
