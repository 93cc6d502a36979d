//! Rows for set-based statements: many rows in one JSON parameter.
//!
//! Both backends turn a JSON array into rows inside SQL (SQLite `json_each`, PostgreSQL
//! `jsonb_to_recordset`), so a batch of events, deliveries or results costs one statement
//! instead of one per row. The field names here are the column names the SQL reads.

use serde_json::{Value, json};

use super::sql::{Column, Dialect};
use super::{Finished, NewDelivery, StoreError, last_error, next_state_columns};
use crate::event::Event;

fn encode(value: &Value, table: &'static str) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|source| StoreError::Corrupt { table, source })
}

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

/// The rows a batch of results writes, each a JSON array: attempts to insert, delivery
/// updates, one health row per webhook (its latest attempt, its latest success), and one
/// stats row per webhook and minute (counts to add).
pub(crate) struct ResultRows {
    pub attempts: String,
    pub updates: String,
    pub health: String,
    pub stats: String,
}

/// Upper bounds (ms) of the latency histogram's buckets in `webhook_stats`, each a column
/// `le_<bound>`; a last column `le_inf` counts the slower attempts.
pub(crate) const LATENCY_BOUNDS_MS: [i64; 10] =
    [10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];

/// The `webhook_stats` columns of the latency histogram, in bucket order.
pub(crate) fn latency_columns() -> Vec<String> {
    LATENCY_BOUNDS_MS
        .iter()
        .map(|b| format!("le_{b}"))
        .chain(std::iter::once("le_inf".to_owned()))
        .collect()
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
pub(crate) fn result_rows(results: &[Finished], now: i64) -> Result<ResultRows, StoreError> {
    let mut attempts = Vec::with_capacity(results.len());
    let mut updates = Vec::with_capacity(results.len());
    // Per webhook: the result whose attempt started last, and the last success.
    let mut latest: std::collections::BTreeMap<&str, (&Finished, Option<i64>)> =
        std::collections::BTreeMap::new();
    let mut minutes: std::collections::BTreeMap<(&str, i64), MinuteStats> =
        std::collections::BTreeMap::new();
    for r in results {
        let a = &r.attempt;
        attempts.push(json!({
            "id": a.id,
            "delivery_id": a.delivery_id,
            "number": a.number,
            "started_at": a.started_at,
            "duration_ms": a.duration_ms,
            "status_code": a.status_code,
            "response_headers": a.response_headers,
            "response_body": a.response_body,
            "error": a.error,
            "outcome": a.outcome,
            "error_class": a.error_class,
            "reason": a.reason,
            "next_attempt_at": a.next_attempt_at,
        }));
        let (status, next_at) = next_state_columns(r.next, now);
        updates.push(json!({
            "id": r.lease.delivery_id,
            "lease_id": r.lease.lease_id,
            "status": status,
            "next_at": next_at,
            "last_error": last_error(a),
            "last_status_code": a.status_code,
            "last_duration_ms": a.duration_ms,
            "last_attempt_at": a.started_at,
        }));
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
    let health: Vec<Value> = latest
        .into_iter()
        .filter(|(webhook_id, _)| !webhook_id.is_empty())
        .map(|(webhook_id, (r, last_success))| {
            json!({
                "webhook_id": webhook_id,
                "last_attempt_at": r.attempt.started_at,
                "last_status_code": r.attempt.status_code,
                "last_error": last_error(&r.attempt),
                "last_outcome": r.attempt.outcome,
                "last_success_at": last_success,
                "circuit": r.circuit.as_str(),
                "circuit_until": r.circuit.until(),
                "concurrency_window": r.context.concurrency_window,
            })
        })
        .collect();
    let columns = latency_columns();
    let stats: Vec<Value> = minutes
        .into_iter()
        .filter(|((webhook_id, _), _)| !webhook_id.is_empty())
        .map(|((webhook_id, minute), m)| {
            let mut row = serde_json::Map::new();
            row.insert("webhook_id".into(), json!(webhook_id));
            row.insert("minute".into(), json!(minute));
            row.insert("succeeded".into(), json!(m.succeeded));
            row.insert("retried".into(), json!(m.retried));
            row.insert("failed".into(), json!(m.failed));
            for (column, count) in columns.iter().zip(m.latency) {
                row.insert(column.clone(), json!(count));
            }
            Value::Object(row)
        })
        .collect();
    Ok(ResultRows {
        attempts: encode(&Value::Array(attempts), "attempts")?,
        updates: encode(&Value::Array(updates), "deliveries")?,
        health: encode(&Value::Array(health), "webhook_health")?,
        stats: encode(&Value::Array(stats), "webhook_stats")?,
    })
}

const ATTEMPT_ROW: [(&str, Column); 13] = [
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

/// `INSERT` of the attempts of [`ResultRows::attempts`] (parameter `$1`).
pub(crate) fn insert_attempts_sql(dialect: Dialect) -> String {
    let columns: Vec<&str> = ATTEMPT_ROW.iter().map(|(name, _)| *name).collect();
    let columns = columns.join(", ");
    format!(
        "INSERT INTO attempts ({columns}) SELECT {columns} FROM {} AS r",
        dialect.json_rows("$1", &ATTEMPT_ROW)
    )
}

/// The columns of a JSON row, from words: `name` is text, `name:int` an integer.
fn columns(words: &'static str) -> Vec<(&'static str, Column)> {
    words
        .split_whitespace()
        .map(|word| match word.strip_suffix(":int") {
            Some(name) => (name, Column::Int),
            None => (word, Column::Text),
        })
        .collect()
}

/// `UPDATE` moving each delivery of [`ResultRows::updates`] (`$1`; `$2` is now) to its
/// next state. Only a delivery whose lease is still ours moves on; a lost lease keeps its state.
pub(crate) fn finish_deliveries_sql(dialect: Dialect) -> String {
    let rows = dialect.json_rows(
        "$1",
        &columns(
            "id lease_id status next_at:int last_error last_status_code:int \
             last_duration_ms:int last_attempt_at:int",
        ),
    );
    format!(
        "UPDATE deliveries SET status = r.status, next_attempt_at = r.next_at, \
           attempts = deliveries.attempts + 1, last_error = r.last_error, \
           last_status_code = r.last_status_code, last_duration_ms = r.last_duration_ms, \
           last_attempt_at = r.last_attempt_at, lease_id = NULL, lease_owner = NULL, \
           lease_until = NULL, updated_at = $2 \
         FROM {rows} AS r WHERE deliveries.id = r.id AND deliveries.lease_id = r.lease_id"
    )
}

/// Upsert of [`ResultRows::health`] (`$1`): each webhook's latest attempt wins, and its
/// last success only moves forward. Rows go in webhook order, so replicas writing the same
/// webhooks lock them in the same order.
pub(crate) fn upsert_health_sql(dialect: Dialect) -> String {
    let rows = dialect.json_rows(
        "$1",
        &columns(
            "webhook_id last_attempt_at:int last_status_code:int last_error last_outcome \
             last_success_at:int circuit circuit_until:int concurrency_window:int",
        ),
    );
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
    format!(
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
    )
}

/// Upsert of [`ResultRows::stats`] (`$1`): adds each row's counts to its webhook's minute.
/// Rows go in (webhook, minute) order, so replicas lock them in the same order.
pub(crate) fn upsert_stats_sql(dialect: Dialect) -> String {
    let latency = latency_columns();
    let mut row: Vec<(&str, Column)> = vec![
        ("webhook_id", Column::Text),
        ("minute", Column::Int),
        ("succeeded", Column::Int),
        ("retried", Column::Int),
        ("failed", Column::Int),
    ];
    row.extend(latency.iter().map(|c| (c.as_str(), Column::Int)));
    let columns: Vec<&str> = row.iter().map(|(name, _)| *name).collect();
    let counts: Vec<String> = columns[2..]
        .iter()
        .map(|c| format!("{c} = webhook_stats.{c} + excluded.{c}"))
        .collect();
    format!(
        "INSERT INTO webhook_stats ({columns}) SELECT {selected} FROM {rows} AS r WHERE true \
         ORDER BY r.webhook_id, r.minute \
         ON CONFLICT (webhook_id, minute) DO UPDATE SET {counts}",
        columns = columns.join(", "),
        selected = columns
            .iter()
            .map(|c| format!("r.{c}"))
            .collect::<Vec<_>>()
            .join(", "),
        rows = dialect.json_rows("$1", &row),
        counts = counts.join(", "),
    )
}
