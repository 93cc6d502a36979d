//! Mattermost incoming webhooks, in their Slack-compatible shape: one attachment with a
//! title, the reference in a code block, short fields and a footer; the owner's mention
//! (`@channel`, `@alice`) as the post's text, so it notifies. Mattermost renders
//! Markdown, not Slack's `mrkdwn`, and needs no entity escaping; backticks are dropped
//! from code spans so a value cannot end one early. Far below the 16,383-character post.

use serde_json::{Value, json};

use super::{Summary, code_block, code_span};

/// The body.
pub(in crate::dispatch::payload) fn render(s: &Summary) -> Value {
    let fields: Vec<Value> = s
        .facts
        .iter()
        .map(|f| {
            let value = if f.code {
                code_span(&f.value)
            } else {
                f.value.clone()
            };
            json!({"short": true, "title": f.label, "value": value})
        })
        .collect();
    let mut attachment = json!({
        "fallback": s.headline(),
        "color": s.tone.hex(),
        "title": s.title,
        "fields": fields,
        "footer": format!("hookline · {}", s.time),
    });
    if let Some(reference) = &s.reference {
        attachment["text"] = json!(code_block(reference));
    }
    if let Some(link) = &s.link {
        attachment["title_link"] = json!(link);
    }
    let mut body = json!({"attachments": [attachment]});
    if let Some(mention) = &s.mention {
        body["text"] = json!(mention);
    }
    body
}
