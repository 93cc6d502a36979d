//! CloudEvents 1.0, structured JSON mode (`application/cloudevents+json`).
//!
//! `type` is `io.hookline.` + the event type (`io.hookline.image.pushed`), `id` is
//! hookline's event id (the same for every webhook and every retry), `source` names the
//! registry, `subject` the image. `data` is flat: string `registry`, `repository`, `tag`,
//! `digest` (empty strings when the event has none), which is what Argo CD Image Updater's
//! CloudEvents webhook reads, plus the rest of hookline's fields.

use serde_json::{Value, json};

use super::{Message, event_time_text, image_reference};
use crate::event::Event;

/// The structured-mode media type.
pub(super) const CONTENT_TYPE: &str = "application/cloudevents+json";

/// The body.
pub(super) fn render(e: &Event) -> Value {
    let mut event = serde_json::Map::new();
    for (name, value) in attributes(e) {
        event.insert(name.to_owned(), Value::String(value));
    }
    event.insert("datacontenttype".into(), super::JSON.into());
    event.insert("data".into(), data(e));
    Value::Object(event)
}

/// The same event in binary content mode (the NATS, AMQP and MQTT protocol bindings):
/// each attribute a header named with the binding's `prefix`, `data` the body, its
/// content type the message's.
pub(super) fn render_binary(e: &Event, prefix: &str) -> Message {
    let headers = attributes(e)
        .into_iter()
        .map(|(name, value)| (format!("{prefix}{name}"), value))
        .collect();
    Message {
        content_type: std::borrow::Cow::Borrowed(super::JSON),
        body: data(e).to_string().into_bytes(),
        headers,
    }
}

/// The context attributes but `datacontenttype`, in the order the spec lists them.
fn attributes(e: &Event) -> [(&'static str, String); 6] {
    [
        ("specversion", "1.0".to_owned()),
        ("id", e.id.clone()),
        ("type", format!("io.hookline.{}", e.kind.as_str())),
        ("source", source(e)),
        ("subject", subject(e)),
        ("time", event_time_text(e)),
    ]
}

/// `data`: flat, what Argo CD Image Updater reads first.
fn data(e: &Event) -> Value {
    json!({
        "registry": e.registry_host.as_deref().unwrap_or_default(),
        "repository": e.repository,
        "tag": e.tag.as_deref().unwrap_or_default(),
        "digest": e.digest.as_deref().unwrap_or_default(),
        "previous_digest": e.previous_digest,
        "changed": e.changed,
        "enrichment": e.enrichment,
        "image": image_reference(e),
        "media_type": e.media_type,
        "size": e.size,
        "actor": e.actor,
        "from_repository": e.from_repository,
        "hookline_source": e.source,
        "notice": e.notice,
    })
}

/// The registry, as an absolute URI: `https://host[:port]`. It identifies the registry
/// (the same for all of its events), it is not a URL to fetch from. Without a host (a
/// registry that did not say, a ping): `urn:hookline:<registry name>`.
fn source(e: &Event) -> String {
    match &e.registry_host {
        Some(host) => format!("https://{host}"),
        None => format!("urn:hookline:{}", e.source),
    }
}

/// `repository:tag`, `repository@digest`, or the repository alone.
fn subject(e: &Event) -> String {
    match (&e.tag, &e.digest) {
        (Some(tag), _) => format!("{}:{tag}", e.repository),
        (None, Some(digest)) => format!("{}@{digest}", e.repository),
        (None, None) => e.repository.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::payload::tests::event;

    #[test]
    fn binary_mode_puts_attributes_in_headers_and_data_in_the_body() {
        let structured = render(&event());
        let binary = render_binary(&event(), "ce-");
        assert_eq!(binary.content_type, "application/json");
        let header = |name: &str| {
            binary
                .headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        for name in ["specversion", "id", "type", "source", "subject", "time"] {
            assert_eq!(
                header(&format!("ce-{name}")),
                structured[name].as_str(),
                "{name} as in structured mode"
            );
        }
        assert_eq!(header("ce-datacontenttype"), None, "it is the content type");
        assert_eq!(binary.headers.len(), 6);
        let data: Value = serde_json::from_slice(&binary.body).expect("json");
        assert_eq!(
            data, structured["data"],
            "the body is the structured event's data"
        );
    }

    #[test]
    fn carries_what_argo_reads() {
        let v = render(&event());
        assert_eq!(v["specversion"], "1.0");
        assert_eq!(v["type"], "io.hookline.image.pushed");
        assert_eq!(v["source"], "https://registry.example:5000");
        assert_eq!(v["subject"], "acme/tools/app:1.4");
        assert_eq!(v["id"], "evt_1");
        assert_eq!(v["data"]["registry"], "registry.example:5000");
        assert_eq!(v["data"]["repository"], "acme/tools/app");
        assert_eq!(v["data"]["tag"], "1.4");
        assert_eq!(v["data"]["digest"], "sha256:abc");
    }

    #[test]
    fn missing_values_are_empty_strings_and_the_source_a_urn() {
        let mut e = event();
        e.tag = None;
        e.registry_host = None;
        let v = render(&e);
        assert_eq!(v["data"]["tag"], "");
        assert_eq!(v["data"]["registry"], "");
        assert_eq!(v["source"], "urn:hookline:default");
        assert_eq!(v["subject"], "acme/tools/app@sha256:abc");
    }
}
