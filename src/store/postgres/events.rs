//! Events and fan-out on PostgreSQL.
//!
//! Fan-out locks the events it takes with `SKIP LOCKED`, so replicas fan out disjoint batches.

use async_trait::async_trait;

use super::PgBackend;
use super::notify_on_commit;
use super::queue::insert_deliveries;
use crate::event::Event;
use crate::store::batch;
use crate::store::sql::Tx;
use crate::store::{
    Events, FanOutNow, FanOutReport, NewDelivery, Planner, StoreError, Stored, decode_event,
    intake, now_ms,
};

#[async_trait]
impl Events for PgBackend {
    async fn store_events(
        &self,
        batches: &[&[Event]],
        fan_out: Option<&FanOutNow<'_>>,
    ) -> Result<Stored, StoreError> {
        intake::store(
            Tx::Postgres(self.pool.begin().await?),
            batches,
            fan_out,
            now_ms(),
        )
        .await
    }

    async fn get_events(&self, ids: &[String]) -> Result<Vec<Event>, StoreError> {
        let bodies: Vec<String> =
            sqlx::query_scalar("SELECT body FROM events WHERE id = ANY($1) ORDER BY seq")
                .bind(ids)
                .fetch_all(&self.pool)
                .await?;
        bodies.iter().map(|b| decode_event(b)).collect()
    }

    async fn recent_events(&self, limit: i64) -> Result<Vec<Event>, StoreError> {
        let bodies: Vec<String> =
            sqlx::query_scalar("SELECT body FROM events ORDER BY seq DESC LIMIT $1")
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
        bodies.iter().map(|b| decode_event(b)).collect()
    }

    async fn insert_fanned_out(
        &self,
        event: &Event,
        deliveries: &[NewDelivery],
        now: i64,
    ) -> Result<(), StoreError> {
        let body = serde_json::to_string(event).map_err(|source| StoreError::Corrupt {
            table: "events",
            source,
        })?;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO events (id, source, registry_event_id, type, repository, tag, digest, body, received_at, fanned_out) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, TRUE)",
        )
        .bind(&event.id)
        .bind(&event.source)
        .bind(&event.registry_event_id)
        .bind(event.kind.as_str())
        .bind(&event.repository)
        .bind(&event.tag)
        .bind(&event.digest)
        .bind(body)
        .bind(event.received_at)
        .execute(&mut *tx)
        .await?;
        insert_deliveries(&mut tx, deliveries, now).await?;
        notify_on_commit(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn fan_out(
        &self,
        limit: i64,
        now: i64,
        webhooks_revision: i64,
        plan: &Planner,
    ) -> Result<FanOutReport, StoreError> {
        let mut tx = self.pool.begin().await?;
        let pending: Vec<(i64, String)> =
            sqlx::query_as("SELECT seq, body FROM events WHERE NOT fanned_out ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED")
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
        if pending.is_empty() {
            return Ok(FanOutReport::default());
        }
        // Read after taking the events: every webhook committed before them is counted.
        let revision: i64 =
            sqlx::query_scalar("SELECT value FROM store_meta WHERE key = 'webhooks_revision'")
                .fetch_one(&mut *tx)
                .await?;
        if revision != webhooks_revision {
            return Ok(FanOutReport {
                stale: true,
                ..FanOutReport::default()
            });
        }
        let mut report = FanOutReport {
            events: pending.len(),
            ..FanOutReport::default()
        };
        let deliveries = batch::plan_stored(&pending, plan);
        insert_deliveries(&mut tx, &deliveries, now).await?;
        report.deliveries = deliveries.len();
        let seqs: Vec<i64> = pending.iter().map(|p| p.0).collect();
        sqlx::query("UPDATE events SET fanned_out = TRUE WHERE seq = ANY($1)")
            .bind(seqs)
            .execute(&mut *tx)
            .await?;
        if report.deliveries > 0 {
            notify_on_commit(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(report)
    }
}
