//! The command line's shape (clap derive): every command, flag and its help.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Gatehouse: OAuth 2.0 / OpenID Connect authorization server and resource API.
#[derive(Debug, Parser)]
#[command(name = "gatehouse", version, about)]
pub struct Cli {
    /// Configuration file [default: gatehouse.toml when present]
    #[arg(long, global = true, env = "GATEHOUSE_CONFIG", value_name = "FILE")]
    pub(super) config: Option<PathBuf>,
    #[command(subcommand)]
    pub(super) command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub(super) enum Command {
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
    /// Manage webhook endpoints and their deliveries
    #[command(subcommand)]
    Webhook(WebhookCommand),
    /// Print the OpenAPI document
    Openapi,
    /// Exit 0 when the server on `listen` answers /healthz with 200 (container health checks)
    Healthcheck,
}

#[derive(Debug, Subcommand)]
pub(super) enum ClientCommand {
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
pub(super) struct RemoveKey {
    /// The client's id
    pub(super) client_id: String,
    /// The key's id (a base64url kid may start with `-`)
    #[arg(allow_hyphen_values = true)]
    pub(super) kid: String,
    #[command(flatten)]
    pub(super) out: JsonFlag,
}

#[derive(Debug, Args)]
pub(super) struct AddKey {
    /// The client's id
    pub(super) client_id: String,
    /// A PEM file with a `PUBLIC KEY` or a `CERTIFICATE` (RSA, EC P-256 or Ed25519)
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "jwks",
        conflicts_with = "jwks"
    )]
    pub(super) pem: Option<PathBuf>,
    /// A JWKS document (JSON): every key in it is registered, under its own kid
    #[arg(long, value_name = "FILE")]
    pub(super) jwks: Option<PathBuf>,
    #[command(flatten)]
    pub(super) out: JsonFlag,
}

#[derive(Debug, Subcommand)]
pub(super) enum WebhookCommand {
    /// Register an endpoint; prints its whsec_ signing secret once
    Create(CreateWebhook),
    /// List endpoints
    List(JsonFlag),
    /// Disable an endpoint: its deliveries wait until it is enabled
    Disable(WebhookRef),
    /// Enable a disabled endpoint
    Enable(WebhookRef),
    /// Delete an endpoint and its deliveries
    Delete(WebhookRef),
    /// Replace the signing secret (the previous one signs too for 24 hours)
    RotateSecret(WebhookRef),
    /// An endpoint's deliveries, newest first, with every attempt
    Deliveries(WebhookDeliveries),
    /// Send a delivery again
    Redeliver(Redeliver),
}

#[derive(Debug, Args)]
pub(super) struct CreateWebhook {
    /// Where deliveries are POSTed (https; a private address only with webhook_allow_private)
    #[arg(long)]
    pub(super) url: String,
    /// An event type it receives (repeatable; none: every type)
    #[arg(long = "event", value_name = "TYPE")]
    pub(super) event_types: Vec<String>,
    /// What it is for
    #[arg(long)]
    pub(super) description: Option<String>,
    #[command(flatten)]
    pub(super) out: JsonFlag,
}

#[derive(Debug, Args)]
pub(super) struct WebhookRef {
    /// The endpoint's id
    pub(super) id: String,
    #[command(flatten)]
    pub(super) out: JsonFlag,
}

#[derive(Debug, Args)]
pub(super) struct WebhookDeliveries {
    /// The endpoint's id
    pub(super) id: String,
    /// Only queued, sent or failed deliveries
    #[arg(long)]
    pub(super) status: Option<String>,
    /// How many (1 to 200)
    #[arg(long, default_value_t = 50)]
    pub(super) limit: i64,
    #[command(flatten)]
    pub(super) out: JsonFlag,
}

#[derive(Debug, Args)]
pub(super) struct Redeliver {
    /// The endpoint's id
    pub(super) id: String,
    /// The delivery's id
    pub(super) delivery_id: String,
    #[command(flatten)]
    pub(super) out: JsonFlag,
}

#[derive(Debug, Subcommand)]
pub(super) enum KeysCommand {
    /// List signing keys and their states
    List(JsonFlag),
    /// Rotate one line of keys: publish a new key now; it signs after key_publish_secs
    Rotate(RotateKeys),
    /// Revoke a compromised key: out of JWKS and verification at once; a new key signs
    Revoke(RevokeKey),
}

#[derive(Debug, Args)]
pub(super) struct RevokeKey {
    /// The key id (see `keys list`; a base64url kid may start with `-`)
    #[arg(allow_hyphen_values = true)]
    pub(super) kid: String,
    #[command(flatten)]
    pub(super) out: JsonFlag,
}

#[derive(Debug, Args)]
pub(super) struct RotateKeys {
    /// Sign with the new key at once (a compromised key)
    #[arg(long)]
    pub(super) immediately: bool,
    /// The line to rotate: ES256, EdDSA, RS256 or PS256 [default: the access tokens']
    #[arg(long, value_name = "ALG")]
    pub(super) alg: Option<String>,
    #[command(flatten)]
    pub(super) out: JsonFlag,
}

#[derive(Debug, Args)]
pub(super) struct CreateClient {
    /// Name shown to users
    #[arg(long)]
    pub(super) name: String,
    /// public (SPA, mobile, device) or confidential (server)
    #[arg(long = "type", value_name = "public|confidential")]
    pub(super) client_type: String,
    /// Redirect URI, matched exactly (repeatable)
    #[arg(long = "redirect-uri", value_name = "URI")]
    pub(super) redirect_uris: Vec<String>,
    /// Grant type the client may use (repeatable)
    #[arg(long = "grant", value_name = "GRANT")]
    pub(super) grants: Vec<String>,
    /// Scope the client may request (repeatable)
    #[arg(long = "scope", value_name = "SCOPE")]
    pub(super) scopes: Vec<String>,
    /// Token endpoint authentication method
    #[arg(long = "auth-method", value_name = "METHOD")]
    pub(super) auth_method: Option<String>,
    /// Browser origin allowed to call the API cross-origin (repeatable)
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    pub(super) cors_origins: Vec<String>,
    /// Pre-authorize this user for the client (repeatable)
    #[arg(long = "pre-authorize", value_name = "USERNAME")]
    pub(super) pre_authorize: Vec<String>,
    /// Only pre-authorized users may use this client
    #[arg(long)]
    pub(super) admin_approved_only: bool,
    /// Access token lifetime in seconds [default: the server's]
    #[arg(long, value_name = "SECS")]
    pub(super) access_token_ttl: Option<i64>,
    /// Refresh token lifetime in seconds, 0 = until revoked [default: the server's]
    #[arg(long, value_name = "SECS")]
    pub(super) refresh_token_ttl: Option<i64>,
    /// Refresh token idle timeout in seconds [default: the server's]
    #[arg(long, value_name = "SECS")]
    pub(super) refresh_token_idle: Option<i64>,
    /// Algorithm of this client's ID tokens: RS256, PS256, ES256 or EdDSA
    /// [default: the server's id_token_signing_alg]
    #[arg(long, value_name = "ALG")]
    pub(super) id_token_alg: Option<String>,
    /// A resource server: may introspect tokens issued to any client (confidential only)
    #[arg(long)]
    pub(super) may_introspect: bool,
    /// An integration: its tokens read every case's change events (confidential only)
    #[arg(long)]
    pub(super) may_read_all_events: bool,
    /// Every token request must carry a DPoP proof; access tokens are bound to its key
    #[arg(long)]
    pub(super) dpop_bound: bool,
    /// This client's DPoP proofs must carry a server nonce
    #[arg(long)]
    pub(super) dpop_nonce: bool,
    /// The client must push its authorization requests to /oauth2/par (PAR)
    #[arg(long)]
    pub(super) require_par: bool,
    /// Hold the client to a security profile: fapi2 (the FAPI 2.0 Security Profile)
    #[arg(long, value_name = "PROFILE")]
    pub(super) profile: Option<String>,
    /// Where RP-initiated logout may return, matched exactly (repeatable)
    #[arg(long = "post-logout-redirect-uri", value_name = "URI")]
    pub(super) post_logout_redirect_uris: Vec<String>,
    /// Where to POST logout tokens when a session the client took part in ends
    /// (https, or http on a loopback host)
    #[arg(long = "backchannel-logout-uri", value_name = "URI")]
    pub(super) backchannel_logout_uri: Option<String>,
    #[command(flatten)]
    pub(super) out: JsonFlag,
}

#[derive(Debug, Args)]
pub(super) struct ClientRef {
    /// The client's id
    pub(super) client_id: String,
    #[command(flatten)]
    pub(super) out: JsonFlag,
}

#[derive(Debug, Subcommand)]
pub(super) enum UserCommand {
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
pub(super) struct CreateUser {
    /// Login name
    #[arg(long)]
    pub(super) username: String,
    /// Email address
    #[arg(long)]
    pub(super) email: String,
    /// Display name
    #[arg(long)]
    pub(super) name: Option<String>,
    /// Read the password from the first line of stdin
    #[arg(long, conflicts_with = "password_file")]
    pub(super) password_stdin: bool,
    /// Read the password from the first line of this file
    #[arg(long, value_name = "FILE")]
    pub(super) password_file: Option<PathBuf>,
    #[command(flatten)]
    pub(super) out: JsonFlag,
}

#[derive(Debug, Args)]
pub(super) struct UserRef {
    /// The user's login name
    pub(super) username: String,
    #[command(flatten)]
    pub(super) out: JsonFlag,
}

#[derive(Debug, Args)]
pub(super) struct JsonFlag {
    /// Print one JSON object
    #[arg(long)]
    pub(super) json: bool,
}
