//! Changing a case: fields at a version, and the lock an append takes.

use sqlx::QueryBuilder;

use super::*;
use crate::store::{StoreError, Tx, in_tx};

/// Applies `change` if the case is still at `version`: the new version, or `None` when the
/// case changed in between (or is not visible).
pub async fn update(
    tx: &mut Tx,
    id: &str,
    who: &Visibility,
    version: i64,
    change: &CaseChange,
    now: i64,
) -> Result<Option<i64>, StoreError> {
    let (column, value) = who.column();
    let updated: Option<i64> = in_tx!(tx, |c| {
        let mut sql = QueryBuilder::new("UPDATE cases SET version = version + 1, updated_at = ");
        sql.push_bind(now);
        if let Some(v) = &change.subject {
            sql.push(", subject = ").push_bind(v);
        }
        if let Some(v) = &change.description {
            sql.push(", description = ").push_bind(v);
        }
        if let Some(v) = &change.status {
            sql.push(", status = ").push_bind(v);
        }
        if let Some(v) = &change.priority {
            sql.push(", priority = ").push_bind(v);
        }
        if let Some(v) = &change.origin {
            sql.push(", origin = ").push_bind(v);
        }
        if let Some(v) = &change.contact_name {
            sql.push(", contact_name = ").push_bind(v);
        }
        if let Some(v) = &change.contact_email {
            sql.push(", contact_email = ").push_bind(v);
        }
        sql.push(" WHERE id = ").push_bind(id);
        sql.push(" AND ").push(column).push(" = ").push_bind(value);
        sql.push(" AND version = ").push_bind(version);
        sql.push(" RETURNING version");
        sql.build_query_scalar().fetch_optional(&mut *c).await
    })?;
    Ok(updated)
}

/// Locks a visible case for an append inside `tx` (bumping its version) and returns the
/// number of items it holds; `None` when the caller may not see it.
pub async fn lock_for_append(
    tx: &mut Tx,
    id: &str,
    who: &Visibility,
    now: i64,
) -> Result<Option<i64>, StoreError> {
    let (column, value) = who.column();
    let sql = format!(
        "UPDATE cases SET version = version + 1, updated_at = $3 WHERE id = $1 AND {column} = $2 \
         RETURNING (SELECT COUNT(*) FROM case_line_items WHERE case_id = $1)"
    );
    Ok(in_tx!(tx, |c| sqlx::query_scalar(sqlx::AssertSqlSafe(
        sql.clone()
    ))
    .bind(id)
    .bind(value)
    .bind(now)
    .fetch_optional(&mut *c)
    .await)?)
}

/// A case inside `tx` (after a change, for the answer).
pub async fn get_in(tx: &mut Tx, id: &str) -> Result<Option<CaseRecord>, StoreError> {
    let case: Option<CaseRow> = in_tx!(tx, |c| sqlx::query_as(BY_ID.as_str())
        .bind(id)
        .fetch_optional(&mut *c)
        .await)?;
    let Some(case) = case else { return Ok(None) };
    let line_items: Vec<LineItemRow> = in_tx!(tx, |c| sqlx::query_as(ITEMS)
        .bind(id)
        .fetch_all(&mut *c)
        .await)?;
    let notification: Option<NotificationRow> = in_tx!(tx, |c| sqlx::query_as(NOTIFICATION)
        .bind(id)
        .fetch_optional(&mut *c)
        .await)?;
    Ok(Some(CaseRecord {
        case,
        line_items,
        notification,
    }))
}
