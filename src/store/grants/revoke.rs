//! Revoking families and the access tokens they issued; cleanup of spent codes.

use super::*;
use crate::store::{Store, StoreError, Tx, in_tx, read};

/// The family a refresh token belongs to (for revocation), if the token is known.
pub async fn family_of(
    store: &Store,
    token_hash: &[u8; 32],
) -> Result<Option<FamilyRow>, StoreError> {
    const SQL: &str = "SELECT f.id, f.client_id, f.user_id, f.scope, f.auth_time, f.expires_at, \
        f.sid, f.dpop_jkt FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id \
        WHERE t.token_hash = $1";
    Ok(read!(store, |pool| sqlx::query_as(SQL)
        .bind(token_hash.as_slice())
        .fetch_optional(pool)
        .await)?)
}

/// Revokes families: marks them revoked and returns the access tokens they issued that
/// may still be live (jti, exp), for the revocation list.
pub async fn revoke_families(
    tx: &mut Tx,
    family_ids: &[String],
    reason: &str,
    now: i64,
) -> Result<Vec<(String, i64)>, StoreError> {
    const MARK: &str = "UPDATE refresh_families SET revoked_at = $2, revoke_reason = $3 \
        WHERE id = $1 AND revoked_at IS NULL";
    const LIVE: &str = "SELECT access_jti, access_exp FROM refresh_tokens \
        WHERE family_id = $1 AND access_exp >= $2";
    let mut live = Vec::new();
    for id in family_ids {
        in_tx!(tx, |c| sqlx::query(MARK)
            .bind(id)
            .bind(now)
            .bind(reason)
            .execute(&mut *c)
            .await
            .map(|_| ()))?;
        let rows: Vec<(String, i64)> = in_tx!(tx, |c| sqlx::query_as(LIVE)
            .bind(id)
            .bind(now)
            .fetch_all(&mut *c)
            .await)?;
        live.extend(rows);
    }
    Ok(live)
}

/// Revokes every live family of a user (`client_id` `None`) or of a client (`user_id`
/// `None`) in one statement, inside `tx`; how many.
pub async fn revoke_families_of(
    tx: &mut Tx,
    user_id: Option<&str>,
    client_id: Option<&str>,
    reason: &str,
    now: i64,
) -> Result<u64, StoreError> {
    const SQL: &str = "UPDATE refresh_families SET revoked_at = $3, revoke_reason = $4 \
        WHERE revoked_at IS NULL AND ($1 IS NULL OR user_id = $1) \
        AND ($2 IS NULL OR client_id = $2)";
    Ok(in_tx!(tx, |c| sqlx::query(SQL)
        .bind(user_id)
        .bind(client_id)
        .bind(now)
        .bind(reason)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?)
}

/// Live (unrevoked) families of a user, optionally for one client.
pub async fn live_families(
    tx: &mut Tx,
    user_id: &str,
    client_id: Option<&str>,
) -> Result<Vec<String>, StoreError> {
    const SQL: &str = "SELECT id FROM refresh_families WHERE user_id = $1 \
        AND ($2 IS NULL OR client_id = $2) AND revoked_at IS NULL";
    Ok(in_tx!(tx, |c| sqlx::query_scalar(SQL)
        .bind(user_id)
        .bind(client_id)
        .fetch_all(&mut *c)
        .await)?)
}

/// Records revoked access tokens inside `tx` (the list every replica syncs).
pub async fn revoke_access_tokens(
    tx: &mut Tx,
    tokens: &[(String, i64)],
    client_id: &str,
    now: i64,
) -> Result<(), StoreError> {
    const SQL: &str = "INSERT INTO revoked_tokens (jti, client_id, expires_at, revoked_at) \
        VALUES ($1, $2, $3, $4) ON CONFLICT (jti) DO NOTHING";
    for (jti, exp) in tokens {
        in_tx!(tx, |c| sqlx::query(SQL)
            .bind(jti)
            .bind(client_id)
            .bind(*exp)
            .bind(now)
            .execute(&mut *c)
            .await
            .map(|_| ()))?;
    }
    Ok(())
}
