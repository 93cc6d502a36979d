//! The registry's own notification envelope, `{"events":[<the original event>]}`, as
//! `application/vnd.docker.distribution.events.v1+json`: receivers written for the
//! registry's notifications (Keel `/v1/webhooks/registry`, Jenkins' registry webhook)
//! move behind hookline unchanged. The event object is the one the registry sent, kept
//! verbatim at ingest; one event per envelope, since each delivery is one event.

use serde_json::{Value, json};

use crate::event::Event;

/// The registry's envelope media type (distribution 2.x; 3.x receivers accept it too).
pub(super) const CONTENT_TYPE: &str = "application/vnd.docker.distribution.events.v1+json";

/// The body.
pub(super) fn render(e: &Event) -> Value {
    json!({ "events": [e.original] })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::payload::tests::event;

    #[test]
    fn is_the_original_envelope() {
        assert_eq!(
            render(&event()),
            json!({"events": [{"id": "r1", "action": "push"}]})
        );
    }
}
