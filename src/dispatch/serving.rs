//! One receiver, one set of limits: where several dispatchers share a database
//! (PostgreSQL), each webhook is served by one of them at a time, so its `max_concurrency`,
//! `rate_limit`, adaptive window, `Retry-After` pause, circuit and ordered lanes live in one
//! process, whatever the number of replicas.
//!
//! Who should serve a webhook is decided by rendezvous hashing over the dispatchers alive
//! (`takeover.rs` publishes them, counting one gone for less than its grace as alive): each
//! dispatcher computes the same answer, webhooks spread evenly, and a dispatcher that
//! arrives or leaves moves only its share. Who *does* serve it is a row in the database
//! (`store/serving.rs`), taken only when free or when its dispatcher is dead; claims and
//! ingest's hand-off lease only the deliveries of webhooks served here. A webhook that
//! should move is first *leaving*: its queued deliveries go back, nothing new is claimed
//! for it, and once nothing of it is in flight here the row is given up and the new
//! dispatcher woken. So at most one process ever has its requests in flight.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{Dispatcher, lock};
use crate::store::{Lease, Store, StoreError, now_ms};

/// Settled or not, the rows are read again this often (a row lost to a replica that took
/// this one for dead is then noticed).
const RECHECK_EVERY: Duration = Duration::from_secs(5);

/// While unsettled (a webhook to take or to give up), settling is tried at most this often.
const RETRY_EVERY: Duration = Duration::from_millis(100);

/// The dispatchers alive, by liveness key (`store::Liveness::live_owners`).
pub(super) type Members = watch::Receiver<Vec<i64>>;

/// This dispatcher's share of the webhooks.
pub(super) struct Serving {
    me: String,
    my_key: i64,
    members: Members,
    /// Webhooks this dispatcher serves and keeps: what it claims and takes from ingest.
    served: Arc<HashSet<String>>,

    /// Webhooks it serves but should give up: skipped by claims, given up once idle here.
    leaving: HashSet<String>,
    /// Webhooks it should serve but could not take yet (their dispatcher is draining).
    wanting: usize,
    /// The webhooks revision and membership of the last settle, and when it ran.
    settled: Option<(i64, Instant)>,
}

/// Serving for dispatcher `me` where several dispatchers may share the database, with the
/// sender `takeover.rs` publishes the members on; None where one process serves the whole
/// database (SQLite), or if shutdown came first. Retries while the database cannot answer.
pub(super) async fn start(
    store: &Store,
    me: &str,
    shutdown: &CancellationToken,
) -> Option<(Serving, watch::Sender<Vec<i64>>)> {
    let mut backoff = Duration::from_millis(100);
    loop {
        let found = async {
            let Some(live) = store.live_owners().await? else {
                return Ok(None);
            };
            Ok::<_, StoreError>(Some((live, store.owner_key(me).await?)))
        };
        match found.await {
            Ok(None) => return None,
            Ok(Some((live, my_key))) => {
                let (members, receiver) = watch::channel(live);
                return Some((Serving::new(me.to_owned(), my_key, receiver), members));
            }
            Err(error) => {
                tracing::warn!(%error, "cannot read which dispatchers are alive; retrying")
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

impl Serving {
    /// Serving for dispatcher `me` (liveness key `my_key`), following `members`.
    fn new(me: String, my_key: i64, members: Members) -> Serving {
        Serving {
            me,
            my_key,
            members,
            served: Arc::new(HashSet::new()),
            leaving: HashSet::new(),
            wanting: 0,
            settled: None,
        }
    }

    /// Webhooks a claim must leave out although their row names this dispatcher.
    pub(super) fn leaving(&self) -> impl Iterator<Item = &String> {
        self.leaving.iter()
    }

    /// Whether the loop should look again soon (something is being given up here).
    pub(super) fn draining(&self) -> bool {
        !self.leaving.is_empty()
    }

    /// Settles if the webhooks (`revision`, `ids`: every enabled one) or the members
    /// changed, if unsettled and not tried for [`RETRY_EVERY`], or every [`RECHECK_EVERY`].
    /// True when the served set changed.
    pub(super) async fn settle_if_due(
        &mut self,
        d: &Arc<Dispatcher>,
        revision: i64,
        ids: &[String],
    ) -> Result<bool, StoreError> {
        let now = Instant::now();
        let due = match self.settled {
            None => true,
            Some((at_revision, at)) => {
                let unsettled = self.wanting > 0 || !self.leaving.is_empty();
                at_revision != revision
                    || self.members.has_changed().unwrap_or(false)
                    || (unsettled && now.duration_since(at) >= RETRY_EVERY)
                    || now.duration_since(at) >= RECHECK_EVERY
            }
        };
        if !due {
            return Ok(false);
        }
        let changed = self.settle(d, ids).await?;
        self.settled = Some((revision, now));
        Ok(changed)
    }

    /// Takes what this dispatcher should serve and is free, gives up what it should not
    /// and has finished with. True when the served set changed.
    async fn settle(&mut self, d: &Arc<Dispatcher>, ids: &[String]) -> Result<bool, StoreError> {
        let mut members = self.members.borrow_and_update().clone();
        if !members.contains(&self.my_key) {
            members.push(self.my_key); // alive by definition, even if not seen yet
        }
        let wanted: HashSet<&String> = ids
            .iter()
            .filter(|id| server_of(id, &members) == Some(self.my_key))
            .collect();
        let rows: HashSet<String> = d
            .store
            .served_webhooks(&self.me)
            .await?
            .into_iter()
            .collect();
        let lost: Vec<&String> = self
            .served
            .iter()
            .filter(|id| !rows.contains(*id))
            .collect();
        if !lost.is_empty() {
            tracing::warn!(
                webhooks = lost.len(),
                "another dispatcher took webhooks served here (this one was taken for dead); \
                 no longer claiming their deliveries"
            );
        }
        // Rows of webhooks deleted since are gone with them; disabled ones are not wanted.
        self.leaving = rows
            .iter()
            .filter(|id| !wanted.contains(id))
            .cloned()
            .collect();
        let keep: HashSet<String> = rows
            .iter()
            .filter(|id| wanted.contains(id))
            .cloned()
            .collect();
        // Under the lock `Dispatcher::queue` takes: from here on, nothing of a webhook not
        // kept is queued, so a leaving webhook found idle stays idle.
        let (returned, idle) = {
            let mut shared = lock(&d.shared);
            shared.served = Some(Arc::new(keep.clone()));
            let jobs = shared.lanes.drain_webhooks(|id| !keep.contains(id));
            let returned: Vec<Lease> = jobs
                .iter()
                .filter_map(|job| shared.leases.remove(&job.delivery.lease.delivery_id))
                .collect();
            let idle: Vec<String> = self
                .leaving
                .iter()
                .filter(|id| !shared.lanes.holds(id))
                .cloned()
                .collect();
            (returned, idle)
        };
        if !returned.is_empty() {
            d.store.release(&returned, now_ms()).await?;
        }
        if !idle.is_empty() {
            d.store.give_up_webhooks(&self.me, &idle).await?;
            for id in &idle {
                self.leaving.remove(id);
            }
            tracing::info!(
                webhooks = idle.len(),
                "gave up webhooks to other dispatchers"
            );
        }
        let to_take: Vec<String> = wanted
            .iter()
            .filter(|id| !rows.contains(**id))
            .map(|id| (*id).clone())
            .collect();
        let taken = d
            .store
            .take_webhooks(&self.me, &to_take, &members, now_ms())
            .await?;
        if !taken.is_empty() {
            tracing::info!(webhooks = taken.len(), "now serving webhooks");
        }
        self.wanting = to_take.len() - taken.len();
        let mut served = keep;
        served.extend(taken);
        let changed = served != *self.served;
        self.served = Arc::new(served);
        lock(&d.shared).served = Some(self.served.clone());
        metrics::gauge!("hookline_webhooks_served").set(self.served.len() as f64);
        Ok(changed)
    }
}

/// The member that should serve `webhook_id`: the highest score (rendezvous hashing).
/// SHA-256, not std's hasher, so every build of hookline agrees.
fn server_of(webhook_id: &str, members: &[i64]) -> Option<i64> {
    members
        .iter()
        .copied()
        .max_by_key(|key| (score(webhook_id, *key), *key))
}

fn score(webhook_id: &str, key: i64) -> u64 {
    let digest = Sha256::new()
        .chain_update(webhook_id.as_bytes())
        .chain_update(key.to_be_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("wh_{i:04}")).collect()
    }

    fn shares(webhooks: &[String], members: &[i64]) -> Vec<(i64, Vec<String>)> {
        members
            .iter()
            .map(|m| {
                let mine = webhooks
                    .iter()
                    .filter(|w| server_of(w, members) == Some(*m))
                    .cloned()
                    .collect();
                (*m, mine)
            })
            .collect()
    }

    #[test]
    fn webhooks_spread_evenly_over_the_members() {
        let webhooks = ids(1000);
        for members in [vec![11, 22], vec![11, 22, 33, 44]] {
            let even = 1000 / members.len();
            for (member, mine) in shares(&webhooks, &members) {
                assert!(
                    mine.len() > even * 8 / 10 && mine.len() < even * 12 / 10,
                    "{member} serves {} of 1000 among {}",
                    mine.len(),
                    members.len()
                );
            }
        }
    }

    #[test]
    fn a_member_arriving_or_leaving_moves_only_its_share() {
        let webhooks = ids(1000);
        let before = [11, 22, 33];
        let after = [11, 22, 33, 44];
        for w in &webhooks {
            let (was, is) = (server_of(w, &before), server_of(w, &after));
            assert!(
                was == is || is == Some(44),
                "{w} moved from {was:?} to {is:?}"
            );
            // And 44 leaving again puts everything back where it was.
            let back = server_of(w, &before);
            assert_eq!(was, back);
        }
    }

    #[test]
    fn every_member_agrees_whatever_the_order_it_lists_them_in() {
        for w in ids(100) {
            assert_eq!(server_of(&w, &[3, 1, 2]), server_of(&w, &[1, 2, 3]));
        }
        assert_eq!(server_of("wh", &[]), None);
    }

    #[test]
    fn the_score_is_fixed_across_builds() {
        // Replicas of different builds must agree (a changed hash would leave webhooks
        // that every replica thinks another should serve). The value is Python's
        // hashlib.sha256(b"wh_0000" + (42).to_bytes(8, "big")).digest()[:8].
        assert_eq!(score("wh_0000", 42), 0x2fa3_1c64_70ed_64c8);
    }
}
