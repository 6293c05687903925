//! Cases: the composite create (a case, its line items and its notification email in one
//! transaction) and reading a case back.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::guard::{Caller, ScopePolicy};
use super::idempotency::{self, Begun, Claim};
use crate::error::{ApiError, FieldError, Problem};
use crate::oauth::model::{Email, Scope};
use crate::oauth::tokens::AccessClaims;
use crate::state::AppState;
use crate::store::batch::Batcher;
use crate::store::cases::{
    self as store_cases, CaseRecord, CaseRow, LineItemRow, NewEmail, Visibility,
};
use crate::store::{Store, StoreError};

/// Line items one case holds at most (on create and after appends).
pub const MAX_LINE_ITEMS: usize = 200;

/// Reading cases: `cases.read`, `cases.write` or `api`.
pub struct CasesRead;
impl ScopePolicy for CasesRead {
    const ANY_OF: &'static [Scope] = &[Scope::CasesRead, Scope::CasesWrite, Scope::Api];
}

/// Creating and changing cases: `cases.write` or `api`.
pub struct CasesWrite;
impl ScopePolicy for CasesWrite {
    const ANY_OF: &'static [Scope] = &[Scope::CasesWrite, Scope::Api];
}

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
            fn from_stored(s: &str) -> Result<Self, ApiError> {
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
    #[serde(default, deserialize_with = "crate::http::extract::optional_object")]
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
    #[serde(deserialize_with = "crate::http::extract::object")]
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
    #[serde(deserialize_with = "crate::http::extract::object")]
    pub case: NewCase,
    /// Its line items, in order.
    #[serde(default, deserialize_with = "crate::http::extract::objects")]
    pub line_items: Vec<NewLineItem>,
    /// An email to queue in the same transaction.
    #[serde(default, deserialize_with = "crate::http::extract::optional_object")]
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

/// What the caller's token lets it see and own.
pub(crate) fn visibility(claims: &AccessClaims) -> Visibility {
    if claims.sub == claims.client_id {
        Visibility::CreatedBy(claims.client_id.clone())
    } else {
        Visibility::Owner(claims.sub.clone())
    }
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

/// Collects field errors under JSON paths.
#[derive(Default)]
struct Check(Vec<FieldError>);

impl Check {
    fn text(&mut self, path: &str, value: &str, min: usize, max: usize) {
        let n = value.chars().count();
        if n < min {
            let code = if n == 0 { "required" } else { "too_short" };
            self.0.push(FieldError::new(
                path,
                code,
                format!("must be at least {min} characters"),
            ));
        } else if n > max {
            self.0.push(FieldError::new(
                path,
                "too_long",
                format!("must be at most {max} characters"),
            ));
        } else if value
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
        {
            self.0.push(FieldError::new(
                path,
                "invalid",
                "must not contain control characters",
            ));
        }
    }

    fn range(&mut self, path: &str, value: i64, min: i64, max: i64) {
        if !(min..=max).contains(&value) {
            self.0.push(FieldError::new(
                path,
                "out_of_range",
                format!("must be between {min} and {max}"),
            ));
        }
    }

    fn email(&mut self, path: &str, value: &str) {
        if let Err(e) = Email::parse(value) {
            self.0.push(FieldError::new(path, e.code, e.message));
        }
    }

    fn currency(&mut self, path: &str, value: &str) {
        if value.len() != 3 || !value.bytes().all(|b| b.is_ascii_uppercase()) {
            self.0.push(FieldError::new(
                path,
                "invalid",
                "must be an ISO 4217 code: three upper-case letters",
            ));
        }
    }
}

/// Checks line items that would take positions `first..`: every problem, by path.
fn check_items(check: &mut Check, items: &[NewLineItem], first: usize) {
    if first + items.len() > MAX_LINE_ITEMS {
        check.0.push(FieldError::new(
            "line_items",
            "too_many",
            format!("a case holds at most {MAX_LINE_ITEMS} line items"),
        ));
    }
    for (i, item) in items.iter().enumerate() {
        let at = |f: &str| format!("line_items[{i}].{f}");
        check.text(&at("sku"), &item.sku, 1, 64);
        check.text(&at("description"), &item.description, 0, 1000);
        check.range(&at("quantity"), item.quantity, 1, 1_000_000);
        check.range(
            &at("unit_price.amount_minor"),
            item.unit_price.amount_minor,
            0,
            100_000_000_000,
        );
        check.currency(&at("unit_price.currency"), &item.unit_price.currency);
    }
}

/// Validates a create request: every invalid field, by path.
pub fn validate(request: &CreateCaseRequest) -> Result<(), ApiError> {
    let mut check = Check::default();
    let case = &request.case;
    check.text("case.subject", &case.subject, 1, 255);
    check.text("case.description", &case.description, 0, 32_000);
    if let Some(origin) = &case.origin {
        check.text("case.origin", origin, 1, 40);
    }
    if let Some(contact) = &case.contact {
        if let Some(name) = &contact.name {
            check.text("case.contact.name", name, 1, 200);
        }
        if let Some(email) = &contact.email {
            check.email("case.contact.email", email);
        }
    }
    check_items(&mut check, &request.line_items, 0);
    if let Some(n) = &request.notification {
        if let Some(to) = &n.to {
            check.email("notification.to", to);
        }
        if n.template.as_deref().is_some_and(|t| t != "case_created") {
            check.0.push(FieldError::new(
                "notification.template",
                "unknown",
                "the only template is case_created",
            ));
        }
    }
    if check.0.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(check.0))
    }
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn item_rows(items: &[NewLineItem], first: usize) -> Vec<LineItemRow> {
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

/// Writes a create request in one transaction, with the idempotency claim's response.
async fn create(
    state: &AppState,
    claims: &AccessClaims,
    request: &CreateCaseRequest,
    claim: Option<&Claim>,
) -> Result<Response, ApiError> {
    validate(request)?;
    let now = state.clock.unix();
    let owner_id = match visibility(claims) {
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
        created_by: claims.client_id.clone(),
        created_at: now,
        updated_at: now,
        version: 1,
    };
    let recipient = match &request.notification {
        Some(n) => Some(recipient(&state.config.mail_allowed_domains, case, n)?),
        None => None,
    };
    if recipient.is_some() {
        take_mail_quota(state, claims, now).await?;
    }
    let email = request
        .notification
        .as_ref()
        .zip(recipient)
        .map(|(n, recipient)| {
            let id = new_id();
            NewEmail {
                message_id: format!("<{id}@{}>", state.mail_domain()),
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
    };
    let response = state
        .cases
        .0
        .call(std::sync::Arc::new(pending))
        .await
        .map_err(|e| match e {
            StoreError::Conflict(what) if what == CLAIM_LAPSED => ApiError::IdempotencyKeyInFlight,
            e => e.into(),
        })?;
    if queued {
        state.mail_wakeup.notify_one();
    }
    Ok(response.into_response())
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
async fn take_mail_quota(
    state: &AppState,
    claims: &AccessClaims,
    now: i64,
) -> Result<(), ApiError> {
    let limit = state.config.mail_daily_limit;
    if limit == 0 {
        return Ok(());
    }
    let day = now.div_euclid(86_400);
    if crate::store::outbox::take_mail_quota(
        &state.store,
        &claims.client_id,
        &claims.sub,
        day,
        limit,
    )
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

/// A composite create ready to be written: everything but its case number.
#[derive(Debug)]
struct PendingCreate {
    row: CaseRow,
    items: Vec<LineItemRow>,
    email: Option<NewEmail>,
    claim: Option<Claim>,
}

/// The composite creates of every request of this process, written in batches: one
/// transaction and a few multi-row statements carry all the creates that queued while
/// the previous batch was being written (see [`crate::store::batch`]). Each create's
/// response is built, and stored under its Idempotency-Key, inside that transaction.
#[derive(Debug)]
pub struct CreateQueue(Batcher<std::sync::Arc<PendingCreate>, JsonResponse>);

/// The most creates one transaction carries.
const CREATE_BATCH: usize = 64;

/// Why a batch was refused when a create's idempotency claim had lapsed: the batch is then
/// retried create by create, and that create alone fails.
const CLAIM_LAPSED: &str = "an idempotency claim lapsed";

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
    batch: Vec<std::sync::Arc<PendingCreate>>,
) -> Result<Vec<JsonResponse>, StoreError> {
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
    for (pending, record) in batch.iter().zip(records) {
        let case = Case::try_from(record).map_err(corrupt)?;
        let response = JsonResponse::new(StatusCode::CREATED, &case)
            .map_err(corrupt)?
            .header(header::LOCATION, &format!("/api/v1/cases/{}", case.id))
            .header(header::ETAG, &etag(case.version));
        if let Some(claim) = &pending.claim
            && !claim
                .store_response(&mut tx, response.status, &response.headers, &response.body)
                .await?
        {
            return Err(StoreError::Conflict(CLAIM_LAPSED.to_owned()));
        }
        responses.push(response);
    }
    tx.commit().await?;
    Ok(responses)
}

fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// A JSON response kept as its parts, so that the very bytes sent can be stored for an
/// idempotent replay.
#[derive(Debug)]
pub struct JsonResponse {
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: String,
}

impl JsonResponse {
    fn new(status: StatusCode, value: &impl Serialize) -> Result<Self, ApiError> {
        Ok(Self {
            status,
            headers: Vec::new(),
            body: serde_json::to_string(value).map_err(|e| ApiError::Internal(e.into()))?,
        })
    }

    fn header(mut self, name: HeaderName, value: &str) -> Self {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers.push((name, value));
        }
        self
    }

    fn into_response(self) -> Response {
        let mut response = Response::new(axum::body::Body::from(self.body));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        for (name, value) in self.headers {
            headers.insert(name, value);
        }
        response
    }
}

/// Runs a POST under its Idempotency-Key (if any): replays a stored response, or runs
/// `work` with the claim and releases the claim when `work` fails.
async fn idempotent<F, Fut>(
    state: &AppState,
    claims: &AccessClaims,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
    work: F,
) -> Result<Response, ApiError>
where
    F: FnOnce(Option<Claim>) -> Fut,
    Fut: std::future::Future<Output = (Option<Claim>, Result<Response, ApiError>)>,
{
    let owner = crate::store::idempotency::Owner {
        client_id: &claims.client_id,
        subject: &claims.sub,
    };
    let claim = match idempotency::begin(state, owner, &Method::POST, path, headers, body).await? {
        Begun::Replay(response) => return Ok(response),
        Begun::Run(claim) => claim,
    };
    let (claim, result) = work(claim).await;
    if result.is_err()
        && let Some(claim) = claim
    {
        claim.release(state).await;
    }
    result
}

/// The bearer-guard answers of a route that needs cases.write.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum WriteErrors {
    /// Missing, invalid, expired or revoked token.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// The token lacks cases.write (or api).
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
}

/// The bearer-guard answers of a route that reads cases.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum ReadErrors {
    /// Missing, invalid, expired or revoked token.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// The token lacks cases.read, cases.write or api.
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
}

/// Creates a case, its line items and its notification email, all or nothing.
#[utoipa::path(post, path = "/api/v1/cases", tag = "cases",
    security(("bearer" = ["cases.write"]), ("oauth2" = ["cases.write"])),
    request_body = CreateCaseRequest,
    params(("Idempotency-Key" = Option<String>, Header, nullable = false, pattern = "^[!-~]{1,255}$", description = "1 to 255 visible ASCII characters, scoped to the client and kept 24 h. The same request again gets the first response back (with `Idempotent-Replayed: true`); another request with the key is 422; a repeat while the first still runs is 409.")),
    responses(
        (status = 201, description = "Created (or, with `Idempotent-Replayed: true`, the stored answer of the first request with this Idempotency-Key); Location names the case, ETag its version", body = Case,
            headers(("Location" = String, description = "/api/v1/cases/{id}"), ("ETag" = String, description = "\"<version>\""),
                ("Idempotent-Replayed" = String, description = "`true` on a replay"))),
        (status = 409, description = "A request with this Idempotency-Key is still in progress (Retry-After: 1)", body = Problem, content_type = "application/problem+json"),
        (status = 400, description = "Malformed JSON or Idempotency-Key", body = Problem, content_type = "application/problem+json"),
        WriteErrors,
        (status = 413, description = "Body larger than body_limit_bytes", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not application/json", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, each named by its path, or an Idempotency-Key used before with another request; nothing was written", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_case(
    State(state): State<AppState>,
    caller: Caller<CasesWrite>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let claims = &caller.claims;
    idempotent(
        &state,
        claims,
        "/api/v1/cases",
        &headers,
        &body,
        |claim| async {
            let result = async {
                let request: CreateCaseRequest = crate::http::extract::parse_json(&headers, &body)?;
                create(&state, claims, &request, claim.as_ref()).await
            }
            .await;
            (claim, result)
        },
    )
    .await
}

/// A case the caller may see (another owner's case is 404, as if it did not exist).
#[utoipa::path(get, path = "/api/v1/cases/{id}", tag = "cases",
    security(("bearer" = ["cases.read"]), ("oauth2" = ["cases.read"])),
    params(("id" = String, Path, description = "Case id")),
    responses(
        (status = 200, description = "The case; ETag is its version", body = Case,
            headers(("ETag" = String, description = "\"<version>\""))),
        ReadErrors,
        (status = 404, description = "No such case for this caller", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_case(
    State(state): State<AppState>,
    caller: Caller<CasesRead>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let record = store_cases::get(&state.store, &id, &visibility(&caller.claims))
        .await?
        .ok_or(ApiError::NotFound)?;
    let case = Case::try_from(record)?;
    Ok(JsonResponse::new(StatusCode::OK, &case)?
        .header(header::ETAG, &etag(case.version))
        .into_response())
}

/// Cases per page at most.
pub const MAX_PAGE: i64 = 200;
/// Cases per page unless `limit` says otherwise.
pub const DEFAULT_PAGE: i64 = 50;

/// Query of `GET /api/v1/cases`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Only cases with this status.
    pub status: Option<Status>,
    /// Only cases created at or after this instant (RFC 3339).
    #[param(format = DateTime)]
    pub created_from: Option<String>,
    /// Only cases created before this instant (RFC 3339).
    #[param(format = DateTime)]
    pub created_to: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
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

fn encode_cursor(created_at: i64, id: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{created_at}:{id}"))
}

fn decode_cursor(cursor: &str) -> Option<(i64, String)> {
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (at, id) = text.split_once(':')?;
    Some((at.parse().ok()?, id.to_owned()))
}

/// Lists the caller's cases, newest first, a page at a time.
#[utoipa::path(get, path = "/api/v1/cases", tag = "cases",
    security(("bearer" = ["cases.read"]), ("oauth2" = ["cases.read"])),
    params(ListParams),
    responses(
        (status = 200, description = "A page of cases", body = CaseList),
        (status = 400, description = "Unknown or malformed query parameter", body = Problem, content_type = "application/problem+json"),
        ReadErrors,
        (status = 422, description = "Invalid limit, instant or cursor", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_cases(
    State(state): State<AppState>,
    caller: Caller<CasesRead>,
    crate::http::extract::ApiQuery(params): crate::http::extract::ApiQuery<ListParams>,
) -> Result<axum::Json<CaseList>, ApiError> {
    let mut check = Check::default();
    let limit = params.limit.unwrap_or(DEFAULT_PAGE);
    check.range("limit", limit, 1, MAX_PAGE);
    let created_from =
        FieldError::instant(&mut check.0, "created_from", params.created_from.as_deref());
    let created_to = FieldError::instant(&mut check.0, "created_to", params.created_to.as_deref());
    let after = match params.cursor.as_deref() {
        Some(c) => {
            let decoded = decode_cursor(c);
            if decoded.is_none() {
                check.0.push(FieldError::new(
                    "cursor",
                    "invalid",
                    "not a cursor this API returned",
                ));
            }
            decoded
        }
        None => None,
    };
    if !check.0.is_empty() {
        return Err(ApiError::Validation(check.0));
    }
    let query = store_cases::ListQuery {
        status: params.status.map(|s| s.as_str().to_owned()),
        created_from,
        created_to,
        after,
        limit: limit + 1,
    };
    let mut records = store_cases::list(&state.store, &visibility(&caller.claims), &query).await?;
    let more = records.len() as i64 > limit;
    records.truncate(usize::try_from(limit).unwrap_or(0));
    let next_cursor = more
        .then(|| {
            records
                .last()
                .map(|r| encode_cursor(r.case.created_at, &r.case.id))
        })
        .flatten();
    let items = records
        .into_iter()
        .map(Case::try_from)
        .collect::<Result<_, _>>()?;
    Ok(axum::Json(CaseList { items, next_cursor }))
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
    #[serde(default, deserialize_with = "crate::http::extract::optional_object")]
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

fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let value = value.to_str().unwrap_or_default().trim();
    // RFC 9110 §13.1.1: `*` matches any current representation, as no If-Match does here.
    if value == "*" {
        return Ok(None);
    }
    // The ETag is `"<version>"`; the bare number, as some HTTP clients send it, is taken too.
    let digits = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    let version = Some(digits)
        .filter(|d| (1..=18).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|d| d.parse::<i64>().ok());
    version.map(Some).ok_or_else(|| {
        ApiError::BadRequest("If-Match must be an ETag this API returned, like \"3\"".to_owned())
    })
}

/// Changes a case. With `If-Match: "<version>"` the change applies only to that version
/// (412 otherwise); without it, a change racing another one is refused with 409.
#[utoipa::path(patch, path = "/api/v1/cases/{id}", tag = "cases",
    security(("bearer" = ["cases.write"]), ("oauth2" = ["cases.write"])),
    params(("id" = String, Path, description = "Case id"),
        ("If-Match" = Option<String>, Header, nullable = false, pattern = r#"^(\*|"[0-9]{1,18}"|[0-9]{1,18})$"#,
            description = "The ETag the change is based on, like `\"3\"` (or `*`: any version)")),
    request_body = CaseUpdate,
    responses(
        (status = 200, description = "The changed case; ETag is its new version", body = Case),
        (status = 400, description = "Malformed JSON or If-Match", body = Problem, content_type = "application/problem+json"),
        WriteErrors,
        (status = 404, description = "No such case for this caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Changed concurrently (without If-Match); read it and retry", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "If-Match does not name the current version", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields or a status move that is not allowed", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn update_case(
    State(state): State<AppState>,
    caller: Caller<CasesWrite>,
    Path(id): Path<String>,
    headers: HeaderMap,
    crate::http::extract::ApiJson(update): crate::http::extract::ApiJson<CaseUpdate>,
) -> Result<Response, ApiError> {
    let expected = if_match(&headers)?;
    let who = visibility(&caller.claims);
    let current = store_cases::get(&state.store, &id, &who)
        .await?
        .ok_or(ApiError::NotFound)?;
    let mut check = Check::default();
    if let Some(v) = &update.subject {
        check.text("subject", v, 1, 255);
    }
    if let Some(v) = &update.description {
        check.text("description", v, 0, 32_000);
    }
    if let Some(v) = &update.origin {
        check.text("origin", v, 1, 40);
    }
    if let Some(contact) = &update.contact {
        if let Some(name) = &contact.name {
            check.text("contact.name", name, 1, 200);
        }
        if let Some(email) = &contact.email {
            check.email("contact.email", email);
        }
    }
    if let Some(to) = update.status {
        let from = Status::from_stored(&current.case.status)?;
        if !transition_allowed(from, to) {
            check.0.push(FieldError::new(
                "status",
                "invalid_transition",
                format!("a {} case cannot become {}", from.as_str(), to.as_str()),
            ));
        }
    }
    if !check.0.is_empty() {
        return Err(ApiError::Validation(check.0));
    }
    if let Some(expected) = expected
        && expected != current.case.version
    {
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
    let now = state.clock.unix();
    let mut tx = state.store.begin().await?;
    let updated =
        store_cases::update(&mut tx, &id, &who, current.case.version, &change, now).await?;
    if updated.is_none() {
        return Err(if expected.is_some() {
            ApiError::PreconditionFailed
        } else {
            ApiError::Conflict(
                "the case changed while this request ran; read it again and retry".to_owned(),
            )
        });
    }
    let record = store_cases::get_in(&mut tx, &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    tx.commit().await?;
    let case = Case::try_from(record)?;
    Ok(JsonResponse::new(StatusCode::OK, &case)?
        .header(header::ETAG, &etag(case.version))
        .into_response())
}

/// POST /api/v1/cases/{id}/line-items: items appended after the existing ones.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"line_items": [{"sku": "FUSER-2", "quantity": 1, "unit_price": {"amount_minor": 8900, "currency": "EUR"}}]}))]
pub struct AppendLineItems {
    /// 1 or more; the case holds at most 200 in all.
    #[serde(deserialize_with = "crate::http::extract::objects")]
    pub line_items: Vec<NewLineItem>,
}

/// Appends line items to a case atomically (all or none), after the existing ones.
#[utoipa::path(post, path = "/api/v1/cases/{id}/line-items", tag = "cases",
    security(("bearer" = ["cases.write"]), ("oauth2" = ["cases.write"])),
    params(("id" = String, Path, description = "Case id"),
        ("Idempotency-Key" = Option<String>, Header, nullable = false, pattern = "^[!-~]{1,255}$", description = "As for POST /api/v1/cases")),
    request_body = AppendLineItems,
    responses(
        (status = 201, description = "The case with the new items; ETag is its new version", body = Case),
        (status = 400, description = "Malformed JSON or Idempotency-Key", body = Problem, content_type = "application/problem+json"),
        WriteErrors,
        (status = 404, description = "No such case for this caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A request with this Idempotency-Key is still in progress", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid items (named by path), more than 200 in all, or an Idempotency-Key reused", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn append_line_items(
    State(state): State<AppState>,
    caller: Caller<CasesWrite>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let claims = &caller.claims;
    let path = format!("/api/v1/cases/{id}/line-items");
    idempotent(&state, claims, &path, &headers, &body, |claim| async {
        let result = async {
            let request: AppendLineItems = crate::http::extract::parse_json(&headers, &body)?;
            append(&state, claims, &id, &request, claim.as_ref()).await
        }
        .await;
        (claim, result)
    })
    .await
}

async fn append(
    state: &AppState,
    claims: &AccessClaims,
    id: &str,
    request: &AppendLineItems,
    claim: Option<&Claim>,
) -> Result<Response, ApiError> {
    let mut check = Check::default();
    if request.line_items.is_empty() {
        check.0.push(FieldError::new(
            "line_items",
            "required",
            "append at least one line item",
        ));
    }
    check_items(&mut check, &request.line_items, 0);
    if !check.0.is_empty() {
        return Err(ApiError::Validation(check.0));
    }
    let who = visibility(claims);
    let mut tx = state.store.begin().await?;
    let held = store_cases::lock_for_append(&mut tx, id, &who, state.clock.unix())
        .await?
        .ok_or(ApiError::NotFound)?;
    let held = usize::try_from(held).unwrap_or(usize::MAX);
    let mut check = Check::default();
    check_items(&mut check, &request.line_items, held);
    if !check.0.is_empty() {
        return Err(ApiError::Validation(check.0));
    }
    store_cases::insert_items(&mut tx, id, &item_rows(&request.line_items, held)).await?;
    let record = store_cases::get_in(&mut tx, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let case = Case::try_from(record)?;
    let response = JsonResponse::new(StatusCode::CREATED, &case)?
        .header(header::LOCATION, &format!("/api/v1/cases/{}", case.id))
        .header(header::ETAG, &etag(case.version));
    if let Some(claim) = claim {
        claim
            .complete(&mut tx, response.status, &response.headers, &response.body)
            .await?;
    }
    tx.commit().await?;
    Ok(response.into_response())
}
