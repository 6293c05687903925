//! Validation of what a caller sends: every invalid field, named by its JSON path. Each
//! limit is written once here and documented in the OpenAPI schema.

use super::model::{CaseUpdate, Contact, CreateCaseRequest, NewLineItem, Status};
use crate::error::ApiError;
use crate::fields::FieldErrors;

/// Line items one case holds at most (on create and after appends).
pub const MAX_LINE_ITEMS: usize = 200;

/// Characters of a subject.
const SUBJECT: (usize, usize) = (1, 255);
/// Characters of a description.
const DESCRIPTION: (usize, usize) = (0, 32_000);
/// Characters of an origin.
const ORIGIN: (usize, usize) = (1, 40);
/// Characters of a contact's name.
const CONTACT_NAME: (usize, usize) = (1, 200);
/// Characters of a SKU.
const SKU: (usize, usize) = (1, 64);
/// Characters of a line item's description.
const ITEM_DESCRIPTION: (usize, usize) = (0, 1000);
/// Units of a line item.
const QUANTITY: (i64, i64) = (1, 1_000_000);
/// Minor units of a unit price.
const AMOUNT_MINOR: (i64, i64) = (0, 100_000_000_000);

/// The one notification template.
const TEMPLATE: &str = "case_created";

/// Validates a create request: every invalid field, by path.
pub fn validate(request: &CreateCaseRequest) -> Result<(), ApiError> {
    let mut check = FieldErrors::new();
    let case = &request.case;
    check.text("case.subject", &case.subject, SUBJECT);
    check.text("case.description", &case.description, DESCRIPTION);
    if let Some(origin) = &case.origin {
        check.text("case.origin", origin, ORIGIN);
    }
    contact(&mut check, "case.contact", case.contact.as_ref());
    items(&mut check, &request.line_items, 0);
    if let Some(n) = &request.notification {
        if let Some(to) = &n.to {
            check.email("notification.to", to);
        }
        if n.template.as_deref().is_some_and(|t| t != TEMPLATE) {
            check.fail(
                "notification.template",
                "unknown",
                "the only template is case_created",
            );
        }
    }
    check.finish().map_err(ApiError::Validation)
}

/// Validates a change of a case whose stored status is `current`.
pub fn validate_update(update: &CaseUpdate, current: &str) -> Result<(), ApiError> {
    let mut check = FieldErrors::new();
    if let Some(v) = &update.subject {
        check.text("subject", v, SUBJECT);
    }
    if let Some(v) = &update.description {
        check.text("description", v, DESCRIPTION);
    }
    if let Some(v) = &update.origin {
        check.text("origin", v, ORIGIN);
    }
    contact(&mut check, "contact", update.contact.as_ref());
    if let Some(to) = update.status {
        let from = Status::from_stored(current)?;
        if !super::transition_allowed(from, to) {
            check.fail(
                "status",
                "invalid_transition",
                format!("a {} case cannot become {}", from.as_str(), to.as_str()),
            );
        }
    }
    check.finish().map_err(ApiError::Validation)
}

/// Validates items to append after the `held` a case has (checked with 0 before the case
/// is read, and again with its count under the case's lock).
pub fn validate_append(new: &[NewLineItem], held: usize) -> Result<(), ApiError> {
    let mut check = FieldErrors::new();
    if new.is_empty() {
        check.fail("line_items", "required", "append at least one line item");
    }
    items(&mut check, new, held);
    check.finish().map_err(ApiError::Validation)
}

fn contact(check: &mut FieldErrors, path: &str, contact: Option<&Contact>) {
    let Some(contact) = contact else { return };
    if let Some(name) = &contact.name {
        check.text(&format!("{path}.name"), name, CONTACT_NAME);
    }
    if let Some(email) = &contact.email {
        check.email(&format!("{path}.email"), email);
    }
}

/// Checks line items that would take positions `first..`: every problem, by path.
fn items(check: &mut FieldErrors, items: &[NewLineItem], first: usize) {
    if first + items.len() > MAX_LINE_ITEMS {
        check.fail(
            "line_items",
            "too_many",
            format!("a case holds at most {MAX_LINE_ITEMS} line items"),
        );
    }
    for (i, item) in items.iter().enumerate() {
        let at = |f: &str| format!("line_items[{i}].{f}");
        check.text(&at("sku"), &item.sku, SKU);
        check.text(&at("description"), &item.description, ITEM_DESCRIPTION);
        check.range(&at("quantity"), item.quantity, QUANTITY);
        check.range(
            &at("unit_price.amount_minor"),
            item.unit_price.amount_minor,
            AMOUNT_MINOR,
        );
        let currency = &item.unit_price.currency;
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
            check.fail(
                at("unit_price.currency"),
                "invalid",
                "must be an ISO 4217 code: three upper-case letters",
            );
        }
    }
}
