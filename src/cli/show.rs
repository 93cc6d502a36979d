//! How the CLI shows things: a webhook as an aligned `key  value` block for people and a
//! JSON object with names (not enum numbers) for scripts, the webhooks table, and the small time, duration
//! and age texts every client command shares. A `Webhook` message has no secret to show.

use serde_json::{Value, json};

use super::Output;
use crate::api::proto;
use crate::present::format_name;
pub(super) use crate::present::{
    age_text, code_text, duration_text, event_names, parse_time, target_text, time_text,
};

/// A time as JSON: RFC 3339, or `null` when unset (so scripts can test for it).
pub(super) fn time_json(t: Option<&prost_types::Timestamp>) -> Value {
    t.map_or(Value::Null, |t| Value::String(time_text(Some(t))))
}

/// "" as JSON null, so scripts can test for absence.
pub(super) fn text_json(text: &str) -> Value {
    if text.is_empty() {
        Value::Null
    } else {
        Value::String(text.to_owned())
    }
}

/// A webhook as JSON for scripts: names, not enum numbers. Never has a secret to show.
pub(super) fn webhook_json(w: &proto::Webhook) -> Value {
    let mut headers: Vec<(&String, &String)> = w.headers.iter().collect();
    headers.sort();
    let options = w.payload_options.clone().unwrap_or_default();
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
            "chat_link": (!options.chat_link.is_empty()).then_some(&options.chat_link),
            "chat_mention": (!options.chat_mention.is_empty()).then_some(&options.chat_mention),
            "template": (!options.template.is_empty()).then_some(&options.template),
            "template_content_type": (!options.template_content_type.is_empty())
                .then_some(&options.template_content_type),
        },
        "ordered": w.ordered,
        "max_concurrency": w.max_concurrency,
        "rate_limit": w.rate_limit,
        "client_certificate": (!w.client_certificate.is_empty()).then_some(&w.client_certificate),
        "oauth": w.oauth.as_ref().map(|o| serde_json::json!({
            "token_url": o.token_url,
            "client_id": o.client_id,
            "scopes": o.scopes,
        })),
        "enabled": w.enabled.unwrap_or(true),
        "disabled_reason": (!w.disabled_reason.is_empty()).then_some(&w.disabled_reason),
        "created_at": time_text(w.created_at.as_ref()),
        "updated_at": time_text(w.updated_at.as_ref()),
        "health": w.health.as_ref().map(health_json),
    })
}

fn health_json(h: &proto::WebhookHealth) -> Value {
    json!({
        "state": health_state(Some(h)),
        "last_success_at": time_json(h.last_success_at.as_ref()),
        "failing_since": time_json(h.failing_since.as_ref()),
        "last_attempt_at": time_json(h.last_attempt_at.as_ref()),
        "last_status_code": (h.last_status_code != 0).then_some(h.last_status_code),
        "last_error": h.last_error,
        "last_outcome": h.last_outcome,
        "pending": h.pending,
        "failed": h.failed,
        "circuit": h.circuit,
        "circuit_open_until": time_json(h.circuit_open_until.as_ref()),
        "concurrency_window": (h.concurrency_window != 0).then_some(h.concurrency_window),
    })
}

/// One word for a webhook's health: `ok`, `failing`, `never` (attempted), `circuit open`.
pub(super) fn health_state(h: Option<&proto::WebhookHealth>) -> &'static str {
    match h {
        None => "-",
        Some(h) if h.circuit == "open" => "circuit open",
        Some(h) if h.failing_since.is_some() => "failing",
        Some(h) if h.last_attempt_at.is_none() => "never",
        Some(_) => "ok",
    }
}

/// The health lines of `webhooks get`: what someone debugging a silent receiver asks first.
fn health_rows(h: &proto::WebhookHealth) -> Vec<(&'static str, String)> {
    let health = if h.failing_since.is_some() {
        format!("failing since {}", time_text(h.failing_since.as_ref()))
    } else if h.last_attempt_at.is_none() {
        "never attempted".to_owned()
    } else {
        "ok".to_owned()
    };
    let last_attempt = if h.last_attempt_at.is_none() {
        "-".to_owned()
    } else {
        let result = if h.last_error.is_empty() {
            code_text(h.last_status_code)
        } else {
            h.last_error.clone()
        };
        format!(
            "{} ({}): {result}",
            time_text(h.last_attempt_at.as_ref()),
            h.last_outcome
        )
    };
    let circuit = match &h.circuit_open_until {
        Some(until) if h.circuit == "open" => format!("open until {}", time_text(Some(until))),
        _ => h.circuit.clone(),
    };
    vec![
        ("health", health),
        (
            "last success",
            h.last_success_at
                .as_ref()
                .map_or_else(|| "never".to_owned(), |t| time_text(Some(t))),
        ),
        ("last attempt", last_attempt),
        ("pending", h.pending.to_string()),
        ("failed", h.failed.to_string()),
        ("circuit", circuit),
        (
            "window",
            if h.concurrency_window == 0 {
                "-".to_owned()
            } else {
                format!("{} requests at once", h.concurrency_window)
            },
        ),
    ]
}

/// The webhooks table of `webhooks list`.
pub(super) fn print_webhooks(webhooks: &[proto::Webhook]) {
    println!(
        "{:<35}  {:<16}  {:<24}  {:<8}  {:<12}  {:>7}  {:>6}  {:<24}  URL",
        "ID", "NAMESPACE", "NAME", "ENABLED", "HEALTH", "PENDING", "FAILED", "EVENTS"
    );
    for w in webhooks {
        let events = event_names(&w.event_types);
        let count = |n: Option<i64>| n.map_or_else(|| "-".to_owned(), |n| n.to_string());
        println!(
            "{:<35}  {:<16}  {:<24}  {:<8}  {:<12}  {:>7}  {:>6}  {:<24}  {}",
            w.id,
            w.namespace.as_deref().unwrap_or_default(),
            w.name,
            if w.enabled.unwrap_or(true) {
                "yes"
            } else {
                "no"
            },
            health_state(w.health.as_ref()),
            count(w.health.as_ref().map(|h| h.pending)),
            count(w.health.as_ref().map(|h| h.failed)),
            if events.is_empty() {
                "(default)".to_owned()
            } else {
                events.join(",")
            },
            w.url
        );
    }
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
    let mut rows = vec![
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
        ("limits", limits_text(w)),
        (
            "client certificate",
            if w.client_certificate.is_empty() {
                String::new()
            } else {
                "presented to the receiver (its key is sealed, never shown)".to_owned()
            },
        ),
        (
            "oauth",
            w.oauth
                .as_ref()
                .map(|o| {
                    let scopes = if o.scopes.is_empty() {
                        String::new()
                    } else {
                        format!(", scopes {}", o.scopes.join(" "))
                    };
                    format!(
                        "client {} at {}{scopes} (secret sealed)",
                        o.client_id, o.token_url
                    )
                })
                .unwrap_or_default(),
        ),
        ("enabled", w.enabled.unwrap_or(true).to_string()),
        ("disabled reason", w.disabled_reason.clone()),
        ("created", time_text(w.created_at.as_ref())),
        ("updated", time_text(w.updated_at.as_ref())),
    ];
    rows.extend(w.health.as_ref().map(health_rows).unwrap_or_default());
    for (key, value) in rows {
        if (key == "disabled reason" || key == "format options" || key == "limits")
            && value.is_empty()
        {
            continue;
        }
        println!("{key:<16}{value}");
    }
}

/// The owner's delivery limits, for people ("" when there are none).
fn limits_text(w: &proto::Webhook) -> String {
    let mut parts = Vec::new();
    if let Some(n) = w.max_concurrency {
        parts.push(format!("at most {n} at once"));
    }
    if let Some(rate) = w.rate_limit {
        parts.push(format!("at most {rate}/s"));
    }
    parts.join(", ")
}

/// The payload options that differ from the defaults, for people ("" when none do).
fn options_text(w: &proto::Webhook) -> String {
    let o = w.payload_options.clone().unwrap_or_default();
    let mut parts = Vec::new();
    if let Some(include) = o.include_host_in_repo_name {
        parts.push(format!("include_host_in_repo_name={include}"));
    }
    if o.harbor_deletes {
        parts.push("harbor_deletes=true".to_owned());
    }
    if !o.chat_link.is_empty() {
        parts.push(format!("chat_link={}", o.chat_link));
    }
    if !o.chat_mention.is_empty() {
        parts.push(format!("chat_mention={}", o.chat_mention));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_a_duration_ago_or_rfc3339_and_nothing_else() {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let hour_ago = parse_time("1h").expect("1h").seconds;
        assert!((now - 3600 - hour_ago).abs() <= 2, "{hour_ago} vs {now}");
        let exact = parse_time("2026-11-25T01:00:00Z").expect("rfc3339");
        assert_eq!((exact.seconds, exact.nanos), (1_795_568_400, 0));
        for bad in ["yesterday", "", "2026-11-25", "1 fortnight"] {
            let error = parse_time(bad).expect_err(bad);
            assert!(
                error.contains("`1h`") && error.contains("RFC 3339"),
                "{error}"
            );
        }
    }

    #[test]
    fn short_texts_for_people() {
        assert_eq!(duration_text(12), "12ms");
        assert_eq!(duration_text(1500), "1.5s");
        assert_eq!((code_text(0), code_text(503)), ("-".into(), "503".into()));
        assert_eq!(target_text("acme/app", "1.0"), "acme/app:1.0");
        assert_eq!(target_text("acme/app", ""), "acme/app");
        let ago = |secs: i64| {
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            age_text(Some(&prost_types::Timestamp {
                seconds: now - secs,
                nanos: 0,
            }))
        };
        assert_eq!(
            (ago(5), ago(180), ago(7200), ago(3 * 86400)),
            ("5s".into(), "3m".into(), "2h".into(), "3d".into())
        );
        assert_eq!(age_text(None), "-");
    }

    #[test]
    fn health_is_one_word_in_listings() {
        let t = Some(prost_types::Timestamp::default());
        let ok = proto::WebhookHealth {
            last_attempt_at: t,
            circuit: "closed".into(),
            ..Default::default()
        };
        assert_eq!(health_state(Some(&ok)), "ok");
        let never = proto::WebhookHealth::default();
        assert_eq!(health_state(Some(&never)), "never");
        let failing = proto::WebhookHealth {
            failing_since: t,
            ..ok.clone()
        };
        assert_eq!(health_state(Some(&failing)), "failing");
        let open = proto::WebhookHealth {
            circuit: "open".into(),
            ..failing
        };
        assert_eq!(health_state(Some(&open)), "circuit open");
        assert_eq!(health_json(&never)["last_status_code"], Value::Null);
    }
}
