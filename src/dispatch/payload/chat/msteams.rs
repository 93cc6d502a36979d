//! Microsoft Teams through a Workflows (Power Automate) webhook: a `message` carrying
//! one Adaptive Card, schema 1.5 (the highest Teams renders): the title, the reference
//! in a monospace block, a fact set, the time, and an "Open" action for the owner's link.
//! The mention is a plain text line above the title: a real Teams @mention needs the
//! member's id, which a webhook owner does not have. Far below Teams' 28 KB per card.

use serde_json::{Value, json};

use super::Summary;

/// The card's content type, as Teams reads it.
const ADAPTIVE_CARD: &str = "application/vnd.microsoft.card.adaptive";

/// The body.
pub(in crate::dispatch::payload) fn render(s: &Summary) -> Value {
    let mut body = Vec::new();
    if let Some(mention) = &s.mention {
        body.push(json!({"type": "TextBlock", "text": mention, "wrap": true}));
    }
    body.push(json!({
        "type": "TextBlock",
        "text": s.title,
        "weight": "Bolder",
        "size": "Medium",
        "wrap": true,
    }));
    if let Some(reference) = &s.reference {
        body.push(json!({
            "type": "TextBlock",
            "text": reference,
            "fontType": "Monospace",
            "wrap": true,
        }));
    }
    if !s.facts.is_empty() {
        let facts: Vec<Value> = s
            .facts
            .iter()
            .map(|f| json!({"title": f.label, "value": f.value}))
            .collect();
        body.push(json!({"type": "FactSet", "facts": facts}));
    }
    body.push(json!({
        "type": "TextBlock",
        "text": format!("hookline · {}", s.time),
        "isSubtle": true,
        "size": "Small",
        "wrap": true,
    }));
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.5",
        "body": body,
    });
    if let Some(link) = &s.link {
        card["actions"] = json!([{"type": "Action.OpenUrl", "title": "Open", "url": link}]);
    }
    json!({
        "type": "message",
        "attachments": [{"contentType": ADAPTIVE_CARD, "content": card}],
    })
}
