//! Cases, their line items and the notification each may queue. A composite create writes
//! all three inside one transaction; every read is scoped to what the caller may see.

use sqlx::QueryBuilder;

use super::{Store, StoreError, Tx, in_tx, read};

/// Who may see a case: its owner (a user's token, or a partner acting as that user), or
/// the client that created it (a client-credentials token).
#[derive(Debug, Clone)]
pub enum Visibility {
    /// Cases owned by this user.
    Owner(String),
    /// Cases created by this client.
    CreatedBy(String),
}

impl Visibility {
    fn column(&self) -> (&'static str, &str) {
        match self {
            Visibility::Owner(user) => ("owner_id", user),
            Visibility::CreatedBy(client) => ("created_by", client),
        }
    }
}

/// A case as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CaseRow {
    /// Id (UUIDv7).
    pub id: String,
    /// The human number.
    pub case_number: i64,
    /// Subject line.
    pub subject: String,
    /// Free text.
    pub description: String,
    /// New, Working, Escalated or Closed.
    pub status: String,
    /// Low, Medium, High or Critical.
    pub priority: String,
    /// Where the case came from (Mobile, Web, Partner, …).
    pub origin: Option<String>,
    /// Contact name.
    pub contact_name: Option<String>,
    /// Contact email.
    pub contact_email: Option<String>,
    /// The owning user.
    pub owner_id: Option<String>,
    /// The creating client.
    pub created_by: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
    /// Bumped by every change (the ETag).
    pub version: i64,
}

/// A line item as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LineItemRow {
    /// Id (UUIDv7).
    pub id: String,
    /// 0-based order within the case.
    pub position: i64,
    /// Stock-keeping unit.
    pub sku: String,
    /// Free text.
    pub description: String,
    /// At least 1.
    pub quantity: i64,
    /// Unit price in minor units of `currency`.
    pub unit_price_minor: i64,
    /// ISO 4217 code.
    pub currency: String,
}

/// The state of a case's notification email.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NotificationRow {
    /// Recipient.
    pub recipient: String,
    /// queued, sent or failed.
    pub status: String,
    /// Delivery attempts so far.
    pub attempts: i64,
}

/// A case with everything it holds.
#[derive(Debug, Clone)]
pub struct CaseRecord {
    /// The case.
    pub case: CaseRow,
    /// Its line items, by position.
    pub line_items: Vec<LineItemRow>,
    /// Its notification, if one was asked for.
    pub notification: Option<NotificationRow>,
}

/// An email to queue with a case.
#[derive(Debug, Clone)]
pub struct NewEmail {
    /// Outbox row id.
    pub id: String,
    /// Recipient address.
    pub recipient: String,
    /// Template name.
    pub template: String,
    /// Message-ID header, fixed for every attempt.
    pub message_id: String,
}

const CASE_COLUMNS: &str = "id, case_number, subject, description, status, priority, origin, \
    contact_name, contact_email, owner_id, created_by, created_at, updated_at, version";

/// A case's line items, by position.
const ITEMS: &str = "SELECT id, position, sku, description, quantity, unit_price_minor, \
    currency FROM case_line_items WHERE case_id = $1 ORDER BY position";
/// A case's notification: the first email queued for it.
const NOTIFICATION: &str = "SELECT recipient, status, attempts FROM email_outbox \
    WHERE case_id = $1 ORDER BY created_at, id LIMIT 1";
/// A case by id, unscoped.
static BY_ID: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("SELECT {CASE_COLUMNS} FROM cases WHERE id = $1"));

/// One case of a composite create: the case, its line items and its email, if any.
#[derive(Debug, Clone, Copy)]
pub struct CaseInsert<'a> {
    /// The case (its `case_number` is assigned on insert).
    pub case: &'a CaseRow,
    /// Its line items.
    pub items: &'a [LineItemRow],
    /// Its notification email.
    pub email: Option<&'a NewEmail>,
}

/// Inserts a case (its `case_number` is assigned here), its line items and its
/// notification inside `tx`.
pub async fn insert(
    tx: &mut Tx,
    case: &CaseRow,
    items: &[LineItemRow],
    email: Option<&NewEmail>,
) -> Result<CaseRecord, StoreError> {
    let one = CaseInsert { case, items, email };
    insert_many(tx, &[one])
        .await?
        .pop()
        .ok_or_else(|| StoreError::Corrupt("an insert returned no case".to_owned()))
}

/// Rows per multi-row INSERT, within both backends' limits on bound values.
const ROWS_PER_STATEMENT: usize = 2_000;

/// Inserts several cases, with their items and emails, in a few multi-row statements
/// inside `tx`: numbers are assigned in order, so the cases come back as given.
pub async fn insert_many(
    tx: &mut Tx,
    cases: &[CaseInsert<'_>],
) -> Result<Vec<CaseRecord>, StoreError> {
    if cases.is_empty() {
        return Ok(Vec::new());
    }
    let numbers = case_numbers(tx, cases.len()).await?;
    let head = format!("INSERT INTO cases ({CASE_COLUMNS}) ");
    for chunk in cases
        .iter()
        .zip(&numbers)
        .collect::<Vec<_>>()
        .chunks(ROWS_PER_STATEMENT / 8)
    {
        in_tx!(tx, |c| {
            let mut query = QueryBuilder::new(head.as_str());
            query.push_values(chunk, |mut row, (new, number)| {
                let case = new.case;
                row.push_bind(&case.id)
                    .push_bind(**number)
                    .push_bind(&case.subject)
                    .push_bind(&case.description)
                    .push_bind(&case.status)
                    .push_bind(&case.priority)
                    .push_bind(&case.origin)
                    .push_bind(&case.contact_name)
                    .push_bind(&case.contact_email)
                    .push_bind(&case.owner_id)
                    .push_bind(&case.created_by)
                    .push_bind(case.created_at)
                    .push_bind(case.updated_at)
                    .push_bind(case.version);
            });
            query.build().execute(&mut *c).await.map(|_| ())
        })?;
    }
    let items: Vec<(&str, &LineItemRow)> = cases
        .iter()
        .flat_map(|new| new.items.iter().map(|item| (new.case.id.as_str(), item)))
        .collect();
    for chunk in items.chunks(ROWS_PER_STATEMENT) {
        insert_item_rows(tx, chunk).await?;
    }
    let emails: Vec<(&CaseRow, &NewEmail)> = cases
        .iter()
        .filter_map(|new| Some((new.case, new.email?)))
        .collect();
    for chunk in emails.chunks(ROWS_PER_STATEMENT / 4) {
        const HEAD: &str = "INSERT INTO email_outbox (id, case_id, recipient, template, \
            message_id, status, attempts, next_attempt_at, created_at) ";
        in_tx!(tx, |c| {
            let mut query = QueryBuilder::new(HEAD);
            query.push_values(chunk, |mut row, (case, email)| {
                row.push_bind(&email.id)
                    .push_bind(&case.id)
                    .push_bind(&email.recipient)
                    .push_bind(&email.template)
                    .push_bind(&email.message_id)
                    .push("'queued'")
                    .push("0")
                    .push_bind(case.created_at)
                    .push_bind(case.created_at);
            });
            query.build().execute(&mut *c).await.map(|_| ())
        })?;
    }
    Ok(cases
        .iter()
        .zip(numbers)
        .map(|(new, case_number)| CaseRecord {
            case: CaseRow {
                case_number,
                ..new.case.clone()
            },
            line_items: new.items.to_vec(),
            notification: new.email.map(|email| NotificationRow {
                recipient: email.recipient.clone(),
                status: "queued".to_owned(),
                attempts: 0,
            }),
        })
        .collect())
}

/// `n` new case numbers, increasing: on SQLite after the highest (its one writer holds
/// the transaction), on PostgreSQL from the sequence.
async fn case_numbers(tx: &mut Tx, n: usize) -> Result<Vec<i64>, StoreError> {
    let count = i64::try_from(n).map_err(|_| StoreError::Corrupt("too many cases".into()))?;
    let mut numbers: Vec<i64> = match tx {
        Tx::Sqlite(c) => {
            const SQL: &str = "SELECT COALESCE(MAX(case_number), 1023) FROM cases";
            let last: i64 = sqlx::query_scalar(SQL).fetch_one(&mut **c).await?;
            (1..=count).map(|k| last + k).collect()
        }
        Tx::Postgres(c) => {
            const SQL: &str = "SELECT nextval('case_number_seq') FROM generate_series(1, $1)";
            sqlx::query_scalar(SQL)
                .bind(count)
                .fetch_all(&mut **c)
                .await?
        }
    };
    numbers.sort_unstable();
    Ok(numbers)
}

/// Inserts line items of a case.
pub async fn insert_items(
    tx: &mut Tx,
    case_id: &str,
    items: &[LineItemRow],
) -> Result<(), StoreError> {
    let rows: Vec<(&str, &LineItemRow)> = items.iter().map(|item| (case_id, item)).collect();
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        insert_item_rows(tx, chunk).await?;
    }
    Ok(())
}

/// Line items of any cases, in one statement.
async fn insert_item_rows(tx: &mut Tx, rows: &[(&str, &LineItemRow)]) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    const HEAD: &str = "INSERT INTO case_line_items (case_id, id, position, sku, description, \
        quantity, unit_price_minor, currency) ";
    in_tx!(tx, |c| {
        let mut query = QueryBuilder::new(HEAD);
        query.push_values(rows, |mut row, (case_id, item)| {
            row.push_bind(*case_id)
                .push_bind(&item.id)
                .push_bind(item.position)
                .push_bind(&item.sku)
                .push_bind(&item.description)
                .push_bind(item.quantity)
                .push_bind(item.unit_price_minor)
                .push_bind(&item.currency);
        });
        query.build().execute(&mut *c).await.map(|_| ())
    })?;
    Ok(())
}

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

async fn with_parts(store: &Store, case: CaseRow) -> Result<CaseRecord, StoreError> {
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
        if let Some((at, id)) = &q.after {
            sql.push(" AND (created_at < ")
                .push_bind(*at)
                .push(" OR (created_at = ")
                .push_bind(*at)
                .push(" AND id < ")
                .push_bind(id)
                .push("))");
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
async fn attach_parts(store: &Store, cases: Vec<CaseRow>) -> Result<Vec<CaseRecord>, StoreError> {
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
struct ItemWithCase {
    case_id: String,
    #[sqlx(flatten)]
    item: LineItemRow,
}

#[derive(sqlx::FromRow)]
struct NotificationWithCase {
    case_id: String,
    #[sqlx(flatten)]
    notification: NotificationRow,
}

/// The fields a change may set (`None` = unchanged).
#[derive(Debug, Clone, Default)]
pub struct CaseChange {
    /// New subject.
    pub subject: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New status.
    pub status: Option<String>,
    /// New priority.
    pub priority: Option<String>,
    /// New origin (`Some(None)` clears it).
    pub origin: Option<Option<String>>,
    /// New contact name.
    pub contact_name: Option<Option<String>>,
    /// New contact email.
    pub contact_email: Option<Option<String>>,
}

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
