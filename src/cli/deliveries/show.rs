//! How the delivery log is shown: deliveries, one delivery with its attempts and the last
//! response, a redelivery's result, and the live tail's lines; a table or lines for
//! people, JSON (names, never enum numbers) for scripts.
//!
//! `get` shows the last response's headers and body, which is what someone debugging a
//! receiver needs first. `events.rs` shows an event's deliveries with the same table.

use serde_json::{Value, json};

use crate::api::proto;
use crate::cli::Output;
use crate::cli::show::{
    age_text, code_text, duration_text, target_text, text_json, time_json, time_text,
};

/// Characters of a response body shown in the table view (JSON has all the server kept).
const BODY_SHOWN: usize = 2000;

/// A delivery status's name (`retrying`) for tables and JSON.
fn status_name(value: i32) -> &'static str {
    match proto::DeliveryStatus::try_from(value) {
        Ok(proto::DeliveryStatus::Pending) => "pending",
        Ok(proto::DeliveryStatus::Retrying) => "retrying",
        Ok(proto::DeliveryStatus::Succeeded) => "succeeded",
        Ok(proto::DeliveryStatus::Failed) => "failed",
        _ => "unknown",
    }
}

/// A delivery as JSON for scripts.
pub(in crate::cli) fn delivery_json(d: &proto::Delivery) -> Value {
    json!({
        "id": d.id,
        "webhook_id": d.webhook_id,
        "event_id": d.event_id,
        "event_type": text_json(&d.event_type),
        "repository": text_json(&d.repository),
        "tag": text_json(&d.tag),
        "digest": text_json(&d.digest),
        "status": status_name(d.status),
        "attempts": d.attempts,
        "next_attempt_at": time_json(d.next_attempt_at.as_ref()),
        "last_status_code": (d.last_status_code != 0).then_some(d.last_status_code),
        "last_error": text_json(&d.last_error),
        "last_duration_ms": (d.last_attempt_at.is_some()).then_some(d.last_duration_ms),
        "last_attempt_at": time_json(d.last_attempt_at.as_ref()),
        "created_at": time_json(d.created_at.as_ref()),
        "updated_at": time_json(d.updated_at.as_ref()),
    })
}

/// An attempt as JSON for scripts, with the response as the server kept it.
fn attempt_json(a: &proto::Attempt) -> Value {
    let headers: std::collections::BTreeMap<&String, &String> = a.response_headers.iter().collect();
    json!({
        "id": a.id,
        "number": a.number,
        "started_at": time_json(a.started_at.as_ref()),
        "duration_ms": a.duration_ms,
        "status_code": (a.status_code != 0).then_some(a.status_code),
        "outcome": a.outcome,
        "error_class": text_json(&a.error_class),
        "error": text_json(&a.error),
        "reason": text_json(&a.reason),
        "response_headers": headers,
        "response_body": a.response_body,
        "next_attempt_at": time_json(a.next_attempt_at.as_ref()),
    })
}

/// The deliveries table of `deliveries list` and `events get`.
pub(in crate::cli) fn print_deliveries(deliveries: &[proto::Delivery]) {
    println!(
        "{:<40}  {:<35}  {:<40}  {:<9}  {:>4}  {:>8}  {:>8}  AGE",
        "ID", "WEBHOOK", "EVENT", "STATUS", "CODE", "DURATION", "ATTEMPTS"
    );
    for d in deliveries {
        println!(
            "{:<40}  {:<35}  {:<40}  {:<9}  {:>4}  {:>8}  {:>8}  {}",
            d.id,
            d.webhook_id,
            event_text(d),
            status_name(d.status),
            code_text(d.last_status_code),
            if d.last_attempt_at.is_some() {
                duration_text(d.last_duration_ms)
            } else {
                "-".to_owned()
            },
            d.attempts,
            age_text(d.created_at.as_ref()),
        );
    }
}

/// `image.pushed acme/app:1.0`, or a note when the event was pruned (retention).
fn event_text(d: &proto::Delivery) -> String {
    if d.event_type.is_empty() {
        "event no longer stored".to_owned()
    } else {
        format!("{} {}", d.event_type, target_text(&d.repository, &d.tag))
    }
}

pub(super) fn print_delivery(d: &proto::Delivery, attempts: &[proto::Attempt], output: Output) {
    if output == Output::Json {
        // `attempts` is the list here (as people read it), so the count gets its own name.
        let mut shown = delivery_json(d);
        shown["attempt_count"] = json!(d.attempts);
        shown["attempts"] = attempts.iter().map(attempt_json).collect();
        println!("{shown}");
        return;
    }
    let rows = [
        ("id", d.id.clone()),
        ("webhook", d.webhook_id.clone()),
        ("event", format!("{} ({})", d.event_id, event_text(d))),
        ("status", status_name(d.status).to_owned()),
        ("attempts", d.attempts.to_string()),
        ("next attempt", time_text(d.next_attempt_at.as_ref())),
        ("last error", d.last_error.clone()),
        ("created", time_text(d.created_at.as_ref())),
        ("updated", time_text(d.updated_at.as_ref())),
    ];
    for (key, value) in rows {
        if !value.is_empty() {
            println!("{key:<16}{value}");
        }
    }
    if attempts.is_empty() {
        println!("\nno attempts yet");
        return;
    }
    println!(
        "\n{:>3}  {:<24}  {:>8}  {:>4}  {:<9}  {:<11}  REASON",
        "#", "STARTED", "DURATION", "CODE", "OUTCOME", "ERROR CLASS"
    );
    for a in attempts {
        println!(
            "{:>3}  {:<24}  {:>8}  {:>4}  {:<9}  {:<11}  {}",
            a.number,
            time_text(a.started_at.as_ref()),
            duration_text(a.duration_ms),
            code_text(a.status_code),
            a.outcome,
            if a.error_class.is_empty() {
                "-"
            } else {
                &a.error_class
            },
            if a.error.is_empty() || a.reason.contains(&a.error) {
                a.reason.clone()
            } else {
                format!("{} ({})", a.reason, a.error)
            },
        );
    }
    if let Some(last) = attempts.last() {
        print_response(last);
    }
}

/// The last attempt's response: headers, then the start of the body.
fn print_response(a: &proto::Attempt) {
    if a.status_code == 0 {
        return;
    }
    println!("\nresponse to attempt {} ({}):", a.number, a.status_code);
    let mut headers: Vec<_> = a.response_headers.iter().collect();
    headers.sort();
    for (name, value) in headers {
        println!("  {name}: {value}");
    }
    if a.response_body.is_empty() {
        println!("  (empty body)");
        return;
    }
    let shown: String = a.response_body.chars().take(BODY_SHOWN).collect();
    println!();
    for line in shown.lines() {
        println!("  {line}");
    }
    if shown.len() < a.response_body.len() {
        println!(
            "  … {} more bytes (--output json shows them)",
            a.response_body.len() - shown.len()
        );
    }
}

/// A redelivery's answer: what happened, and when an open circuit lets it out.
pub(super) fn print_redelivery(
    id: &str,
    response: &proto::RedeliverDeliveryResponse,
    output: Output,
) {
    use proto::redeliver_delivery_response::Result as R;
    let (result, text) = match R::try_from(response.result) {
        Ok(R::Queued) => (
            "queued",
            "queued again, due now with a fresh retry schedule",
        ),
        Ok(R::Expedited) => ("expedited", "expedited: a retry was due later; now"),
        Ok(R::InFlight) => ("in_flight", "in flight right now: nothing changed"),
        _ => ("unknown", "the server answered with an unknown result"),
    };
    let held = response.held_until.as_ref();
    match output {
        Output::Json => println!(
            "{}",
            json!({
                "id": id,
                "result": result,
                "held_until": time_json(held),
                "delivery": response.delivery.as_ref().map(delivery_json),
            })
        ),
        Output::Table => match held {
            Some(until) => println!(
                "{id}: {text}; but the webhook's circuit is open (its receiver kept failing): it goes out at {}",
                time_text(Some(until))
            ),
            None => println!("{id}: {text}"),
        },
    }
}

pub(super) fn tail_json(m: &proto::WatchDeliveriesResponse) -> Value {
    json!({
        "delivery_id": m.delivery_id,
        "webhook_id": m.webhook_id,
        "event_id": m.event_id,
        "event_type": text_json(&m.event_type),
        "repository": text_json(&m.repository),
        "tag": text_json(&m.tag),
        "delivery_status": status_name(m.delivery_status),
        "attempt": m.attempt.as_ref().map(attempt_json),
    })
}

pub(super) fn tail_text(m: &proto::WatchDeliveriesResponse) -> String {
    let a = m.attempt.clone().unwrap_or_default();
    let mut line = format!(
        "{}  {}  {}  {} {}  {}  {}  {}",
        time_text(a.started_at.as_ref()),
        m.delivery_id,
        m.webhook_id,
        m.event_type,
        target_text(&m.repository, &m.tag),
        a.outcome,
        code_text(a.status_code),
        duration_text(a.duration_ms),
    );
    if a.outcome != "succeeded" && !a.reason.is_empty() {
        line.push_str("  ");
        line.push_str(&a.reason);
    }
    line
}
