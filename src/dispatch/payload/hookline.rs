//! hookline's own format, version 1: every field of the normalised event, flat, with a
//! ready `image` reference. Described by docs/schema/hookline-v1.schema.json; fields are
//! only ever added within version 1 (receivers must ignore unknown fields), never
//! renamed, retyped or removed. A field the event has no value for is `null`.
//! `enrichment` is what the registry said about the image (`crate::registry`): null unless
//! the event's source has a registry URL.

use serde_json::{Value, json};

use super::{event_time_text, image_reference, rfc3339};
use crate::event::{Event, EventType};

/// The body.
pub(super) fn render(e: &Event) -> Value {
    // A ping, a whole-repository delete or a notice names no image a deploy tool could use.
    let image = match e.kind {
        EventType::Ping | EventType::RepositoryDeleted => None,
        kind if kind.is_notice() => None,
        _ => Some(image_reference(e)),
    };
    json!({
        "version": "1",
        "id": e.id,
        "type": e.kind.as_str(),
        "time": event_time_text(e),
        "registry": e.registry_host,
        "repository": e.repository,
        "tag": e.tag,
        "digest": e.digest,
        "previous_digest": e.previous_digest,
        "changed": e.changed,
        "enrichment": e.enrichment,
        "image": image,
        "media_type": e.media_type,
        "size": e.size,
        "references": e.references.iter().map(|r| json!({
            "digest": r.digest, "media_type": r.media_type, "size": r.size
        })).collect::<Vec<_>>(),
        "from_repository": e.from_repository,
        "actor": e.actor,
        "source": e.source,
        "request": {
            "id": e.request_id,
            "method": e.request_method,
            "useragent": e.request_useragent,
        },
        "received_at": rfc3339(e.received_at),
        "notice": e.notice,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::payload::tests::event;

    #[test]
    fn has_a_ready_image_reference_and_every_field() {
        let v = render(&event());
        assert_eq!(v["version"], "1");
        assert_eq!(v["type"], "image.pushed");
        assert_eq!(
            v["image"],
            "registry.example:5000/acme/tools/app:1.4@sha256:abc"
        );
        assert_eq!(v["time"], "2026-11-25T01:16:56.986524926Z");
        assert_eq!(v["received_at"], "2025-11-24T16:00:00.123Z");
        assert_eq!(v["registry"], "registry.example:5000");
        assert_eq!(v["actor"], "alice");
        assert_eq!(v["size"], 10);
        assert!(v["from_repository"].is_null());
    }

    #[test]
    fn enrichment_is_null_unless_the_event_has_one() {
        use crate::registry::{Enrichment, Reason};
        let mut e = event();
        assert!(render(&e)["enrichment"].is_null());
        e.enrichment = Some(Enrichment::Unavailable {
            reason: Reason::Timeout,
        });
        assert_eq!(
            render(&e)["enrichment"],
            serde_json::json!({"status": "unavailable", "reason": "timeout"})
        );
    }

    #[test]
    fn pings_name_no_image() {
        let mut e = event();
        e.kind = EventType::Ping;
        assert!(render(&e)["image"].is_null());
    }
}
