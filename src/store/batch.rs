//! The rows a batch of results writes, and the set-based statements that write them: one
//! statement per table however many results (`sql::Rows` binds the rows). The column
//! names here are the names the SQL reads.

use super::sql::{Column, Columns, Dialect, Rows, Sql};
use super::{Finished, NewDelivery, StoreError, last_error, next_state_columns};
use crate::event::Event;

/// Per-envelope counts, from the ids of the events that were new.
pub(crate) fn count_inserted(
    batches: &[&[Event]],
    inserted_ids: &[String],
) -> Vec<super::InsertedEvents> {
    let inserted: std::collections::HashSet<&str> =
        inserted_ids.iter().map(String::as_str).collect();
    batches
        .iter()
        .map(|events| {
            let new = events
                .iter()
                .filter(|e| inserted.contains(e.id.as_str()))
                .count();
            super::InsertedEvents {
                inserted: new,
                duplicates: events.len() - new,
            }
        })
        .collect()
}

/// The deliveries for stored events (`(seq, body)` rows), in event order. An event whose
/// body no longer decodes gets none, with an error logged, so fan-out cannot wedge on it.
pub(crate) fn plan_stored(pending: &[(i64, String)], plan: &super::Planner) -> Vec<NewDelivery> {
    let mut deliveries = Vec::new();
    for (seq, body) in pending {
        match super::decode_event(body) {
            Ok(event) => deliveries.extend(plan(&event)),
            Err(error) => {
                tracing::error!(seq, %error, "event body does not decode; no deliveries created");
            }
        }
    }
    deliveries
}

/// The rows a batch of results writes: attempts to insert, delivery updates, one health
/// row per webhook (its latest attempt, its latest success), and one stats row per webhook
/// and minute (counts to add).
pub(crate) struct ResultRows {
    pub attempts: Rows,
    pub updates: Rows,
    pub health: Rows,
    pub stats: Rows,
}

/// Upper bounds (ms) of the latency histogram's buckets in `webhook_stats`, each a column
/// `le_<bound>`; a last column `le_inf` counts the slower attempts.
pub(crate) const LATENCY_BOUNDS_MS: [i64; 10] =
    [10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];

/// The `webhook_stats` columns of the latency histogram, in bucket order: `le_<bound>`
/// for each of [`LATENCY_BOUNDS_MS`], then `le_inf`.
pub(crate) fn latency_columns() -> Vec<&'static str> {
    STATS_ROW[5..].iter().map(|(name, _)| *name).collect()
}

/// One webhook's attempts in one minute, as a batch adds them up.
#[derive(Default)]
struct MinuteStats {
    succeeded: i64,
    retried: i64,
    failed: i64,
    latency: [i64; LATENCY_BOUNDS_MS.len() + 1],
}

impl MinuteStats {
    fn add(&mut self, outcome: &str, duration_ms: i64) {
        match outcome {
            "succeeded" => self.succeeded += 1,
            "retry" => self.retried += 1,
            _ => self.failed += 1,
        }
        let bucket = LATENCY_BOUNDS_MS
            .iter()
            .position(|bound| duration_ms <= *bound)
            .unwrap_or(LATENCY_BOUNDS_MS.len());
        self.latency[bucket] += 1;
    }
}

/// Attempt rows, delivery updates and webhook health for a batch of results.
pub(crate) fn result_rows(results: &[Finished], now: i64) -> ResultRows {
    let mut attempts = Rows::new(ATTEMPT_ROW);
    let mut updates = Rows::new(UPDATE_ROW);
    // Per webhook: the result whose attempt started last, and the last success.
    let mut latest: std::collections::BTreeMap<&str, (&Finished, Option<i64>)> =
        std::collections::BTreeMap::new();
    let mut minutes: std::collections::BTreeMap<(&str, i64), MinuteStats> =
        std::collections::BTreeMap::new();
    for r in results {
        let a = &r.attempt;
        attempts.push([
            a.id.as_str().into(),
            a.delivery_id.as_str().into(),
            a.number.into(),
            a.started_at.into(),
            a.duration_ms.into(),
            a.status_code.into(),
            a.response_headers.as_deref().into(),
            a.response_body.as_deref().into(),
            a.error.as_deref().into(),
            a.outcome.as_str().into(),
            a.error_class.as_deref().into(),
            a.reason.as_deref().into(),
            a.next_attempt_at.into(),
        ]);
        let (status, next_at) = next_state_columns(r.next, now);
        updates.push([
            r.lease.delivery_id.as_str().into(),
            r.lease.lease_id.as_str().into(),
            status.into(),
            next_at.into(),
            last_error(a).into(),
            a.status_code.into(),
            a.duration_ms.into(),
            a.started_at.into(),
        ]);
        let success = (a.outcome == "succeeded").then_some(a.started_at);
        let entry = latest
            .entry(r.context.webhook_id.as_str())
            .or_insert((r, success));
        if a.started_at >= entry.0.attempt.started_at {
            entry.0 = r;
        }
        entry.1 = entry.1.max(success);
        let minute = a.started_at - a.started_at.rem_euclid(60_000);
        minutes
            .entry((r.context.webhook_id.as_str(), minute))
            .or_default()
            .add(&a.outcome, a.duration_ms);
    }
    let mut health = Rows::new(HEALTH_ROW);
    for (webhook_id, (r, last_success)) in latest {
        if webhook_id.is_empty() {
            continue;
        }
        health.push([
            webhook_id.into(),
            r.attempt.started_at.into(),
            r.attempt.status_code.into(),
            last_error(&r.attempt).into(),
            r.attempt.outcome.as_str().into(),
            last_success.into(),
            r.circuit.as_str().into(),
            r.circuit.until().into(),
            r.context.concurrency_window.into(),
        ]);
    }
    let mut stats = Rows::new(STATS_ROW);
    for ((webhook_id, minute), m) in minutes {
        if webhook_id.is_empty() {
            continue;
        }
        let [l0, l1, l2, l3, l4, l5, l6, l7, l8, l9, l10] = m.latency;
        stats.push([
            webhook_id.into(),
            minute.into(),
            m.succeeded.into(),
            m.retried.into(),
            m.failed.into(),
            l0.into(),
            l1.into(),
            l2.into(),
            l3.into(),
            l4.into(),
            l5.into(),
            l6.into(),
            l7.into(),
            l8.into(),
            l9.into(),
            l10.into(),
        ]);
    }
    ResultRows {
        attempts,
        updates,
        health,
        stats,
    }
}

const ATTEMPT_ROW: Columns = &[
    ("id", Column::Text),
    ("delivery_id", Column::Text),
    ("number", Column::Int),
    ("started_at", Column::Int),
    ("duration_ms", Column::Int),
    ("status_code", Column::Int),
    ("response_headers", Column::Text),
    ("response_body", Column::Text),
    ("error", Column::Text),
    ("outcome", Column::Text),
    ("error_class", Column::Text),
    ("reason", Column::Text),
    ("next_attempt_at", Column::Int),
];

/// `INSERT` of the attempts of [`ResultRows::attempts`], bound as `table`.
pub(crate) fn insert_attempts_sql(table: &str) -> String {
    let columns: Vec<&str> = ATTEMPT_ROW.iter().map(|(name, _)| *name).collect();
    let columns = columns.join(", ");
    format!("INSERT INTO attempts ({columns}) SELECT {columns} FROM {table} AS r")
}

const UPDATE_ROW: Columns = &[
    ("id", Column::Text),
    ("lease_id", Column::Text),
    ("status", Column::Text),
    ("next_at", Column::Int),
    ("last_error", Column::Text),
    ("last_status_code", Column::Int),
    ("last_duration_ms", Column::Int),
    ("last_attempt_at", Column::Int),
];

/// `UPDATE` moving each delivery of [`ResultRows::updates`] to its next state. Only a
/// delivery whose lease is still ours moves on; a lost lease keeps its state.
pub(crate) fn finish_deliveries_sql(
    dialect: Dialect,
    updates: Rows,
    now: i64,
) -> Result<Sql, StoreError> {
    let mut sql = Sql::new("");
    let rows = sql.rows(dialect, updates)?;
    let now = sql.bind(now);
    sql.push(&format!(
        "UPDATE deliveries SET status = r.status, next_attempt_at = r.next_at, \
           attempts = deliveries.attempts + 1, last_error = r.last_error, \
           last_status_code = r.last_status_code, last_duration_ms = r.last_duration_ms, \
           last_attempt_at = r.last_attempt_at, lease_id = NULL, lease_owner = NULL, \
           lease_until = NULL, updated_at = {now} \
         FROM {rows} AS r WHERE deliveries.id = r.id AND deliveries.lease_id = r.lease_id"
    ));
    Ok(sql)
}

const HEALTH_ROW: Columns = &[
    ("webhook_id", Column::Text),
    ("last_attempt_at", Column::Int),
    ("last_status_code", Column::Int),
    ("last_error", Column::Text),
    ("last_outcome", Column::Text),
    ("last_success_at", Column::Int),
    ("circuit", Column::Text),
    ("circuit_until", Column::Int),
    ("concurrency_window", Column::Int),
];

/// Upsert of [`ResultRows::health`] (`$1`): each webhook's latest attempt wins, and its
/// last success only moves forward. Rows go in webhook order, so replicas writing the same
/// webhooks lock them in the same order.
pub(crate) fn upsert_health_sql(dialect: Dialect, health: Rows) -> Result<Sql, StoreError> {
    let mut sql = Sql::new("");
    let rows = sql.rows(dialect, health)?;
    let newer = "excluded.last_attempt_at >= webhook_health.last_attempt_at";
    let latest = |column: &str| {
        format!(
            "{column} = CASE WHEN {newer} THEN excluded.{column} ELSE webhook_health.{column} END"
        )
    };
    let assignments = [
        latest("last_status_code"),
        latest("last_error"),
        latest("last_outcome"),
        latest("circuit"),
        latest("circuit_until"),
        // A result that sent nothing has no window to report: keep the last one.
        format!(
            "concurrency_window = CASE WHEN {newer} AND excluded.concurrency_window IS NOT NULL \
             THEN excluded.concurrency_window ELSE webhook_health.concurrency_window END"
        ),
        latest("last_attempt_at"), // every right-hand side reads the row as it was
    ];
    sql.push(&format!(
        "INSERT INTO webhook_health (webhook_id, last_attempt_at, last_status_code, last_error, \
           last_outcome, last_success_at, circuit, circuit_until, concurrency_window) \
         SELECT r.webhook_id, r.last_attempt_at, r.last_status_code, r.last_error, r.last_outcome, \
           r.last_success_at, r.circuit, r.circuit_until, r.concurrency_window \
         FROM {rows} AS r WHERE true ORDER BY r.webhook_id \
         ON CONFLICT (webhook_id) DO UPDATE SET \
           last_success_at = CASE WHEN excluded.last_success_at IS NOT NULL AND \
             (webhook_health.last_success_at IS NULL OR excluded.last_success_at > webhook_health.last_success_at) \
             THEN excluded.last_success_at ELSE webhook_health.last_success_at END, {}",
        assignments.join(", ")
    ));
    Ok(sql)
}

const STATS_ROW: Columns = &[
    ("webhook_id", Column::Text),
    ("minute", Column::Int),
    ("succeeded", Column::Int),
    ("retried", Column::Int),
    ("failed", Column::Int),
    ("le_10", Column::Int),
    ("le_25", Column::Int),
    ("le_50", Column::Int),
    ("le_100", Column::Int),
    ("le_250", Column::Int),
    ("le_500", Column::Int),
    ("le_1000", Column::Int),
    ("le_2500", Column::Int),
    ("le_5000", Column::Int),
    ("le_10000", Column::Int),
    ("le_inf", Column::Int),
];

/// Upsert of [`ResultRows::stats`]: adds each row's counts to its webhook's minute.
/// Rows go in (webhook, minute) order, so replicas lock them in the same order.
pub(crate) fn upsert_stats_sql(dialect: Dialect, stats: Rows) -> Result<Sql, StoreError> {
    let mut sql = Sql::new("");
    let rows = sql.rows(dialect, stats)?;
    let columns: Vec<&str> = STATS_ROW.iter().map(|(name, _)| *name).collect();
    let counts: Vec<String> = columns[2..]
        .iter()
        .map(|c| format!("{c} = webhook_stats.{c} + excluded.{c}"))
        .collect();
    sql.push(&format!(
        "INSERT INTO webhook_stats ({columns}) SELECT {selected} FROM {rows} AS r WHERE true \
         ORDER BY r.webhook_id, r.minute \
         ON CONFLICT (webhook_id, minute) DO UPDATE SET {counts}",
        columns = columns.join(", "),
        selected = columns
            .iter()
            .map(|c| format!("r.{c}"))
            .collect::<Vec<_>>()
            .join(", "),
        counts = counts.join(", "),
    ));
    Ok(sql)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stats_row_has_a_latency_column_per_bucket() {
        let expected: Vec<String> = LATENCY_BOUNDS_MS
            .iter()
            .map(|b| format!("le_{b}"))
            .chain(std::iter::once("le_inf".to_owned()))
            .collect();
        assert_eq!(latency_columns(), expected);
    }
}
