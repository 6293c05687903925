//! Changing a case: its fields (optimistic concurrency by version) and appended line items.

use super::create::item_rows;
use super::validate::{validate_append, validate_update};
use super::{Actor, AppendLineItems, Case, CaseUpdate, Ctx, reply};
use crate::error::ApiError;
use crate::events::TxEvents;
use crate::store::cases as store_cases;
use crate::store::events as store_events;
use crate::store::idempotency::{Claim, StoredResponse};

/// Changes a case. With `expected` (the caller's If-Match) the change applies only to that
/// version (precondition failed otherwise); without it, a change racing another one is a
/// conflict.
pub async fn update(
    ctx: &Ctx<'_>,
    actor: Actor<'_>,
    id: &str,
    expected: Option<i64>,
    update: CaseUpdate,
) -> Result<StoredResponse, ApiError> {
    let who = actor.visibility();
    let current = store_cases::get(ctx.store, id, &who)
        .await?
        .ok_or(ApiError::NotFound)?;
    validate_update(&update, &current.case.status)?;
    if expected.is_some_and(|v| v != current.case.version) {
        return Err(ApiError::PreconditionFailed);
    }
    let change = store_cases::CaseChange {
        subject: update.subject,
        description: update.description,
        status: update.status.map(|s| s.as_str().to_owned()),
        priority: update.priority.map(|p| p.as_str().to_owned()),
        origin: update.origin.map(Some),
        contact_name: update.contact.as_ref().map(|c| c.name.clone()),
        contact_email: update
            .contact
            .as_ref()
            .map(|c| c.email.as_deref().map(|e| e.trim().to_owned())),
    };
    let changed = changed_fields(&current.case, &change);
    let now = ctx.clock.unix();
    let mut tx = ctx.store.begin().await?;
    let updated =
        store_cases::update(&mut tx, id, &who, current.case.version, &change, now).await?;
    if updated.is_none() {
        return Err(if expected.is_some() {
            ApiError::PreconditionFailed
        } else {
            ApiError::Conflict(
                "the case changed while this request ran; read it again and retry".to_owned(),
            )
        });
    }
    let record = store_cases::get_in(&mut tx, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let case = Case::try_from(record)?;
    let response = reply(200, &case, false)?;
    let state = super::case_state(&case, &response.body);
    let mut events = TxEvents::new(&state, &actor.author(ctx));
    events.push("case.updated", &changed);
    // Last before COMMIT: it holds the event log's lock until the transaction ends.
    store_events::append(&mut tx, &[events.into_change()]).await?;
    tx.commit().await?;
    ctx.events.committed();
    Ok(response)
}

/// The API fields whose values `change` changes (a field set to its current value is not
/// a change).
fn changed_fields(
    current: &store_cases::CaseRow,
    change: &store_cases::CaseChange,
) -> Vec<&'static str> {
    let differs = |new: &Option<String>, old: &String| new.as_ref().is_some_and(|n| n != old);
    let differs_opt =
        |new: &Option<Option<String>>, old: &Option<String>| new.as_ref().is_some_and(|n| n != old);
    let mut fields = Vec::new();
    if differs(&change.subject, &current.subject) {
        fields.push("subject");
    }
    if differs(&change.description, &current.description) {
        fields.push("description");
    }
    if differs(&change.status, &current.status) {
        fields.push("status");
    }
    if differs(&change.priority, &current.priority) {
        fields.push("priority");
    }
    if differs_opt(&change.origin, &current.origin) {
        fields.push("origin");
    }
    if differs_opt(&change.contact_name, &current.contact_name)
        || differs_opt(&change.contact_email, &current.contact_email)
    {
        fields.push("contact");
    }
    fields
}

/// Appends line items to a case atomically (all or none), after the existing ones, and
/// stores the answer under the idempotency claim (if any) in the same transaction.
pub async fn append_line_items(
    ctx: &Ctx<'_>,
    actor: Actor<'_>,
    id: &str,
    request: &AppendLineItems,
    claim: Option<&Claim>,
) -> Result<StoredResponse, ApiError> {
    validate_append(&request.line_items, 0)?;
    let mut tx = ctx.store.begin().await?;
    let held = store_cases::lock_for_append(&mut tx, id, &actor.visibility(), ctx.clock.unix())
        .await?
        .ok_or(ApiError::NotFound)?;
    let held = usize::try_from(held).unwrap_or(usize::MAX);
    validate_append(&request.line_items, held)?;
    store_cases::insert_items(&mut tx, id, &item_rows(&request.line_items, held)).await?;
    let record = store_cases::get_in(&mut tx, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let case = Case::try_from(record)?;
    let response = reply(201, &case, true)?;
    if let Some(claim) = claim {
        claim.complete(&mut tx, &response).await?;
    }
    let state = super::case_state(&case, &response.body);
    let mut events = TxEvents::new(&state, &actor.author(ctx));
    events.push("case.line_items_added", &["line_items"]);
    // Last before COMMIT: it holds the event log's lock until the transaction ends.
    store_events::append(&mut tx, &[events.into_change()]).await?;
    tx.commit().await?;
    ctx.events.committed();
    Ok(response)
}
