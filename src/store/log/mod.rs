//! The delivery log: what owners read (events, deliveries, attempts, health) and how they
//! recover (redelivery, replay), plus retention. Written once for both databases: the
//! statements in the SQL both dialects share, run through `sql.rs`'s [`Reads`] and [`Tx`];
//! each backend's `log.rs` only hands out those handles ([`LogStore`]) and implements the
//! two operations that differ by database (the tail across replicas, planner statistics).
//!
//! This file holds the [`Log`] trait, its one implementation over [`LogStore`] (each method
//! hands its handle to the part that does the work) and what the parts share. The parts:
//! `listings.rs` (events, deliveries and attempts, listed and looked up), `recovery.rs`
//! (`redeliver`, `replay` and the pure `plan_replay`), `health.rs` (webhook health and
//! per-minute stats) and `pruning.rs` (one batch of retention's deletes).

mod health;
mod listings;
mod pruning;
mod recovery;

use async_trait::async_trait;

use super::sql::{Reads, Tx};
use super::{AttemptRecord, AttemptView, StoreError};

pub use health::{HealthRecord, STATS_KEPT_MS, StatsMinute, StatsTotals};
pub(crate) use listings::{AttemptViewRow, attempt_views_sql};
pub use listings::{DeliveryQuery, DeliveryView, EventQuery, EventRecord, LogFilter, StatusFilter};
pub use pruning::PruneBatch;
pub use recovery::{Redelivery, ReplayOutcome, ReplayPlanner, ReplayRequest};

/// Reading the log, recovering deliveries, and pruning old rows.
#[async_trait]
pub trait Log: Send + Sync {
    /// Events matching `query`, newest first.
    async fn list_events(&self, query: &EventQuery) -> Result<Vec<EventRecord>, StoreError>;
    /// One event by id.
    async fn get_event(&self, id: &str) -> Result<Option<EventRecord>, StoreError>;
    /// Deliveries matching `query`, newest first, with their event's summary.
    async fn list_deliveries(&self, query: &DeliveryQuery)
    -> Result<Vec<DeliveryView>, StoreError>;
    /// One delivery with its event's summary.
    async fn get_delivery_view(&self, id: &str) -> Result<Option<DeliveryView>, StoreError>;
    /// The last `limit` attempts of a delivery, oldest first.
    async fn recent_attempts(
        &self,
        delivery_id: &str,
        limit: i64,
    ) -> Result<Vec<AttemptRecord>, StoreError>;
    /// Sends a delivery again through the queue, whatever its state, never twice at once.
    async fn redeliver(&self, id: &str, now: i64) -> Result<Redelivery, StoreError>;
    /// Re-queues a webhook's deliveries of the events in a window (see [`ReplayRequest`]),
    /// once per request id.
    async fn replay(
        &self,
        request: &ReplayRequest,
        plan: &ReplayPlanner,
    ) -> Result<ReplayOutcome, StoreError>;
    /// Health of these webhooks (those without any attempt yet included).
    async fn webhook_health(&self, ids: &[String]) -> Result<Vec<HealthRecord>, StoreError>;
    /// Per minute since `since`, how a webhook's attempts went, oldest first (minutes
    /// without attempts are absent).
    async fn webhook_stats(
        &self,
        webhook_id: &str,
        since: i64,
    ) -> Result<Vec<StatsMinute>, StoreError>;
    /// Per webhook, its attempts since `since` by outcome (webhooks without any: absent).
    async fn webhook_totals(
        &self,
        ids: &[String],
        since: i64,
    ) -> Result<Vec<StatsTotals>, StoreError>;
    /// Deletes one batch of events received before `cutoff` (after `cursor`, in receive
    /// order) with their finished deliveries and attempts. An event with a pending
    /// delivery is kept, and so is that delivery. Also drops replay records older than
    /// `cutoff` and the health of deleted webhooks.
    async fn prune(
        &self,
        cutoff: i64,
        cursor: PruneCursor,
        limit: i64,
    ) -> Result<PruneBatch, StoreError>;
    /// Attempts by their seq with their context: the live tail of other replicas' attempts.
    async fn attempt_views(&self, seqs: &[i64]) -> Result<Vec<AttemptView>, StoreError>;
    /// Brings the query planner's statistics up to date where the database would not:
    /// PostgreSQL without autovacuum (its pruning plans turn into full scans without
    /// them), SQLite's recommended `PRAGMA optimize`. Cheap when nothing is needed.
    async fn refresh_statistics(&self) -> Result<(), StoreError>;
}

/// What a backend provides for the delivery log: handles to run the shared statements,
/// and the two operations that differ by database. [`Log`] is implemented once on top.
#[async_trait]
pub(crate) trait LogStore: Send + Sync {
    /// Reads that never wait for the writer.
    fn reads(&self) -> Reads<'_>;
    /// A write transaction.
    async fn write(&self) -> Result<Tx, StoreError>;
    /// See [`Log::attempt_views`].
    async fn attempts_by_seq(&self, seqs: &[i64]) -> Result<Vec<AttemptView>, StoreError>;
    /// See [`Log::refresh_statistics`].
    async fn analyze(&self) -> Result<(), StoreError>;
    /// The keys that seal and open stored secrets.
    fn keys(&self) -> &crate::seal::Keyring;
}

#[async_trait]
impl<B: LogStore> Log for B {
    async fn list_events(&self, query: &EventQuery) -> Result<Vec<EventRecord>, StoreError> {
        listings::list_events(self.reads(), query).await
    }

    async fn get_event(&self, id: &str) -> Result<Option<EventRecord>, StoreError> {
        listings::get_event(self.reads(), id).await
    }

    async fn list_deliveries(
        &self,
        query: &DeliveryQuery,
    ) -> Result<Vec<DeliveryView>, StoreError> {
        listings::list_deliveries(self.reads(), query).await
    }

    async fn get_delivery_view(&self, id: &str) -> Result<Option<DeliveryView>, StoreError> {
        listings::get_delivery_view(self.reads(), id).await
    }

    async fn recent_attempts(
        &self,
        delivery_id: &str,
        limit: i64,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        listings::recent_attempts(self.reads(), delivery_id, limit).await
    }

    async fn redeliver(&self, id: &str, now: i64) -> Result<Redelivery, StoreError> {
        recovery::redeliver(self.write().await?, id, now).await
    }

    async fn replay(
        &self,
        request: &ReplayRequest,
        plan: &ReplayPlanner,
    ) -> Result<ReplayOutcome, StoreError> {
        recovery::replay(self.write().await?, request, plan).await
    }

    async fn webhook_health(&self, ids: &[String]) -> Result<Vec<HealthRecord>, StoreError> {
        health::webhook_health(self.reads(), ids).await
    }

    async fn webhook_stats(
        &self,
        webhook_id: &str,
        since: i64,
    ) -> Result<Vec<StatsMinute>, StoreError> {
        health::webhook_stats(self.reads(), webhook_id, since).await
    }

    async fn webhook_totals(
        &self,
        ids: &[String],
        since: i64,
    ) -> Result<Vec<StatsTotals>, StoreError> {
        health::webhook_totals(self.reads(), ids, since).await
    }

    async fn prune(
        &self,
        cutoff: i64,
        cursor: PruneCursor,
        limit: i64,
    ) -> Result<PruneBatch, StoreError> {
        pruning::prune(self.write().await?, cutoff, cursor, limit).await
    }

    async fn attempt_views(&self, seqs: &[i64]) -> Result<Vec<AttemptView>, StoreError> {
        if seqs.is_empty() {
            return Ok(Vec::new());
        }
        self.attempts_by_seq(seqs).await
    }

    async fn refresh_statistics(&self) -> Result<(), StoreError> {
        self.analyze().await
    }
}

/// Where a replay or a prune pass resumes: after this (received_at, seq).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PruneCursor {
    /// Receive time of the last event handled.
    pub received_at: i64,
    /// Its seq.
    pub seq: i64,
}

/// Strings as a JSON array parameter.
pub(crate) fn json_list<T: serde::Serialize>(items: &[T]) -> Result<String, StoreError> {
    serde_json::to_string(items).map_err(|source| StoreError::Corrupt {
        table: "deliveries",
        source,
    })
}
