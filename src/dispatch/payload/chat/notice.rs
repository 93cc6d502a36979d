//! What a chat message says about an owner notice: which webhook, what happened, why.

use super::{Fact, Summary, TITLE_MAX, Tone, VALUE_MAX, clip};
use crate::event::{Event, EventType, Notice};
use crate::store::PayloadOptions;

/// The summary of notice `n` carried by `e`.
pub(super) fn summary(e: &Event, n: &Notice, options: &PayloadOptions) -> Summary {
    let name = if n.webhook_name.is_empty() {
        n.webhook_id.as_str()
    } else {
        n.webhook_name.as_str()
    };
    let title = match e.kind {
        EventType::WebhookFailing => format!("Webhook {name} is failing"),
        EventType::WebhookCircuitOpened => {
            format!("Webhook {name}: circuit opened, deliveries held for the cool-down")
        }
        EventType::WebhookDisabled => format!("Webhook {name} was disabled"),
        EventType::WebhookRecovered => format!("Webhook {name} delivers again"),
        EventType::DeliveryFailed if n.deliveries > 1 => {
            format!("{} deliveries of webhook {name} gave up", n.deliveries)
        }
        _ => format!("A delivery of webhook {name} gave up"),
    };
    let mut facts = Vec::new();
    let mut add = |label, value: &str, code| {
        facts.push(Fact {
            label,
            value: clip(value, VALUE_MAX),
            code,
        })
    };
    if !e.repository.is_empty() {
        add("Namespace", &e.repository, false);
    }
    add("Webhook", &n.webhook_id, true);
    if let Some(reason) = &n.reason {
        add("Why", reason, false);
    }
    if let Some(since) = &n.failing_since {
        add("Failing since", since, false);
    }
    if !n.delivery_ids.is_empty() {
        add("Deliveries", &n.delivery_ids.join(", "), true);
    }
    Summary {
        title: clip(&title, TITLE_MAX),
        reference: None,
        facts,
        link: None,
        mention: options
            .chat_mention
            .as_deref()
            .filter(|m| !m.trim().is_empty())
            .map(|m| clip(m, super::MENTION_MAX)),
        time: super::event_time_text(e),
        tone: if e.kind == EventType::WebhookRecovered {
            Tone::Good
        } else {
            Tone::Removed
        },
    }
}
