//! The delivery queue, written once for both databases over `sql.rs`'s handles: enqueue,
//! renew (`extend_leases`), release, finish, and the queue's reads.
//!
//! What differs per backend is [`QueueStore`]: the claim (PostgreSQL one `UPDATE … FROM
//! (SELECT … FOR UPDATE SKIP LOCKED)`, SQLite one `UPDATE … WHERE seq IN (SELECT …)` on its
//! single writer) and the insert of a batch's attempts (PostgreSQL also announces their
//! seqs to other replicas' tails). A claim moves `next_attempt_at` to the lease expiry, so
//! an abandoned lease is simply due again when it runs out; renewing, releasing and
//! finishing all require the matching `lease_id`. Batches are one statement each
//! (`batch.rs`).

use async_trait::async_trait;

use super::log::LogStore;
use super::sql::{ATTEMPT_COLUMNS, Column, Columns, DELIVERY_COLUMNS, Dialect, Rows, Sql, Tx};
use super::{
    AttemptRecord, Claim, ClaimedDelivery, DeliveryRecord, Finished, Lease, NewDelivery, Only,
    Queue, QueueStats, StoreError, batch,
};

/// What a claim returns: the deliveries it leased.
pub(crate) type Claimed = Result<Vec<ClaimedDelivery>, StoreError>;

/// The queue steps that differ per backend, beside [`LogStore`]'s handles.
#[async_trait]
pub(crate) trait QueueStore: LogStore {
    /// Leases up to `claim.limit` due deliveries (see [`Queue::claim_due`]) under
    /// `lease_id` until `until`, in one statement, with their event bodies.
    async fn claim(&self, claim: &Claim<'_>, lease_id: &str, until: i64) -> Claimed;
    /// Inserts a batch's attempts (`batch::ResultRows::attempts`) in `tx`.
    async fn insert_attempts(&self, tx: &mut Tx, attempts: Rows) -> Result<(), StoreError>;
}

/// What a claim may take, for `FROM deliveries d`: pending, due at `$4`, and for an
/// ordering key no earlier pending delivery with the same key. Both backends' claims bind
/// `$1` lease id, `$2` owner, `$3` lease end, `$4` now, `$5` webhooks to skip, `$6` limit.
pub(crate) const CLAIMABLE: &str = "d.status = 'pending' AND d.next_attempt_at <= $4 \
     AND (d.ordering_key IS NULL OR NOT EXISTS ( \
       SELECT 1 FROM deliveries p \
       WHERE p.ordering_key = d.ordering_key AND p.status = 'pending' AND p.seq < d.seq))";

/// A claim's condition for [`Claim::only`]: the claimer serves the webhook (`$2`, see
/// `serving.rs`), or the webhook is disabled or deleted (nobody serves those, and any
/// dispatcher ends their deliveries unsent). Measured on PostgreSQL (BENCHMARKS.md, (15)):
/// this shape costs the least of those tried; without the `OR`, or as a scalar subquery,
/// or as `= ANY` of the served ids, the prepared statement's plan gathered and sorted every
/// pending row of the served webhooks, at a third to a half of the rate.
pub(crate) fn only(claim: &Claim<'_>) -> &'static str {
    match claim.only {
        Only::Any => "",
        Only::Served => {
            " AND (EXISTS ( \
               SELECT 1 FROM webhook_dispatchers w WHERE w.webhook_id = d.webhook_id AND w.dispatcher = $2) \
             OR NOT EXISTS (SELECT 1 FROM webhooks w WHERE w.id = d.webhook_id AND w.enabled))"
        }
    }
}

/// The statement that gives back, due at `$2` (now), the pending leases of every owner but
/// `$1` (the caller's own) that `dead` (a condition on `lease_owner`; none: every other
/// owner) says is dead. Each backend's `Liveness` decides what dead means and may bind more.
pub(crate) fn release_dead_sql(me: &str, now: i64, dead: Option<&str>) -> Sql {
    let dead = dead.map(|c| format!(" AND {c}")).unwrap_or_default();
    Sql::new(format!(
        "UPDATE deliveries SET lease_id = NULL, lease_owner = NULL, lease_until = NULL, \
           next_attempt_at = $2, updated_at = $2 \
         WHERE status = 'pending' AND lease_owner IS NOT NULL AND lease_owner <> $1{dead}"
    ))
    .arg(me)
    .arg(now)
}

/// Runs a [`release_dead_sql`] statement and announces the work it gave back.
pub(crate) async fn release_dead<B: LogStore>(backend: &B, sql: &Sql) -> Result<u64, StoreError> {
    let mut tx = backend.write().await?;
    let released = tx.execute(sql).await?;
    if released > 0 {
        tx.announce_work().await?;
    }
    tx.commit().await?;
    Ok(released)
}

/// `UPDATE` of the pending deliveries `leases` still hold (id and lease id both match),
/// setting `set`, given the placeholder bound to `at`.
fn update_held(
    dialect: Dialect,
    leases: &[Lease],
    at: i64,
    set: impl FnOnce(&str) -> String,
) -> Result<Sql, StoreError> {
    const LEASE: Columns = &[("id", Column::Text), ("lease_id", Column::Text)];
    let mut rows = Rows::new(LEASE);
    for lease in leases {
        rows.push([
            lease.delivery_id.as_str().into(),
            lease.lease_id.as_str().into(),
        ]);
    }
    let mut sql = Sql::new("");
    let held = sql.rows(dialect, rows)?;
    let at = sql.bind(at);
    sql.push(&format!(
        "UPDATE deliveries SET {} FROM {held} AS l \
         WHERE deliveries.id = l.id AND deliveries.lease_id = l.lease_id \
           AND deliveries.status = 'pending'",
        set(&at)
    ));
    Ok(sql)
}

#[async_trait]
impl<B: QueueStore> Queue for B {
    async fn enqueue(&self, deliveries: &[NewDelivery], now: i64) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        tx.insert_deliveries(deliveries, now).await?;
        tx.announce_work().await?;
        tx.commit().await
    }

    async fn claim_due(&self, claim: &Claim<'_>) -> Result<Vec<ClaimedDelivery>, StoreError> {
        let lease_id = crate::ids::new_id("lease");
        let until = claim.now + claim.lease.as_millis() as i64;
        self.claim(claim, &lease_id, until).await
    }

    async fn extend_leases(&self, leases: &[Lease], until: i64) -> Result<u64, StoreError> {
        if leases.is_empty() {
            return Ok(0);
        }
        let tx = self.write().await?;
        let sql = update_held(tx.dialect(), leases, until, |until| {
            format!("lease_until = {until}, next_attempt_at = {until}")
        })?;
        tx.execute_alone(&sql).await
    }

    async fn finish(&self, results: &[Finished], now: i64) -> Result<u64, StoreError> {
        if results.is_empty() {
            return Ok(0);
        }
        let rows = batch::result_rows(results, now);
        let mut tx = self.write().await?;
        let dialect = tx.dialect();
        self.insert_attempts(&mut tx, rows.attempts).await?;
        let held = tx
            .execute(&batch::finish_deliveries_sql(dialect, rows.updates, now)?)
            .await?;
        tx.execute(&batch::upsert_health_sql(dialect, rows.health)?)
            .await?;
        tx.execute(&batch::upsert_stats_sql(dialect, rows.stats)?)
            .await?;
        tx.commit().await?;
        Ok(held)
    }

    async fn release(&self, leases: &[Lease], now: i64) -> Result<u64, StoreError> {
        if leases.is_empty() {
            return Ok(0);
        }
        let mut tx = self.write().await?;
        let sql = update_held(tx.dialect(), leases, now, |now| {
            format!(
                "lease_id = NULL, lease_owner = NULL, lease_until = NULL, \
                 next_attempt_at = {now}, updated_at = {now}"
            )
        })?;
        let released = tx.execute(&sql).await?;
        if released > 0 {
            tx.announce_work().await?;
        }
        tx.commit().await?;
        Ok(released)
    }

    async fn reclaim_expired(&self, now: i64) -> Result<u64, StoreError> {
        let sql = Sql::new(
            "UPDATE deliveries SET lease_id = NULL, lease_owner = NULL, lease_until = NULL \
             WHERE status = 'pending' AND lease_until IS NOT NULL AND lease_until <= $1",
        )
        .arg(now);
        self.write().await?.execute_alone(&sql).await
    }

    async fn get_delivery(&self, id: &str) -> Result<Option<DeliveryRecord>, StoreError> {
        let sql = Sql::new(format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries d WHERE d.id = $1"
        ))
        .arg(id);
        self.reads().fetch_optional(&sql).await
    }

    async fn deliveries_for_event(
        &self,
        event_id: &str,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let sql = Sql::new(format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries d WHERE d.event_id = $1 ORDER BY d.seq"
        ))
        .arg(event_id);
        self.reads().fetch_all(&sql).await
    }

    async fn attempts(&self, delivery_id: &str) -> Result<Vec<AttemptRecord>, StoreError> {
        let sql = Sql::new(format!(
            "SELECT {ATTEMPT_COLUMNS} FROM attempts a WHERE a.delivery_id = $1 ORDER BY a.number, a.started_at"
        ))
        .arg(delivery_id);
        self.reads().fetch_all(&sql).await
    }

    async fn queue_stats(&self, now: i64) -> Result<QueueStats, StoreError> {
        let due = "status = 'pending' AND next_attempt_at <= $1 AND lease_id IS NULL";
        let counts = Sql::new(format!(
            "SELECT \
               COUNT(CASE WHEN status = 'pending' THEN 1 END), \
               COUNT(CASE WHEN {due} THEN 1 END), \
               COUNT(CASE WHEN status = 'succeeded' THEN 1 END), \
               COUNT(CASE WHEN status = 'failed' THEN 1 END), \
               MIN(CASE WHEN {due} THEN next_attempt_at END) \
             FROM deliveries"
        ))
        .arg(now);
        let (pending, due, succeeded, failed, oldest): (i64, i64, i64, i64, Option<i64>) =
            self.reads().fetch_one(&counts).await?;
        let unfanned = Sql::new("SELECT COUNT(*) FROM events WHERE NOT fanned_out");
        let (unfanned_events,): (i64,) = self.reads().fetch_one(&unfanned).await?;
        Ok(QueueStats {
            pending,
            due,
            succeeded,
            failed,
            unfanned_events,
            oldest_due_age_ms: oldest.map(|t| (now - t).max(0)).unwrap_or(0),
        })
    }
}
