//! The composite create: a case, its line items and its notification email in one
//! transaction, batched with the creates of other requests.

use std::sync::Arc;

use super::validate::validate;
use super::{
    Actor, Case, CreateCaseRequest, Ctx, NewCase, NewLineItem, NewNotification, Priority, Status,
    reply,
};
use crate::error::{ApiError, FieldError};
use crate::store::batch::Batcher;
use crate::store::cases::{self as store_cases, CaseRow, LineItemRow, NewEmail, Visibility};
use crate::store::idempotency::{Claim, StoredResponse};
use crate::store::{Store, StoreError};

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

pub(super) fn item_rows(items: &[NewLineItem], first: usize) -> Vec<LineItemRow> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| LineItemRow {
            id: new_id(),
            position: (first + i) as i64,
            sku: item.sku.clone(),
            description: item.description.clone(),
            quantity: item.quantity,
            unit_price_minor: item.unit_price.amount_minor,
            currency: item.unit_price.currency.clone(),
        })
        .collect()
}

/// Creates a case, its line items and its notification email in one transaction, all or
/// nothing, and stores the answer under the idempotency claim (if any) in that transaction.
pub async fn create(
    ctx: &Ctx<'_>,
    actor: Actor<'_>,
    request: &CreateCaseRequest,
    claim: Option<&Claim>,
) -> Result<StoredResponse, ApiError> {
    validate(request)?;
    let now = ctx.clock.unix();
    let owner_id = match actor.visibility() {
        Visibility::Owner(user) => Some(user),
        Visibility::CreatedBy(_) => None,
    };
    let case = &request.case;
    let row = CaseRow {
        id: new_id(),
        case_number: 0,
        subject: case.subject.clone(),
        description: case.description.clone(),
        status: Status::New.as_str().to_owned(),
        priority: case
            .priority
            .unwrap_or(Priority::Medium)
            .as_str()
            .to_owned(),
        origin: case.origin.clone(),
        contact_name: case.contact.as_ref().and_then(|c| c.name.clone()),
        contact_email: case
            .contact
            .as_ref()
            .and_then(|c| c.email.as_deref().map(str::trim).map(str::to_owned)),
        owner_id,
        created_by: actor.client_id.to_owned(),
        created_at: now,
        updated_at: now,
        version: 1,
    };
    let recipient = match &request.notification {
        Some(n) => Some(recipient(&ctx.config.mail_allowed_domains, case, n)?),
        None => None,
    };
    if recipient.is_some() {
        take_mail_quota(ctx, actor, now).await?;
    }
    let email = request
        .notification
        .as_ref()
        .zip(recipient)
        .map(|(n, recipient)| {
            let id = new_id();
            NewEmail {
                message_id: format!("<{id}@{}>", crate::mail::domain_of(ctx.issuer)),
                id,
                recipient,
                template: n
                    .template
                    .clone()
                    .unwrap_or_else(|| "case_created".to_owned()),
            }
        });
    let queued = email.is_some();
    let pending = PendingCreate {
        items: item_rows(&request.line_items, 0),
        row,
        email,
        claim: claim.cloned(),
        author: actor.author(ctx),
    };
    let response = ctx.creates.0.call(Arc::new(pending)).await?;
    ctx.events.committed();
    if queued {
        ctx.mail_wakeup.notify_one();
    }
    Ok(response)
}

/// Where a case's notification goes: the address it names, if that is the case contact's
/// or in an allowed domain, else the contact's. The server must not be an open relay for
/// anyone with `cases.write`.
fn recipient(allowed: &[String], case: &NewCase, n: &NewNotification) -> Result<String, ApiError> {
    let contact = case
        .contact
        .as_ref()
        .and_then(|c| c.email.as_deref())
        .map(str::trim);
    let refuse = |code: &str, message: String| {
        ApiError::Validation(vec![FieldError::new("notification.to", code, message)])
    };
    let Some(to) = n.to.as_deref().map(str::trim) else {
        return contact.map(str::to_owned).ok_or_else(|| {
            refuse(
                "required",
                "the case has no contact email: name the recipient".to_owned(),
            )
        });
    };
    let domain = to.rsplit_once('@').map_or("", |(_, d)| d);
    let is_contact = contact.is_some_and(|c| c.eq_ignore_ascii_case(to));
    if is_contact || allowed.iter().any(|d| d.eq_ignore_ascii_case(domain)) {
        return Ok(to.to_owned());
    }
    Err(refuse(
        "not_allowed",
        "a notification goes to the case contact's address, or to a domain this server allows"
            .to_owned(),
    ))
}

/// Takes one of the caller's notifications of the day (`mail_daily_limit`).
async fn take_mail_quota(ctx: &Ctx<'_>, actor: Actor<'_>, now: i64) -> Result<(), ApiError> {
    let limit = ctx.config.mail_daily_limit;
    if limit == 0 {
        return Ok(());
    }
    let day = now.div_euclid(86_400);
    if crate::store::outbox::take_mail_quota(ctx.store, actor.client_id, actor.subject, day, limit)
        .await?
    {
        return Ok(());
    }
    Err(ApiError::QuotaSpent {
        detail: format!(
            "the daily limit of {limit} notification emails is spent; it starts again at 00:00 UTC"
        ),
        retry_after: crate::usage::secs_to_midnight(now),
    })
}

/// The fields a create set: every field the case has.
fn created_fields(case: &Case) -> Vec<&'static str> {
    let mut fields = vec!["subject", "description", "status", "priority"];
    if case.origin.is_some() {
        fields.push("origin");
    }
    if case.contact.is_some() {
        fields.push("contact");
    }
    if !case.line_items.is_empty() {
        fields.push("line_items");
    }
    if case.notification.is_some() {
        fields.push("notification");
    }
    fields
}

/// A composite create ready to be written: everything but its case number.
#[derive(Debug)]
struct PendingCreate {
    row: CaseRow,
    items: Vec<LineItemRow>,
    email: Option<NewEmail>,
    claim: Option<Claim>,
    author: crate::events::Author,
}

/// The composite creates of every request of this process, written in batches: one
/// transaction and a few multi-row statements carry all the creates that queued while
/// the previous batch was being written (see [`crate::store::batch`]). Each create's
/// response is built, and stored under its Idempotency-Key, inside that transaction.
#[derive(Debug)]
pub struct CreateQueue(Batcher<Arc<PendingCreate>, StoredResponse>);

/// The most creates one transaction carries.
const CREATE_BATCH: usize = 64;

impl CreateQueue {
    /// Starts the writing task on the current runtime.
    pub fn spawn(store: &Store) -> Self {
        // SQLite has one writer connection; PostgreSQL writes two batches at once.
        let writers = match store.backend() {
            crate::store::Backend::Sqlite => 1,
            crate::store::Backend::Postgres => 2,
        };
        Self(Batcher::spawn(
            "case_create",
            store.clone(),
            CREATE_BATCH,
            writers,
            write_creates,
        ))
    }
}

async fn write_creates(
    store: Store,
    batch: Vec<Arc<PendingCreate>>,
) -> Result<Vec<StoredResponse>, StoreError> {
    let corrupt = |e: ApiError| StoreError::Corrupt(e.to_string());
    let inserts: Vec<store_cases::CaseInsert<'_>> = batch
        .iter()
        .map(|p| store_cases::CaseInsert {
            case: &p.row,
            items: &p.items,
            email: p.email.as_ref(),
        })
        .collect();
    let mut tx = store.begin().await?;
    let records = store_cases::insert_many(&mut tx, &inserts).await?;
    let mut responses = Vec::with_capacity(batch.len());
    let mut events = Vec::with_capacity(batch.len());
    for (pending, record) in batch.iter().zip(records) {
        let case = Case::try_from(record).map_err(corrupt)?;
        let response = reply(201, &case, true).map_err(corrupt)?;
        // A lapsed claim fails the batch; the batch is then retried create by create, and
        // that create alone fails.
        if let Some(claim) = &pending.claim {
            claim.complete(&mut tx, &response).await?;
        }
        // Each create is its own transaction to subscribers, whatever batch carried it.
        let state = super::case_state(&case, &response.body);
        let mut change = crate::events::TxEvents::new(&state, &pending.author);
        change.push("case.created", &created_fields(&case));
        if !case.line_items.is_empty() {
            change.push("case.line_items_added", &["line_items"]);
        }
        events.push(change.into_change());
        responses.push(response);
    }
    // Last before COMMIT: it holds the event log's lock until the transaction ends.
    crate::store::events::append(&mut tx, &events).await?;
    tx.commit().await?;
    Ok(responses)
}
