//! The user registry: people who sign in.

use secrecy::SecretString;

use super::RegistryError;
use super::password::{PasswordError, Passwords};
use crate::clock::Clock;
use crate::fields::FieldErrors;
use crate::model::{Email, User, Username};
use crate::store::{self, Store};

/// What registering a user takes.
pub struct NewUser {
    /// Login name.
    pub username: String,
    /// Email address.
    pub email: String,
    /// Optional display name.
    pub display_name: Option<String>,
    /// The initial password (never from argv: stdin, a file or a form).
    pub password: SecretString,
}

/// Registers a user with an argon2id password hash.
pub async fn create(
    store: &Store,
    clock: &dyn Clock,
    passwords: &Passwords,
    new: NewUser,
) -> Result<User, RegistryError> {
    let mut fields = FieldErrors::new();
    let username = fields.check("username", Username::parse(&new.username));
    let email = fields.check("email", Email::parse(&new.email));
    let display_name = new
        .display_name
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty());
    if display_name
        .as_ref()
        .is_some_and(|n| n.chars().count() > 200)
    {
        fields.fail("display_name", "too_long", "must be at most 200 characters");
    }
    let hash = match passwords.hash(new.password).await {
        Ok(hash) => Some(hash),
        Err(e @ PasswordError::Length) => {
            fields.fail("password", "invalid", e.to_string());
            None
        }
        Err(e) => return Err(RegistryError::Internal(e.into())),
    };
    fields.finish()?;
    let (Some(username), Some(email), Some(password_hash)) = (username, email, hash) else {
        return Err(RegistryError::Internal(anyhow::anyhow!(
            "validated fields missing"
        )));
    };
    let now = clock.unix();
    let user = User {
        id: uuid::Uuid::now_v7().to_string(),
        username,
        email,
        display_name,
        password_hash,
        enabled: true,
        created_at: now,
        updated_at: now,
    };
    store::users::insert(store, &user).await?;
    tracing::info!(user_id = %user.id, username = %user.username, "user created");
    Ok(user)
}

/// Finds a user by login name.
pub async fn find(store: &Store, username: &str) -> Result<User, RegistryError> {
    let name = Username::parse(username)
        .map_err(|_| RegistryError::NotFound(format!("user {username}")))?;
    store::users::by_username(store, &name)
        .await?
        .ok_or_else(|| RegistryError::NotFound(format!("user {username}")))
}

/// Ends a user's browser sessions (with `sid`, that one): each client that received an ID
/// token in one is sent a logout token. Returns the user and how many ended; `NotFound`
/// for an unknown user, or a `sid` that is not one of the user's sessions.
pub async fn end_sessions(
    store: &Store,
    clock: &dyn Clock,
    username: &str,
    sid: Option<&str>,
) -> Result<(User, u64), RegistryError> {
    let user = find(store, username).await?;
    let mut tx = store.begin().await?;
    let ended = store::sessions::delete_for_user(&mut tx, &user.id, sid, clock.unix()).await?;
    if sid.is_some() && ended == 0 {
        return Err(RegistryError::NotFound("session".to_owned()));
    }
    tx.commit().await?;
    Ok((user, ended))
}

/// Enables or disables a user. Disabling ends what was issued to the user: access tokens
/// are refused (every replica within a sync interval), refresh families revoked, browser
/// sessions ended.
pub async fn set_enabled(
    store: &Store,
    clock: &dyn Clock,
    username: &str,
    enabled: bool,
) -> Result<User, RegistryError> {
    let user = find(store, username).await?;
    let now = clock.unix();
    let mut tx = store.begin().await?;
    store::users::set_enabled(&mut tx, &user.username, enabled, now).await?;
    if !enabled {
        // What was issued stops too: access tokens (through the cut-off), refresh
        // families and browser sessions.
        let cutoff = store::cutoffs::Cutoff {
            user_id: user.id.clone(),
            client_id: String::new(),
            cut_at: now,
        };
        store::cutoffs::insert(&mut tx, &cutoff).await?;
        store::grants::revoke_families_of(&mut tx, Some(&user.id), None, "user disabled", now)
            .await?;
        store::sessions::delete_for_user(&mut tx, &user.id, None, now).await?;
    }
    tx.commit().await?;
    tracing::info!(user_id = %user.id, enabled, "user enabled flag changed");
    find(store, username).await
}
