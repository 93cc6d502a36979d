//! Writes attempt results in batches: one transaction for everything that finished
//! since the last write, which keeps SQLite's single writer from becoming the limit.
//!
//! A failed write is retried (the results stay in memory meanwhile); if the process dies
//! first, the leases expire and the deliveries go out again: at least once, never lost.

use std::time::Duration;

use tokio::sync::mpsc;

use crate::store::{Finished, Store, now_ms};

/// Most results per transaction.
const BATCH: usize = 256;
/// Tries per batch (about half a minute with backoff) before leaving it to lease expiry.
const MAX_TRIES: u32 = 10;

/// A result to record.
pub struct Outcome {
    /// The attempt and the delivery's next state.
    pub finished: Finished,
    /// The delivery has an ordering key: its successor may be due once this is written.
    pub ordered: bool,
}

/// Records results until every sender is gone and the channel is drained.
pub async fn run(store: Store, mut results: mpsc::Receiver<Outcome>) {
    let mut batch: Vec<Outcome> = Vec::with_capacity(BATCH);
    while results.recv_many(&mut batch, BATCH).await > 0 {
        let finished: Vec<Finished> = batch.iter().map(|o| o.finished.clone()).collect();
        let mut delay = Duration::from_millis(50);
        for tries in 1.. {
            match store.finish(&finished, now_ms()).await {
                Ok(held) => {
                    if (held as usize) < finished.len() {
                        tracing::warn!(
                            lost = finished.len() - held as usize,
                            "some leases had expired before their results were written; those deliveries will be retried"
                        );
                    }
                    break;
                }
                Err(error) if tries >= MAX_TRIES => {
                    tracing::error!(%error, results = finished.len(), "giving up recording results; their leases will expire and the deliveries go out again");
                    break;
                }
                Err(error) => {
                    tracing::warn!(%error, results = finished.len(), "could not record results; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        if batch.iter().any(|o| o.ordered) {
            store.wake().notify(); // the next delivery of an ordered key may go now
        }
        batch.clear();
    }
}
