//! First run in dev mode: a demo client and user, so that a new server is usable at once.

use secrecy::ExposeSecret as _;

use crate::config::Mode;
use crate::http::state::AppState;
use crate::model::Client;
use crate::model::{AuthMethod, ClientId, ClientType, GrantType, RedirectUri, Scope, ScopeSet};
use crate::oauth::clients;
use crate::oauth::users::{self, NewUser};
use crate::oauth::{RegistryError, secret};
use crate::store;

/// The demo client's fixed id.
pub const DEMO_CLIENT_ID: &str = "gatehouse-demo";
/// The demo user's login name.
pub const DEMO_USERNAME: &str = "demo";

/// The built-in public client of the docs page (Swagger UI's Authorize button).
pub const DOCS_CLIENT_ID: &str = "gatehouse-docs";
/// What the docs client may ask for: every user scope except refresh tokens.
pub const DOCS_CLIENT_SCOPES: &[Scope] = &[
    Scope::OpenId,
    Scope::Profile,
    Scope::Email,
    Scope::Api,
    Scope::CasesRead,
    Scope::CasesWrite,
];

/// Registers the docs client, in every mode, if it is missing. Its redirect URI follows
/// the issuer; a database whose docs client names another issuer is told about in the log.
pub async fn docs_client(state: &AppState) -> anyhow::Result<()> {
    let redirect = docs_redirect(state);
    if let Some(existing) = store::clients::get(&state.store, DOCS_CLIENT_ID).await? {
        if !existing
            .redirect_uris
            .iter()
            .any(|r| r.as_str() == redirect)
        {
            tracing::warn!(client_id = DOCS_CLIENT_ID, expected = %redirect,
                "the docs client is registered for another issuer; /docs sign-in will fail");
        }
        return Ok(());
    }
    let client = builtin_public_client(
        state,
        DOCS_CLIENT_ID,
        "Gatehouse API docs",
        vec![GrantType::AuthorizationCode],
        ScopeSet::new(DOCS_CLIENT_SCOPES.iter().copied()),
    )?;
    register_builtin(state, client).await
}

/// Where Swagger UI receives the authorization response.
fn docs_redirect(state: &AppState) -> String {
    format!("{}/docs/oauth2-redirect.html", state.issuer)
}

/// A public PKCE client of the server's own, redirecting to the docs page.
fn builtin_public_client(
    state: &AppState,
    id: &str,
    name: &str,
    grant_types: Vec<GrantType>,
    scopes: ScopeSet,
) -> anyhow::Result<Client> {
    let redirect = docs_redirect(state);
    let now = state.clock.unix();
    Ok(Client {
        client_id: ClientId::parse(id).map_err(|e| anyhow::anyhow!(e.message))?,
        name: name.to_owned(),
        client_type: ClientType::Public,
        token_endpoint_auth_method: AuthMethod::None,
        secret_hash: None,
        redirect_uris: vec![RedirectUri::parse(&redirect).map_err(|e| anyhow::anyhow!(e.message))?],
        grant_types,
        scopes,
        cors_origins: vec![],
        access_token_ttl_secs: None,
        refresh_token_ttl_secs: None,
        refresh_token_idle_secs: None,
        admin_approved_only: false,
        id_token_signed_response_alg: None,
        may_introspect: false,
        may_read_all_events: false,
        dpop_bound_access_tokens: false,
        require_dpop_nonce: false,
        require_pushed_authorization_requests: false,
        profile: None,
        post_logout_redirect_uris: vec![],
        backchannel_logout_uri: None,
        pre_authorized_users: vec![],
        enabled: true,
        created_at: now,
        updated_at: now,
    })
}

/// Registers a built-in client; if another replica registered it at the same moment,
/// theirs stands.
async fn register_builtin(state: &AppState, client: Client) -> anyhow::Result<()> {
    match clients::insert(&state.store, client, None).await {
        Ok(_) | Err(RegistryError::Conflict(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Seeds the demo client and user when the registry is empty (a new database) in dev mode,
/// and prints how to sign in. Production mode never does this.
pub async fn first_run(state: &AppState) -> anyhow::Result<()> {
    if state.config.mode != Mode::Dev || !state.config.demo {
        return Ok(());
    }
    let empty = store::clients::count(&state.store).await? == 0
        && store::users::count(&state.store).await? == 0;
    if !empty {
        return Ok(());
    }
    let password = secret::random_id(12);
    let created = users::create(
        &state.store,
        state.clock.as_ref(),
        &state.passwords,
        NewUser {
            username: DEMO_USERNAME.to_owned(),
            email: "demo@example.com".to_owned(),
            display_name: Some("Demo User".to_owned()),
            password: password.clone().into(),
        },
    )
    .await;
    let user = match created {
        Ok(user) => user,
        // Another replica is seeding the same new database right now: leave it to that one.
        Err(RegistryError::Conflict(_)) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let redirect = docs_redirect(state);
    let client = builtin_public_client(
        state,
        DEMO_CLIENT_ID,
        "Gatehouse demo app",
        vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        ScopeSet::new(Scope::ALL.iter().copied().filter(|s| *s != Scope::Admin)),
    )?;
    register_builtin(state, client).await?;
    let pw = secrecy::SecretString::from(password);
    println!(
        "\n  New database in dev mode: a demo user and a demo public client were created.\n\
         \n    user       {}\n    password   {}\n    client_id  {DEMO_CLIENT_ID} (public, PKCE, redirect {redirect})\n    docs       {}/docs\n\
         \n  The password is shown only now. Set GATEHOUSE_MODE=production to never seed.\n",
        user.username,
        pw.expose_secret(),
        state.issuer,
    );
    Ok(())
}
