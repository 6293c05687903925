//! Cases, their line items and the notification each may queue. A composite create writes
//! all three inside one transaction; every read is scoped to what the caller may see.

mod change;
mod insert;
mod read;

pub use change::*;
pub use insert::*;
pub use read::*;

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
