//! Takeover: a dead dispatcher's leases are given back within seconds of its death, not
//! when they run out (see `store::Liveness`). This dispatcher marks itself alive first
//! ([`hold_liveness`]), so nobody takes its own leases for a dead one's.
//!
//! On SQLite, where `serve` holds the file alone, every lease found at start is a dead
//! process's: given back at once. On PostgreSQL each dispatcher polls which of them are
//! alive; an owner gone for [`GRACE`] has its leases given back, and the wake-up reaches
//! every replica. The grace lets a replica whose session dropped with the database (a
//! restart drops every session at once) reopen it before anybody takes it for dead.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::store::{Store, StoreError, now_ms};

/// How often PostgreSQL replicas look at who is alive.
const POLL: Duration = Duration::from_secs(1);

/// How long an owner must be gone before its leases are given back.
const GRACE: Duration = Duration::from_secs(2);

/// Marks this dispatcher alive (`store::Liveness`) until `alive` fires and returns the
/// owner it leases under, retrying while the database cannot be reached; None if shutdown
/// came first.
pub(super) async fn hold_liveness(
    store: &Store,
    alive: CancellationToken,
    shutdown: &CancellationToken,
) -> Option<String> {
    retrying(
        shutdown,
        "cannot mark the dispatcher alive; retrying",
        || store.hold_liveness(alive.clone()),
    )
    .await
}

/// Runs `attempt` until it succeeds, logging `failed` with the error after each failure
/// and backing off from 100 ms to 5 s; None if shutdown came first.
pub(super) async fn retrying<T, F, A>(
    shutdown: &CancellationToken,
    failed: &str,
    mut attempt: A,
) -> Option<T>
where
    A: FnMut() -> F,
    F: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut backoff = Duration::from_millis(100);
    loop {
        match attempt().await {
            Ok(done) => return Some(done),
            Err(error) => tracing::warn!(%error, "{failed}"),
        }
        if !pause(backoff, shutdown).await {
            return None;
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Gives back dead dispatchers' leases until `shutdown`: once at start, then (where other
/// processes can be alive) whenever one of them has been gone for [`GRACE`].
/// Publishes on `members` who counts as alive (alive, or gone for less than the grace):
/// the dispatchers `serving.rs` shares the webhooks among.
pub(super) async fn run(
    store: Store,
    me: String,
    members: Option<watch::Sender<Vec<i64>>>,
    shutdown: CancellationToken,
) {
    let publish = |watch: &Watch| {
        if let Some(members) = &members {
            let now = watch.members();
            members.send_if_modified(|old| {
                let changed = *old != now;
                *old = now;
                changed
            });
        }
    };
    // Seeded with who is alive now, so one that dies during the grace below is found too.
    let mut watch = match store.live_owners().await {
        Ok(Some(live)) => Watch::new(&live),
        Ok(None) => {
            // No other process can be alive: whatever is leased is a dead one's.
            release(&store, &me, &[]).await;
            return;
        }
        Err(error) => {
            tracing::warn!(%error, "cannot read which dispatchers are alive");
            Watch::new(&[])
        }
    };
    publish(&watch);
    if !pause(GRACE, &shutdown).await {
        return;
    }
    // Those that died before this process started (and, once their grace is over, those
    // seen alive at the start that are gone now).
    if let Ok(Some(live)) = store.live_owners().await {
        watch.look(&live, Instant::now());
    }
    release(&store, &me, &watch.members()).await;
    publish(&watch);
    while pause(POLL, &shutdown).await {
        match store.live_owners().await {
            Ok(Some(live)) => {
                if watch.look(&live, Instant::now()) {
                    release(&store, &me, &watch.members()).await;
                }
                publish(&watch);
            }
            Ok(None) => return,
            Err(error) => tracing::debug!(%error, "cannot read which dispatchers are alive"),
        }
    }
}

/// Who was seen alive, and since when each one missing has been missing.
struct Watch {
    /// Owner key -> when it was first seen gone (None: alive at the last look).
    seen: HashMap<i64, Option<Instant>>,
}

impl Watch {
    fn new(live: &[i64]) -> Watch {
        Watch {
            seen: live.iter().map(|key| (*key, None)).collect(),
        }
    }

    /// Who counts as alive: seen alive at the last look, or gone for less than [`GRACE`];
    /// sorted.
    fn members(&self) -> Vec<i64> {
        let mut keys: Vec<i64> = self.seen.keys().copied().collect();
        keys.sort_unstable();
        keys
    }

    /// Takes in who is alive at `now`; true when an owner seen alive before has now been
    /// gone for [`GRACE`] (it is then forgotten: its leases are given back once).
    fn look(&mut self, live: &[i64], now: Instant) -> bool {
        for key in live {
            self.seen.insert(*key, None);
        }
        let mut dead = false;
        for (key, gone) in self.seen.iter_mut() {
            if !live.contains(key) {
                dead |= now.duration_since(*gone.get_or_insert(now)) >= GRACE;
            }
        }
        if dead {
            // Those still within their grace stay: they may be reopening their session.
            self.seen
                .retain(|_, gone| gone.is_none_or(|at| now.duration_since(at) < GRACE));
        }
        dead
    }
}

/// Sleeps `duration`; false if shutdown came first.
async fn pause(duration: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => false,
        _ = tokio::time::sleep(duration) => true,
    }
}

/// Gives back the leases of dispatchers that are not alive and not among `members`.
async fn release(store: &Store, me: &str, members: &[i64]) {
    match store.release_dead_leases(me, members, now_ms()).await {
        Ok(0) => {}
        Ok(n) => {
            metrics::counter!("hookline_leases_taken_over_total").increment(n);
            tracing::info!(
                leases = n,
                "gave back the leases of dispatchers that died; their deliveries go out again now"
            );
        }
        Err(error) => {
            tracing::warn!(%error, "cannot give back dead dispatchers' leases; they expire on their own")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_owner_is_dead_only_once_gone_for_the_grace_and_only_once() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut watch = Watch::new(&[1, 2]);
        assert!(!watch.look(&[1, 2], at(1_000)));
        // 2's session drops; it is back before the grace ends: never dead.
        assert!(!watch.look(&[1], at(2_000)));
        assert!(!watch.look(&[1], at(3_000)));
        assert!(!watch.look(&[1, 2], at(3_500)));
        // Gone again: the grace starts over, and once it has passed, dead, once.
        assert!(!watch.look(&[1], at(4_000)));
        assert!(!watch.look(&[1], at(5_000)));
        assert!(watch.look(&[1], at(6_000)));
        assert!(!watch.look(&[1], at(7_000)));
    }

    #[test]
    fn an_owner_within_its_grace_stays_a_member_when_another_is_found_dead() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut watch = Watch::new(&[1, 2, 3]);
        assert!(!watch.look(&[1, 3], at(1_000)));
        // 3's session drops just as 2's grace ends: 2 is dead, 3 is still a member.
        assert!(watch.look(&[1], at(3_000)));
        assert_eq!(watch.members(), vec![1, 3]);
        assert!(!watch.look(&[1, 3], at(3_500)));
        assert_eq!(watch.members(), vec![1, 3]);
    }

    #[test]
    fn an_owner_alive_at_the_first_look_that_dies_before_the_next_is_found() {
        let t0 = Instant::now();
        let mut watch = Watch::new(&[7]);
        assert!(!watch.look(&[], t0 + Duration::from_secs(1)));
        assert!(watch.look(&[], t0 + Duration::from_secs(3)));
    }

    #[test]
    fn an_owner_never_seen_alive_is_never_taken_for_dead_by_the_watch() {
        // (Owners that died before this process started are given back at its start.)
        let t0 = Instant::now();
        let mut watch = Watch::new(&[]);
        assert!(!watch.look(&[], t0 + Duration::from_secs(10)));
    }
}
