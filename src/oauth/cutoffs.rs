//! The cut-off list every process keeps in memory: access tokens of a disabled user or
//! client, or of a grant the user withdrew, issued at or before the cut-off, are refused
//! at the guard (and by introspection and userinfo). Refreshed from the database every
//! sync interval, so a change made anywhere holds on every replica within that interval.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use super::tokens::AccessClaims;
use crate::store::cutoffs::{self, Cutoff};
use crate::store::{Store, StoreError};

/// Cut-offs are re-read this far back on every sync, so one that committed late (a slow
/// transaction on another replica) is still seen.
const SYNC_OVERLAP_SECS: i64 = 30;

#[derive(Default)]
struct Lists {
    users: HashMap<String, i64>,
    clients: HashMap<String, i64>,
    /// By user, then client.
    grants: HashMap<String, HashMap<String, i64>>,
}

/// Cut-offs in force, by user, by client and by grant.
pub struct Cutoffs {
    lists: RwLock<Lists>,
    /// Whether any cut-off is in force: a token is checked without a lock otherwise.
    any: AtomicBool,
    synced_until: AtomicI64,
    /// How long a cut-off matters: the longest access-token lifetime plus the skew.
    horizon: i64,
}

impl Cutoffs {
    /// An empty list whose entries matter for `horizon` seconds.
    pub fn new(horizon: i64) -> Self {
        Self {
            lists: RwLock::default(),
            any: AtomicBool::new(false),
            synced_until: AtomicI64::new(0),
            horizon,
        }
    }

    /// Whether a cut-off refuses the token of `claims`.
    pub fn refuses(&self, claims: &AccessClaims) -> bool {
        if !self.any.load(Ordering::Acquire) {
            return false;
        }
        let Ok(lists) = self.lists.read() else {
            // A poisoned lock: refuse rather than let a cut-off token through.
            return true;
        };
        let cut = |at: Option<&i64>| at.is_some_and(|at| claims.iat <= *at);
        cut(lists.users.get(&claims.sub))
            || cut(lists.clients.get(&claims.client_id))
            || cut(lists
                .grants
                .get(&claims.sub)
                .and_then(|m| m.get(&claims.client_id)))
    }

    /// Adds a cut-off already recorded in the database, so this process honours it at once.
    pub fn insert(&self, cutoff: &Cutoff) {
        if let Ok(mut lists) = self.lists.write() {
            lists.add(cutoff);
            self.any.store(true, Ordering::Release);
        }
    }

    /// Pulls cut-offs from the database and forgets those past the horizon.
    pub async fn sync(&self, store: &Store, now: i64) -> Result<(), StoreError> {
        let since = self.synced_until.load(Ordering::SeqCst) - SYNC_OVERLAP_SECS;
        let rows = cutoffs::since(store, since).await?;
        let oldest = now - self.horizon;
        if let Ok(mut lists) = self.lists.write() {
            for row in &rows {
                lists.add(row);
            }
            lists.users.retain(|_, at| *at >= oldest);
            lists.clients.retain(|_, at| *at >= oldest);
            lists.grants.retain(|_, by_client| {
                by_client.retain(|_, at| *at >= oldest);
                !by_client.is_empty()
            });
            let any =
                !(lists.users.is_empty() && lists.clients.is_empty() && lists.grants.is_empty());
            self.any.store(any, Ordering::Release);
        }
        self.synced_until.store(now, Ordering::SeqCst);
        Ok(())
    }

    /// How far back a cut-off still matters at `now` (older ones may be pruned).
    pub fn oldest_relevant(&self, now: i64) -> i64 {
        now - self.horizon
    }
}

impl Lists {
    fn add(&mut self, cutoff: &Cutoff) {
        let later = |slot: &mut i64| *slot = (*slot).max(cutoff.cut_at);
        match (cutoff.user_id.is_empty(), cutoff.client_id.is_empty()) {
            (false, true) => later(self.users.entry(cutoff.user_id.clone()).or_default()),
            (true, false) => later(self.clients.entry(cutoff.client_id.clone()).or_default()),
            (false, false) => later(
                self.grants
                    .entry(cutoff.user_id.clone())
                    .or_default()
                    .entry(cutoff.client_id.clone())
                    .or_default(),
            ),
            (true, true) => {}
        }
    }
}
