//! Keyset paging, the same for every list: a page of `limit` rows is fetched as
//! `limit + 1`, the extra row only telling that a next page exists.

use crate::error::FieldError;
use crate::fields::FieldErrors;

/// `limit` (or `default`) if it is 1 to `max`; otherwise the field error that says so.
pub fn limit(errors: &mut FieldErrors, limit: Option<i64>, default: i64, max: i64) -> i64 {
    let limit = limit.unwrap_or(default);
    if !(1..=max).contains(&limit) {
        errors.push(FieldError::out_of_range("limit", 1, max));
    }
    limit
}

/// Cuts `rows`, fetched as `limit + 1`, to the page; when a next page exists, the cursor
/// that `cursor` makes of the page's last row.
pub fn next_cursor<T>(
    rows: &mut Vec<T>,
    limit: i64,
    cursor: impl FnOnce(&T) -> String,
) -> Option<String> {
    let page = usize::try_from(limit).unwrap_or(0);
    let more = rows.len() > page;
    rows.truncate(page);
    more.then(|| rows.last().map(cursor)).flatten()
}
