//! Checking a user's password, with throttling shared by every replica: failures are
//! counted per account and per address; past a few, answers slow down, and past the
//! configured limit the account (or address) is locked for a while. Each attempt takes its
//! place in the count before the password is checked, so that no parallelism gets more
//! checks than the limit. The answer never
//! tells whether the account exists: unknown names are hashed against a dummy hash and
//! counted and locked like real ones.

use std::time::Duration;

use secrecy::SecretString;
use tokio::sync::OnceCell;

use crate::model::User;
use crate::model::Username;
use crate::oauth::Ctx;
use crate::store::{self, StoreError};

/// Counts every password verification of a sign-in (argon2 work an attacker can cause).
pub const VERIFICATIONS_METRIC: &str = "gatehouse_password_verifications_total";
/// Failures after which each further failed answer is delayed.
const SLOW_AFTER: i64 = 2;
/// Longest added delay.
const MAX_DELAY: Duration = Duration::from_secs(2);

/// A browser's sign-in: when the user entered their password (OpenID Connect
/// `auth_time`), and the session's `sid`.
#[derive(Debug, Clone)]
pub struct SignIn {
    /// When the user authenticated.
    pub auth_time: i64,
    /// The session's id towards clients.
    pub sid: String,
}

/// Why a sign-in failed.
#[derive(Debug)]
pub enum LoginError {
    /// Wrong username or password (which one is never said).
    Invalid,
    /// Too many failures: try again after this many seconds.
    Locked(i64),
    /// The store or hasher failed.
    Internal(String),
}

impl From<StoreError> for LoginError {
    fn from(e: StoreError) -> Self {
        LoginError::Internal(e.to_string())
    }
}

static DUMMY_HASH: OnceCell<String> = OnceCell::const_new();

fn account_key(username: &str) -> String {
    format!("user:{}", username.to_lowercase())
}

fn address_key(address: &str) -> String {
    format!("addr:{}", crate::ratelimit::address_bucket(address))
}

/// Checks `username` and `password` from `address`.
pub async fn authenticate(
    ctx: &Ctx<'_>,
    username: &str,
    password: SecretString,
    address: &str,
) -> Result<User, LoginError> {
    let now = ctx.clock.unix();
    let config = ctx.config;
    let account = account_key(username);
    let addr = address_key(address);
    if let Some(until) = locked_until(ctx, &[&account, &addr], now).await? {
        return Err(tarpit(until - now).await);
    }
    // The attempt is counted before the password is checked, so that concurrent attempts
    // (on any replica) each take a place: past the limit, nothing is verified.
    let counted = count_attempt(
        ctx,
        &[
            (&account, config.login_lock_after),
            (&addr, config.login_lock_after_per_address),
        ],
        now,
    )
    .await?;
    if counted.refused {
        return Err(tarpit(counted.locked_until.map_or(1, |until| until - now)).await);
    }
    let user = match Username::parse(username) {
        Ok(name) => store::users::by_username(ctx.store, &name).await?,
        Err(_) => None,
    };
    let phc = match &user {
        Some(u) => u.password_hash.clone(),
        None => dummy_hash(ctx).await?,
    };
    metrics::counter!(VERIFICATIONS_METRIC).increment(1);
    let matches = ctx
        .passwords
        .verify(password, phc)
        .await
        .map_err(|e| LoginError::Internal(e.to_string()))?;
    match user {
        Some(user) if matches && user.enabled => {
            store::sessions::clear_failures(ctx.store, &account).await?;
            store::sessions::refund(ctx.store, &addr).await?;
            Ok(user)
        }
        _ => {
            let failures = counted.failures;
            tracing::info!(failures, "sign-in failed");
            if failures > SLOW_AFTER {
                let exp = u32::try_from(failures - SLOW_AFTER - 1)
                    .unwrap_or(u32::MAX)
                    .min(8);
                let delay = Duration::from_millis(250u64.saturating_mul(1u64 << exp));
                tokio::time::sleep(delay.min(MAX_DELAY)).await;
            }
            Err(LoginError::Invalid)
        }
    }
}

/// A locked caller waits as long as the slowest failure, so that a flood of attempts
/// against a lock costs the server almost nothing per second.
async fn tarpit(retry_after: i64) -> LoginError {
    tokio::time::sleep(MAX_DELAY).await;
    LoginError::Locked(retry_after.max(1))
}

/// The latest lock on any of `keys` still in force at `now`.
pub async fn locked_until(
    ctx: &Ctx<'_>,
    keys: &[&str],
    now: i64,
) -> Result<Option<i64>, StoreError> {
    let throttles = store::sessions::throttles(ctx.store, keys).await?;
    Ok(throttles
        .iter()
        .filter_map(|(_, t)| t.locked_until)
        .filter(|until| *until > now)
        .max())
}

/// What counting an attempt found.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counted {
    /// The most failures of any key in its window (this attempt included).
    pub failures: i64,
    /// The latest lock of any key.
    pub locked_until: Option<i64>,
    /// Some key is past its limit: the attempt must not be checked.
    pub refused: bool,
}

/// Counts one attempt (a failure until refunded) for each key, each locking at its own
/// limit within `login_window_secs` for `login_lock_secs`.
pub async fn count_attempt(
    ctx: &Ctx<'_>,
    keys: &[(&str, i64)],
    now: i64,
) -> Result<Counted, StoreError> {
    let config = ctx.config;
    let counted = store::sessions::record_failures(
        ctx.store,
        keys,
        now,
        config.login_window_secs,
        config.login_lock_secs,
    )
    .await?;
    let mut worst = Counted::default();
    for (t, (_, limit)) in counted.iter().zip(keys) {
        worst.failures = worst.failures.max(t.failures);
        worst.locked_until = worst.locked_until.max(t.locked_until);
        worst.refused |= t.failures > *limit;
    }
    Ok(worst)
}

/// A valid hash of a random password, made once per process, so that an unknown username
/// costs the same argon2 work as a known one.
async fn dummy_hash(ctx: &Ctx<'_>) -> Result<String, LoginError> {
    DUMMY_HASH
        .get_or_try_init(|| async {
            ctx.passwords
                .hash(super::secret::generate())
                .await
                .map_err(|e| LoginError::Internal(e.to_string()))
        })
        .await
        .cloned()
}
