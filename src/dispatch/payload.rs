//! What a receiver gets: the request body for an event, per payload format.
//!
//! Pure: an [`Event`] in, bytes and a content type out. The body of a delivery is the
//! same on every attempt (only the signature headers change), so receivers can
//! deduplicate on `webhook-id` and compare bodies.

use serde_json::{Value, json};

use crate::event::Event;

/// A rendered body with its content type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// `Content-Type` header value.
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
}

/// Renders `event` in the webhook's `format`. Unknown formats fall back to `hookline`
/// (the API only stores known ones).
pub fn render(format: &str, event: &Event) -> Payload {
    match format {
        "distribution" => Payload {
            content_type: "application/vnd.docker.distribution.events.v1+json",
            body: json!({ "events": [event.original] })
                .to_string()
                .into_bytes(),
        },
        _ => Payload {
            content_type: "application/json",
            body: hookline_v1(event).to_string().into_bytes(),
        },
    }
}

/// hookline's own format, version 1.
fn hookline_v1(e: &Event) -> Value {
    json!({
        "version": "1",
        "id": e.id,
        "type": e.kind.as_str(),
        "time": e.timestamp.clone().unwrap_or_else(|| rfc3339(e.received_at)),
        "repository": e.repository,
        "tag": e.tag,
        "digest": e.digest,
        "media_type": e.media_type,
        "size": e.size,
        "references": e.references.iter().map(|r| json!({
            "digest": r.digest, "media_type": r.media_type, "size": r.size
        })).collect::<Vec<_>>(),
        "actor": e.actor,
        "registry": e.registry_host,
        "image": image_reference(e),
        "source": e.source,
        "request": {
            "id": e.request_id,
            "useragent": e.request_useragent,
        },
        "received_at": rfc3339(e.received_at),
    })
}

/// `registry/repository:tag@digest`, with whatever parts the event has.
pub fn image_reference(e: &Event) -> String {
    let mut image = match &e.registry_host {
        Some(host) => format!("{host}/{}", e.repository),
        None => e.repository.clone(),
    };
    if let Some(tag) = &e.tag {
        image.push(':');
        image.push_str(tag);
    }
    if let Some(digest) = &e.digest {
        image.push('@');
        image.push_str(digest);
    }
    image
}

/// Unix milliseconds as RFC 3339 UTC.
pub fn rfc3339(unix_ms: i64) -> String {
    let nanos = i128::from(unix_ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventType;

    fn event() -> Event {
        Event {
            id: "evt_1".into(),
            source: "default".into(),
            registry_event_id: "r1".into(),
            kind: EventType::ImagePushed,
            repository: "acme/app".into(),
            tag: Some("1.4".into()),
            digest: Some("sha256:abc".into()),
            media_type: None,
            size: Some(10),
            references: vec![],
            url: None,
            from_repository: None,
            actor: None,
            registry_host: Some("registry.example:5000".into()),
            source_addr: None,
            source_instance_id: None,
            request_id: None,
            request_useragent: None,
            request_addr: None,
            request_method: None,
            timestamp: None,
            received_at: 1_764_000_000_123,
            original: json!({"id": "r1", "action": "push"}),
        }
    }

    #[test]
    fn hookline_format_has_a_ready_image_reference() {
        let p = render("hookline", &event());
        let v: Value = serde_json::from_slice(&p.body).expect("json");
        assert_eq!(v["version"], "1");
        assert_eq!(v["type"], "image.pushed");
        assert_eq!(v["image"], "registry.example:5000/acme/app:1.4@sha256:abc");
        assert_eq!(v["time"], "2025-11-24T16:00:00.123Z");
        assert_eq!(p.content_type, "application/json");
    }

    #[test]
    fn distribution_format_is_the_original_envelope() {
        let p = render("distribution", &event());
        let v: Value = serde_json::from_slice(&p.body).expect("json");
        assert_eq!(v, json!({"events": [{"id": "r1", "action": "push"}]}));
    }

    #[test]
    fn the_same_event_renders_the_same_bytes() {
        assert_eq!(render("hookline", &event()), render("hookline", &event()));
    }
}
