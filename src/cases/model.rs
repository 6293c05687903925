//! The cases vocabulary: what a caller sends and what it reads back.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::store::cases::{CaseRecord, LineItemRow};

/// Case priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum Priority {
    /// Low.
    Low,
    /// Medium (the default).
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

/// Case status. New → Working → Escalated → Closed; see PATCH for the allowed moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum Status {
    /// Just created.
    New,
    /// Someone works on it.
    Working,
    /// Handed up.
    Escalated,
    /// Done.
    Closed,
}

macro_rules! str_enum {
    ($t:ty { $($v:ident),* }) => {
        impl $t {
            /// The stored and serialized name.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => stringify!($v)),* }
            }
            /// The value as stored; a stored value this server did not write is an internal error.
            pub(crate) fn from_stored(s: &str) -> Result<Self, ApiError> {
                match s {
                    $(stringify!($v) => Ok(Self::$v),)*
                    other => Err(ApiError::Internal(anyhow::anyhow!(
                        "stored {} is invalid: {other}", stringify!($t)))),
                }
            }
        }
    };
}
str_enum!(Priority {
    Low,
    Medium,
    High,
    Critical
});
str_enum!(Status {
    New,
    Working,
    Escalated,
    Closed
});

/// Contact person of a case.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    /// 1 to 200 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// An email address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// The case part of a create request.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCase {
    /// 1 to 255 characters.
    pub subject: String,
    /// Up to 32,000 characters.
    #[serde(default)]
    pub description: String,
    /// Defaults to Medium.
    #[serde(default)]
    pub priority: Option<Priority>,
    /// Where the case came from (Mobile, Web, Email, Partner, …): 1 to 40 characters.
    #[serde(default)]
    pub origin: Option<String>,
    /// Who to talk to.
    #[serde(default, deserialize_with = "crate::model::json::optional_object")]
    pub contact: Option<Contact>,
}

/// A price: an amount in minor units (cents) and an ISO 4217 currency code.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Money {
    /// 0 to 100,000,000,000 minor units.
    pub amount_minor: i64,
    /// Three upper-case letters (EUR, USD, JPY, …).
    pub currency: String,
}

/// A line item of a create or append request.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLineItem {
    /// 1 to 64 characters.
    pub sku: String,
    /// Up to 1,000 characters.
    #[serde(default)]
    pub description: String,
    /// 1 to 1,000,000.
    pub quantity: i64,
    /// Price of one unit.
    #[serde(deserialize_with = "crate::model::json::object")]
    pub unit_price: Money,
}

/// The email to queue with the case.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewNotification {
    /// Recipient address; default: the case contact's. Another address only in a domain
    /// the operator allows (`mail_allowed_domains`).
    #[serde(default)]
    pub to: Option<String>,
    /// Which template: `case_created` (the default and, for now, the only one).
    #[serde(default)]
    pub template: Option<String>,
}

/// POST /api/v1/cases: a case, its line items (0 to 200) and an optional notification.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"case": {"subject": "Printer on fire", "description": "Smoke from tray 2",
    "priority": "High", "origin": "Mobile", "contact": {"name": "Ada", "email": "ada@example.com"}},
    "line_items": [{"sku": "TONER-1", "description": "Toner", "quantity": 2,
    "unit_price": {"amount_minor": 1999, "currency": "EUR"}}],
    "notification": {"to": "ada@example.com"}}))]
pub struct CreateCaseRequest {
    /// The case.
    #[serde(deserialize_with = "crate::model::json::object")]
    pub case: NewCase,
    /// Its line items, in order.
    #[serde(default, deserialize_with = "crate::model::json::objects")]
    pub line_items: Vec<NewLineItem>,
    /// An email to queue in the same transaction.
    #[serde(default, deserialize_with = "crate::model::json::optional_object")]
    pub notification: Option<NewNotification>,
}

/// A stored line item.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LineItem {
    /// Id.
    pub id: String,
    /// 0-based position in the case.
    pub position: i64,
    /// Stock-keeping unit.
    pub sku: String,
    /// Description.
    pub description: String,
    /// Quantity.
    pub quantity: i64,
    /// Price of one unit.
    pub unit_price: Money,
}

/// Delivery state of a case's notification.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Notification {
    /// Recipient.
    pub to: String,
    /// `queued` (waiting or retrying), `sent` or `failed` (gave up).
    pub status: String,
    /// Delivery attempts so far.
    pub attempts: i64,
}

/// A case with its line items and notification.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"id": "0193a5c2-4b1e-7d3f-9a2b-1c3d5e7f9a0b", "case_number": "00001024",
    "subject": "Printer on fire", "description": "Smoke from tray 2", "status": "New",
    "priority": "High", "origin": "Mobile", "contact": {"name": "Ada", "email": "ada@example.com"},
    "owner": "0193a5c1-0000-7000-8000-000000000001", "created_by": "partner-app",
    "line_items": [{"id": "0193a5c2-4b1e-7d3f-9a2b-1c3d5e7f9a0c", "position": 0, "sku": "TONER-1",
      "description": "Toner", "quantity": 2, "unit_price": {"amount_minor": 1999, "currency": "EUR"}}],
    "notification": {"to": "ada@example.com", "status": "queued", "attempts": 0},
    "created_at": "2026-11-29T10:00:00Z", "updated_at": "2026-11-29T10:00:00Z", "version": 1}))]
pub struct Case {
    /// Id.
    pub id: String,
    /// Human case number, 8 digits.
    pub case_number: String,
    /// Subject.
    pub subject: String,
    /// Description.
    pub description: String,
    /// Status.
    pub status: Status,
    /// Priority.
    pub priority: Priority,
    /// Origin.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// Contact.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact: Option<Contact>,
    /// The owning user's id (none for cases created with client credentials).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The client that created the case.
    pub created_by: String,
    /// Line items by position.
    pub line_items: Vec<LineItem>,
    /// The notification, if one was queued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notification: Option<Notification>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// Bumped by every change; the ETag is `"<version>"`.
    pub version: i64,
}

fn rfc3339(unix: i64) -> String {
    crate::clock::format_rfc3339(unix).unwrap_or_default()
}

impl TryFrom<CaseRecord> for Case {
    type Error = ApiError;
    fn try_from(record: CaseRecord) -> Result<Self, ApiError> {
        let c = record.case;
        let contact = (c.contact_name.is_some() || c.contact_email.is_some()).then_some(Contact {
            name: c.contact_name,
            email: c.contact_email,
        });
        Ok(Case {
            case_number: format!("{:08}", c.case_number),
            status: Status::from_stored(&c.status)?,
            priority: Priority::from_stored(&c.priority)?,
            id: c.id,
            subject: c.subject,
            description: c.description,
            origin: c.origin,
            contact,
            owner: c.owner_id,
            created_by: c.created_by,
            line_items: record.line_items.into_iter().map(LineItem::from).collect(),
            notification: record.notification.map(|n| Notification {
                to: n.recipient,
                status: n.status,
                attempts: n.attempts,
            }),
            created_at: rfc3339(c.created_at),
            updated_at: rfc3339(c.updated_at),
            version: c.version,
        })
    }
}

impl From<LineItemRow> for LineItem {
    fn from(row: LineItemRow) -> Self {
        LineItem {
            id: row.id,
            position: row.position,
            sku: row.sku,
            description: row.description,
            quantity: row.quantity,
            unit_price: Money {
                amount_minor: row.unit_price_minor,
                currency: row.currency,
            },
        }
    }
}

/// PATCH /api/v1/cases/{id}: the fields to change; absent fields stay.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"status": "Working", "priority": "Critical"}))]
pub struct CaseUpdate {
    /// 1 to 255 characters.
    pub subject: Option<String>,
    /// Up to 32,000 characters.
    pub description: Option<String>,
    /// New → Working, Escalated or Closed; Working → Escalated or Closed; Escalated →
    /// Working or Closed; Closed → Working (reopen).
    pub status: Option<Status>,
    /// New priority.
    pub priority: Option<Priority>,
    /// 1 to 40 characters.
    pub origin: Option<String>,
    /// Replaces the contact.
    #[serde(default, deserialize_with = "crate::model::json::optional_object")]
    pub contact: Option<Contact>,
}

/// Whether a case may move from `from` to `to`.
pub fn transition_allowed(from: Status, to: Status) -> bool {
    use Status::*;
    from == to
        || matches!(
            (from, to),
            (New, Working | Escalated | Closed)
                | (Working, Escalated | Closed)
                | (Escalated, Working | Closed)
                | (Closed, Working)
        )
}

/// POST /api/v1/cases/{id}/line-items: items appended after the existing ones.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"line_items": [{"sku": "FUSER-2", "quantity": 1, "unit_price": {"amount_minor": 8900, "currency": "EUR"}}]}))]
pub struct AppendLineItems {
    /// 1 or more; the case holds at most 200 in all.
    #[serde(deserialize_with = "crate::model::json::objects")]
    pub line_items: Vec<NewLineItem>,
}

/// A page of cases, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct CaseList {
    /// The cases.
    pub items: Vec<Case>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}
