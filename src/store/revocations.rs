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

/// Forgets used assertion ids and DPoP proof ids that expired before `before` (no JWT
/// they could refuse is still valid). Revocations are pruned by `store::prune`.
pub async fn forget_assertions(store: &Store, before: i64) -> Result<(), StoreError> {
    for table in [JtiTable::Assertions, JtiTable::DpopProofs] {
        let sql = table.forget();
        write!(store, |pool| sqlx::query(sql)
            .bind(before)
            .execute(pool)
            .await
            .map(|_| ()))?;
    }
    Ok(())
}

/// Where single-use JWT ids are remembered: client assertions by client, DPoP proofs by
/// the key that signed them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JtiTable {
    /// `used_assertions`, keyed by (client_id, jti).
    Assertions,
    /// `used_dpop_proofs`, keyed by (jkt, jti).
    DpopProofs,
}

impl JtiTable {
    /// The batched insert's head and tail (rows go between them).
    fn insert(self) -> (&'static str, &'static str) {
        match self {
            Self::Assertions => (
                "INSERT INTO used_assertions (client_id, jti, expires_at) ",
                " ON CONFLICT (client_id, jti) DO NOTHING RETURNING client_id, jti",
            ),
            Self::DpopProofs => (
                "INSERT INTO used_dpop_proofs (jkt, jti, expires_at) ",
                " ON CONFLICT (jkt, jti) DO NOTHING RETURNING jkt, jti",
            ),
        }
    }

    fn forget(self) -> &'static str {
        match self {
            Self::Assertions => "DELETE FROM used_assertions WHERE expires_at < $1",
            Self::DpopProofs => "DELETE FROM used_dpop_proofs WHERE expires_at < $1",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Assertions => "assertion_jti",
            Self::DpopProofs => "dpop_jti",
        }
    }
}

/// A JWT id to mark as used: whose it is (the client of an assertion, the key of a DPoP
/// proof), its `jti`, and until when to remember it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsedAssertion {
    /// The client whose key signed it, or a DPoP proof's key thumbprint.
    pub client_id: String,
    /// Its `jti`.
    pub jti: String,
    /// After this it has expired anyway and may be forgotten.
    pub expires_at: i64,
}

/// Marks JWT ids as used in one statement; for each, false when it was used before
/// (a replay), including earlier in the same list.
pub async fn use_assertions(
    store: &Store,
    table: JtiTable,
    assertions: &[UsedAssertion],
) -> Result<Vec<bool>, StoreError> {
    if assertions.is_empty() {
        return Ok(Vec::new());
    }
    let (head, tail) = table.insert();
    let inserted: Vec<(String, String)> = write!(store, |pool| {
        let mut query = sqlx::QueryBuilder::new(head);
        query.push_values(assertions, |mut row, a| {
            row.push_bind(&a.client_id)
                .push_bind(&a.jti)
                .push_bind(a.expires_at);
        });
        query.push(tail);
        query.build_query_as().fetch_all(pool).await
    })?;
    // The first of duplicates within the list is the one that counts as new.
    let mut fresh: std::collections::HashSet<(String, String)> = inserted.into_iter().collect();
    Ok(assertions
        .iter()
        .map(|a| fresh.remove(&(a.client_id.clone(), a.jti.clone())))
        .collect())
}

/// JWT ids of every request of this process, marked used in batches (see
/// [`super::batch`]): a JWT bearer grant, a private_key_jwt authentication or a DPoP
/// proof costs a share of one write, not a write of its own.
#[derive(Debug)]
pub struct AssertionQueue(super::batch::Batcher<UsedAssertion, bool>);

impl AssertionQueue {
    /// Starts the batching task of `table` on the current runtime.
    pub fn spawn(store: &Store, table: JtiTable) -> Self {
        Self(super::batch::Batcher::spawn(
            table.name(),
            store.clone(),
            256,
            1,
            move |store, all| async move { use_assertions(&store, table, &all).await },
        ))
    }

    /// Marks one assertion id as used; false when it was used before (a replay).
    pub async fn use_once(&self, assertion: UsedAssertion) -> Result<bool, StoreError> {
        self.0.call(assertion).await
    }
}
