//! Inserting cases, their line items and emails: one case, or a batch in a few multi-row statements.

use sqlx::QueryBuilder;

use super::*;
use crate::store::{StoreError, Tx, in_tx};

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
pub(super) const ROWS_PER_STATEMENT: usize = 2_000;

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
        insert_email_rows(tx, chunk).await?;
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
pub(super) async fn case_numbers(tx: &mut Tx, n: usize) -> Result<Vec<i64>, StoreError> {
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
pub(super) async fn insert_item_rows(
    tx: &mut Tx,
    rows: &[(&str, &LineItemRow)],
) -> Result<(), StoreError> {
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

/// Notification emails of any cases, queued in one statement.
async fn insert_email_rows(tx: &mut Tx, rows: &[(&CaseRow, &NewEmail)]) -> Result<(), StoreError> {
    const HEAD: &str = "INSERT INTO email_outbox (id, case_id, recipient, template, \
        message_id, status, attempts, next_attempt_at, created_at) ";
    in_tx!(tx, |c| {
        let mut query = QueryBuilder::new(HEAD);
        query.push_values(rows, |mut row, (case, email)| {
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
    Ok(())
}
