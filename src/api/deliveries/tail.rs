//! WatchDeliveries, the live tail: every attempt the caller may see, as it is recorded.
//!
//! Each tail is one of `max_watchers` slots and a task that filters the process's store
//! `Tail` (a broadcast channel) by the caller's namespace into a bounded buffer. A client
//! that reads too slowly is cut off with RESOURCE_EXHAUSTED rather than slowing anyone
//! else; every tail ends when the server shuts down.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use tokio::sync::{broadcast, mpsc};
use tokio_stream::Stream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Status};

use super::DeliveryApi;
use crate::api::auth::Caller;
use crate::api::convert::{attempt_to_proto, status_to_proto};
use crate::api::proto;
use crate::store::AttemptView;

/// Attempts waiting for one live-tail client: past this the client reads too slowly and
/// its tail is ended.
pub(crate) const WATCH_BUFFER: usize = 1024;

impl DeliveryApi {
    /// Starts a live tail for the caller, of one webhook (`webhook_id`) or of every
    /// webhook it sees (""), if a slot is free.
    pub(super) async fn watch(
        &self,
        request: &Request<proto::WatchDeliveriesRequest>,
    ) -> Result<Watch, Status> {
        let caller = self.gate.caller(request).await?;
        let only = self
            .webhook_filter(&caller, &request.get_ref().webhook_id)
            .await?;
        let slot = WatchSlot::take(&self.watchers, self.limits.max_watchers).ok_or_else(|| {
            Status::resource_exhausted(format!(
                "this server already serves {} live tails (max_watchers); try again later",
                self.limits.max_watchers
            ))
        })?;
        tracing::info!(webhook_id = ?only, token_id = %caller.token_id(), "live tail started");
        let (sender, receiver) = mpsc::channel(WATCH_BUFFER);
        let overflowed = Arc::new(AtomicBool::new(false));
        tokio::spawn(pump(
            self.gate.store.tail().subscribe(),
            sender,
            Watcher {
                caller,
                only,
                overflowed: overflowed.clone(),
                shutdown: self.shutdown.clone(),
                _slot: slot,
            },
        ));
        Ok(Watch {
            receiver,
            overflowed,
            ended: false,
        })
    }
}

/// One of the `max_watchers` live-tail slots, given back when the tail ends.
struct WatchSlot(Arc<AtomicUsize>);

impl WatchSlot {
    fn take(watchers: &Arc<AtomicUsize>, max: usize) -> Option<WatchSlot> {
        watchers
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| {
                metrics::gauge!("hookline_tail_watchers").increment(1.0);
                WatchSlot(watchers.clone())
            })
    }
}

impl Drop for WatchSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
        metrics::gauge!("hookline_tail_watchers").decrement(1.0);
    }
}

/// What one live tail watches, and how it ends.
struct Watcher {
    caller: Caller,
    only: Option<String>,
    overflowed: Arc<AtomicBool>,
    shutdown: CancellationToken,
    _slot: WatchSlot,
}

/// Moves the attempts a watcher may see from the tail into its bounded buffer. Ends when
/// the client goes away, or when the buffer is full (the client reads too slowly): then
/// `overflowed` tells the stream to end with RESOURCE_EXHAUSTED once drained.
async fn pump(
    mut tail: broadcast::Receiver<Arc<AttemptView>>,
    sender: mpsc::Sender<Result<proto::WatchDeliveriesResponse, Status>>,
    watcher: Watcher,
) {
    let Watcher {
        caller,
        only,
        overflowed,
        shutdown,
        _slot,
    } = watcher;
    loop {
        let view = tokio::select! {
            _ = sender.closed() => return,
            _ = shutdown.cancelled() => return,
            received = tail.recv() => match received {
                Ok(view) => view,
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    overflowed.store(true, Ordering::Release);
                    metrics::counter!("hookline_tail_cut_off_total").increment(1);
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        };
        let context = &view.context;
        if !caller.sees(&context.namespace)
            || only.as_deref().is_some_and(|id| id != context.webhook_id)
        {
            continue;
        }
        match sender.try_send(Ok(watch_message(&view))) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                overflowed.store(true, Ordering::Release);
                metrics::counter!("hookline_tail_cut_off_total").increment(1);
                tracing::info!(token_id = %caller.token_id(), "live tail ended: the client reads too slowly");
                return;
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
}

fn watch_message(view: &AttemptView) -> proto::WatchDeliveriesResponse {
    let status = match (view.delivery_status.as_str(), view.attempt.next_attempt_at) {
        ("pending", Some(_)) => "retrying",
        (status, _) => status,
    };
    proto::WatchDeliveriesResponse {
        attempt: Some(attempt_to_proto(&view.attempt)),
        delivery_id: view.attempt.delivery_id.clone(),
        webhook_id: view.context.webhook_id.clone(),
        event_id: view.context.event_id.clone(),
        event_type: view.context.event_type.clone().unwrap_or_default(),
        repository: view.context.repository.clone().unwrap_or_default(),
        tag: view.context.tag.clone().unwrap_or_default(),
        delivery_status: status_to_proto(status) as i32,
    }
}

/// The live tail's response stream: what the pump buffered, then, if the client fell
/// behind, one RESOURCE_EXHAUSTED.
pub(crate) struct Watch {
    receiver: mpsc::Receiver<Result<proto::WatchDeliveriesResponse, Status>>,
    overflowed: Arc<AtomicBool>,
    ended: bool,
}

impl Stream for Watch {
    type Item = Result<proto::WatchDeliveriesResponse, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match self.receiver.poll_recv(cx) {
            Poll::Ready(Some(item)) => Poll::Ready(Some(item)),
            Poll::Ready(None) => {
                self.ended = true;
                if self.overflowed.load(Ordering::Acquire) {
                    Poll::Ready(Some(Err(Status::resource_exhausted(format!(
                        "the live tail was ended: this client read too slowly (more than {WATCH_BUFFER} attempts waited for it); \
                         reconnect, and list deliveries for what was missed"
                    )))))
                } else {
                    Poll::Ready(None)
                }
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_slots_are_bounded_and_given_back() {
        let watchers = Arc::new(AtomicUsize::new(0));
        let a = WatchSlot::take(&watchers, 2).expect("first");
        let _b = WatchSlot::take(&watchers, 2).expect("second");
        assert!(WatchSlot::take(&watchers, 2).is_none());
        drop(a);
        assert!(WatchSlot::take(&watchers, 2).is_some());
    }
}
