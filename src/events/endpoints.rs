//! Managing webhook endpoints and their deliveries: what the admin API and the CLI share.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::webhooks::{self, ROTATION_OVERLAP_SECS};
use super::{Ctx, replay_id};
use crate::clock::format_rfc3339;
use crate::error::{ApiError, FieldError};
use crate::oauth::keys::MasterKey;
use crate::store::webhooks::{self as store, DeliveryRow, EndpointRow};

/// Deliveries per page unless `limit` says otherwise, and at most.
pub const DELIVERY_PAGE: (i64, i64) = (50, 200);

/// A webhook endpoint to register.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"url": "https://erp.example.com/hooks/gatehouse", "event_types": ["case.created"], "description": "ERP sync"}))]
pub struct NewEndpoint {
    /// Where deliveries are POSTed: an absolute https (or http) URL, at most 2048
    /// characters; a private, loopback or link-local target is refused unless the server
    /// allows them (`webhook_allow_private`).
    pub url: String,
    /// The event types it receives (`case.created`, `case.updated`,
    /// `case.line_items_added`); empty or absent: every type.
    #[serde(default)]
    pub event_types: Vec<String>,
    /// What it is for, at most 200 characters.
    #[serde(default)]
    pub description: Option<String>,
}

/// A webhook endpoint.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Endpoint {
    /// Id.
    pub id: String,
    /// Where deliveries go.
    pub url: String,
    /// The event types it receives (empty: every type).
    pub event_types: Vec<String>,
    /// What it is for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `active` or `disabled`.
    pub status: String,
    /// Why it is disabled (an administrator, or the endpoint's 410 Gone).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    /// The replay id of the last event queued for it.
    pub last_event_id: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

impl From<EndpointRow> for Endpoint {
    fn from(row: EndpointRow) -> Self {
        Self {
            event_types: serde_json::from_str(&row.event_types).unwrap_or_default(),
            id: row.id,
            url: row.url,
            description: row.description,
            status: row.status,
            disabled_reason: row.disabled_reason,
            last_event_id: replay_id(row.cursor_seq),
            created_at: format_rfc3339(row.created_at).unwrap_or_default(),
            updated_at: format_rfc3339(row.updated_at).unwrap_or_default(),
        }
    }
}

/// A newly registered endpoint, or a rotated secret: the secret is shown this once.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EndpointWithSecret {
    /// The endpoint.
    #[serde(flatten)]
    pub endpoint: Endpoint,
    /// The signing secret (`whsec_` + base64 of 32 bytes), for the receiver's Standard
    /// Webhooks verification. Shown only here; the server keeps it encrypted.
    pub secret: String,
}

/// Every endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointList {
    /// Oldest first.
    pub items: Vec<Endpoint>,
}

/// Registers an endpoint; its deliveries start with the next event committed.
pub async fn create(
    ctx: &Ctx<'_>,
    master: &MasterKey,
    new: NewEndpoint,
) -> Result<EndpointWithSecret, ApiError> {
    let mut errors = Vec::new();
    if let Err(e) = webhooks::check_url(&new.url, ctx.config.webhook_allow_private) {
        errors.push(e);
    }
    if let Err(e) = webhooks::check_types(&new.event_types) {
        errors.push(e);
    }
    if new.event_types.len() > super::TYPES.len() {
        errors.push(FieldError::new(
            "event_types",
            "too_long",
            "at most one of each type",
        ));
    }
    if let Some(d) = &new.description
        && (d.is_empty() || d.chars().count() > 200)
    {
        errors.push(FieldError::new(
            "description",
            "invalid",
            "1 to 200 characters",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let id = uuid::Uuid::now_v7().to_string();
    let (key, shown) = webhooks::new_secret();
    let sealed = webhooks::seal(master, &id, &key)?;
    let now = ctx.clock.unix();
    let row = EndpointRow {
        id,
        url: new.url,
        description: new.description,
        event_types: serde_json::to_string(&new.event_types).map_err(anyhow::Error::from)?,
        secret_sealed: sealed,
        previous_secret_sealed: None,
        previous_secret_until: None,
        status: "active".to_owned(),
        disabled_reason: None,
        cursor_seq: 0,
        created_at: now,
        updated_at: now,
    };
    let stored = store::insert(ctx.store, &row).await?;
    Ok(EndpointWithSecret {
        endpoint: stored.into(),
        secret: shown,
    })
}

/// Every endpoint.
pub async fn list(ctx: &Ctx<'_>) -> Result<EndpointList, ApiError> {
    Ok(EndpointList {
        items: store::list(ctx.store)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    })
}

/// One endpoint.
pub async fn get(ctx: &Ctx<'_>, id: &str) -> Result<Endpoint, ApiError> {
    Ok(store::get(ctx.store, id)
        .await?
        .ok_or(ApiError::NotFound)?
        .into())
}

/// Disables an endpoint (its deliveries wait) or enables it again.
pub async fn set_enabled(ctx: &Ctx<'_>, id: &str, enabled: bool) -> Result<Endpoint, ApiError> {
    let reason = (!enabled).then_some("disabled by an administrator");
    if !store::set_status(ctx.store, id, reason, ctx.clock.unix()).await? {
        return Err(ApiError::NotFound);
    }
    get(ctx, id).await
}

/// Deletes an endpoint and its deliveries.
pub async fn delete(ctx: &Ctx<'_>, id: &str) -> Result<(), ApiError> {
    if store::delete(ctx.store, id).await? {
        Ok(())
    } else {
        Err(ApiError::NotFound)
    }
}

/// A new signing secret; the previous one signs too for 24 hours, so that receivers can
/// switch without losing a delivery.
pub async fn rotate_secret(
    ctx: &Ctx<'_>,
    master: &MasterKey,
    id: &str,
) -> Result<EndpointWithSecret, ApiError> {
    let (key, shown) = webhooks::new_secret();
    let sealed = webhooks::seal(master, id, &key)?;
    let now = ctx.clock.unix();
    if !store::rotate_secret(ctx.store, id, &sealed, now + ROTATION_OVERLAP_SECS, now).await? {
        return Err(ApiError::NotFound);
    }
    Ok(EndpointWithSecret {
        endpoint: get(ctx, id).await?,
        secret: shown,
    })
}

/// One attempt of a delivery.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Attempt {
    /// 1, 2, …
    pub attempt: i64,
    /// RFC 3339.
    pub at: String,
    /// The endpoint's HTTP status, if it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<i64>,
    /// What went wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How long it took.
    pub duration_ms: i64,
}

/// A delivery of one event to one endpoint.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Delivery {
    /// Id.
    pub id: String,
    /// The event's replay id (also its `webhook-id`).
    pub event_id: String,
    /// The event's type.
    pub event_type: String,
    /// `queued` (waiting or retrying), `sent` or `failed` (given up).
    pub status: String,
    /// When the next attempt is due (queued).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
    /// The last failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// When it was delivered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<String>,
    /// Every attempt, in order.
    pub attempts: Vec<Attempt>,
}

/// A page of deliveries, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    /// The deliveries.
    pub items: Vec<Delivery>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

/// An endpoint's deliveries, newest first, with their attempts.
pub async fn deliveries(
    ctx: &Ctx<'_>,
    id: &str,
    status: Option<&str>,
    cursor: Option<&str>,
    limit: Option<i64>,
) -> Result<DeliveryList, ApiError> {
    let mut errors = crate::fields::FieldErrors::new();
    let limit = crate::paging::limit(&mut errors, limit, DELIVERY_PAGE.0, DELIVERY_PAGE.1);
    if let Some(s) = status
        && !matches!(s, "queued" | "sent" | "failed")
    {
        errors.fail("status", "invalid", "queued, sent or failed");
    }
    errors.finish().map_err(ApiError::Validation)?;
    if store::get(ctx.store, id).await?.is_none() {
        return Err(ApiError::NotFound);
    }
    let mut rows = store::deliveries(ctx.store, id, status, cursor, limit + 1).await?;
    let next_cursor = crate::paging::next_cursor(&mut rows, limit, |r: &DeliveryRow| r.id.clone());
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let attempts = store::attempts(ctx.store, &ids).await?;
    let items = rows
        .into_iter()
        .map(|r| Delivery {
            attempts: attempts
                .iter()
                .filter(|a| a.delivery_id == r.id)
                .map(|a| Attempt {
                    attempt: a.attempt,
                    at: format_rfc3339(a.at).unwrap_or_default(),
                    status_code: a.status_code,
                    error: a.error.clone(),
                    duration_ms: a.duration_ms,
                })
                .collect(),
            event_id: replay_id(r.event_seq),
            next_attempt_at: (r.status == "queued")
                .then(|| format_rfc3339(r.next_attempt_at).unwrap_or_default()),
            created_at: format_rfc3339(r.created_at).unwrap_or_default(),
            sent_at: r.sent_at.and_then(format_rfc3339),
            id: r.id,
            event_type: r.event_type,
            status: r.status,
            last_error: r.last_error,
        })
        .collect();
    Ok(DeliveryList { items, next_cursor })
}

/// Queues a delivery again, due now, whatever became of it.
pub async fn redeliver(ctx: &Ctx<'_>, id: &str, delivery_id: &str) -> Result<(), ApiError> {
    if store::redeliver(ctx.store, id, delivery_id, ctx.clock.unix()).await? {
        Ok(())
    } else {
        Err(ApiError::NotFound)
    }
}
