//! Field errors collected while validating one input, so that every invalid field is
//! reported at once, each named by its JSON path (`line_items[3].quantity`).

use crate::error::FieldError;
use crate::model::{Email, Invalid};

/// The invalid fields of one input so far.
#[derive(Debug, Default)]
pub struct FieldErrors(Vec<FieldError>);

impl FieldErrors {
    /// No errors yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a rule violation.
    pub fn fail(&mut self, field: impl Into<String>, code: &str, message: impl Into<String>) {
        self.0.push(FieldError::new(field, code, message));
    }

    /// Records `error` as it is.
    pub fn push(&mut self, error: FieldError) {
        self.0.push(error);
    }

    /// The value of a parse, or `None` with its failure recorded under `field`.
    pub fn check<T>(&mut self, field: impl Into<String>, parsed: Result<T, Invalid>) -> Option<T> {
        parsed.map_err(|e| self.fail(field, e.code, e.message)).ok()
    }

    /// Parses every item of a list, naming failures `field[i]`.
    pub fn check_all<T>(
        &mut self,
        field: &str,
        items: &[String],
        parse: impl Fn(&str) -> Result<T, Invalid>,
    ) -> Vec<T> {
        items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| self.check(format!("{field}[{i}]"), parse(item)))
            .collect()
    }

    /// Text of `min..=max` characters without control characters (tabs and line breaks
    /// allowed).
    pub fn text(&mut self, field: &str, value: &str, (min, max): (usize, usize)) {
        let n = value.chars().count();
        if n < min {
            let code = if n == 0 { "required" } else { "too_short" };
            self.fail(field, code, format!("must be at least {min} characters"));
        } else if n > max {
            self.fail(
                field,
                "too_long",
                format!("must be at most {max} characters"),
            );
        } else if value
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
        {
            self.fail(field, "invalid", "must not contain control characters");
        }
    }

    /// A number in `min..=max`.
    pub fn range(&mut self, field: &str, value: i64, (min, max): (i64, i64)) {
        if !(min..=max).contains(&value) {
            self.push(FieldError::out_of_range(field, min, max));
        }
    }

    /// A plausible email address.
    pub fn email(&mut self, field: &str, value: &str) {
        self.check(field, Email::parse(value));
    }

    /// `value` as Unix seconds, or the error that it is not an RFC 3339 instant; `None`
    /// (and no error) when the field is absent.
    pub fn instant(&mut self, field: &str, value: Option<&str>) -> Option<i64> {
        let value = value?;
        let unix = crate::clock::parse_rfc3339(value);
        if unix.is_none() {
            self.fail(
                field,
                "invalid",
                "must be an RFC 3339 instant like 2026-11-29T10:00:00Z",
            );
        }
        unix
    }

    /// Whether nothing failed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Ok when nothing failed, else every failure.
    pub fn finish(self) -> Result<(), Vec<FieldError>> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.0)
        }
    }
}
