//! The only place that reads wall-clock time; everything else is handed a [`Clock`].

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use time::OffsetDateTime;

/// A source of the current time. Injected through `AppState` so that expiry can be
/// tested by moving a [`ManualClock`] instead of sleeping.
pub trait Clock: Send + Sync + 'static {
    /// The current time, UTC.
    fn now(&self) -> OffsetDateTime;

    /// The current time as whole seconds since the Unix epoch (how the store keeps time).
    fn unix(&self) -> i64 {
        self.now().unix_timestamp()
    }
}

/// A shareable clock handle.
pub type SharedClock = Arc<dyn Clock>;

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one sanctioned read of wall time
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that only moves when told to (tests, simulations).
#[derive(Debug)]
pub struct ManualClock {
    unix: AtomicI64,
}

impl ManualClock {
    /// A clock frozen at `unix` seconds since the epoch.
    pub fn at(unix: i64) -> Arc<Self> {
        Arc::new(Self {
            unix: AtomicI64::new(unix),
        })
    }

    /// Moves the clock forward (or back, with a negative value) by `secs`.
    pub fn advance(&self, secs: i64) {
        self.unix.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        let unix = self.unix.load(Ordering::SeqCst);
        OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    fn unix(&self) -> i64 {
        self.unix.load(Ordering::SeqCst)
    }
}

/// Unix seconds as an RFC 3339 timestamp; `None` outside the years 0000-9999.
pub fn format_rfc3339(unix: i64) -> Option<String> {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()?
        .format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// An RFC 3339 instant (`2026-11-29T10:00:00Z`) as Unix seconds.
pub fn parse_rfc3339(value: &str) -> Option<i64> {
    OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(OffsetDateTime::unix_timestamp)
}

/// Serializes Unix seconds as an RFC 3339 timestamp (for JSON shown to people and scripts).
pub fn as_rfc3339<S: serde::Serializer>(unix: &i64, s: S) -> Result<S::Ok, S::Error> {
    let formatted = format_rfc3339(*unix).unwrap_or_else(|| unix.to_string());
    s.serialize_str(&formatted)
}

/// [`as_rfc3339`] for optional timestamps (`null` when absent).
pub fn as_rfc3339_opt<S: serde::Serializer>(unix: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match unix {
        Some(t) => as_rfc3339(t, s),
        None => s.serialize_none(),
    }
}
