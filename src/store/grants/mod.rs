//! Authorization codes and refresh-token families: what a user's grant issued, and the
//! single-use and rotation rules, each enforced by one conditional UPDATE so that two
//! replicas redeeming the same code or token at once cannot both win.

mod refresh;
mod revoke;

pub use refresh::*;
pub use revoke::*;

use super::{Store, StoreError, Tx, in_tx, write};

/// An authorization code as stored (the code itself only as its hash).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CodeRow {
    /// The client it was issued to.
    pub client_id: String,
    /// The user who approved it.
    pub user_id: String,
    /// The redirect URI of the authorization request.
    pub redirect_uri: String,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// PKCE S256 challenge.
    pub code_challenge: Option<String>,
    /// OpenID Connect nonce.
    pub nonce: Option<String>,
    /// When the user authenticated.
    pub auth_time: i64,
    /// When the code stops being redeemable.
    pub expires_at: i64,
    /// Claims the request asked for in the ID token, space-separated.
    pub id_token_claims: Option<String>,
    /// The browser session that approved it (OpenID Connect `sid`).
    pub sid: Option<String>,
    /// The DPoP key the code is bound to (`dpop_jkt` of the request): redeemed only with
    /// a proof of it.
    pub dpop_jkt: Option<String>,
}

/// Stores a new code.
pub async fn insert_code(
    store: &Store,
    code_hash: &[u8; 32],
    row: &CodeRow,
    now: i64,
) -> Result<(), StoreError> {
    const SQL: &str = "INSERT INTO authorization_codes (code_hash, client_id, user_id, redirect_uri, \
        scope, code_challenge, nonce, auth_time, created_at, expires_at, id_token_claims, sid, \
        dpop_jkt) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";
    write!(store, |pool| sqlx::query(SQL)
        .bind(code_hash.as_slice())
        .bind(&row.client_id)
        .bind(&row.user_id)
        .bind(&row.redirect_uri)
        .bind(&row.scope)
        .bind(&row.code_challenge)
        .bind(&row.nonce)
        .bind(row.auth_time)
        .bind(now)
        .bind(row.expires_at)
        .bind(&row.id_token_claims)
        .bind(&row.sid)
        .bind(&row.dpop_jkt)
        .execute(pool)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// What redeeming a code found.
pub enum Redeemed {
    /// First use: the code, now marked used inside the transaction.
    First(CodeRow),
    /// Already used: the client it was issued to, and what that first use issued.
    Replayed {
        /// The code's client.
        client_id: String,
        /// What the first use issued, to revoke.
        issued: Issued,
    },
    /// No such code.
    Unknown,
}

/// What one use of a code or refresh token issued.
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct Issued {
    /// The access token's jti.
    pub access_jti: Option<String>,
    /// Its expiry.
    pub access_exp: Option<i64>,
    /// The refresh-token family started, if any.
    pub family_id: Option<String>,
}

/// Marks a code used inside `tx` — exactly one caller ever gets [`Redeemed::First`].
pub async fn redeem_code(
    tx: &mut Tx,
    code_hash: &[u8; 32],
    now: i64,
) -> Result<Redeemed, StoreError> {
    const CLAIM: &str = "UPDATE authorization_codes SET used_at = $2 \
        WHERE code_hash = $1 AND used_at IS NULL \
        RETURNING client_id, user_id, redirect_uri, scope, code_challenge, nonce, auth_time, expires_at, \
        id_token_claims, sid, dpop_jkt";
    const USED: &str = "SELECT client_id, access_jti, access_exp, family_id \
        FROM authorization_codes WHERE code_hash = $1";
    let claimed: Option<CodeRow> = in_tx!(tx, |c| sqlx::query_as(CLAIM)
        .bind(code_hash.as_slice())
        .bind(now)
        .fetch_optional(&mut *c)
        .await)?;
    if let Some(row) = claimed {
        return Ok(Redeemed::First(row));
    }
    type Used = (String, Option<String>, Option<i64>, Option<String>);
    let used: Option<Used> = in_tx!(tx, |c| sqlx::query_as(USED)
        .bind(code_hash.as_slice())
        .fetch_optional(&mut *c)
        .await)?;
    Ok(used.map_or(
        Redeemed::Unknown,
        |(client_id, access_jti, access_exp, family_id)| Redeemed::Replayed {
            client_id,
            issued: Issued {
                access_jti,
                access_exp,
                family_id,
            },
        },
    ))
}

/// Records what the first use of a code issued.
pub async fn record_code_issue(
    tx: &mut Tx,
    code_hash: &[u8; 32],
    issued: &Issued,
) -> Result<(), StoreError> {
    const SQL: &str = "UPDATE authorization_codes SET access_jti = $2, access_exp = $3, family_id = $4 \
        WHERE code_hash = $1";
    in_tx!(tx, |c| sqlx::query(SQL)
        .bind(code_hash.as_slice())
        .bind(&issued.access_jti)
        .bind(issued.access_exp)
        .bind(&issued.family_id)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
    Ok(())
}
