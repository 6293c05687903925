//! Revoked access tokens (kept until they would have expired) and used assertion ids.

use super::{Store, StoreError, read, write};

/// Records a revocation; revoking twice is harmless.
pub async fn insert(
    store: &Store,
    jti: &str,
    client_id: &str,
    expires_at: i64,
    now: i64,
) -> Result<(), StoreError> {
    const SQL: &str = "INSERT INTO revoked_tokens (jti, client_id, expires_at, revoked_at) \
        VALUES ($1, $2, $3, $4) ON CONFLICT (jti) DO NOTHING";
    write!(store, |pool| {
        sqlx::query(SQL)
            .bind(jti)
            .bind(client_id)
            .bind(expires_at)
            .bind(now)
            .execute(pool)
            .await
            .map(|_| ())
    })?;
    Ok(())
}

/// Revocations recorded at or after `since` that have not expired by `now`: (jti, expires_at).
pub async fn since(store: &Store, since: i64, now: i64) -> Result<Vec<(String, i64)>, StoreError> {
    const SQL: &str =
        "SELECT jti, expires_at FROM revoked_tokens WHERE revoked_at >= $1 AND expires_at >= $2";
    Ok(read!(store, |pool| sqlx::query_as(SQL)
        .bind(since)
        .bind(now)
        .fetch_all(pool)
        .await)?)
}

/// Forgets used assertion ids that expired before `before` (no assertion they could
/// refuse is still valid). Revocations are pruned by `store::prune`.
pub async fn forget_assertions(store: &Store, before: i64) -> Result<(), StoreError> {
    const ASSERTIONS: &str = "DELETE FROM used_assertions WHERE expires_at < $1";
    write!(store, |pool| sqlx::query(ASSERTIONS)
        .bind(before)
        .execute(pool)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// An assertion to mark as used: its client, its `jti`, and until when to remember it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsedAssertion {
    /// The client whose key signed it.
    pub client_id: String,
    /// Its `jti`.
    pub jti: String,
    /// After this it has expired anyway and may be forgotten.
    pub expires_at: i64,
}

/// Marks assertion ids as used in one statement; for each, false when it was used before
/// (a replay), including earlier in the same list.
pub async fn use_assertions(
    store: &Store,
    assertions: &[UsedAssertion],
) -> Result<Vec<bool>, StoreError> {
    if assertions.is_empty() {
        return Ok(Vec::new());
    }
    const HEAD: &str = "INSERT INTO used_assertions (client_id, jti, expires_at) ";
    const TAIL: &str = " ON CONFLICT (client_id, jti) DO NOTHING RETURNING client_id, jti";
    let inserted: Vec<(String, String)> = write!(store, |pool| {
        let mut query = sqlx::QueryBuilder::new(HEAD);
        query.push_values(assertions, |mut row, a| {
            row.push_bind(&a.client_id)
                .push_bind(&a.jti)
                .push_bind(a.expires_at);
        });
        query.push(TAIL);
        query.build_query_as().fetch_all(pool).await
    })?;
    // The first of duplicates within the list is the one that counts as new.
    let mut fresh: std::collections::HashSet<(String, String)> = inserted.into_iter().collect();
    Ok(assertions
        .iter()
        .map(|a| fresh.remove(&(a.client_id.clone(), a.jti.clone())))
        .collect())
}

/// Assertion ids of every request of this process, marked used in batches (see
/// [`super::batch`]): a JWT bearer grant or a private_key_jwt authentication costs a
/// share of one write, not a write of its own.
#[derive(Debug)]
pub struct AssertionQueue(super::batch::Batcher<UsedAssertion, bool>);

impl AssertionQueue {
    /// Starts the batching task on the current runtime.
    pub fn spawn(store: &Store) -> Self {
        Self(super::batch::Batcher::spawn(
            "assertion_jti",
            store.clone(),
            256,
            1,
            |store, all| async move { use_assertions(&store, &all).await },
        ))
    }

    /// Marks one assertion id as used; false when it was used before (a replay).
    pub async fn use_once(&self, assertion: UsedAssertion) -> Result<bool, StoreError> {
        self.0.call(assertion).await
    }
}
