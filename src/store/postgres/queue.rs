//! The delivery queue on PostgreSQL.
//!
//! Claiming is one `UPDATE … FROM (SELECT … FOR UPDATE SKIP LOCKED) RETURNING` statement:
//! replicas skip each other's rows instead of waiting on them, and two claimers can never
//! take the same row. A claim moves `next_attempt_at` to the lease expiry, so an abandoned
//! lease is simply due again when it runs out.

use async_trait::async_trait;
use sqlx::{Postgres, Transaction};

use super::{PgBackend, TAIL_CHANNEL, notify_on_commit};
use crate::store::sql::{ATTEMPT_COLUMNS, DELIVERY_COLUMNS, Dialect};
use crate::store::{
    AttemptRecord, Claim, ClaimRow, ClaimedDelivery, DeliveryRecord, Finished, Lease, NewDelivery,
    Queue, QueueStats, StoreError,
};
use crate::store::{batch, intake};

/// Inserts pending deliveries, due at `now`, in one statement inside a transaction.
/// Rows keep the slice's order, so `seq` follows event order.
pub(in crate::store) async fn insert_deliveries(
    tx: &mut Transaction<'static, Postgres>,
    deliveries: &[NewDelivery],
    now: i64,
) -> Result<(), StoreError> {
    if deliveries.is_empty() {
        return Ok(());
    }
    let sql = intake::deliveries_insert(Dialect::Postgres, intake::unleased_rows(deliveries), now);
    sqlx::query_with(&sql.text, sql.arguments::<Postgres>()?)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[async_trait]
impl Queue for PgBackend {
    async fn enqueue(&self, deliveries: &[NewDelivery], now: i64) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        insert_deliveries(&mut tx, deliveries, now).await?;
        notify_on_commit(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn claim_due(&self, claim: &Claim<'_>) -> Result<Vec<ClaimedDelivery>, StoreError> {
        let lease_id = crate::ids::new_id("lease");
        let until = claim.now + claim.lease.as_millis() as i64;
        let rows: Vec<ClaimRow> = sqlx::query_as(
            "WITH due AS ( \
               SELECT d.seq FROM deliveries d \
               WHERE d.status = 'pending' AND d.next_attempt_at <= $4 \
                 AND d.webhook_id <> ALL($5) \
                 AND (d.ordering_key IS NULL OR NOT EXISTS ( \
                   SELECT 1 FROM deliveries p \
                   WHERE p.ordering_key = d.ordering_key AND p.status = 'pending' AND p.seq < d.seq)) \
               ORDER BY d.next_attempt_at LIMIT $6 \
               FOR UPDATE SKIP LOCKED) \
             UPDATE deliveries d SET lease_id = $1, lease_owner = $2, lease_until = $3, next_attempt_at = $3, updated_at = $4 \
             FROM due WHERE d.seq = due.seq \
             RETURNING d.id, d.event_id, d.webhook_id, d.attempts, d.retry_base, d.namespace, \
               d.ordering_key, d.created_at, (SELECT e.body FROM events e WHERE e.id = d.event_id) AS event_body",
        )
        .bind(&lease_id)
        .bind(claim.owner)
        .bind(until)
        .bind(claim.now)
        .bind(claim.skip_webhooks)
        .bind(claim.limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| row.into_claimed(&lease_id, None))
            .collect())
    }

    async fn extend_leases(&self, leases: &[Lease], until: i64) -> Result<u64, StoreError> {
        let ids: Vec<&str> = leases.iter().map(|l| l.delivery_id.as_str()).collect();
        let lease_ids: Vec<&str> = leases.iter().map(|l| l.lease_id.as_str()).collect();
        let done = sqlx::query(
            "UPDATE deliveries d SET lease_until = $3, next_attempt_at = $3 \
             FROM unnest($1::text[], $2::text[]) AS l(id, lease_id) \
             WHERE d.id = l.id AND d.lease_id = l.lease_id AND d.status = 'pending'",
        )
        .bind(&ids)
        .bind(&lease_ids)
        .bind(until)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn finish(&self, results: &[Finished], now: i64) -> Result<u64, StoreError> {
        if results.is_empty() {
            return Ok(0);
        }
        let rows = batch::result_rows(results, now)?;
        let mut tx = self.pool.begin().await?;
        // The live tail of other replicas learns which attempts to read, once this commits.
        sqlx::query(&format!(
            "WITH inserted AS ({} RETURNING seq) \
             SELECT pg_notify('{TAIL_CHANNEL}', CAST($2 AS TEXT) || ':' || string_agg(CAST(seq AS TEXT), ',')) FROM inserted",
            batch::insert_attempts_sql(Dialect::Postgres)
        ))
        .bind(rows.attempts)
        .bind(&self.instance)
        .execute(&mut *tx)
        .await?;
        let held = sqlx::query(&batch::finish_deliveries_sql(Dialect::Postgres))
            .bind(rows.updates)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query(&batch::upsert_health_sql(Dialect::Postgres))
            .bind(rows.health)
            .execute(&mut *tx)
            .await?;
        sqlx::query(&batch::upsert_stats_sql(Dialect::Postgres))
            .bind(rows.stats)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(held)
    }

    async fn release(&self, leases: &[Lease], now: i64) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut released = 0;
        for lease in leases {
            let done = sqlx::query(
                "UPDATE deliveries SET lease_id = NULL, lease_owner = NULL, lease_until = NULL, next_attempt_at = $3, updated_at = $3 \
                 WHERE id = $1 AND lease_id = $2 AND status = 'pending'",
            )
            .bind(&lease.delivery_id)
            .bind(&lease.lease_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            released += done.rows_affected();
        }
        if released > 0 {
            notify_on_commit(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(released)
    }

    async fn reclaim_expired(&self, now: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE deliveries SET lease_id = NULL, lease_owner = NULL, lease_until = NULL \
             WHERE status = 'pending' AND lease_until IS NOT NULL AND lease_until <= $1",
        )
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn get_delivery(&self, id: &str) -> Result<Option<DeliveryRecord>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries d WHERE d.id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn deliveries_for_event(
        &self,
        event_id: &str,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries d WHERE d.event_id = $1 ORDER BY d.seq"
        ))
        .bind(event_id)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn attempts(&self, delivery_id: &str) -> Result<Vec<AttemptRecord>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {ATTEMPT_COLUMNS} FROM attempts a WHERE a.delivery_id = $1 ORDER BY a.number, a.started_at"
        ))
        .bind(delivery_id)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn queue_stats(&self, now: i64) -> Result<QueueStats, StoreError> {
        let (pending, due, succeeded, failed, oldest): (i64, i64, i64, i64, Option<i64>) = sqlx::query_as(
            "SELECT \
               COUNT(*) FILTER (WHERE status = 'pending'), \
               COUNT(*) FILTER (WHERE status = 'pending' AND next_attempt_at <= $1 AND lease_id IS NULL), \
               COUNT(*) FILTER (WHERE status = 'succeeded'), \
               COUNT(*) FILTER (WHERE status = 'failed'), \
               MIN(CASE WHEN status = 'pending' AND next_attempt_at <= $1 AND lease_id IS NULL THEN next_attempt_at END) \
             FROM deliveries",
        )
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        let unfanned_events: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE NOT fanned_out")
                .fetch_one(&self.pool)
                .await?;
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
