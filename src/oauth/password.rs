//! Human passwords: argon2id with OWASP parameters, off the async threads, bounded.

use std::sync::Arc;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

/// OWASP Password Storage Cheat Sheet: argon2id, m = 19 MiB, t = 2, p = 1 (~18 ms here).
const MEMORY_KIB: u32 = 19 * 1024;
const ITERATIONS: u32 = 2;
const PARALLELISM: u32 = 1;
/// Shortest password accepted at registration (NIST SP 800-63B §3.1.1.2).
pub const MIN_LENGTH: usize = 8;
/// Longest password accepted: hashing cost must not be the attacker's choice.
pub const MAX_LENGTH: usize = 1024;

/// Errors of password hashing.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// The password does not meet the length rules.
    #[error("the password must be {MIN_LENGTH} to {MAX_LENGTH} characters")]
    Length,
    /// The hashing thread failed.
    #[error("password hashing failed: {0}")]
    Hashing(String),
}

/// Hashes and verifies passwords on a rayon pool of its own whose threads run at the
/// lowest scheduling priority, at most half the cores at once: a burst of sign-ins queues
/// here, and whatever CPU it gets is what token and API requests leave over — a sign-in
/// flood slows sign-ins, not the API.
#[derive(Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    pool: Arc<rayon::ThreadPool>,
}

impl Passwords {
    /// Starts the hashing threads.
    pub fn start() -> Result<Self, PasswordError> {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        let workers = (cores / 2).max(1);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(workers)
            .thread_name(|i| format!("argon2-{i}"))
            .start_handler(|_| {
                let lowered = thread_priority::set_current_thread_priority(
                    thread_priority::ThreadPriority::Min,
                );
                if let Err(e) = lowered {
                    tracing::warn!(error = ?e, "could not lower the password thread's priority");
                }
            })
            .build()
            .map_err(|e| PasswordError::Hashing(format!("no password threads: {e}")))?;
        Ok(Self {
            permits: Arc::new(Semaphore::new(workers)),
            pool: Arc::new(pool),
        })
    }
}

fn argon2() -> Result<Argon2<'static>, PasswordError> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None)
        .map_err(|e| PasswordError::Hashing(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

impl Passwords {
    /// Hashes a new password into a PHC string (`$argon2id$v=19$…`).
    pub async fn hash(&self, password: SecretString) -> Result<String, PasswordError> {
        let len = password.expose_secret().chars().count();
        if !(MIN_LENGTH..=MAX_LENGTH).contains(&len) {
            return Err(PasswordError::Length);
        }
        self.run(move || {
            argon2()?
                .hash_password(password.expose_secret().as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| PasswordError::Hashing(e.to_string()))
        })
        .await
    }

    /// Whether `password` matches the stored PHC string; a malformed hash never matches.
    pub async fn verify(&self, password: SecretString, phc: String) -> Result<bool, PasswordError> {
        if password.expose_secret().len() > MAX_LENGTH * 4 {
            return Ok(false);
        }
        self.run(move || {
            let Ok(parsed) = PasswordHash::new(&phc) else {
                return Ok(false);
            };
            Ok(argon2()?
                .verify_password(password.expose_secret().as_bytes(), &parsed)
                .is_ok())
        })
        .await
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, PasswordError> + Send + 'static,
    ) -> Result<T, PasswordError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| PasswordError::Hashing(e.to_string()))?;
        let (done, result) = tokio::sync::oneshot::channel();
        self.pool.spawn(move || {
            let _ = done.send(work());
        });
        result
            .await
            .map_err(|_| PasswordError::Hashing("a password thread failed".to_owned()))?
    }
}
