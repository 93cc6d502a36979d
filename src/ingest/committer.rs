//! Group commit: many concurrent notify requests share one database transaction.
//!
//! Each request hands its events to the committer task and waits for the answer. The
//! task takes everything that queued up while the previous transaction was committing
//! and writes it in one transaction, so a commit's cost (an fsync) is paid once per batch
//! rather than once per request. Nothing waits on purpose: an idle server commits a lone
//! request at once. Every request still gets 2xx only after its own events are durable.
//! When this process runs a dispatcher, the transaction also fans the events out and the
//! deliveries it leased are handed to the dispatcher as soon as it commits
//! (`dispatch/handoff.rs`).

use tokio::sync::{mpsc, oneshot};

use super::IngestError;
use crate::dispatch::Handoff;
use crate::event::Event;
use crate::store::{InsertedEvents, Store};

/// Most envelopes per transaction.
const MAX_BATCH: usize = 256;

type Reply = oneshot::Sender<Result<InsertedEvents, IngestError>>;

/// Handle to the committer task; cheap to clone.
#[derive(Clone)]
pub struct Committer {
    requests: mpsc::Sender<(Vec<Event>, Reply)>,
}

impl Committer {
    /// Starts the committer task; it ends when every handle is dropped.
    /// `handoff` lets each transaction fan its events out for this process's dispatcher.
    pub fn start(store: Store, handoff: Handoff) -> Committer {
        let (requests, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(store, handoff, rx));
        Committer { requests }
    }

    /// Commits one envelope's events (with whatever else is queued).
    pub async fn commit(&self, events: Vec<Event>) -> Result<InsertedEvents, IngestError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send((events, reply))
            .await
            .map_err(|_| IngestError::Unavailable)?;
        answer.await.map_err(|_| IngestError::Unavailable)?
    }
}

async fn run(store: Store, handoff: Handoff, mut requests: mpsc::Receiver<(Vec<Event>, Reply)>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while requests.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let envelopes: Vec<&[Event]> = batch.iter().map(|(events, _)| events.as_slice()).collect();
        metrics::histogram!("hookline_ingest_batch_envelopes").record(envelopes.len() as f64);
        let ticket = handoff.ticket();
        let fan_out = ticket.as_ref().map(|t| t.fan_out());
        let result = store.store_events(&envelopes, fan_out.as_ref()).await;
        match result {
            Ok(stored) => {
                // Answer first (a registry sends its next event only after the 2xx), then
                // hand the deliveries over: both wait on nothing.
                for ((_, reply), count) in batch.drain(..).zip(stored.counts) {
                    let _ = reply.send(Ok(count));
                }
                if let Some(ticket) = ticket {
                    ticket.admit(stored.leased);
                }
            }
            Err(error) => {
                // One log line for the batch; every request in it answers 503 or 500.
                let unavailable = error.is_unavailable();
                tracing::error!(%error, envelopes = batch.len(), "storing events failed");
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Err(if unavailable {
                        IngestError::Unavailable
                    } else {
                        IngestError::Internal
                    }));
                }
            }
        }
    }
}
