//! Rows for set-based statements: many rows in one JSON parameter.
//!
//! Both backends turn a JSON array into rows inside SQL (SQLite `json_each`, PostgreSQL
//! `jsonb_to_recordset`), so a batch of events, deliveries or results costs one statement
//! instead of one per row. The field names here are the column names the SQL reads.

use serde_json::{Value, json};

use super::{Finished, NewDelivery, StoreError, last_error, next_state_columns};
use crate::event::Event;

fn encode(value: &Value, table: &'static str) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|source| StoreError::Corrupt { table, source })
}

/// Event rows, as a JSON array.
pub(crate) fn event_rows(batches: &[&[Event]]) -> Result<String, StoreError> {
    let mut rows = Vec::new();
    for event in batches.iter().flat_map(|b| b.iter()) {
        let body = serde_json::to_string(event).map_err(|source| StoreError::Corrupt {
            table: "events",
            source,
        })?;
        rows.push(json!({
            "id": event.id,
            "source": event.source,
            "registry_event_id": event.registry_event_id,
            "type": event.kind.as_str(),
            "repository": event.repository,
            "tag": event.tag,
            "digest": event.digest,
            "body": body,
            "received_at": event.received_at,
        }));
    }
    encode(&Value::Array(rows), "events")
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

/// Delivery rows, as a JSON array.
pub(crate) fn delivery_rows(deliveries: &[NewDelivery]) -> Result<String, StoreError> {
    let rows: Vec<Value> = deliveries
        .iter()
        .map(|d| {
            json!({
                "id": d.id,
                "event_id": d.event_id,
                "webhook_id": d.webhook_id,
                "ordering_key": d.ordering_key,
            })
        })
        .collect();
    encode(&Value::Array(rows), "deliveries")
}

/// Attempt rows and delivery updates for a batch of results, as two JSON arrays.
pub(crate) fn result_rows(results: &[Finished], now: i64) -> Result<(String, String), StoreError> {
    let mut attempts = Vec::with_capacity(results.len());
    let mut updates = Vec::with_capacity(results.len());
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
        }));
        let (status, next_at) = next_state_columns(r.next, now);
        updates.push(json!({
            "id": r.lease.delivery_id,
            "lease_id": r.lease.lease_id,
            "status": status,
            "next_at": next_at,
            "last_error": last_error(a),
        }));
    }
    Ok((
        encode(&Value::Array(attempts), "attempts")?,
        encode(&Value::Array(updates), "deliveries")?,
    ))
}
