//! Daily API call counts (UTC days) per client and subject — a user's calls through an
//! app apart from the app's other users, a service client's as its own — shown to callers
//! in `Gatehouse-Limit-Info: api-usage=USED[/LIMIT]`, summed per client for administrators
//! in the admin API, and capped by `api_daily_limit` when that is set.
//!
//! A call is counted in memory; once per sync interval every process adds what it counted
//! to the database and learns the total of all processes. A count is therefore exact in
//! the database and, in a caller's header, at most one sync interval behind the other
//! replicas' calls.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::store::usage::DayCount;
use crate::store::{Store, StoreError};

#[derive(Debug, Default, Clone, Copy)]
struct Count {
    /// Every process's calls as of the last flush.
    stored: u64,
    /// This process's calls since then.
    pending: u64,
}

/// By client, then by subject (`""`: the client as a whole).
type Counts = HashMap<String, HashMap<String, Count>>;

/// The counts of this process: by day number (Unix days), then by client and subject.
#[derive(Debug, Default)]
pub struct Usage {
    counts: Mutex<HashMap<i64, Counts>>,
}

/// `YYYY-MM-DD` of `unix` (UTC).
pub fn day_of(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .map(|t| t.date().to_string())
        .unwrap_or_default()
}

/// Seconds from `unix` to the next UTC midnight (when daily counts start again).
pub fn secs_to_midnight(unix: i64) -> i64 {
    86_400 - unix.rem_euclid(86_400)
}

impl Count {
    /// Counts one call if the day's total is within `limit` (0 = none): the total with
    /// it, or `Err` with the total as it stands.
    fn add_one(&mut self, limit: u64) -> Result<u64, u64> {
        let used = self.stored + self.pending;
        if limit > 0 && used >= limit {
            return Err(used);
        }
        self.pending += 1;
        Ok(used + 1)
    }
}

impl Usage {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Counts>> {
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The calls of `client_id` and `subject` today, this one included, if they are
    /// within `limit` (0 = none); `Err` with today's count when the limit is spent (the
    /// call is not counted). Allocates only for a first call of the day in this process.
    pub fn count(&self, client_id: &str, subject: &str, now: i64, limit: u64) -> Result<u64, u64> {
        let mut counts = self.lock();
        let today = counts.entry(now.div_euclid(86_400)).or_default();
        let subjects = match today.get_mut(client_id) {
            Some(subjects) => subjects,
            None => today.entry(client_id.to_owned()).or_default(),
        };
        if let Some(count) = subjects.get_mut(subject) {
            return count.add_one(limit);
        }
        subjects
            .entry(subject.to_owned())
            .or_default()
            .add_one(limit)
    }

    /// Adds this process's pending counts to the database and takes the totals of all
    /// processes (for every client this process counted today); forgets earlier days.
    pub async fn flush(&self, store: &Store, now: i64) -> Result<(), StoreError> {
        let today = now.div_euclid(86_400);
        let mut days = HashMap::new();
        let taken: Vec<DayCount> = {
            let mut counts = self.lock();
            let mut taken = Vec::new();
            for (day, clients) in counts.iter_mut() {
                let name = day_of(day * 86_400);
                days.insert(name.clone(), *day);
                // Today's counts without calls since the last flush are asked for too, so
                // that this process learns the calls the others counted.
                for (client_id, subjects) in clients.iter_mut() {
                    for (subject, c) in subjects
                        .iter_mut()
                        .filter(|(_, c)| c.pending > 0 || *day == today)
                    {
                        let calls = std::mem::take(&mut c.pending);
                        c.stored += calls;
                        taken.push(DayCount {
                            client_id: client_id.clone(),
                            subject: subject.clone(),
                            day: name.clone(),
                            calls: i64::try_from(calls).unwrap_or(i64::MAX),
                        });
                    }
                }
            }
            counts.retain(|day, clients| {
                *day >= today
                    || clients
                        .values()
                        .any(|subjects| subjects.values().any(|c| c.pending > 0))
            });
            taken
        };
        let totals = match crate::store::usage::add(store, &taken).await {
            Ok(totals) => totals,
            Err(e) => {
                // Counted again with the next flush.
                let mut counts = self.lock();
                for t in &taken {
                    let Some(day) = days.get(&t.day) else {
                        continue;
                    };
                    let count = counts
                        .entry(*day)
                        .or_default()
                        .entry(t.client_id.clone())
                        .or_default()
                        .entry(t.subject.clone())
                        .or_default();
                    let calls = u64::try_from(t.calls).unwrap_or(0);
                    count.pending += calls;
                    count.stored = count.stored.saturating_sub(calls);
                }
                return Err(e);
            }
        };
        let mut counts = self.lock();
        for total in totals {
            if let Some(count) = days
                .get(&total.day)
                .and_then(|day| counts.get_mut(day))
                .and_then(|clients| clients.get_mut(&total.client_id))
                .and_then(|subjects| subjects.get_mut(&total.subject))
            {
                count.stored = u64::try_from(total.calls).unwrap_or(0);
            }
        }
        Ok(())
    }
}
