//! Takeover: a dead dispatcher's leases are given back within seconds of its death, not
//! when they run out (see `store::Liveness`).
//!
//! On SQLite, where `serve` holds the file alone, every lease found at start is a dead
//! process's: given back at once. On PostgreSQL each dispatcher polls which of them are
//! alive; an owner gone for [`GRACE`] has its leases given back, and the wake-up reaches
//! every replica. The grace lets a replica whose session dropped with the database (a
//! restart drops every session at once) reopen it before anybody takes it for dead.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::store::{Store, now_ms};

/// How often PostgreSQL replicas look at who is alive.
const POLL: Duration = Duration::from_secs(1);

/// How long an owner must be gone before its leases are given back.
const GRACE: Duration = Duration::from_secs(2);

/// Gives back dead dispatchers' leases until `shutdown`: once at start, then (where other
/// processes can be alive) whenever one of them has been gone for [`GRACE`].
pub(super) async fn run(store: Store, me: String, shutdown: CancellationToken) {
    // Owner key -> when it was first seen gone (None: alive at the last look). Seeded with
    // who is alive now, so one that dies during the grace below is found too.
    let mut seen: HashMap<i64, Option<Instant>> = match store.live_owners().await {
        Ok(Some(live)) => live.into_iter().map(|key| (key, None)).collect(),
        Ok(None) => {
            // No other process can be alive: whatever is leased is a dead one's.
            release(&store, &me).await;
            return;
        }
        Err(error) => {
            tracing::warn!(%error, "cannot read which dispatchers are alive");
            HashMap::new()
        }
    };
    if !pause(GRACE, &shutdown).await {
        return;
    }
    // Those that died before this process started.
    release(&store, &me).await;
    while pause(POLL, &shutdown).await {
        let live = match store.live_owners().await {
            Ok(Some(live)) => live,
            Ok(None) => return,
            Err(error) => {
                tracing::debug!(%error, "cannot read which dispatchers are alive");
                continue;
            }
        };
        let now = Instant::now();
        for key in &live {
            seen.insert(*key, None);
        }
        let mut dead = false;
        for (key, gone) in seen.iter_mut() {
            if !live.contains(key) {
                dead |= now.duration_since(*gone.get_or_insert(now)) >= GRACE;
            }
        }
        if dead {
            release(&store, &me).await;
            seen.retain(|_, gone| gone.is_none());
        }
    }
}

/// Sleeps `duration`; false if shutdown came first.
async fn pause(duration: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => false,
        _ = tokio::time::sleep(duration) => true,
    }
}

async fn release(store: &Store, me: &str) {
    match store.release_dead_leases(me, now_ms()).await {
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
