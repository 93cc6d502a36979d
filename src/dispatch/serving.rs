//! One receiver, one set of limits: where several dispatchers share a database
//! (PostgreSQL), each webhook is served by one of them at a time, so its `max_concurrency`,
//! `rate_limit`, adaptive window, `Retry-After` pause, circuit and ordered lanes live in one
//! process, whatever the number of replicas.
//!
//! Who should serve a webhook is decided by rendezvous hashing with bounded loads over the
//! dispatchers alive (`takeover.rs` publishes them, counting one gone for less than its
//! grace as alive; see [`assign`]): each dispatcher computes the same answer, no share
//! exceeds a fair one, and a dispatcher that arrives or leaves moves little more than its
//! share. Who *does* serve it is a row in the database
//! (`store/serving.rs`), taken only when free or when its dispatcher is dead; claims and
//! ingest's hand-off lease only the deliveries of webhooks served here. A webhook that
//! should move is first *leaving*: its queued deliveries go back, nothing new is claimed
//! for it, and once nothing of it is in flight here (and no `Retry-After` pauses it) the
//! row is given up and the new dispatcher woken. So at most one process ever has its
//! requests in flight, and a receiver's pause holds across the move.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{Dispatcher, lock};
use crate::store::{Store, StoreError, now_ms};

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
    /// Webhooks it serves but should give up: skipped by claims, given up once idle here.
    leaving: HashSet<String>,
    /// Webhooks it should serve but could not take yet (their dispatcher is draining).
    wanting: usize,
    /// It serves every enabled webhook and gives none up (see [`Serving::serves_all`]).
    serves_all: bool,
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
    let failed = "cannot read which dispatchers are alive; retrying";
    let found = super::takeover::retrying(shutdown, failed, || async {
        let Some(live) = store.live_owners().await? else {
            return Ok(None);
        };
        Ok(Some((live, store.owner_key(me).await?)))
    });
    let (live, my_key) = found.await.flatten()?;
    let (members, receiver) = watch::channel(live);
    Some((Serving::new(me.to_owned(), my_key, receiver), members))
}

impl Serving {
    /// Serving for dispatcher `me` (liveness key `my_key`), following `members`.
    fn new(me: String, my_key: i64, members: Members) -> Serving {
        Serving {
            me,
            my_key,
            members,
            leaving: HashSet::new(),
            wanting: 0,
            serves_all: false,
            settled: None,
        }
    }

    /// Whether this dispatcher serves every enabled webhook (it is alone, or the others
    /// serve none yet): then its claims need not check the rows, since
    /// `Dispatcher::queue` still refuses, and gives back, what another serves.
    pub(super) fn serves_all(&self) -> bool {
        self.serves_all
    }

    /// Webhooks a claim must leave out although their row names this dispatcher.
    pub(super) fn leaving(&self) -> impl Iterator<Item = &String> {
        self.leaving.iter()
    }

    /// Whether the loop should look again soon: a webhook being given up waits only for
    /// requests in flight (not for a long `Retry-After` pause).
    pub(super) fn draining(&self, d: &Dispatcher) -> bool {
        if self.leaving.is_empty() {
            return false;
        }
        let shared = lock(&d.shared);
        let now = Instant::now();
        self.leaving.iter().any(|id| !shared.lanes.paused(id, now))
    }

    /// Whether a webhook being given up is now free to go.
    fn leaving_idle(&self, d: &Dispatcher) -> bool {
        if self.leaving.is_empty() {
            return false;
        }
        let shared = lock(&d.shared);
        let now = Instant::now();
        self.leaving.iter().any(|id| !shared.lanes.holds(id, now))
    }

    /// Settles if the webhooks (`revision`, `ids`: every enabled one) or the members
    /// changed, if unsettled and not tried for [`RETRY_EVERY`], or every [`RECHECK_EVERY`].
    pub(super) async fn settle_if_due(
        &mut self,
        d: &Arc<Dispatcher>,
        revision: i64,
        ids: &[String],
    ) -> Result<(), StoreError> {
        let now = Instant::now();
        let due = match self.settled {
            None => true,
            Some((at_revision, at)) => {
                let unsettled = self.wanting > 0 || self.leaving_idle(d);
                at_revision != revision
                    || self.members.has_changed().unwrap_or(false)
                    || (unsettled && now.duration_since(at) >= RETRY_EVERY)
                    || now.duration_since(at) >= RECHECK_EVERY
            }
        };
        if !due {
            return Ok(());
        }
        self.settle(d, ids).await?;
        self.settled = Some((revision, now));
        Ok(())
    }

    /// Takes what this dispatcher should serve and is free, gives up what it should not
    /// and has finished with; the served set is `Shared::served`.
    async fn settle(&mut self, d: &Arc<Dispatcher>, ids: &[String]) -> Result<(), StoreError> {
        let mut members = self.members.borrow_and_update().clone();
        if !members.contains(&self.my_key) {
            members.push(self.my_key); // alive by definition, even if not seen yet
        }
        let plan = assign(ids, &members);
        let wanted: HashSet<&String> = ids
            .iter()
            .filter(|id| plan.get(id.as_str()) == Some(&self.my_key))
            .collect();
        let rows: HashSet<String> = d
            .store
            .served_webhooks(&self.me)
            .await?
            .into_iter()
            .collect();
        let served_before = lock(&d.shared).served.clone().unwrap_or_default();
        let lost = served_before
            .iter()
            .filter(|id| !rows.contains(*id))
            .count();
        if lost > 0 {
            tracing::warn!(
                webhooks = lost,
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
            let returned = shared.unlease(jobs);
            let idle: Vec<String> = self
                .leaving
                .iter()
                .filter(|id| !shared.lanes.holds(id, Instant::now()))
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
        self.serves_all = self.leaving.is_empty()
            && self.wanting == 0
            && ids.iter().all(|id| served.contains(id));
        metrics::gauge!("hookline_webhooks_served").set(served.len() as f64);
        lock(&d.shared).served = Some(Arc::new(served));
        Ok(())
    }
}

/// Who should serve each webhook: rendezvous hashing with bounded loads. Each webhook,
/// in id order, goes to the member that scores highest for it among those serving fewer
/// than ⌈webhooks / members⌉ so far. Every member computes the same plan from the same
/// ids and members; no share exceeds that fair one (each dispatcher's pipeline is serial
/// on database round trips, so the largest share sets the pace); and a member arriving or
/// leaving moves little more than its own share, since most webhooks keep their first
/// choice. SHA-256, not std's hasher, so every build agrees.
fn assign<'a>(ids: &'a [String], members: &[i64]) -> HashMap<&'a str, i64> {
    let mut members = members.to_vec();
    members.sort_unstable();
    members.dedup();
    let mut ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut plan = HashMap::with_capacity(ids.len());
    if members.is_empty() {
        return plan;
    }
    let cap = ids.len().div_ceil(members.len());
    let mut load: HashMap<i64, usize> = HashMap::new();
    for id in ids {
        let mut ranked: Vec<(u64, i64)> = members.iter().map(|m| (score(id, *m), *m)).collect();
        ranked.sort_unstable_by(|a, b| b.cmp(a));
        let chosen = ranked
            .into_iter()
            .map(|(_, member)| member)
            .find(|member| load.get(member).copied().unwrap_or(0) < cap);
        if let Some(member) = chosen {
            *load.entry(member).or_default() += 1;
            plan.insert(id, member);
        }
    }
    plan
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

    fn loads(plan: &HashMap<&str, i64>, members: &[i64]) -> Vec<usize> {
        members
            .iter()
            .map(|m| plan.values().filter(|v| *v == m).count())
            .collect()
    }

    #[test]
    fn every_webhook_is_served_and_no_share_exceeds_a_fair_one() {
        for n in [1, 7, 100, 1000] {
            let webhooks = ids(n);
            for members in [
                vec![11],
                vec![11, 22],
                vec![11, 22, 33],
                vec![11, 22, 33, 44],
            ] {
                let plan = assign(&webhooks, &members);
                assert_eq!(plan.len(), n);
                let loads = loads(&plan, &members);
                let fair = n.div_ceil(members.len());
                assert!(
                    loads.iter().all(|l| *l <= fair),
                    "{n} webhooks over {members:?}: {loads:?}"
                );
            }
        }
    }

    #[test]
    fn a_member_arriving_or_leaving_moves_little_more_than_its_share() {
        let webhooks = ids(1000);
        let moved = |a: &[i64], b: &[i64]| {
            let (before, after) = (assign(&webhooks, a), assign(&webhooks, b));
            webhooks
                .iter()
                .filter(|w| before.get(w.as_str()) != after.get(w.as_str()))
                .count()
        };
        // A fair share is 250 arriving as the fourth, 333 leaving as the third (these
        // keys move 251 and 333: within a tenth of the fair share).
        assert!(moved(&[11, 22, 33], &[11, 22, 33, 44]) <= 275);
        assert!(moved(&[11, 22, 33], &[11, 22]) <= 366);
    }

    #[test]
    fn every_member_agrees_whatever_the_order_it_lists_them_in() {
        let webhooks = ids(100);
        let mut shuffled = webhooks.clone();
        shuffled.reverse();
        assert_eq!(
            assign(&webhooks, &[3, 1, 2]),
            assign(&shuffled, &[1, 2, 3, 3])
        );
        assert!(assign(&webhooks, &[]).is_empty());
    }

    #[test]
    fn the_score_is_fixed_across_builds() {
        // Replicas of different builds must agree (a changed hash would leave webhooks
        // that every replica thinks another should serve). The value is Python's
        // hashlib.sha256(b"wh_0000" + (42).to_bytes(8, "big")).digest()[:8].
        assert_eq!(score("wh_0000", 42), 0x2fa3_1c64_70ed_64c8);
    }
}
