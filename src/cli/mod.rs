//! The command line: `serve` (default), `migrate`, `client …`, `user …`, `keys …`, `openapi`.

mod args;
mod commands;
mod output;
mod webhook;

pub use args::Cli;
use args::Command;
use commands::{client, keys_command, user};

use std::process::ExitCode;

use clap::Parser;

use crate::App;
use crate::config::Config;
use crate::oauth::RegistryError;
use crate::store::{self, Store};

/// Why a command failed, and the exit code that says so.
enum Failure {
    /// Bad configuration or arguments: exit 2.
    Usage(String),
    /// Anything else: exit 1.
    Runtime(String),
}

impl From<RegistryError> for Failure {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::Invalid(_) => Failure::Usage(e.to_string()),
            other => Failure::Runtime(format!("{other:#}")),
        }
    }
}

impl From<crate::error::ApiError> for Failure {
    fn from(e: crate::error::ApiError) -> Self {
        use crate::error::ApiError;
        match e {
            ApiError::Validation(errors) => Failure::Usage(
                errors
                    .iter()
                    .map(|f| format!("{}: {}", f.field, f.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            ApiError::NotFound => Failure::Runtime("no such webhook or delivery".to_owned()),
            other => Failure::Runtime(format!("{other:#}")),
        }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Runtime(format!("{e:#}"))
    }
}

impl From<store::StoreError> for Failure {
    fn from(e: store::StoreError) -> Self {
        Failure::Runtime(e.to_string())
    }
}

/// Parses the command line and runs it; the process exit code is the result.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Openapi) = cli.command {
        return match crate::http::docs::spec_json() {
            Ok(json) => {
                print!("{json}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(Failure::Runtime(e.to_string())),
        };
    }
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(e) => return fail(Failure::Usage(e.to_string())),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(Failure::Runtime(format!("cannot start the runtime: {e}"))),
    };
    let result = runtime.block_on(run(cli.command.unwrap_or(Command::Serve), config));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => fail(f),
    }
}

fn fail(failure: Failure) -> ExitCode {
    match failure {
        Failure::Usage(m) => {
            eprintln!("error: {m}");
            ExitCode::from(2)
        }
        Failure::Runtime(m) => {
            eprintln!("error: {m}");
            ExitCode::from(1)
        }
    }
}

async fn run(command: Command, config: Config) -> Result<(), Failure> {
    match command {
        Command::Serve => serve(config).await,
        Command::Migrate => {
            let store = connect(&config).await?;
            store.migrate().await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Client(cmd) => client(cmd, &config, &connect_migrated(&config).await?).await,
        Command::User(cmd) => user(cmd, &connect_migrated(&config).await?).await,
        Command::Keys(cmd) => keys_command(cmd, &config, &connect_migrated(&config).await?).await,
        Command::Webhook(cmd) => {
            webhook::command(cmd, &config, &connect_migrated(&config).await?).await
        }
        Command::Openapi => Ok(()),
        Command::Healthcheck => healthcheck(&config).await,
    }
}

/// GET /healthz on the configured `listen` address (loopback when it is a wildcard).
async fn healthcheck(config: &Config) -> Result<(), Failure> {
    use http_body_util::Empty;
    let mut addr = config.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let down = |e: &dyn std::fmt::Display| Failure::Runtime(format!("{addr}: {e}"));
    let check = async {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| down(&e))?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| down(&e))?;
        tokio::spawn(connection);
        let request = hyper::Request::get("/healthz")
            .header(hyper::header::HOST, addr.to_string())
            .body(Empty::<hyper::body::Bytes>::new())
            .map_err(|e| down(&e))?;
        let response = sender.send_request(request).await.map_err(|e| down(&e))?;
        if response.status() == hyper::StatusCode::OK {
            println!("ok");
            Ok(())
        } else {
            Err(down(&format!("/healthz answered {}", response.status())))
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), check)
        .await
        .map_err(|_| down(&"no answer within 5 s"))?
}

async fn serve(config: Config) -> Result<(), Failure> {
    let _telemetry = crate::telemetry::init(&config)?;
    let listen = config.listen;
    let management_listen = config.management_listen;
    let app = App::build(config).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| Failure::Runtime(format!("cannot listen on {listen}: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    let management = tokio::net::TcpListener::bind(management_listen)
        .await
        .map_err(|e| {
            Failure::Runtime(format!(
                "cannot listen on {management_listen} (management_listen): {e}"
            ))
        })?;
    let management_local = management
        .local_addr()
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    tracing::info!(address = %management_local, "management listening (metrics, health)");
    tracing::info!(address = %local, issuer = %app.state().issuer, backend = ?app.state().store.backend(), "listening");
    app.serve(listener, management, shutdown_signal()).await?;
    Ok(())
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

async fn connect(config: &Config) -> Result<Store, Failure> {
    Ok(Store::connect(&config.database_url, config.database_max_connections).await?)
}

async fn connect_migrated(config: &Config) -> Result<Store, Failure> {
    let store = connect(config).await?;
    store.migrate().await?;
    Ok(store)
}
