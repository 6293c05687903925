//! Idempotency keys: claim, complete (inside the transaction of the request's writes),
//! release, replay.

use super::{Store, StoreError, Tx, in_tx, write};

/// A key's stored state.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KeyRow {
    /// SHA-256 of the request that claimed the key.
    pub request_hash: Vec<u8>,
    /// The claim that holds it.
    pub claim: String,
    /// Until when an uncompleted claim holds.
    pub claimed_until: i64,
    /// The stored response's status; `None` while in flight.
    pub status: Option<i64>,
    /// The stored response's headers (a JSON array of name/value pairs).
    pub headers: Option<String>,
    /// The stored response's body.
    pub body: Option<String>,
}

/// Whose key space a key is in: the client and the token's subject.
#[derive(Debug, Clone, Copy)]
pub struct Owner<'a> {
    /// The client.
    pub client_id: &'a str,
    /// The token's `sub`.
    pub subject: &'a str,
}

/// A new claim of a key.
#[derive(Debug, Clone)]
pub struct NewClaim<'a> {
    /// Whose key it is.
    pub owner: Owner<'a>,
    /// The key.
    pub key: &'a str,
    /// SHA-256 of method, path and body.
    pub request_hash: &'a [u8; 32],
    /// Random claim id.
    pub claim: &'a str,
    /// Now.
    pub now: i64,
    /// How long the claim holds without completion.
    pub lease_until: i64,
    /// When the key is forgotten.
    pub expires_at: i64,
}

/// Claims a key: inserts it, or takes it over when it expired or its claim lapsed
/// unfinished (for the same request). Otherwise returns what is stored.
pub async fn claim(store: &Store, new: &NewClaim<'_>) -> Result<Result<(), KeyRow>, StoreError> {
    const CLAIM: &str = "INSERT INTO idempotency_keys (client_id, subject, idempotency_key, \
        request_hash, claim, claimed_until, created_at, expires_at) \
        VALUES ($1, $8, $2, $3, $4, $5, $6, $7) \
        ON CONFLICT (client_id, subject, idempotency_key) DO UPDATE SET \
          request_hash = excluded.request_hash, claim = excluded.claim, \
          claimed_until = excluded.claimed_until, status = NULL, headers = NULL, body = NULL, \
          created_at = excluded.created_at, expires_at = excluded.expires_at \
        WHERE idempotency_keys.expires_at <= $6 OR (idempotency_keys.status IS NULL \
          AND idempotency_keys.claimed_until <= $6 \
          AND idempotency_keys.request_hash = excluded.request_hash) \
        RETURNING claim";
    const STORED: &str = "SELECT request_hash, claim, claimed_until, status, headers, body \
        FROM idempotency_keys WHERE client_id = $1 AND subject = $3 AND idempotency_key = $2";
    let won: Option<String> = write!(store, |pool| sqlx::query_scalar(CLAIM)
        .bind(new.owner.client_id)
        .bind(new.key)
        .bind(new.request_hash.as_slice())
        .bind(new.claim)
        .bind(new.lease_until)
        .bind(new.now)
        .bind(new.expires_at)
        .bind(new.owner.subject)
        .fetch_optional(pool)
        .await)?;
    if won.as_deref() == Some(new.claim) {
        return Ok(Ok(()));
    }
    let stored: Option<KeyRow> = write!(store, |pool| sqlx::query_as(STORED)
        .bind(new.owner.client_id)
        .bind(new.key)
        .bind(new.owner.subject)
        .fetch_optional(pool)
        .await)?;
    // Deleted between the two statements (cleanup): nothing holds it; report it in flight.
    Ok(Err(stored.unwrap_or(KeyRow {
        request_hash: new.request_hash.to_vec(),
        claim: String::new(),
        claimed_until: new.lease_until,
        status: None,
        headers: None,
        body: None,
    })))
}

/// A claimed key, to complete inside the request's transaction or release.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The client whose key space holds the key.
    pub client_id: String,
    /// The token's subject, the other half of the key space.
    pub subject: String,
    /// The key.
    pub key: String,
    /// The random id of this request's claim.
    pub claim: String,
}

/// A response as an idempotent replay sends it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// The HTTP status.
    pub status: u16,
    /// Headers besides `Content-Type: application/json`, lower-case names.
    pub headers: Vec<(&'static str, String)>,
    /// The JSON body.
    pub body: String,
}

impl Claim {
    fn owner(&self) -> Owner<'_> {
        Owner {
            client_id: &self.client_id,
            subject: &self.subject,
        }
    }

    /// Stores `response` inside `tx` (committed with the request's writes);
    /// [`StoreError::ClaimLapsed`] when another request took the key over meanwhile.
    pub async fn complete(&self, tx: &mut Tx, response: &StoredResponse) -> Result<(), StoreError> {
        let headers = serde_json::to_string(&response.headers)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let owner = self.owner();
        let held = complete(
            tx,
            owner,
            &self.key,
            &self.claim,
            response.status,
            &headers,
            &response.body,
        )
        .await?;
        if held {
            Ok(())
        } else {
            Err(StoreError::ClaimLapsed)
        }
    }

    /// Releases the claim after a failed request (a failure to is logged: it lapses anyway).
    pub async fn release(&self, store: &Store) {
        if let Err(e) = release(store, self.owner(), &self.key, &self.claim).await {
            tracing::warn!(error = %e, "could not release an idempotency claim; it lapses on its own");
        }
    }
}

/// Stores the response of a claim inside the request's transaction. False when the claim
/// is no longer this one's (it lapsed and was taken over): the caller must roll back.
async fn complete(
    tx: &mut Tx,
    owner: Owner<'_>,
    key: &str,
    claim: &str,
    status: u16,
    headers: &str,
    body: &str,
) -> Result<bool, StoreError> {
    const SQL: &str = "UPDATE idempotency_keys SET status = $4, headers = $5, body = $6 \
        WHERE client_id = $1 AND subject = $7 AND idempotency_key = $2 AND claim = $3 \
        AND status IS NULL";
    let n = in_tx!(tx, |c| sqlx::query(SQL)
        .bind(owner.client_id)
        .bind(key)
        .bind(claim)
        .bind(i64::from(status))
        .bind(headers)
        .bind(body)
        .bind(owner.subject)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Gives up an unfinished claim (the request failed and wrote nothing), so that a retry
/// runs again.
async fn release(
    store: &Store,
    owner: Owner<'_>,
    key: &str,
    claim: &str,
) -> Result<(), StoreError> {
    const SQL: &str = "DELETE FROM idempotency_keys WHERE client_id = $1 AND subject = $4 \
        AND idempotency_key = $2 AND claim = $3 AND status IS NULL";
    write!(store, |pool| sqlx::query(SQL)
        .bind(owner.client_id)
        .bind(key)
        .bind(claim)
        .bind(owner.subject)
        .execute(pool)
        .await
        .map(|_| ()))?;
    Ok(())
}
