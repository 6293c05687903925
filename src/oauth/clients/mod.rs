//! The client registry: connected apps, their grants, scopes, redirect URIs and secrets.

mod keys;
mod manage;

pub use keys::*;
pub use manage::*;

use secrecy::SecretString;

use super::RegistryError;
use super::secret;
use crate::clock::Clock;
use crate::fields::FieldErrors;
use crate::model::Client;
use crate::model::{
    AuthMethod, ClientId, ClientType, CorsOrigin, GrantType, LogoutUri, Profile, RedirectUri,
    Scope, ScopeSet, SigningAlg, Username,
};
use crate::store::{self, Store};

/// Most entries in each list of a client (redirect URIs, scopes, origins …).
pub const MAX_LIST: usize = 32;

/// What registering a client takes; raw strings, validated by [`create`].
#[derive(Debug, Default, Clone)]
pub struct NewClient {
    /// Display name.
    pub name: String,
    /// `public` or `confidential`.
    pub client_type: String,
    /// Redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Grant types; empty = a default for the client type (see README).
    pub grant_types: Vec<String>,
    /// Scopes; empty = a default for the grants.
    pub scopes: Vec<String>,
    /// Token endpoint auth method; `None` = `none` for public, `client_secret_basic` otherwise.
    pub auth_method: Option<String>,
    /// Allowed CORS origins.
    pub cors_origins: Vec<String>,
    /// Usernames to pre-authorize.
    pub pre_authorize: Vec<String>,
    /// Restrict the client to pre-authorized users.
    pub admin_approved_only: bool,
    /// Lifetime overrides, seconds.
    pub access_token_ttl_secs: Option<i64>,
    /// Refresh token lifetime override, seconds (0 = until revoked).
    pub refresh_token_ttl_secs: Option<i64>,
    /// Refresh token idle timeout override, seconds.
    pub refresh_token_idle_secs: Option<i64>,
    /// `id_token_signed_response_alg` (OpenID Connect Registration §2); `None` = the
    /// server's default.
    pub id_token_alg: Option<String>,
    /// A resource server: may introspect tokens issued to any client.
    pub may_introspect: bool,
    /// An integration: its tokens read every case's change events.
    pub may_read_all_events: bool,
    /// Its tokens must be DPoP-bound (every token request carries a proof).
    pub dpop_bound_access_tokens: bool,
    /// Its DPoP proofs must carry a server nonce.
    pub require_dpop_nonce: bool,
    /// It must push its authorization requests (PAR).
    pub require_pushed_authorization_requests: bool,
    /// A security profile (`fapi2`) that fixes the rest to what the profile allows.
    pub profile: Option<String>,
    /// Where RP-initiated logout may return to.
    pub post_logout_redirect_uris: Vec<String>,
    /// Where to POST logout tokens (Back-Channel Logout 1.0).
    pub backchannel_logout_uri: Option<String>,
}

/// A created client and, for secret-based clients, the secret (shown once, stored hashed).
pub struct Created {
    /// The stored client.
    pub client: Client,
    /// The plain secret; nothing keeps it after this.
    pub secret: Option<SecretString>,
}

/// Registers a client as [`create`] does, and starts the line of signing keys its ID
/// tokens need when no key of that algorithm exists yet (the caller refreshes its ring).
pub async fn register(
    store: &Store,
    clock: &dyn Clock,
    master: &crate::oauth::keys::MasterKey,
    new: NewClient,
) -> Result<Created, RegistryError> {
    let created = create(store, clock, new).await?;
    if let Some(alg) = created.client.id_token_signed_response_alg {
        crate::oauth::keys::ensure_lines(store, clock, master, &[alg])
            .await
            .map_err(|e| RegistryError::Internal(e.into()))?;
    }
    Ok(created)
}

/// The powers only a confidential client (one that authenticates) may have.
fn check_confidential_only(f: &mut FieldErrors, new: &NewClient, client_type: ClientType) {
    if client_type != ClientType::Public {
        return;
    }
    if new.may_read_all_events {
        f.fail(
            "may_read_all_events",
            "invalid",
            "reading every case's events needs a confidential client",
        );
    }
    if new.may_introspect {
        f.fail(
            "may_introspect",
            "invalid",
            "introspection needs a confidential client (a resource server authenticates)",
        );
    }
}

/// Validates and registers a client; generates its id and, if it uses one, its secret.
/// An `id_token_alg` is stored, not given a key: [`register`] does both.
pub async fn create(
    store: &Store,
    clock: &dyn Clock,
    new: NewClient,
) -> Result<Created, RegistryError> {
    let mut f = FieldErrors::new();
    check_list_sizes(&mut f, &new);
    let name = checked_name(&mut f, &new);
    let client_type = f.check("type", new.client_type.parse::<ClientType>());
    let redirect_uris = f.check_all("redirect_uris", &new.redirect_uris, RedirectUri::parse);
    let mut openid = openid_metadata(&mut f, &new);
    let grant_types = f.check_all("grant_types", &new.grant_types, str::parse::<GrantType>);
    let scopes = f.check_all("scopes", &new.scopes, str::parse::<Scope>);
    let cors_origins = f.check_all("cors_origins", &new.cors_origins, CorsOrigin::parse);
    let pre_authorize = f.check_all("pre_authorize", &new.pre_authorize, Username::parse);
    let (auth_method, profile) = method_and_profile(&mut f, &new);
    check_lifetimes(&mut f, &new);
    let Some(client_type) = client_type else {
        return Err(f
            .finish()
            .err()
            .map_or_else(internal, RegistryError::Invalid));
    };

    let fapi2 = profile == Some(Profile::Fapi2);
    let auth_method = auth_method.unwrap_or(match client_type {
        ClientType::Public => AuthMethod::None,
        ClientType::Confidential if fapi2 => AuthMethod::PrivateKeyJwt,
        ClientType::Confidential => AuthMethod::ClientSecretBasic,
    });
    check_auth_method(&mut f, client_type, auth_method);
    let (grant_types, scopes) = grants_and_scopes(
        &mut f,
        &new,
        client_type,
        (grant_types, scopes),
        &redirect_uris,
    );
    check_confidential_only(&mut f, &new, client_type);
    if fapi2 {
        check_fapi2(
            &mut f,
            (client_type, auth_method),
            &grant_types,
            &mut openid.1,
        );
    }
    f.finish()?;

    let now = clock.unix();
    let secret = auth_method.uses_secret().then(secret::generate);
    let client = Client {
        client_id: ClientId::parse(&secret::client_id()).map_err(|e| internal_msg(e.message))?,
        name,
        client_type,
        token_endpoint_auth_method: auth_method,
        secret_hash: secret.as_ref().map(secret::hash_secret),
        redirect_uris,
        grant_types,
        scopes,
        cors_origins,
        access_token_ttl_secs: new.access_token_ttl_secs,
        refresh_token_ttl_secs: new.refresh_token_ttl_secs,
        refresh_token_idle_secs: new.refresh_token_idle_secs,
        admin_approved_only: new.admin_approved_only,
        id_token_signed_response_alg: openid.1,
        may_introspect: new.may_introspect,
        may_read_all_events: new.may_read_all_events,
        dpop_bound_access_tokens: new.dpop_bound_access_tokens || fapi2,
        require_dpop_nonce: new.require_dpop_nonce,
        require_pushed_authorization_requests: new.require_pushed_authorization_requests || fapi2,
        profile,
        post_logout_redirect_uris: openid.0,
        backchannel_logout_uri: openid.2,
        pre_authorized_users: pre_authorize,
        enabled: true,
        created_at: now,
        updated_at: now,
    };
    insert(store, client, secret).await
}

/// The OpenID Connect metadata: post-logout redirect URIs, the ID tokens' algorithm and
/// the back-channel logout URI.
fn openid_metadata(
    f: &mut FieldErrors,
    new: &NewClient,
) -> (Vec<RedirectUri>, Option<SigningAlg>, Option<LogoutUri>) {
    let post_logout = f.check_all(
        "post_logout_redirect_uris",
        &new.post_logout_redirect_uris,
        RedirectUri::parse,
    );
    let alg = new
        .id_token_alg
        .as_deref()
        .and_then(|a| f.check("id_token_signed_response_alg", a.parse::<SigningAlg>()));
    let backchannel = new
        .backchannel_logout_uri
        .as_deref()
        .and_then(|u| f.check("backchannel_logout_uri", LogoutUri::parse(u)));
    (post_logout, alg, backchannel)
}

/// A scope only a client acting for itself may have never sits beside a grant that acts
/// for a user.
fn check_scopes(f: &mut FieldErrors, scopes: &ScopeSet, grants: &[GrantType]) {
    if let (Some(scope), Some(grant)) = (
        scopes.not_delegable(),
        grants.iter().find(|g| g.acts_for_user()),
    ) {
        f.fail(
            "scopes",
            "conflict",
            format!(
                "scope `{scope}` is only for clients that act for themselves \
                 (client_credentials), and `{grant}` acts for a user: register two clients"
            ),
        );
    }
}

/// At most [`MAX_LIST`] entries in each list.
fn check_list_sizes(f: &mut FieldErrors, new: &NewClient) {
    for (field, len) in [
        ("redirect_uris", new.redirect_uris.len()),
        (
            "post_logout_redirect_uris",
            new.post_logout_redirect_uris.len(),
        ),
        ("grant_types", new.grant_types.len()),
        ("scopes", new.scopes.len()),
        ("cors_origins", new.cors_origins.len()),
        ("pre_authorize", new.pre_authorize.len()),
    ] {
        if len > MAX_LIST {
            f.fail(field, "too_many", format!("at most {MAX_LIST} entries"));
        }
    }
}

/// Lifetime overrides within their bounds.
fn check_lifetimes(f: &mut FieldErrors, new: &NewClient) {
    for (field, ttl, min) in [
        ("access_token_ttl_secs", new.access_token_ttl_secs, 1),
        ("refresh_token_ttl_secs", new.refresh_token_ttl_secs, 0),
        ("refresh_token_idle_secs", new.refresh_token_idle_secs, 1),
    ] {
        if ttl.is_some_and(|t| t < min) {
            f.fail(field, "out_of_range", format!("must be at least {min}"));
        }
    }
}

/// A public client uses no authentication; a confidential one must authenticate.
/// The grants (a default for the client's type and redirect URIs when none were asked
/// for) and the scopes (a default for the grants), each checked against the other.
fn grants_and_scopes(
    f: &mut FieldErrors,
    new: &NewClient,
    client_type: ClientType,
    (mut grant_types, scopes): (Vec<GrantType>, Vec<Scope>),
    redirect_uris: &[RedirectUri],
) -> (Vec<GrantType>, ScopeSet) {
    grant_types.sort();
    grant_types.dedup();
    if grant_types.is_empty() && new.grant_types.is_empty() {
        grant_types = default_grants(client_type, !redirect_uris.is_empty());
    }
    check_grants(f, client_type, &grant_types, redirect_uris);
    let scopes = if scopes.is_empty() && new.scopes.is_empty() {
        default_scopes(&grant_types)
    } else {
        ScopeSet::new(scopes)
    };
    check_scopes(f, &scopes, &grant_types);
    (grant_types, scopes)
}

/// The authentication method and the profile asked for, if any (parsed; the rules come
/// once the client type is known).
fn method_and_profile(
    f: &mut FieldErrors,
    new: &NewClient,
) -> (Option<AuthMethod>, Option<Profile>) {
    let method = new.auth_method.as_deref();
    let method = method.and_then(|m| f.check("auth_method", m.parse::<AuthMethod>()));
    let profile = new.profile.as_deref();
    let profile = profile.and_then(|p| f.check("profile", p.parse::<Profile>()));
    (method, profile)
}

/// The display name: 1 to 200 characters, trimmed.
fn checked_name(f: &mut FieldErrors, new: &NewClient) -> String {
    let name = new.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 200 {
        f.fail("name", "invalid", "must be 1 to 200 characters");
    }
    name
}

/// What the FAPI 2.0 Security Profile (§5.3.2) allows a client: confidential,
/// authenticating with `private_key_jwt`, using the code flow (and refresh tokens, and
/// client credentials), ID tokens in ES256 (the default), PS256 or EdDSA, never RS256.
fn check_fapi2(
    f: &mut FieldErrors,
    (client_type, auth_method): (ClientType, AuthMethod),
    grants: &[GrantType],
    id_token_alg: &mut Option<SigningAlg>,
) {
    match id_token_alg {
        None => *id_token_alg = Some(SigningAlg::ES256),
        Some(SigningAlg::RS256) => f.fail(
            "id_token_alg",
            "invalid",
            "the fapi2 profile signs ID tokens with PS256, ES256 or EdDSA, not RS256",
        ),
        Some(_) => {}
    }
    if client_type != ClientType::Confidential {
        f.fail(
            "type",
            "invalid",
            "the fapi2 profile needs a confidential client",
        );
    }
    if auth_method != AuthMethod::PrivateKeyJwt {
        f.fail(
            "auth_method",
            "invalid",
            "the fapi2 profile authenticates clients with private_key_jwt only",
        );
    }
    let allowed = [
        GrantType::AuthorizationCode,
        GrantType::RefreshToken,
        GrantType::ClientCredentials,
    ];
    if let Some(other) = grants.iter().find(|g| !allowed.contains(g)) {
        f.fail(
            "grant_types",
            "invalid",
            format!("the fapi2 profile does not allow {other} (authorization_code, refresh_token, client_credentials)"),
        );
    }
}

fn check_auth_method(f: &mut FieldErrors, client_type: ClientType, auth_method: AuthMethod) {
    match (client_type, auth_method) {
        (ClientType::Public, AuthMethod::None) => {}
        (ClientType::Public, _) => f.fail("auth_method", "invalid", "a public client uses `none`"),
        (ClientType::Confidential, AuthMethod::None) => f.fail(
            "auth_method",
            "invalid",
            "a confidential client must authenticate",
        ),
        (ClientType::Confidential, _) => {}
    }
}

/// Registers a client whose id is fixed (the built-in demo and docs clients).
pub(crate) async fn insert(
    store: &Store,
    client: Client,
    secret: Option<SecretString>,
) -> Result<Created, RegistryError> {
    let mut tx = store.begin().await?;
    let found = store::users::ids_by_username(&mut tx, &client.pre_authorized_users).await?;
    let missing: Vec<&str> = client
        .pre_authorized_users
        .iter()
        .filter(|u| !found.iter().any(|(name, _)| name == *u))
        .map(|u| u.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(RegistryError::Invalid(vec![crate::error::FieldError::new(
            "pre_authorize",
            "unknown",
            format!("no such user: {}", missing.join(", ")),
        )]));
    }
    let ids: Vec<String> = found.into_iter().map(|(_, id)| id).collect();
    store::clients::insert(&mut tx, &client, &ids).await?;
    tx.commit().await?;
    tracing::info!(client_id = %client.client_id, client_type = %client.client_type, "client registered");
    Ok(Created { client, secret })
}

fn default_grants(client_type: ClientType, has_redirect: bool) -> Vec<GrantType> {
    match (client_type, has_redirect) {
        (_, true) => vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        (ClientType::Confidential, false) => vec![GrantType::ClientCredentials],
        // Caught by check_grants: a public client without redirect URIs needs explicit grants.
        (ClientType::Public, false) => vec![],
    }
}

fn default_scopes(grants: &[GrantType]) -> ScopeSet {
    if grants.iter().any(|g| g.acts_for_user()) {
        ScopeSet::new([
            Scope::OpenId,
            Scope::Profile,
            Scope::Email,
            Scope::OfflineAccess,
            Scope::Api,
        ])
    } else {
        ScopeSet::new([Scope::Api])
    }
}

fn check_grants(
    f: &mut FieldErrors,
    client_type: ClientType,
    grants: &[GrantType],
    redirects: &[RedirectUri],
) {
    if grants.is_empty() {
        f.fail(
            "grant_types",
            "required",
            "name at least one grant type (or a redirect URI)",
        );
    }
    if grants.contains(&GrantType::AuthorizationCode) && redirects.is_empty() {
        f.fail(
            "redirect_uris",
            "required",
            "authorization_code needs at least one redirect URI",
        );
    }
    if grants.contains(&GrantType::ClientCredentials) && client_type == ClientType::Public {
        f.fail(
            "grant_types",
            "invalid",
            "client_credentials needs a confidential client",
        );
    }
    let issues_refresh =
        grants.contains(&GrantType::AuthorizationCode) || grants.contains(&GrantType::DeviceCode);
    if grants.contains(&GrantType::RefreshToken) && !issues_refresh {
        f.fail(
            "grant_types",
            "invalid",
            "refresh_token needs authorization_code or device_code",
        );
    }
}

fn internal() -> RegistryError {
    internal_msg("validation state lost".to_owned())
}

fn internal_msg(message: String) -> RegistryError {
    RegistryError::Internal(anyhow::anyhow!(message))
}
