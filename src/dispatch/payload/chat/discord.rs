//! Discord webhooks: one embed (title, link, the reference in a code block, inline
//! fields, the event's time), with the owner's mention as `content` so it notifies.
//! Discord's limits (2,000 characters of content, a 256-character title, 25 fields of
//! 1,024, 6,000 characters across embeds) hold by the caps of `Summary`.

use serde_json::{Value, json};

use super::{Summary, code_block, code_span};

/// The body.
pub(in crate::dispatch::payload) fn render(s: &Summary) -> Value {
    let fields: Vec<Value> = s
        .facts
        .iter()
        .take(25)
        .map(|f| {
            let value = if f.code {
                code_span(&f.value)
            } else {
                f.value.clone()
            };
            json!({"name": f.label, "value": value, "inline": true})
        })
        .collect();
    let mut embed = json!({
        "title": s.title,
        "color": s.tone.rgb(),
        "fields": fields,
        "footer": {"text": "hookline"},
        "timestamp": s.time,
    });
    if let Some(reference) = &s.reference {
        embed["description"] = json!(code_block(reference));
    }
    if let Some(link) = &s.link {
        embed["url"] = json!(link);
    }
    let mut body = json!({"embeds": [embed]});
    if let Some(mention) = &s.mention {
        body["content"] = json!(mention);
    }
    body
}
