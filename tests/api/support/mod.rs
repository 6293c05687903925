//! Test harness: fresh databases on both backends, the app on a random port, the binary as
//! a child process, and a TCP proxy that can cut the database off.

mod app;
mod db;
mod process;
mod proxy;

pub use app::*;
pub use db::*;
pub use process::*;
pub use proxy::*;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use gatehouse::store::Backend;
use rstest_reuse::template;

/// Runs a test once on SQLite and once on PostgreSQL: `#[apply(both_backends)]` over an
/// `async fn name(#[case] backend: Backend)` whose first line is
/// `if unavailable(backend, module_path!()) { return; }`.
///
/// The PostgreSQL case needs `GATEHOUSE_TEST_POSTGRES_URL`; without it the test says that
/// it skipped and why, unless `GATEHOUSE_TEST_REQUIRE_ALL=1` (CI), where skipping fails.
#[template]
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub async fn both_backends(#[case] backend: Backend) {}

/// Whether `test` cannot run on `backend` here (and has said so).
pub fn unavailable(backend: Backend, test: &str) -> bool {
    backend == Backend::Postgres && !postgres_available(&format!("{test}::postgres"))
}

/// Whether PostgreSQL tests can run; says so on stderr when they skip.
pub fn postgres_available(test: &str) -> bool {
    if std::env::var("GATEHOUSE_TEST_POSTGRES_URL").is_ok_and(|v| !v.is_empty()) {
        return true;
    }
    !skip(
        test,
        "set GATEHOUSE_TEST_POSTGRES_URL=postgres://… to run it on PostgreSQL",
    )
}

/// CI sets this: no test may skip.
pub fn require_all() -> bool {
    std::env::var("GATEHOUSE_TEST_REQUIRE_ALL").is_ok_and(|v| v == "1")
}

/// Says on stderr that `test` skips, and why (what to install or set); a failure under
/// `GATEHOUSE_TEST_REQUIRE_ALL=1`. Returns true, for `if … { return skip(…) }`.
pub fn skip(test: &str, why: &str) -> bool {
    assert!(
        !require_all(),
        "{test}: GATEHOUSE_TEST_REQUIRE_ALL=1 but it cannot run: {why}"
    );
    // Written to the stream directly: the test harness swallows eprintln! of passing tests.
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
    true
}

/// Polls `f` until it returns `Some`, for at most `secs` seconds.
pub async fn eventually<T, F, Fut>(secs: u64, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if tokio::time::Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[allow(dead_code)]
pub fn manifest_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The Redis of the shared rate-limit tests (`GATEHOUSE_TEST_REDIS_URL`), or `None` after
/// saying on stderr that the test skipped (a failure under `GATEHOUSE_TEST_REQUIRE_ALL=1`).
pub fn redis_url(test: &str) -> Option<String> {
    if let Ok(url) = std::env::var("GATEHOUSE_TEST_REDIS_URL")
        && !url.is_empty()
    {
        return Some(url);
    }
    skip(
        test,
        "set GATEHOUSE_TEST_REDIS_URL=redis://127.0.0.1:6379 to run it",
    );
    None
}

/// The NATS server with JetStream of the event-publishing tests
/// (`GATEHOUSE_TEST_NATS_URL`), or `None` after saying on stderr that the test skipped (a
/// failure under `GATEHOUSE_TEST_REQUIRE_ALL=1`).
pub fn nats_url(test: &str) -> Option<String> {
    if let Ok(url) = std::env::var("GATEHOUSE_TEST_NATS_URL")
        && !url.is_empty()
    {
        return Some(url);
    }
    skip(
        test,
        "set GATEHOUSE_TEST_NATS_URL=nats://127.0.0.1:4222 (nats-server -js) to run it",
    );
    None
}

/// A Redis key prefix no other test uses.
pub fn redis_prefix() -> String {
    unique("gatehouse_test")
}
