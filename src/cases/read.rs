//! Reading cases: one by id, or a page of them, newest first.

use super::{Actor, Case, CaseList, Ctx, Status, reply};
use crate::error::ApiError;
use crate::fields::FieldErrors;
use crate::paging;
use crate::store::cases as store_cases;
use crate::store::idempotency::StoredResponse;

/// Cases per page at most.
pub const MAX_PAGE: i64 = 200;
/// Cases per page unless `limit` says otherwise.
pub const DEFAULT_PAGE: i64 = 50;

/// A case the caller may see (another owner's case is "not found", as if it did not exist).
pub async fn get(ctx: &Ctx<'_>, actor: Actor<'_>, id: &str) -> Result<StoredResponse, ApiError> {
    let record = store_cases::get(ctx.store, id, &actor.visibility())
        .await?
        .ok_or(ApiError::NotFound)?;
    reply(200, &Case::try_from(record)?, false)
}

/// Which cases to list, as the caller wrote it (validated by [`list`]).
#[derive(Debug, Default)]
pub struct ListFilter<'a> {
    /// Only cases with this status.
    pub status: Option<Status>,
    /// Only cases created at or after this instant (RFC 3339).
    pub created_from: Option<&'a str>,
    /// Only cases created before this instant (RFC 3339).
    pub created_to: Option<&'a str>,
    /// Page size.
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<&'a str>,
}

/// A page of the caller's cases, newest first; every invalid parameter is named.
pub async fn list(
    ctx: &Ctx<'_>,
    actor: Actor<'_>,
    filter: &ListFilter<'_>,
) -> Result<CaseList, ApiError> {
    let mut errors = FieldErrors::new();
    let limit = paging::limit(&mut errors, filter.limit, DEFAULT_PAGE, MAX_PAGE);
    let created_from = errors.instant("created_from", filter.created_from);
    let created_to = errors.instant("created_to", filter.created_to);
    let after = filter.cursor.map(decode_cursor).and_then(|decoded| {
        if decoded.is_none() {
            errors.fail("cursor", "invalid", "not a cursor this API returned");
        }
        decoded
    });
    errors.finish().map_err(ApiError::Validation)?;
    let query = store_cases::ListQuery {
        status: filter.status.map(|s| s.as_str().to_owned()),
        created_from,
        created_to,
        after,
        limit: limit + 1,
    };
    let mut records = store_cases::list(ctx.store, &actor.visibility(), &query).await?;
    let next_cursor = paging::next_cursor(&mut records, limit, |r| {
        encode_cursor(r.case.created_at, &r.case.id)
    });
    let items = records
        .into_iter()
        .map(Case::try_from)
        .collect::<Result<_, _>>()?;
    Ok(CaseList { items, next_cursor })
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
