//! Events as received and their fan-out into deliveries, written once for both databases
//! over `sql.rs`'s handles (see `log.rs`'s `LogStore`).
//!
//! Storing what ingest commits is `intake.rs`; this file reads events back, stores a test
//! ping already fanned out, and fans out what ingest left unfanned. Fan-out takes the
//! oldest unfanned events in a write transaction: on PostgreSQL `FOR UPDATE SKIP LOCKED`,
//! so replicas fan out disjoint batches; SQLite's single writer is exclusive already.
//! Work created is announced with `Tx::announce_work` (PostgreSQL `NOTIFY`).

use async_trait::async_trait;

use super::log::LogStore;
use super::sql::{Dialect, Sql};
use super::{
    Events, FanOutNow, FanOutReport, NewDelivery, Planner, StoreError, Stored, batch, decode_event,
    intake, now_ms,
};
use crate::event::Event;

fn encode<T: serde::Serialize + ?Sized>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|source| StoreError::Corrupt {
        table: "events",
        source,
    })
}

#[async_trait]
impl<B: LogStore> Events for B {
    async fn store_events(
        &self,
        batches: &[&[Event]],
        fan_out: Option<&FanOutNow<'_>>,
    ) -> Result<Stored, StoreError> {
        intake::store(self.write().await?, batches, fan_out, now_ms()).await
    }

    async fn get_events(&self, ids: &[String]) -> Result<Vec<Event>, StoreError> {
        let mut sql = Sql::new("");
        let ids = sql.bind(encode(ids)?);
        let ids = self.reads().dialect().text_list(&ids);
        sql.push(&format!(
            "SELECT body FROM events WHERE id IN {ids} ORDER BY seq"
        ));
        let bodies: Vec<(String,)> = self.reads().fetch_all(&sql).await?;
        bodies.iter().map(|(b,)| decode_event(b)).collect()
    }

    async fn recent_events(&self, limit: i64) -> Result<Vec<Event>, StoreError> {
        let sql = Sql::new("SELECT body FROM events ORDER BY seq DESC LIMIT $1").arg(limit);
        let bodies: Vec<(String,)> = self.reads().fetch_all(&sql).await?;
        bodies.iter().map(|(b,)| decode_event(b)).collect()
    }

    async fn insert_fanned_out(
        &self,
        event: &Event,
        deliveries: &[NewDelivery],
        now: i64,
    ) -> Result<(), StoreError> {
        let sql = Sql::new(
            "INSERT INTO events (id, source, registry_event_id, type, repository, tag, digest, body, received_at, fanned_out) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, TRUE)",
        )
        .arg(event.id.as_str())
        .arg(event.source.as_str())
        .arg(event.registry_event_id.as_str())
        .arg(event.kind.as_str())
        .arg(event.repository.as_str())
        .arg(event.tag.as_deref())
        .arg(event.digest.as_deref())
        .arg(encode(event)?)
        .arg(event.received_at);
        let mut tx = self.write().await?;
        tx.execute(&sql).await?;
        tx.insert_deliveries(deliveries, now).await?;
        tx.announce_work().await?;
        tx.commit().await
    }

    async fn fan_out(
        &self,
        limit: i64,
        now: i64,
        webhooks_revision: i64,
        plan: &Planner,
    ) -> Result<FanOutReport, StoreError> {
        let mut tx = self.write().await?;
        // Fan-outs take turns: on PostgreSQL a second one waits for the rows the first
        // holds (not `SKIP LOCKED`), then skips what it fanned out. Were it to fan out the
        // newer events past them and commit first, an ordered lane's newer delivery could
        // be claimed and sent before the older one existed. SQLite's writer is exclusive.
        let lock = match tx.dialect() {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE",
        };
        let pending = Sql::new(format!(
            "SELECT seq, body FROM events WHERE NOT fanned_out ORDER BY seq LIMIT $1{lock}"
        ))
        .arg(limit);
        let pending: Vec<(i64, String)> = tx.fetch_all(&pending).await?;
        if pending.is_empty() {
            return Ok(FanOutReport::default());
        }
        // Read after taking the events: every webhook committed before them is counted.
        let revision = Sql::new("SELECT value FROM store_meta WHERE key = 'webhooks_revision'");
        let (revision,): (i64,) = tx.fetch_one(&revision).await?;
        if revision != webhooks_revision {
            return Ok(FanOutReport {
                stale: true,
                ..FanOutReport::default()
            });
        }
        let deliveries = batch::plan_stored(&pending, plan);
        tx.insert_deliveries(&deliveries, now).await?;
        let mut sql = Sql::new("");
        let seqs: Vec<i64> = pending.iter().map(|p| p.0).collect();
        let seqs = sql.bind(encode(&seqs)?);
        let seqs = tx.dialect().int_list(&seqs);
        sql.push(&format!(
            "UPDATE events SET fanned_out = TRUE WHERE seq IN {seqs}"
        ));
        tx.execute(&sql).await?;
        if !deliveries.is_empty() {
            tx.announce_work().await?;
        }
        tx.commit().await?;
        Ok(FanOutReport {
            events: pending.len(),
            deliveries: deliveries.len(),
            ..FanOutReport::default()
        })
    }
}
