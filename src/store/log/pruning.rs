//! Pruning: one batch of retention's deletes (`store/retention.rs` runs the passes). Old
//! events go in receive order with their finished deliveries and attempts; the deletes
//! re-check the status on the rows they touch, so a pending delivery and its event stay.
//! With each batch go the bookkeeping rows past their time: replay records, stats minutes
//! and the health of deleted webhooks. On PostgreSQL one replica prunes at a time.

use super::PruneCursor;
use super::health::STATS_KEPT_MS;
use crate::store::StoreError;
use crate::store::sql::{Dialect, Sql, Tx};

/// See [`Log::prune`](super::Log::prune).
pub(super) async fn prune(
    mut tx: Tx,
    cutoff: i64,
    cursor: PruneCursor,
    limit: i64,
) -> Result<PruneBatch, StoreError> {
    if !tx.take_prune_turn().await? {
        // Another replica prunes; this one skips the round.
        return Ok(PruneBatch {
            cursor,
            ..PruneBatch::default()
        });
    }
    let rows: Vec<PruneRow> = tx.fetch_all(&prune_scan_sql(cutoff, cursor, limit)).await?;
    let (ids, next) = prunable(&rows, cursor);
    let [attempts, deliveries, events] = prune_delete_sql(tx.dialect(), &ids);
    let batch = PruneBatch {
        scanned: rows.len(),
        cursor: next,
        attempts: tx.execute(&attempts).await?,
        deliveries: tx.execute(&deliveries).await?,
        events: tx.execute(&events).await?,
    };
    let stats_cutoff = cutoff.max(crate::store::now_ms() - STATS_KEPT_MS);
    for bookkeeping in prune_bookkeeping_sql(cutoff, stats_cutoff) {
        tx.execute(&bookkeeping).await?;
    }
    tx.commit().await?;
    Ok(batch)
}

/// What one prune batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PruneBatch {
    /// Events looked at.
    pub scanned: usize,
    /// Rows deleted.
    pub events: u64,
    /// Rows deleted.
    pub deliveries: u64,
    /// Rows deleted.
    pub attempts: u64,
    /// Where the next batch resumes.
    pub cursor: PruneCursor,
}

/// One candidate of a prune batch: an old event, and whether a delivery of it is pending.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct PruneRow {
    pub seq: i64,
    pub id: String,
    pub received_at: i64,
    pub busy: bool,
}

/// `SELECT` of a prune batch's candidates, in receive order after the cursor.
pub(crate) fn prune_scan_sql(cutoff: i64, cursor: PruneCursor, limit: i64) -> Sql {
    let mut sql = Sql::new(
        "SELECT e.seq, e.id, e.received_at, \
           EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id AND d.status = 'pending') AS busy \
         FROM events e WHERE e.fanned_out AND e.received_at < ",
    );
    let c = sql.bind(cutoff);
    let at = sql.bind(cursor.received_at);
    let seq = sql.bind(cursor.seq);
    let l = sql.bind(limit);
    sql.push(&format!(
        "{c} AND (e.received_at > {at} OR (e.received_at = {at} AND e.seq > {seq})) \
         ORDER BY e.received_at, e.seq LIMIT {l}"
    ));
    sql
}

/// The three `DELETE`s of a prune batch, for events given as a JSON array of ids:
/// attempts, then deliveries (finished ones only), then events left without deliveries.
/// The conditions are re-checked on the rows, so a delivery made pending meanwhile (a
/// redelivery) stays, and keeps its event.
pub(crate) fn prune_delete_sql(dialect: Dialect, ids_json: &str) -> [Sql; 3] {
    let statement = |text: &dyn Fn(&str) -> String| {
        let mut sql = Sql::new("");
        let p = sql.bind(ids_json);
        let list = dialect.text_list(&p);
        sql.push(&text(&list));
        sql
    };
    [
        statement(&|list| {
            format!(
                "DELETE FROM attempts WHERE delivery_id IN \
                 (SELECT id FROM deliveries WHERE event_id IN {list} AND status <> 'pending')"
            )
        }),
        statement(&|list| {
            format!("DELETE FROM deliveries WHERE event_id IN {list} AND status <> 'pending'")
        }),
        statement(&|list| {
            format!(
                "DELETE FROM events WHERE id IN {list} \
                 AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = events.id)"
            )
        }),
    ]
}

/// The `DELETE`s of bookkeeping rows: replay records older than `cutoff`, stats minutes
/// older than `stats_cutoff` (those of a webhook deleted while an attempt of its was being
/// recorded go with them), and the health of such webhooks.
pub(crate) fn prune_bookkeeping_sql(cutoff: i64, stats_cutoff: i64) -> [Sql; 3] {
    let mut replays = Sql::new("DELETE FROM replays WHERE created_at < ");
    let p = replays.bind(cutoff);
    replays.push(&p);
    let mut stats = Sql::new("DELETE FROM webhook_stats WHERE minute < ");
    let p = stats.bind(stats_cutoff);
    stats.push(&p);
    let health = Sql::new(
        "DELETE FROM webhook_health WHERE NOT EXISTS \
         (SELECT 1 FROM webhooks w WHERE w.id = webhook_health.webhook_id)",
    );
    [replays, stats, health]
}

/// The ids of a prune batch that can go (no pending delivery), as a JSON array, and
/// where the next batch resumes.
pub(crate) fn prunable(rows: &[PruneRow], cursor: PruneCursor) -> (String, PruneCursor) {
    let ids: Vec<&str> = rows
        .iter()
        .filter(|r| !r.busy)
        .map(|r| r.id.as_str())
        .collect();
    let next = rows.last().map_or(cursor, |r| PruneCursor {
        received_at: r.received_at,
        seq: r.seq,
    });
    (
        serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into()),
        next,
    )
}
