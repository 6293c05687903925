//! `Idempotency-Key` on the API's POST endpoints: keys are scoped to the client and the
//! token's subject (two users of one app never share a key space) and kept 24 hours. The first request with a key claims it and stores its response in the same
//! transaction as its writes; the same request again gets that response back with
//! `Idempotent-Replayed: true`; another request with the key is 422; a repeat while the
//! first still runs is 409. A request that fails writes nothing and releases its claim, so
//! it may be retried. A claim left by a process that died lapses after the request timeout.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use sha2::Digest as _;

use crate::error::ApiError;
use crate::http::state::AppState;
use crate::store::idempotency::{self as keys, Claim, NewClaim, Owner, StoredResponse};

/// The request header.
pub const HEADER: &str = "idempotency-key";
/// The response header of a replay.
pub const REPLAYED: &str = "idempotent-replayed";
/// How long a key is remembered.
pub const TTL_SECS: i64 = 24 * 3600;
/// Longest key accepted.
pub const MAX_KEY_LEN: usize = 255;

/// What [`begin`] decided.
pub enum Begun {
    /// Run the request; complete the claim (if a key was sent) in its transaction.
    Run(Option<Claim>),
    /// The stored response of the first request with this key.
    Replay(Response),
}

/// Reads the `Idempotency-Key` header and claims the key for this request.
pub async fn begin(
    state: &AppState,
    owner: Owner<'_>,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Begun, ApiError> {
    let Some(value) = headers.get(HEADER) else {
        return Ok(Begun::Run(None));
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| {
            !k.is_empty() && k.len() <= MAX_KEY_LEN && k.bytes().all(|b| b.is_ascii_graphic())
        })
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters"
            ))
        })?;
    let mut hash = sha2::Sha256::new();
    for part in [
        method.as_str().as_bytes(),
        b"\n",
        path.as_bytes(),
        b"\n",
        body,
    ] {
        hash.update(part);
    }
    let request_hash: [u8; 32] = hash.finalize().into();
    let claim = crate::oauth::secret::token_id();
    let now = state.clock.unix();
    let lease = i64::try_from(state.config.request_timeout_secs).unwrap_or(i64::MAX / 4) + 5;
    let new = NewClaim {
        owner,
        key,
        request_hash: &request_hash,
        claim: &claim,
        now,
        lease_until: now + lease,
        expires_at: now + TTL_SECS,
    };
    match keys::claim(&state.store, &new).await? {
        Ok(()) => Ok(Begun::Run(Some(Claim {
            client_id: owner.client_id.to_owned(),
            subject: owner.subject.to_owned(),
            key: key.to_owned(),
            claim,
        }))),
        Err(stored) if stored.request_hash.as_slice() != request_hash.as_slice() => {
            Err(ApiError::IdempotencyKeyReused)
        }
        Err(stored) => match (stored.status, stored.body) {
            (Some(status), Some(body)) => Ok(Begun::Replay(replay(
                status,
                stored.headers.as_deref(),
                body,
            )?)),
            _ => Err(ApiError::IdempotencyKeyInFlight),
        },
    }
}

/// The response a handler sends for a stored (or about to be stored) answer.
pub fn respond(stored: StoredResponse) -> Response {
    let mut response = Response::new(Body::from(stored.body));
    *response.status_mut() = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let out = response.headers_mut();
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for (name, value) in stored.headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            out.insert(HeaderName::from_static(name), value);
        }
    }
    response
}

fn replay(status: i64, headers: Option<&str>, body: String) -> Result<Response, ApiError> {
    let corrupt =
        |what: &str| ApiError::Internal(anyhow::anyhow!("stored idempotent response: {what}"));
    let status = u16::try_from(status)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .ok_or_else(|| corrupt("status"))?;
    let pairs: Vec<(String, String)> = match headers {
        Some(h) => serde_json::from_str(h).map_err(|_| corrupt("headers"))?,
        None => Vec::new(),
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let out = response.headers_mut();
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for (name, value) in pairs {
        let name = HeaderName::try_from(name).map_err(|_| corrupt("header name"))?;
        let value = HeaderValue::try_from(value).map_err(|_| corrupt("header value"))?;
        out.insert(name, value);
    }
    out.insert(REPLAYED, HeaderValue::from_static("true"));
    Ok(response)
}
