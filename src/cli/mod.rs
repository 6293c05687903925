//! The command line: `serve` (default), `migrate`, `client …`, `user …`, `keys …`, `openapi`.

mod output;

use output::{print_client, print_json, print_user, read_password};

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde_json::json;

use crate::App;
use crate::clock::SystemClock;
use crate::config::Config;
use crate::oauth::RegistryError;
use crate::oauth::clients::{self, NewClient};
use crate::oauth::keys::{self, MasterKey};
use crate::oauth::password::Passwords;
use crate::oauth::users::{self, NewUser};
use crate::store::{self, Store};

/// Gatehouse: OAuth 2.0 / OpenID Connect authorization server and resource API.
#[derive(Debug, Parser)]
#[command(name = "gatehouse", version, about)]
pub struct Cli {
    /// Configuration file [default: gatehouse.toml when present]
    #[arg(long, global = true, env = "GATEHOUSE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve HTTP (the default command)
    Serve,
    /// Apply pending database migrations and exit
    Migrate,
    /// Manage clients (connected apps)
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage users
    #[command(subcommand)]
    User(UserCommand),
    /// Manage the server's signing keys
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Print the OpenAPI document
    Openapi,
    /// Exit 0 when the server on `listen` answers /healthz with 200 (container health checks)
    Healthcheck,
}

#[derive(Debug, Subcommand)]
enum ClientCommand {
    /// Register a client; a confidential client's secret is printed once
    Create(Box<CreateClient>),
    /// List clients
    List(JsonFlag),
    /// Show one client
    Show(ClientRef),
    /// Replace a client's secret (the old one stops working at once)
    RotateSecret(ClientRef),
    /// Disable a client: it can no longer authenticate or obtain tokens
    Disable(ClientRef),
    /// Enable a disabled client
    Enable(ClientRef),
    /// Register a public key the client signs assertions with (a PEM public key or X.509
    /// certificate, or every key of a JWKS document); prints the kids
    AddKey(AddKey),
    /// List the keys a client signs assertions with
    ListKeys(ClientRef),
    /// Remove one of a client's assertion keys
    RemoveKey(RemoveKey),
}

#[derive(Debug, Args)]
struct RemoveKey {
    /// The client's id
    client_id: String,
    /// The key's id (a base64url kid may start with `-`)
    #[arg(allow_hyphen_values = true)]
    kid: String,
    #[command(flatten)]
    out: JsonFlag,
}

#[derive(Debug, Args)]
struct AddKey {
    /// The client's id
    client_id: String,
    /// A PEM file with a `PUBLIC KEY` or a `CERTIFICATE` (RSA, EC P-256 or Ed25519)
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "jwks",
        conflicts_with = "jwks"
    )]
    pem: Option<PathBuf>,
    /// A JWKS document (JSON): every key in it is registered, under its own kid
    #[arg(long, value_name = "FILE")]
    jwks: Option<PathBuf>,
    #[command(flatten)]
    out: JsonFlag,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// List signing keys and their states
    List(JsonFlag),
    /// Rotate: publish a new key now; it signs after key_publish_secs
    Rotate(RotateKeys),
    /// Revoke a compromised key: out of JWKS and verification at once; a new key signs
    Revoke(RevokeKey),
}

#[derive(Debug, Args)]
struct RevokeKey {
    /// The key id (see `keys list`; a base64url kid may start with `-`)
    #[arg(allow_hyphen_values = true)]
    kid: String,
    #[command(flatten)]
    out: JsonFlag,
}

#[derive(Debug, Args)]
struct RotateKeys {
    /// Sign with the new key at once (a compromised key)
    #[arg(long)]
    immediately: bool,
    #[command(flatten)]
    out: JsonFlag,
}

#[derive(Debug, Args)]
struct CreateClient {
    /// Name shown to users
    #[arg(long)]
    name: String,
    /// public (SPA, mobile, device) or confidential (server)
    #[arg(long = "type", value_name = "public|confidential")]
    client_type: String,
    /// Redirect URI, matched exactly (repeatable)
    #[arg(long = "redirect-uri", value_name = "URI")]
    redirect_uris: Vec<String>,
    /// Grant type the client may use (repeatable)
    #[arg(long = "grant", value_name = "GRANT")]
    grants: Vec<String>,
    /// Scope the client may request (repeatable)
    #[arg(long = "scope", value_name = "SCOPE")]
    scopes: Vec<String>,
    /// Token endpoint authentication method
    #[arg(long = "auth-method", value_name = "METHOD")]
    auth_method: Option<String>,
    /// Browser origin allowed to call the API cross-origin (repeatable)
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    cors_origins: Vec<String>,
    /// Pre-authorize this user for the client (repeatable)
    #[arg(long = "pre-authorize", value_name = "USERNAME")]
    pre_authorize: Vec<String>,
    /// Only pre-authorized users may use this client
    #[arg(long)]
    admin_approved_only: bool,
    /// Access token lifetime in seconds [default: the server's]
    #[arg(long, value_name = "SECS")]
    access_token_ttl: Option<i64>,
    /// Refresh token lifetime in seconds, 0 = until revoked [default: the server's]
    #[arg(long, value_name = "SECS")]
    refresh_token_ttl: Option<i64>,
    /// Refresh token idle timeout in seconds [default: the server's]
    #[arg(long, value_name = "SECS")]
    refresh_token_idle: Option<i64>,
    #[command(flatten)]
    out: JsonFlag,
}

#[derive(Debug, Args)]
struct ClientRef {
    /// The client's id
    client_id: String,
    #[command(flatten)]
    out: JsonFlag,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a user; the password comes from stdin or a file, never from the command line
    Create(CreateUser),
    /// List users
    List(JsonFlag),
    /// Show one user
    Show(UserRef),
    /// Disable a user: they can no longer sign in
    Disable(UserRef),
    /// Enable a disabled user
    Enable(UserRef),
}

#[derive(Debug, Args)]
struct CreateUser {
    /// Login name
    #[arg(long)]
    username: String,
    /// Email address
    #[arg(long)]
    email: String,
    /// Display name
    #[arg(long)]
    name: Option<String>,
    /// Read the password from the first line of stdin
    #[arg(long, conflicts_with = "password_file")]
    password_stdin: bool,
    /// Read the password from the first line of this file
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    #[command(flatten)]
    out: JsonFlag,
}

#[derive(Debug, Args)]
struct UserRef {
    /// The user's login name
    username: String,
    #[command(flatten)]
    out: JsonFlag,
}

#[derive(Debug, Args)]
struct JsonFlag {
    /// Print one JSON object
    #[arg(long)]
    json: bool,
}

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
        Command::Client(cmd) => client(cmd, &connect_migrated(&config).await?).await,
        Command::User(cmd) => user(cmd, &connect_migrated(&config).await?).await,
        Command::Keys(cmd) => keys_command(cmd, &config, &connect_migrated(&config).await?).await,
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

async fn client(cmd: ClientCommand, store: &Store) -> Result<(), Failure> {
    let clock = SystemClock;
    match cmd {
        ClientCommand::Create(args) => {
            let created = clients::create(
                store,
                &clock,
                NewClient {
                    name: args.name,
                    client_type: args.client_type,
                    redirect_uris: args.redirect_uris,
                    grant_types: args.grants,
                    scopes: args.scopes,
                    auth_method: args.auth_method,
                    cors_origins: args.cors_origins,
                    pre_authorize: args.pre_authorize,
                    admin_approved_only: args.admin_approved_only,
                    access_token_ttl_secs: args.access_token_ttl,
                    refresh_token_ttl_secs: args.refresh_token_ttl,
                    refresh_token_idle_secs: args.refresh_token_idle,
                },
            )
            .await?;
            print_client(&created.client, created.secret.as_ref(), args.out.json)
        }
        ClientCommand::List(out) => {
            let all = store::clients::list(store).await?;
            if out.json {
                print_json(&json!({ "clients": all }))
            } else {
                for c in &all {
                    let state = if c.enabled { "enabled" } else { "disabled" };
                    println!("{}\t{}\t{}\t{}", c.client_id, c.client_type, state, c.name);
                }
                Ok(())
            }
        }
        ClientCommand::Show(r) => {
            print_client(&clients::find(store, &r.client_id).await?, None, r.out.json)
        }
        ClientCommand::RotateSecret(r) => {
            let rotated = clients::rotate_secret(store, &clock, &r.client_id).await?;
            print_client(&rotated.client, rotated.secret.as_ref(), r.out.json)
        }
        ClientCommand::Disable(r) => print_client(
            &clients::set_enabled(store, &clock, &r.client_id, false).await?,
            None,
            r.out.json,
        ),
        ClientCommand::Enable(r) => print_client(
            &clients::set_enabled(store, &clock, &r.client_id, true).await?,
            None,
            r.out.json,
        ),
        ClientCommand::AddKey(args) => {
            let read = |path: &PathBuf| {
                std::fs::read_to_string(path)
                    .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", path.display())))
            };
            if let Some(path) = &args.jwks {
                let keys = clients::add_jwks(store, &clock, &args.client_id, &read(path)?).await?;
                return print_keys(&keys, args.out.json);
            }
            let Some(path) = &args.pem else {
                return Err(Failure::Usage("--pem FILE or --jwks FILE".to_owned()));
            };
            let key = clients::add_key(store, &clock, &args.client_id, &read(path)?).await?;
            if args.out.json {
                print_json(
                    &serde_json::to_value(&key).map_err(|e| Failure::Runtime(e.to_string()))?,
                )
            } else {
                println!("kid  {}\nkty  {}", key.kid, key.kty);
                Ok(())
            }
        }
        ClientCommand::ListKeys(r) => {
            print_keys(&clients::list_keys(store, &r.client_id).await?, r.out.json)
        }
        ClientCommand::RemoveKey(args) => {
            clients::remove_key(store, &args.client_id, &args.kid).await?;
            if args.out.json {
                print_json(
                    &serde_json::json!({"client_id": args.client_id, "kid": args.kid, "removed": true}),
                )
            } else {
                println!("removed key {} of client {}", args.kid, args.client_id);
                Ok(())
            }
        }
    }
}

/// Records a change the CLI made in the audit log (actor `cli`).
async fn record(
    store: &Store,
    clock: &SystemClock,
    event: crate::audit::Event,
) -> Result<(), Failure> {
    let event = event.actor("cli".to_owned());
    crate::audit::record_now(store, crate::clock::Clock::unix(clock), event)
        .await
        .map_err(|e| Failure::Runtime(e.to_string()))
}

/// Prints `value` as one JSON object.
fn print_serialized(value: &impl serde::Serialize) -> Result<(), Failure> {
    print_json(&serde_json::to_value(value).map_err(|e| Failure::Runtime(e.to_string()))?)
}

async fn keys_command(cmd: KeysCommand, config: &Config, store: &Store) -> Result<(), Failure> {
    let clock = SystemClock;
    let failed = |e: crate::oauth::keys::KeyError| Failure::Runtime(e.to_string());
    let master = MasterKey::from_config(config).map_err(failed)?;
    match cmd {
        KeysCommand::List(out) => {
            keys::ensure_signing_key(store, &clock, &master, config.signing_alg)
                .await
                .map_err(failed)?;
            let all = keys::list(store, &clock).await.map_err(failed)?;
            if out.json {
                return print_json(&json!({ "keys": all }));
            }
            for k in &all {
                println!("{}\t{}\t{}", k.kid, k.alg, k.state);
            }
            Ok(())
        }
        KeysCommand::Revoke(args) => {
            let revoked =
                match keys::revoke(store, &clock, &master, config.signing_alg, &args.kid).await {
                    Err(e @ crate::oauth::keys::KeyError::NotFound(_)) => {
                        return Err(Failure::Usage(e.to_string()));
                    }
                    other => other.map_err(failed)?,
                };
            record(store, &clock, revoked.audit_event()).await?;
            if args.out.json {
                return print_serialized(&revoked);
            }
            match &revoked.successor {
                Some(next) => println!(
                    "revoked {}; new key {} signs now",
                    revoked.revoked, next.kid
                ),
                None => println!("revoked {}", revoked.revoked),
            }
            Ok(())
        }
        KeysCommand::Rotate(args) => {
            let publish = if args.immediately {
                0
            } else {
                config.key_publish_secs
            };
            let key = keys::rotate(store, &clock, &master, config.signing_alg, publish)
                .await
                .map_err(failed)?;
            let event = crate::audit::Event::new("key.rotated")
                .detail("kid", key.kid.clone())
                .detail("immediately", args.immediately);
            record(store, &clock, event).await?;
            if args.out.json {
                return print_serialized(&key);
            }
            println!(
                "new key {} ({}): {}, signs from {}",
                key.kid, key.alg, key.state, key.activate_at
            );
            Ok(())
        }
    }
}

async fn user(cmd: UserCommand, store: &Store) -> Result<(), Failure> {
    let clock = SystemClock;
    match cmd {
        UserCommand::Create(args) => {
            let password = read_password(args.password_stdin, args.password_file.as_ref())?;
            let user = users::create(
                store,
                &clock,
                &Passwords::default(),
                NewUser {
                    username: args.username,
                    email: args.email,
                    display_name: args.name,
                    password,
                },
            )
            .await?;
            print_user(&user, args.out.json)
        }
        UserCommand::List(out) => {
            let all = store::users::list(store).await?;
            if out.json {
                print_json(&json!({ "users": all }))
            } else {
                for u in &all {
                    let state = if u.enabled { "enabled" } else { "disabled" };
                    println!("{}\t{}\t{}\t{}", u.username, u.email, state, u.id);
                }
                Ok(())
            }
        }
        UserCommand::Show(r) => print_user(&users::find(store, &r.username).await?, r.out.json),
        UserCommand::Disable(r) => print_user(
            &users::set_enabled(store, &clock, &r.username, false).await?,
            r.out.json,
        ),
        UserCommand::Enable(r) => print_user(
            &users::set_enabled(store, &clock, &r.username, true).await?,
            r.out.json,
        ),
    }
}

fn print_keys(keys: &[clients::ClientKey], json: bool) -> Result<(), Failure> {
    if json {
        print_json(&serde_json::json!({ "keys": keys }))
    } else {
        for key in keys {
            println!("{}\t{}", key.kid, key.kty);
        }
        Ok(())
    }
}
