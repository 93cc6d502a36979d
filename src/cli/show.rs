//! How the CLI shows a webhook: an aligned `key  value` block for people, a JSON object
//! with names (not enum numbers) for scripts. A `Webhook` message has no secret to show.

use serde_json::{Value, json};

use super::Output;
use crate::api::convert::event_type_from_proto;
use crate::api::proto;

pub(super) fn event_names(values: &[i32]) -> Vec<String> {
    values
        .iter()
        .map(|v| event_type_from_proto(*v).map_or_else(|| v.to_string(), |t| t.as_str().to_owned()))
        .collect()
}

fn format_name(value: i32) -> &'static str {
    crate::api::convert::format_from_proto(value).unwrap_or("unknown")
}

pub(super) fn time_text(t: Option<&prost_types::Timestamp>) -> String {
    t.map(|t| crate::dispatch::payload::rfc3339(t.seconds * 1000 + i64::from(t.nanos / 1_000_000)))
        .unwrap_or_default()
}

/// A webhook as JSON for scripts: names, not enum numbers. Never has a secret to show.
pub(super) fn webhook_json(w: &proto::Webhook) -> Value {
    let mut headers: Vec<(&String, &String)> = w.headers.iter().collect();
    headers.sort();
    let options = w.payload_options.unwrap_or_default();
    json!({
        "id": w.id,
        "namespace": w.namespace,
        "name": w.name,
        "url": w.url,
        "event_types": event_names(&w.event_types),
        "repositories": w.repositories,
        "tags": w.tags,
        "format": format_name(w.payload_format),
        "headers": headers
            .into_iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect::<serde_json::Map<String, Value>>(),
        "signature_header": (!w.signature_header.is_empty()).then_some(&w.signature_header),
        "payload_options": {
            "include_host_in_repo_name": options.include_host_in_repo_name,
            "harbor_deletes": options.harbor_deletes,
        },
        "ordered": w.ordered,
        "enabled": w.enabled.unwrap_or(true),
        "disabled_reason": (!w.disabled_reason.is_empty()).then_some(&w.disabled_reason),
        "created_at": time_text(w.created_at.as_ref()),
        "updated_at": time_text(w.updated_at.as_ref()),
    })
}

pub(super) fn print_webhook(w: &proto::Webhook, output: Output) {
    if output == Output::Json {
        println!("{}", webhook_json(w));
        return;
    }
    let list = |v: &[String]| {
        if v.is_empty() {
            "(any)".to_owned()
        } else {
            v.join(", ")
        }
    };
    let events = event_names(&w.event_types);
    let mut headers: Vec<String> = w.headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    headers.sort();
    let rows = [
        ("id", w.id.clone()),
        ("namespace", w.namespace.clone().unwrap_or_default()),
        ("name", w.name.clone()),
        ("url", w.url.clone()),
        (
            "event types",
            if events.is_empty() {
                "(every non-blob type)".into()
            } else {
                events.join(", ")
            },
        ),
        ("repositories", list(&w.repositories)),
        ("tags", list(&w.tags)),
        ("format", format_name(w.payload_format).into()),
        (
            "headers",
            if headers.is_empty() {
                "(none)".into()
            } else {
                headers.join("; ")
            },
        ),
        (
            "hmac header",
            if w.signature_header.is_empty() {
                "(none)".into()
            } else {
                w.signature_header.clone()
            },
        ),
        ("format options", options_text(w)),
        ("ordered", w.ordered.to_string()),
        ("enabled", w.enabled.unwrap_or(true).to_string()),
        ("disabled reason", w.disabled_reason.clone()),
        ("created", time_text(w.created_at.as_ref())),
        ("updated", time_text(w.updated_at.as_ref())),
    ];
    for (key, value) in rows {
        if (key == "disabled reason" || key == "format options") && value.is_empty() {
            continue;
        }
        println!("{key:<16}{value}");
    }
}

/// The payload options that differ from the defaults, for people ("" when none do).
fn options_text(w: &proto::Webhook) -> String {
    let o = w.payload_options.unwrap_or_default();
    let mut parts = Vec::new();
    if let Some(include) = o.include_host_in_repo_name {
        parts.push(format!("include_host_in_repo_name={include}"));
    }
    if o.harbor_deletes {
        parts.push("harbor_deletes=true".to_owned());
    }
    parts.join(", ")
}
