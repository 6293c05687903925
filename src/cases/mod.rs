//! Cases: the composite create (a case, its line items and its notification email in one
//! transaction), reading, listing and changing them. Nothing here knows about HTTP: the
//! API's handlers parse, call one function here and send what it answers.

mod change;
mod create;
mod model;
mod read;
mod validate;

pub use change::{append_line_items, update};
pub use create::{CreateQueue, create};
pub use model::{
    AppendLineItems, Case, CaseList, CaseUpdate, Contact, CreateCaseRequest, LineItem, Money,
    NewCase, NewLineItem, NewNotification, Notification, Priority, Status, transition_allowed,
};
pub use read::{DEFAULT_PAGE, ListFilter, MAX_PAGE, get, list};
pub use validate::{MAX_LINE_ITEMS, validate};

use crate::clock::SharedClock;
use crate::config::Config;
use crate::store::Store;
use crate::store::cases::Visibility;
use crate::store::idempotency::StoredResponse;

/// The parts of the server the cases domain works with; cheap to copy.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    /// The database.
    pub store: &'a Store,
    /// The only source of wall time.
    pub clock: &'a SharedClock,
    /// Notification settings (allowed domains, daily limit).
    pub config: &'a Config,
    /// `iss` of this server: its host names the Message-IDs of notifications.
    pub issuer: &'a str,
    /// Composite creates of every request, written in batches.
    pub creates: &'a CreateQueue,
    /// Wakes the email dispatcher when a create queued email.
    pub mail_wakeup: &'a tokio::sync::Notify,
    /// Wakes event subscribers when a change committed.
    pub events: &'a crate::events::Hub,
}

/// Who asks: the client and the subject of the caller's token.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    /// The client.
    pub client_id: &'a str,
    /// The token's subject: a user's id, or the client's own id (client credentials).
    pub subject: &'a str,
}

impl Actor<'_> {
    /// The author of a change this actor makes at `ctx`'s current time.
    pub fn author(&self, ctx: &Ctx<'_>) -> crate::events::Author {
        crate::events::Author {
            commit_user: self.subject.to_owned(),
            client_id: self.client_id.to_owned(),
            at_ms: i64::try_from(ctx.clock.now().unix_timestamp_nanos() / 1_000_000)
                .unwrap_or_default(),
        }
    }

    /// What the caller may see and own: a user their own cases, a client acting for
    /// itself the cases it created.
    pub fn visibility(&self) -> Visibility {
        if self.subject == self.client_id {
            Visibility::CreatedBy(self.client_id.to_owned())
        } else {
            Visibility::Owner(self.subject.to_owned())
        }
    }
}

/// A case as the API answers it, kept as bytes so that an idempotent replay sends the
/// very same answer: `status` with the case as JSON, its ETag and, for `Location`, its path.
fn reply(
    status: u16,
    case: &Case,
    location: bool,
) -> Result<StoredResponse, crate::error::ApiError> {
    let body =
        serde_json::to_string(case).map_err(|e| crate::error::ApiError::Internal(e.into()))?;
    let mut headers = Vec::with_capacity(2);
    if location {
        headers.push(("location", format!("/api/v1/cases/{}", case.id)));
    }
    headers.push(("etag", etag(case.version)));
    Ok(StoredResponse {
        status,
        headers,
        body,
    })
}

/// The event-log view of a case and its API body.
fn case_state<'a>(case: &'a Case, json: &'a str) -> crate::events::CaseState<'a> {
    crate::events::CaseState {
        id: &case.id,
        owner_id: case.owner.as_deref(),
        created_by: &case.created_by,
        json,
    }
}

/// The ETag of a case version: `"<version>"`.
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}
