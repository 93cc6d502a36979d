//! Retention: events, deliveries and attempts older than `retention` are deleted, so the
//! database stops growing.
//!
//! A pass walks old events in receive order, one small batch per transaction, and pauses
//! between batches for three times as long as the batch took: pruning uses at most a
//! quarter of the database's writer, so ingest and dispatch never wait long behind it
//! (BENCHMARKS.md measures the cost), while a pass still deletes far faster than any
//! registry pushes. An event with
//! a pending (or retrying) delivery is kept, with that delivery, until it finishes. On
//! SQLite the freed pages are reused by new rows (the file stops growing; `VACUUM` while
//! stopped shrinks it); on PostgreSQL autovacuum makes the space reusable.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::{PruneCursor, Store, now_ms};

/// Events per prune transaction (with their deliveries and attempts): a few milliseconds
/// of the writer.
pub const BATCH: i64 = 250;
/// The pause after a batch, as a multiple of the time the batch took.
const PAUSE_FACTOR: u32 = 3;

/// How often a pass starts: a tenth of the retention, between 1 s and a minute.
pub fn interval(retention: Duration) -> Duration {
    (retention / 10).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// How often the planner's statistics are refreshed before a pass.
const STATISTICS_EVERY: Duration = Duration::from_secs(3600);

/// Prunes until `shutdown` fires.
pub async fn run(store: Store, retention: Duration, shutdown: CancellationToken) {
    let every = interval(retention);
    tracing::info!(retention = %humantime::format_duration(retention), "retention started");
    let mut statistics_at: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        // Good plans for the deletes need statistics (see `Log::refresh_statistics`).
        if statistics_at.is_none_or(|at| at.elapsed() >= STATISTICS_EVERY) {
            match store.refresh_statistics().await {
                Ok(()) => statistics_at = Some(Instant::now()),
                Err(error) => tracing::warn!(%error, "could not refresh planner statistics"),
            }
        }
        let cutoff = now_ms() - i64::try_from(retention.as_millis()).unwrap_or(i64::MAX / 2);
        if let Err(error) = pass(&store, cutoff, &shutdown).await {
            tracing::warn!(%error, "pruning failed; trying again at the next pass");
        }
    }
}

/// One pass over everything received before `cutoff`. Returns the rows deleted.
pub async fn pass(
    store: &Store,
    cutoff: i64,
    shutdown: &CancellationToken,
) -> Result<u64, super::StoreError> {
    let mut cursor = PruneCursor {
        received_at: i64::MIN,
        seq: i64::MIN,
    };
    let mut deleted = 0;
    loop {
        let started = Instant::now();
        let batch = store.prune(cutoff, cursor, BATCH).await?;
        for (table, rows) in [
            ("events", batch.events),
            ("deliveries", batch.deliveries),
            ("attempts", batch.attempts),
        ] {
            metrics::counter!("hookline_pruned_total", "table" => table).increment(rows);
            deleted += rows;
        }
        if (batch.scanned as i64) < BATCH {
            if deleted > 0 {
                tracing::debug!(deleted, "prune pass done");
            }
            return Ok(deleted);
        }
        cursor = batch.cursor;
        let pause = (started.elapsed() * PAUSE_FACTOR).max(Duration::from_millis(5));
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(deleted),
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_start_every_tenth_of_the_retention_within_bounds() {
        assert_eq!(interval(Duration::from_secs(3)), Duration::from_secs(1));
        assert_eq!(interval(Duration::from_secs(300)), Duration::from_secs(30));
        assert_eq!(
            interval(Duration::from_secs(30 * 24 * 3600)),
            Duration::from_secs(60)
        );
    }
}
