//! The delivery queue on SQLite.
//!
//! Claiming is one `UPDATE … WHERE seq IN (SELECT … LIMIT n) RETURNING` statement: SQLite
//! has a single writer, so the statement is atomic and two claimers can never take the
//! same row. A claim moves `next_attempt_at` to the lease expiry, so an abandoned lease is
//! simply due again when it runs out.

use async_trait::async_trait;
use sqlx::{Sqlite, Transaction};

use super::SqliteBackend;
use crate::store::sql::{ATTEMPT_COLUMNS, DELIVERY_COLUMNS, Dialect};
use crate::store::{
    AttemptRecord, Claim, ClaimRow, ClaimedDelivery, DeliveryRecord, Finished, Lease, NewDelivery,
    Queue, QueueStats, StoreError,
};
use crate::store::{batch, intake};

/// Inserts pending deliveries, due at `now`, in one statement inside a write
/// transaction. Rows keep the slice's order, so `seq` follows event order.
pub(in crate::store) async fn insert_deliveries(
    tx: &mut Transaction<'static, Sqlite>,
    deliveries: &[NewDelivery],
    now: i64,
) -> Result<(), StoreError> {
    if deliveries.is_empty() {
        return Ok(());
    }
    let sql = intake::deliveries_insert(Dialect::Sqlite, intake::unleased_rows(deliveries), now);
    sqlx::query_with(&sql.text, sql.arguments::<Sqlite>()?)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[async_trait]
impl Queue for SqliteBackend {
    async fn enqueue(&self, deliveries: &[NewDelivery], now: i64) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        insert_deliveries(&mut tx, deliveries, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn claim_due(&self, claim: &Claim<'_>) -> Result<Vec<ClaimedDelivery>, StoreError> {
        let lease_id = crate::ids::new_id("lease");
        let until = claim.now + claim.lease.as_millis() as i64;
        let skip =
            serde_json::to_string(claim.skip_webhooks).map_err(|source| StoreError::Corrupt {
                table: "deliveries",
                source,
            })?;
        let rows: Vec<ClaimRow> = sqlx::query_as(
            "UPDATE deliveries SET lease_id = ?1, lease_owner = ?2, lease_until = ?3, next_attempt_at = ?3, updated_at = ?4 \
             WHERE seq IN ( \
               SELECT d.seq FROM deliveries d \
               WHERE d.status = 'pending' AND d.next_attempt_at <= ?4 \
                 AND d.webhook_id NOT IN (SELECT value FROM json_each(?5)) \
                 AND (d.ordering_key IS NULL OR NOT EXISTS ( \
                   SELECT 1 FROM deliveries p \
                   WHERE p.ordering_key = d.ordering_key AND p.status = 'pending' AND p.seq < d.seq)) \
               ORDER BY d.next_attempt_at LIMIT ?6) \
             RETURNING id, event_id, webhook_id, attempts, retry_base, namespace, ordering_key, created_at",
        )
        .bind(&lease_id)
        .bind(claim.owner)
        .bind(until)
        .bind(claim.now)
        .bind(skip)
        .bind(claim.limit)
        .fetch_all(&self.writer)
        .await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let event_ids: Vec<&str> = rows.iter().map(|r| r.event_id.as_str()).collect();
        let event_ids =
            serde_json::to_string(&event_ids).map_err(|source| StoreError::Corrupt {
                table: "events",
                source,
            })?;
        let bodies: std::collections::HashMap<String, String> = sqlx::query_as(
            "SELECT id, body FROM events WHERE id IN (SELECT value FROM json_each(?1))",
        )
        .bind(event_ids)
        .fetch_all(&self.reader)
        .await?
        .into_iter()
        .collect();
        Ok(rows
            .into_iter()
            .map(|row| {
                let body = bodies.get(&row.event_id).cloned();
                row.into_claimed(&lease_id, body)
            })
            .collect())
    }

    async fn extend_leases(&self, leases: &[Lease], until: i64) -> Result<u64, StoreError> {
        let mut tx = self.write().await?;
        let mut held = 0;
        for lease in leases {
            let done = sqlx::query(
                "UPDATE deliveries SET lease_until = ?3, next_attempt_at = ?3 \
                 WHERE id = ?1 AND lease_id = ?2 AND status = 'pending'",
            )
            .bind(&lease.delivery_id)
            .bind(&lease.lease_id)
            .bind(until)
            .execute(&mut *tx)
            .await?;
            held += done.rows_affected();
        }
        tx.commit().await?;
        Ok(held)
    }

    async fn finish(&self, results: &[Finished], now: i64) -> Result<u64, StoreError> {
        if results.is_empty() {
            return Ok(0);
        }
        let rows = batch::result_rows(results, now)?;
        let mut tx = self.write().await?;
        sqlx::query(&batch::insert_attempts_sql(Dialect::Sqlite))
            .bind(rows.attempts)
            .execute(&mut *tx)
            .await?;
        let held = sqlx::query(&batch::finish_deliveries_sql(Dialect::Sqlite))
            .bind(rows.updates)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query(&batch::upsert_health_sql(Dialect::Sqlite))
            .bind(rows.health)
            .execute(&mut *tx)
            .await?;
        sqlx::query(&batch::upsert_stats_sql(Dialect::Sqlite))
            .bind(rows.stats)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(held)
    }

    async fn release(&self, leases: &[Lease], now: i64) -> Result<u64, StoreError> {
        let mut tx = self.write().await?;
        let mut released = 0;
        for lease in leases {
            let done = sqlx::query(
                "UPDATE deliveries SET lease_id = NULL, lease_owner = NULL, lease_until = NULL, next_attempt_at = ?3, updated_at = ?3 \
                 WHERE id = ?1 AND lease_id = ?2 AND status = 'pending'",
            )
            .bind(&lease.delivery_id)
            .bind(&lease.lease_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            released += done.rows_affected();
        }
        tx.commit().await?;
        Ok(released)
    }

    async fn reclaim_expired(&self, now: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE deliveries SET lease_id = NULL, lease_owner = NULL, lease_until = NULL \
             WHERE status = 'pending' AND lease_until IS NOT NULL AND lease_until <= ?1",
        )
        .bind(now)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected())
    }

    async fn get_delivery(&self, id: &str) -> Result<Option<DeliveryRecord>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries d WHERE d.id = ?1"
        ))
        .bind(id)
        .fetch_optional(&self.reader)
        .await?)
    }

    async fn deliveries_for_event(
        &self,
        event_id: &str,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries d WHERE d.event_id = ?1 ORDER BY d.seq"
        ))
        .bind(event_id)
        .fetch_all(&self.reader)
        .await?)
    }

    async fn attempts(&self, delivery_id: &str) -> Result<Vec<AttemptRecord>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {ATTEMPT_COLUMNS} FROM attempts a WHERE a.delivery_id = ?1 ORDER BY a.number, a.started_at"
        ))
        .bind(delivery_id)
        .fetch_all(&self.reader)
        .await?)
    }

    async fn queue_stats(&self, now: i64) -> Result<QueueStats, StoreError> {
        let (pending, due, succeeded, failed, oldest): (i64, i64, i64, i64, Option<i64>) = sqlx::query_as(
            "SELECT \
               COALESCE(SUM(status = 'pending'), 0), \
               COALESCE(SUM(status = 'pending' AND next_attempt_at <= ?1 AND lease_id IS NULL), 0), \
               COALESCE(SUM(status = 'succeeded'), 0), \
               COALESCE(SUM(status = 'failed'), 0), \
               MIN(CASE WHEN status = 'pending' AND next_attempt_at <= ?1 AND lease_id IS NULL THEN next_attempt_at END) \
             FROM deliveries",
        )
        .bind(now)
        .fetch_one(&self.reader)
        .await?;
        let unfanned_events: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE NOT fanned_out")
                .fetch_one(&self.reader)
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
