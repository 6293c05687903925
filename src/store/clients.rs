//! Clients (connected apps) and their pre-authorized users.

use sqlx::types::Json;

use super::{StoreError, Tx, in_tx, read, write};
use crate::model::Client;
use crate::model::SecretHash;
use crate::model::{ClientId, Username};

macro_rules! select_clients {
    ($($tail:literal)?) => {
        concat!(
            "SELECT id, name, client_type, auth_method, secret_hash, redirect_uris, grant_types, \
             scopes, cors_origins, access_token_ttl_secs, refresh_token_ttl_secs, \
             refresh_token_idle_secs, admin_approved_only, id_token_signed_response_alg, \
             may_introspect, may_read_all_events, post_logout_redirect_uris, \
             backchannel_logout_uri, dpop_bound_access_tokens, require_dpop_nonce, \
             require_pushed_authorization_requests, profile, enabled, \
             created_at, updated_at \
             FROM clients ",
            $($tail)?
        )
    };
}

#[derive(sqlx::FromRow)]
struct ClientRow {
    id: String,
    name: String,
    client_type: String,
    auth_method: String,
    secret_hash: Option<Vec<u8>>,
    redirect_uris: Json<Vec<String>>,
    grant_types: Json<Vec<String>>,
    scopes: Json<Vec<String>>,
    cors_origins: Json<Vec<String>>,
    access_token_ttl_secs: Option<i64>,
    refresh_token_ttl_secs: Option<i64>,
    refresh_token_idle_secs: Option<i64>,
    admin_approved_only: bool,
    id_token_signed_response_alg: Option<String>,
    may_introspect: bool,
    may_read_all_events: bool,
    post_logout_redirect_uris: Json<Vec<String>>,
    backchannel_logout_uri: Option<String>,
    dpop_bound_access_tokens: bool,
    require_dpop_nonce: bool,
    require_pushed_authorization_requests: bool,
    profile: Option<String>,
    enabled: bool,
    created_at: i64,
    updated_at: i64,
}

#[derive(sqlx::FromRow)]
struct PreauthorizedRow {
    client_id: String,
    username: String,
}

fn parse<T, E: std::fmt::Debug>(what: &str, r: Result<T, E>) -> Result<T, StoreError> {
    r.map_err(|e| StoreError::Corrupt(format!("{what}: {e:?}")))
}

fn parse_all<T, E: std::fmt::Debug>(
    what: &str,
    values: Vec<String>,
    f: impl Fn(&str) -> Result<T, E>,
) -> Result<Vec<T>, StoreError> {
    values.iter().map(|v| parse(what, f(v))).collect()
}

impl ClientRow {
    fn into_client(self, pre_authorized: Vec<Username>) -> Result<Client, StoreError> {
        let secret_hash = match self.secret_hash {
            Some(bytes) => Some(parse(
                "secret_hash",
                SecretHash::try_from(bytes.as_slice()),
            )?),
            None => None,
        };
        Ok(Client {
            client_id: parse("id", ClientId::parse(&self.id))?,
            name: self.name,
            client_type: parse("client_type", self.client_type.parse())?,
            token_endpoint_auth_method: parse("auth_method", self.auth_method.parse())?,
            secret_hash,
            redirect_uris: parse_all(
                "redirect_uris",
                self.redirect_uris.0,
                crate::model::RedirectUri::parse,
            )?,
            grant_types: parse_all("grant_types", self.grant_types.0, str::parse)?,
            scopes: crate::model::ScopeSet::new(parse_all("scopes", self.scopes.0, str::parse)?),
            cors_origins: parse_all(
                "cors_origins",
                self.cors_origins.0,
                crate::model::CorsOrigin::parse,
            )?,
            access_token_ttl_secs: self.access_token_ttl_secs,
            refresh_token_ttl_secs: self.refresh_token_ttl_secs,
            refresh_token_idle_secs: self.refresh_token_idle_secs,
            admin_approved_only: self.admin_approved_only,
            id_token_signed_response_alg: match self.id_token_signed_response_alg {
                Some(alg) => Some(parse("id_token_signed_response_alg", alg.parse())?),
                None => None,
            },
            may_introspect: self.may_introspect,
            may_read_all_events: self.may_read_all_events,
            post_logout_redirect_uris: parse_all(
                "post_logout_redirect_uris",
                self.post_logout_redirect_uris.0,
                crate::model::RedirectUri::parse,
            )?,
            backchannel_logout_uri: match self.backchannel_logout_uri {
                Some(uri) => Some(parse(
                    "backchannel_logout_uri",
                    crate::model::LogoutUri::parse(&uri),
                )?),
                None => None,
            },
            dpop_bound_access_tokens: self.dpop_bound_access_tokens,
            require_dpop_nonce: self.require_dpop_nonce,
            require_pushed_authorization_requests: self.require_pushed_authorization_requests,
            profile: match self.profile {
                Some(p) => Some(parse("profile", p.parse())?),
                None => None,
            },
            pre_authorized_users: pre_authorized,
            enabled: self.enabled,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

fn strings<T: AsRef<str>>(items: &[T]) -> Json<Vec<String>> {
    Json(items.iter().map(|i| i.as_ref().to_owned()).collect())
}

/// Inserts a new client and its pre-authorized users (which must exist: see
/// [`super::users::ids_by_username`]).
pub async fn insert(
    tx: &mut Tx,
    client: &Client,
    pre_authorized_user_ids: &[String],
) -> Result<(), StoreError> {
    const SQL: &str = "INSERT INTO clients (id, name, client_type, auth_method, secret_hash, \
        redirect_uris, grant_types, scopes, cors_origins, access_token_ttl_secs, \
        refresh_token_ttl_secs, refresh_token_idle_secs, admin_approved_only, \
        id_token_signed_response_alg, may_introspect, post_logout_redirect_uris, \
        backchannel_logout_uri, enabled, created_at, updated_at, may_read_all_events, \
        dpop_bound_access_tokens, require_dpop_nonce, require_pushed_authorization_requests, \
        profile) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
        $19, $20, $21, $22, $23, $24, $25)";
    const PREAUTH: &str = "INSERT INTO client_preauthorized_users (client_id, user_id, created_at) VALUES ($1, $2, $3)";
    let grants: Vec<&str> = client.grant_types.iter().map(|g| g.as_str()).collect();
    let scopes: Vec<&str> = client.scopes.iter().map(|s| s.as_str()).collect();
    in_tx!(tx, |c| {
        sqlx::query(SQL)
            .bind(client.client_id.as_str())
            .bind(&client.name)
            .bind(client.client_type.as_str())
            .bind(client.token_endpoint_auth_method.as_str())
            .bind(client.secret_hash.map(|h| h.to_vec()))
            .bind(strings(&client.redirect_uris))
            .bind(strings(&grants))
            .bind(strings(&scopes))
            .bind(strings(&client.cors_origins))
            .bind(client.access_token_ttl_secs)
            .bind(client.refresh_token_ttl_secs)
            .bind(client.refresh_token_idle_secs)
            .bind(client.admin_approved_only)
            .bind(client.id_token_signed_response_alg.map(|a| a.as_str()))
            .bind(client.may_introspect)
            .bind(strings(&client.post_logout_redirect_uris))
            .bind(client.backchannel_logout_uri.as_ref().map(|u| u.as_str()))
            .bind(client.enabled)
            .bind(client.created_at)
            .bind(client.updated_at)
            .bind(client.may_read_all_events)
            .bind(client.dpop_bound_access_tokens)
            .bind(client.require_dpop_nonce)
            .bind(client.require_pushed_authorization_requests)
            .bind(client.profile.map(|p| p.as_str()))
            .execute(&mut *c)
            .await
            .map_err(|e| StoreError::on_unique(e, "a client with this id exists"))?;
        for user_id in pre_authorized_user_ids {
            sqlx::query(PREAUTH)
                .bind(client.client_id.as_str())
                .bind(user_id)
                .bind(client.created_at)
                .execute(&mut *c)
                .await?;
        }
        Ok(())
    })
}

/// The client with this id, if any.
pub async fn get(store: &super::Store, id: &str) -> Result<Option<Client>, StoreError> {
    const SQL: &str = select_clients!("WHERE id = $1");
    let row: Option<ClientRow> = read!(store, |pool| sqlx::query_as(SQL)
        .bind(id)
        .fetch_optional(pool)
        .await)?;
    let Some(row) = row else { return Ok(None) };
    let mut pre = preauthorized(store, Some(id)).await?;
    let users = pre.remove(id).unwrap_or_default();
    row.into_client(users).map(Some)
}

/// Every client, ordered by creation.
pub async fn list(store: &super::Store) -> Result<Vec<Client>, StoreError> {
    const SQL: &str = select_clients!("ORDER BY created_at, id");
    let rows: Vec<ClientRow> = read!(store, |pool| sqlx::query_as(SQL).fetch_all(pool).await)?;
    let mut pre = preauthorized(store, None).await?;
    rows.into_iter()
        .map(|row| {
            let users = pre.remove(&row.id).unwrap_or_default();
            row.into_client(users)
        })
        .collect()
}

/// Number of registered clients.
pub async fn count(store: &super::Store) -> Result<i64, StoreError> {
    const SQL: &str = "SELECT COUNT(*) FROM clients";
    Ok(read!(store, |pool| sqlx::query_scalar(SQL)
        .fetch_one(pool)
        .await)?)
}

/// Replaces the stored secret hash of a secret-based client. False if no such client.
pub async fn set_secret_hash(
    store: &super::Store,
    id: &str,
    hash: &SecretHash,
    now: i64,
) -> Result<bool, StoreError> {
    const SQL: &str = "UPDATE clients SET secret_hash = $2, updated_at = $3 WHERE id = $1";
    let done = write!(store, |pool| sqlx::query(SQL)
        .bind(id)
        .bind(hash.to_vec())
        .bind(now)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

/// Enables or disables a client. False if no such client.
pub async fn set_enabled(
    tx: &mut super::Tx,
    id: &str,
    enabled: bool,
    now: i64,
) -> Result<bool, StoreError> {
    const SQL: &str = "UPDATE clients SET enabled = $2, updated_at = $3 WHERE id = $1";
    let done = super::in_tx!(tx, |c| sqlx::query(SQL)
        .bind(id)
        .bind(enabled)
        .bind(now)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

async fn preauthorized(
    store: &super::Store,
    client_id: Option<&str>,
) -> Result<std::collections::HashMap<String, Vec<Username>>, StoreError> {
    const SQL: &str = "SELECT p.client_id, u.username FROM client_preauthorized_users p \
        JOIN users u ON u.id = p.user_id WHERE ($1 IS NULL OR p.client_id = $1) ORDER BY u.username";
    let rows: Vec<PreauthorizedRow> = read!(store, |pool| sqlx::query_as(SQL)
        .bind(client_id)
        .fetch_all(pool)
        .await)?;
    let mut map = std::collections::HashMap::<String, Vec<Username>>::new();
    for row in rows {
        let username = parse("username", Username::parse(&row.username))?;
        map.entry(row.client_id).or_default().push(username);
    }
    Ok(map)
}

/// Every origin an enabled client registered for CORS (duplicates included).
pub async fn cors_origins(store: &super::Store) -> Result<Vec<String>, StoreError> {
    const SQL: &str = "SELECT cors_origins FROM clients WHERE enabled";
    let rows: Vec<Json<Vec<String>>> =
        read!(store, |pool| sqlx::query_scalar(SQL).fetch_all(pool).await)?;
    Ok(rows.into_iter().flat_map(|j| j.0).collect())
}

/// The ID-token algorithms clients registered, each once.
pub async fn id_token_algs(store: &super::Store) -> Result<Vec<String>, StoreError> {
    const SQL: &str = "SELECT DISTINCT id_token_signed_response_alg FROM clients \
        WHERE id_token_signed_response_alg IS NOT NULL";
    Ok(read!(store, |pool| sqlx::query_scalar(SQL)
        .fetch_all(pool)
        .await)?)
}
