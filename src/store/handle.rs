//! [`Store`], the handle every role shares: the backend, plus what a call needs beside the
//! database: waking dispatchers after a write that creates work, publishing recorded
//! attempts on the live tail, and noting whether writes succeed (for `/readyz`).

use std::sync::Arc;

use super::{
    AttemptView, Backend, Event, FanOutNow, Finished, InsertedEvents, Lease, NewDelivery,
    Redelivery, ReplayOutcome, ReplayPlanner, ReplayRequest, StoreError, Stored, Tail, Wake,
    WriteHealth, next_state_columns, now_ms,
};
use tokio_util::sync::CancellationToken;

/// The shared storage handle: cheap to clone.
#[derive(Clone)]
pub struct Store {
    pub(super) backend: Arc<dyn Backend>,
    pub(super) wake: Wake,
    pub(super) tail: Tail,
    pub(super) writes: WriteHealth,
}

impl Store {
    /// The backend, for calls that need no wake-up bookkeeping.
    pub fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }

    /// The in-process wake signal dispatchers wait on.
    pub fn wake(&self) -> &Wake {
        &self.wake
    }

    /// Ready to serve: the database answers, its schema is this binary's, and writes
    /// succeed. While ingest's or the dispatcher's last write failed, one probe write
    /// decides (see `writes.rs`), so readiness comes back as soon as the database does.
    pub async fn ready_to_write(&self) -> Result<(), StoreError> {
        self.backend.ready().await?;
        let Some((for_how_long, reason)) = self.writes.failing() else {
            return Ok(());
        };
        let probe = self.backend.probe_write(now_ms()).await;
        self.writes.record(&probe);
        probe.map_err(|_| StoreError::WritesFailing {
            seconds: for_how_long.as_secs(),
            reason,
        })
    }

    /// The live tail of recorded attempts.
    pub fn tail(&self) -> &Tail {
        &self.tail
    }

    /// Records attempt results (see [`Queue::finish`]), then hands them to the live tail.
    pub async fn finish(&self, results: &[Finished], now: i64) -> Result<u64, StoreError> {
        let held = self.backend.finish(results, now).await;
        self.writes.record(&held);
        let held = held?;
        if self.tail.is_watched() {
            for r in results {
                self.tail.publish(AttemptView {
                    attempt: r.attempt.clone(),
                    context: r.context.clone(),
                    delivery_status: next_state_columns(r.next, now).0.to_owned(),
                });
            }
        }
        Ok(held)
    }

    /// Redelivers (see [`Log::redeliver`]), then wakes dispatchers.
    pub async fn redeliver(&self, id: &str, now: i64) -> Result<Redelivery, StoreError> {
        let done = self.backend.redeliver(id, now).await?;
        if matches!(done, Redelivery::Queued | Redelivery::Expedited) {
            self.wake.notify();
        }
        Ok(done)
    }

    /// Replays (see [`Log::replay`]), then wakes dispatchers.
    pub async fn replay(
        &self,
        request: &ReplayRequest,
        plan: &ReplayPlanner,
    ) -> Result<ReplayOutcome, StoreError> {
        let done = self.backend.replay(request, plan).await?;
        if done.queued > 0 && !done.repeated {
            self.wake.notify();
        }
        Ok(done)
    }

    /// Stores events durably, then wakes dispatchers.
    pub async fn insert_events(&self, events: &[Event]) -> Result<InsertedEvents, StoreError> {
        let inserted = self.backend.insert_events(events).await?;
        if inserted.inserted > 0 {
            self.wake.notify();
        }
        Ok(inserted)
    }

    /// Stores several envelopes in one transaction (see [`Events::store_events`]), then
    /// wakes dispatchers if anything is left for them.
    pub async fn store_events(
        &self,
        batches: &[&[Event]],
        fan_out: Option<&FanOutNow<'_>>,
    ) -> Result<Stored, StoreError> {
        let stored = self.backend.store_events(batches, fan_out).await;
        self.writes.record(&stored);
        let stored = stored?;
        if stored.work_left {
            self.wake.notify();
        }
        Ok(stored)
    }

    /// Stores several envelopes in one transaction, unfanned, then wakes dispatchers.
    pub async fn insert_event_batches(
        &self,
        batches: &[&[Event]],
    ) -> Result<Vec<InsertedEvents>, StoreError> {
        Ok(self.store_events(batches, None).await?.counts)
    }

    /// Enqueues deliveries, then wakes dispatchers.
    pub async fn enqueue(&self, deliveries: &[NewDelivery], now: i64) -> Result<(), StoreError> {
        self.backend.enqueue(deliveries, now).await?;
        self.wake.notify();
        Ok(())
    }

    /// Stores an addressed event with its deliveries (see [`Events::insert_fanned_out`]),
    /// then wakes dispatchers.
    pub async fn insert_fanned_out(
        &self,
        event: &Event,
        deliveries: &[NewDelivery],
        now: i64,
    ) -> Result<(), StoreError> {
        self.backend
            .insert_fanned_out(event, deliveries, now)
            .await?;
        self.wake.notify();
        Ok(())
    }

    /// Gives back dead dispatchers' leases (see [`Liveness::release_dead_leases`]), then
    /// wakes dispatchers so the work is picked up again at once.
    pub async fn release_dead_leases(
        &self,
        me: &str,
        members: &[i64],
        now: i64,
    ) -> Result<u64, StoreError> {
        let released = self.backend.release_dead_leases(me, members, now).await?;
        if released > 0 {
            self.wake.notify();
        }
        Ok(released)
    }

    /// Releases leases, then wakes dispatchers so the work is picked up again at once.
    pub async fn release(&self, leases: &[Lease], now: i64) -> Result<u64, StoreError> {
        let released = self.backend.release(leases, now).await?;
        if released > 0 {
            self.wake.notify();
        }
        Ok(released)
    }

    /// Starts forwarding other processes' wake-ups (PostgreSQL) into this store's signal.
    pub fn spawn_remote_wakeups(&self, cancel: CancellationToken) -> tokio::task::JoinHandle<()> {
        let backend = self.backend.clone();
        let wake = self.wake.clone();
        let tail = self.tail.clone();
        tokio::spawn(async move { backend.forward_remote_wakeups(wake, tail, cancel).await })
    }

    /// Closes the pools.
    pub async fn close(&self) {
        self.backend.close().await
    }
}

impl std::ops::Deref for Store {
    type Target = dyn Backend;
    fn deref(&self) -> &Self::Target {
        self.backend.as_ref()
    }
}
