//! Users: the people who sign in and on whose behalf clients act.

use super::{Store, StoreError, Tx, in_tx, read, write};
use crate::model::User;
use crate::model::{Email, Username};

macro_rules! select_users {
    ($tail:literal) => {
        concat!(
            "SELECT id, username, email, display_name, password_hash, enabled, created_at, updated_at \
             FROM users ",
            $tail
        )
    };
}

#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    id: String,
    username: String,
    email: String,
    display_name: Option<String>,
    password_hash: String,
    enabled: bool,
    created_at: i64,
    updated_at: i64,
}

/// The user columns under the names [`UserRow`] reads, for queries that join `users u`.
pub(crate) const JOINED_USER_COLUMNS: &str = "u.id, u.username, u.email, u.display_name, \
    u.password_hash, u.enabled, u.created_at, u.updated_at";

impl TryFrom<UserRow> for User {
    type Error = StoreError;
    fn try_from(row: UserRow) -> Result<Self, StoreError> {
        let corrupt = |what: &str, e: crate::model::Invalid| {
            StoreError::Corrupt(format!("users.{what}: {}", e.message))
        };
        Ok(User {
            id: row.id,
            username: Username::parse(&row.username).map_err(|e| corrupt("username", e))?,
            email: Email::parse(&row.email).map_err(|e| corrupt("email", e))?,
            display_name: row.display_name,
            password_hash: row.password_hash,
            enabled: row.enabled,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// Inserts a new user; a taken username is a [`StoreError::Conflict`].
pub async fn insert(store: &Store, user: &User) -> Result<(), StoreError> {
    const SQL: &str = "INSERT INTO users (id, username, email, display_name, password_hash, enabled, \
        created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
    write!(store, |pool| {
        sqlx::query(SQL)
            .bind(&user.id)
            .bind(user.username.as_str())
            .bind(user.email.as_str())
            .bind(&user.display_name)
            .bind(&user.password_hash)
            .bind(user.enabled)
            .bind(user.created_at)
            .bind(user.updated_at)
            .execute(pool)
            .await
            .map(|_| ())
    })
    .map_err(|e| StoreError::on_unique(e, "this username is taken"))?;
    Ok(())
}

/// The user with this username, if any.
pub async fn by_username(store: &Store, username: &Username) -> Result<Option<User>, StoreError> {
    const SQL: &str = select_users!("WHERE username = $1");
    let row: Option<UserRow> = read!(store, |pool| sqlx::query_as(SQL)
        .bind(username.as_str())
        .fetch_optional(pool)
        .await)?;
    row.map(User::try_from).transpose()
}

/// The user with this id, if any.
pub async fn by_id(store: &Store, id: &str) -> Result<Option<User>, StoreError> {
    const SQL: &str = select_users!("WHERE id = $1");
    let row: Option<UserRow> = read!(store, |pool| sqlx::query_as(SQL)
        .bind(id)
        .fetch_optional(pool)
        .await)?;
    row.map(User::try_from).transpose()
}

/// The user with this id, read inside a transaction.
pub async fn by_id_in(tx: &mut Tx, id: &str) -> Result<Option<User>, StoreError> {
    const SQL: &str = select_users!("WHERE id = $1");
    let row: Option<UserRow> = in_tx!(tx, |c| sqlx::query_as(SQL)
        .bind(id)
        .fetch_optional(&mut *c)
        .await)?;
    row.map(User::try_from).transpose()
}

/// Every user, ordered by username.
pub async fn list(store: &Store) -> Result<Vec<User>, StoreError> {
    const SQL: &str = select_users!("ORDER BY username");
    let rows: Vec<UserRow> = read!(store, |pool| sqlx::query_as(SQL).fetch_all(pool).await)?;
    rows.into_iter().map(User::try_from).collect()
}

/// Number of users.
pub async fn count(store: &Store) -> Result<i64, StoreError> {
    const SQL: &str = "SELECT COUNT(*) FROM users";
    Ok(read!(store, |pool| sqlx::query_scalar(SQL)
        .fetch_one(pool)
        .await)?)
}

/// Enables or disables a user. False if no such user.
pub async fn set_enabled(
    tx: &mut Tx,
    username: &Username,
    enabled: bool,
    now: i64,
) -> Result<bool, StoreError> {
    const SQL: &str = "UPDATE users SET enabled = $2, updated_at = $3 WHERE username = $1";
    let done = in_tx!(tx, |c| {
        sqlx::query(SQL)
            .bind(username.as_str())
            .bind(enabled)
            .bind(now)
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected())
    })?;
    Ok(done == 1)
}

/// The ids of the given usernames, inside a transaction; names without a user are left out.
pub async fn ids_by_username(
    tx: &mut Tx,
    usernames: &[Username],
) -> Result<Vec<(Username, String)>, StoreError> {
    const SQL: &str = "SELECT id FROM users WHERE username = $1";
    let mut found = Vec::with_capacity(usernames.len());
    for name in usernames {
        let id: Option<String> = in_tx!(tx, |c| {
            sqlx::query_scalar(SQL)
                .bind(name.as_str())
                .fetch_optional(&mut *c)
                .await
        })?;
        if let Some(id) = id {
            found.push((name.clone(), id));
        }
    }
    Ok(found)
}
