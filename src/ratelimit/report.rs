//! The limits' report of one request (a task-local), which the HTTP layer turns into headers.

use std::cell::RefCell;

use super::*;

/// The caller's daily API usage, as counted for this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DailyUsage {
    /// Calls today, this one included.
    pub used: u64,
    /// `api_daily_limit` (0 = none).
    pub limit: u64,
    /// When the limit is spent: seconds until it starts again (UTC midnight).
    pub refused_for_secs: Option<u64>,
}

/// What the limits said about one request.
#[derive(Debug, Default)]
pub struct Report {
    /// Every rate limit the request met.
    pub decisions: Vec<Decision>,
    /// The caller's daily usage (bearer-token routes).
    pub usage: Option<DailyUsage>,
    /// A check put off until the next one, to share its round trip (see [`defer`]).
    deferred: Option<(Policy, String)>,
}

tokio::task_local! {
    /// The report of the request the current task serves.
    static REPORT: RefCell<Report>;
}

/// `future` (a request) with an empty report, as a future a service can name; once it
/// is done, [`take_report`] gives its report.
pub fn report_on<F: Future>(future: F) -> Reported<F> {
    REPORT.scope(RefCell::new(Report::default()), future)
}

/// A request's future with its report (see [`report_on`]).
pub type Reported<F> = tokio::task::futures::TaskLocalFuture<RefCell<Report>, F>;

/// The report of a [`report_on`] future that is done (empty if taken before).
pub fn take_report<F: Future>(future: std::pin::Pin<&mut Reported<F>>) -> Report {
    future
        .take_value()
        .map(RefCell::into_inner)
        .unwrap_or_default()
}

/// Runs `future` (a request) with an empty report; returns its output and the report.
pub async fn reporting<F: Future>(future: F) -> (F::Output, Report) {
    let mut reported = std::pin::pin!(report_on(future));
    let output = reported.as_mut().await;
    (output, take_report(reported))
}

pub(super) fn record(decision: Decision) {
    // Outside a request (a CLI command, a test of the domain) there is nothing to report to.
    let _ = REPORT.try_with(|r| r.borrow_mut().decisions.push(decision));
}

/// Puts off counting `key` against `policy` until the request's next check, which then
/// counts both in one round trip; [`Limiter::check_deferred`] counts it alone if no check
/// follows. Outside a request it does nothing.
pub fn defer(policy: Policy, key: String) {
    let _ = REPORT.try_with(|r| r.borrow_mut().deferred = Some((policy, key)));
}

pub(super) fn take_deferred() -> Option<(Policy, String)> {
    REPORT
        .try_with(|r| r.borrow_mut().deferred.take())
        .ok()
        .flatten()
}

/// Records the caller's daily usage for the `Gatehouse-Limit-Info` header.
pub fn record_usage(usage: DailyUsage) {
    let _ = REPORT.try_with(|r| r.borrow_mut().usage = Some(usage));
}
