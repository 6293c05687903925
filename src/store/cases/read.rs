//! Reading cases the caller may see, with their line items and notifications.

use sqlx::QueryBuilder;

use super::*;
use crate::store::{Store, StoreError, read};

/// A case the caller may see, with its items and notification.
pub async fn get(
    store: &Store,
    id: &str,
    who: &Visibility,
) -> Result<Option<CaseRecord>, StoreError> {
    let (column, value) = who.column();
    let sql = format!("SELECT {CASE_COLUMNS} FROM cases WHERE id = $1 AND {column} = $2");
    let case: Option<CaseRow> = read!(store, |pool| sqlx::query_as(sqlx::AssertSqlSafe(
        sql.clone()
    ))
    .bind(id)
    .bind(value)
    .fetch_optional(pool)
    .await)?;
    match case {
        Some(case) => with_parts(store, case).await.map(Some),
        None => Ok(None),
    }
}

pub(super) async fn with_parts(store: &Store, case: CaseRow) -> Result<CaseRecord, StoreError> {
    let id = case.id.as_str();
    let line_items: Vec<LineItemRow> = read!(store, |pool| sqlx::query_as(ITEMS)
        .bind(id)
        .fetch_all(pool)
        .await)?;
    let notification: Option<NotificationRow> = read!(store, |pool| sqlx::query_as(NOTIFICATION)
        .bind(id)
        .fetch_optional(pool)
        .await)?;
    Ok(CaseRecord {
        case,
        line_items,
        notification,
    })
}

/// Filters and position of a case list (newest first).
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Only cases with this status.
    pub status: Option<String>,
    /// Only cases created at or after (Unix seconds).
    pub created_from: Option<i64>,
    /// Only cases created before (Unix seconds).
    pub created_to: Option<i64>,
    /// Continue after this (created_at, id).
    pub after: Option<(i64, String)>,
    /// At most this many.
    pub limit: i64,
}

/// Cases the caller may see, newest first, with their items and notifications.
pub async fn list(
    store: &Store,
    who: &Visibility,
    q: &ListQuery,
) -> Result<Vec<CaseRecord>, StoreError> {
    let (column, value) = who.column();
    let cases: Vec<CaseRow> = read!(store, |pool| {
        let mut sql = QueryBuilder::new(format!("SELECT {CASE_COLUMNS} FROM cases WHERE "));
        sql.push(column).push(" = ").push_bind(value);
        if let Some(status) = &q.status {
            sql.push(" AND status = ").push_bind(status);
        }
        if let Some(from) = q.created_from {
            sql.push(" AND created_at >= ").push_bind(from);
        }
        if let Some(to) = q.created_to {
            sql.push(" AND created_at < ").push_bind(to);
        }
        // A row value, not `created_at < ? OR (created_at = ? AND id < ?)`: both engines
        // then start the index scan at the cursor, where the OR made them walk every
        // newer case of the caller first (600 ms half-way down a million on SQLite).
        if let Some((at, id)) = &q.after {
            sql.push(" AND (created_at, id) < (")
                .push_bind(*at)
                .push(", ")
                .push_bind(id)
                .push(")");
        }
        sql.push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .push_bind(q.limit);
        sql.build_query_as().fetch_all(pool).await
    })?;
    attach_parts(store, cases).await
}

/// Cases by id, whoever may see them (for the email about them), in no particular order.
pub async fn by_ids(store: &Store, ids: &[String]) -> Result<Vec<CaseRecord>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let cases: Vec<CaseRow> = read!(store, |pool| {
        let mut sql = QueryBuilder::new(format!("SELECT {CASE_COLUMNS} FROM cases WHERE id IN ("));
        let mut list = sql.separated(", ");
        for id in ids {
            list.push_bind(id);
        }
        sql.push(")");
        sql.build_query_as().fetch_all(pool).await
    })?;
    attach_parts(store, cases).await
}

/// The line items and notifications of `cases`, in two queries.
pub(super) async fn attach_parts(
    store: &Store,
    cases: Vec<CaseRow>,
) -> Result<Vec<CaseRecord>, StoreError> {
    if cases.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<&str> = cases.iter().map(|c| c.id.as_str()).collect();
    let items: Vec<(String, LineItemRow)> = read!(store, |pool| {
        let mut sql = QueryBuilder::new(
            "SELECT case_id, id, position, sku, description, quantity, unit_price_minor, currency \
             FROM case_line_items WHERE case_id IN (",
        );
        let mut list = sql.separated(", ");
        for id in &ids {
            list.push_bind(*id);
        }
        sql.push(") ORDER BY case_id, position");
        sql.build_query_as::<ItemWithCase>()
            .fetch_all(pool)
            .await
            .map(|rows| rows.into_iter().map(|r| (r.case_id, r.item)).collect())
    })?;
    let notifications: Vec<(String, NotificationRow)> = read!(store, |pool| {
        let mut sql = QueryBuilder::new(
            "SELECT case_id, recipient, status, attempts FROM email_outbox WHERE case_id IN (",
        );
        let mut list = sql.separated(", ");
        for id in &ids {
            list.push_bind(*id);
        }
        sql.push(") ORDER BY created_at DESC, id DESC");
        sql.build_query_as::<NotificationWithCase>()
            .fetch_all(pool)
            .await
            .map(|rows| {
                rows.into_iter()
                    .map(|r| (r.case_id, r.notification))
                    .collect()
            })
    })?;
    let mut by_case: std::collections::HashMap<String, CaseRecord> = cases
        .iter()
        .map(|c| {
            (
                c.id.clone(),
                CaseRecord {
                    case: c.clone(),
                    line_items: Vec::new(),
                    notification: None,
                },
            )
        })
        .collect();
    for (case_id, item) in items {
        if let Some(r) = by_case.get_mut(&case_id) {
            r.line_items.push(item);
        }
    }
    // Newest last wins: the first one queued is what the case shows.
    for (case_id, n) in notifications {
        if let Some(r) = by_case.get_mut(&case_id) {
            r.notification = Some(n);
        }
    }
    Ok(cases.iter().filter_map(|c| by_case.remove(&c.id)).collect())
}

#[derive(sqlx::FromRow)]
pub(super) struct ItemWithCase {
    case_id: String,
    #[sqlx(flatten)]
    item: LineItemRow,
}

#[derive(sqlx::FromRow)]
pub(super) struct NotificationWithCase {
    case_id: String,
    #[sqlx(flatten)]
    notification: NotificationRow,
}
