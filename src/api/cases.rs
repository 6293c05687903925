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
use crate::store::cases::{
    self as store_cases, CaseRecord, CaseRow, LineItemRow, NewEmail, Visibility,
};

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
    #[serde(default)]
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
    pub unit_price: Money,
}

/// The email to queue with the case.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewNotification {
    /// Recipient address.
    pub to: String,
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
    pub case: NewCase,
    /// Its line items, in order.
    #[serde(default)]
    pub line_items: Vec<NewLineItem>,
    /// An email to queue in the same transaction.
    #[serde(default)]
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
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
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
        check.email("notification.to", &n.to);
        if let Some(t) = &n.template
            && t != "case_created"
        {
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
    let email = request.notification.as_ref().map(|n| {
        let id = new_id();
        NewEmail {
            message_id: format!("<{id}@{}>", state.mail_domain()),
            id,
            recipient: n.to.trim().to_owned(),
            template: n
                .template
                .clone()
                .unwrap_or_else(|| "case_created".to_owned()),
        }
    });
    let items = item_rows(&request.line_items, 0);
    let mut tx = state.store.begin().await?;
    let record = store_cases::insert(&mut tx, &row, &items, email.as_ref()).await?;
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
    if email.is_some() {
        state.mail_wakeup.notify_one();
    }
    Ok(response.into_response())
}

fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// A JSON response kept as its parts, so that the very bytes sent can be stored for an
/// idempotent replay.
struct JsonResponse {
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
    let claim =
        match idempotency::begin(state, &claims.client_id, &Method::POST, path, headers, body)
            .await?
        {
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

/// Creates a case, its line items and its notification email, all or nothing.
#[utoipa::path(post, path = "/api/v1/cases", tag = "cases",
    security(("bearer" = ["cases.write"]), ("oauth2" = ["cases.write"])),
    request_body = CreateCaseRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "1 to 255 visible ASCII characters, scoped to the client and kept 24 h. The same request again gets the first response back (with `Idempotent-Replayed: true`); another request with the key is 422; a repeat while the first still runs is 409.")),
    responses(
        (status = 201, description = "Created (or, with `Idempotent-Replayed: true`, the stored answer of the first request with this Idempotency-Key); Location names the case, ETag its version", body = Case,
            headers(("Location" = String, description = "/api/v1/cases/{id}"), ("ETag" = String, description = "\"<version>\""),
                ("Idempotent-Replayed" = String, description = "`true` on a replay"))),
        (status = 409, description = "A request with this Idempotency-Key is still in progress (Retry-After: 1)", body = Problem, content_type = "application/problem+json"),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid, expired or revoked token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks cases.write (or api)", body = Problem, content_type = "application/problem+json"),
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
        (status = 401, description = "Missing, invalid, expired or revoked token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks cases.read, cases.write or api", body = Problem, content_type = "application/problem+json"),
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
