//! Slack incoming webhooks: Block Kit blocks, with `text` as the notification's
//! plain-text fallback. Texts are `mrkdwn`, in which `&`, `<` and `>` must be escaped;
//! the owner's mention is passed as written (`<!here>`, `<@U123>`, `<!subteam^S1>`).
//! Within Slack's limits by the caps of `Summary`: at most 5 blocks of 50, section texts
//! and fields far below 3,000 and 2,000 characters, at most 10 fields.

use serde_json::{Value, json};

use super::{Summary, escape};

/// The body.
pub(in crate::dispatch::payload) fn render(s: &Summary) -> Value {
    let mention = s
        .mention
        .as_ref()
        .map(|m| format!("{m} "))
        .unwrap_or_default();
    let mut blocks = vec![section(format!("{mention}*{}*", escape(&s.title)))];
    if let Some(reference) = &s.reference {
        blocks.push(section(format!("```{}```", escape(reference))));
    }
    if !s.facts.is_empty() {
        let fields: Vec<Value> = s
            .facts
            .iter()
            .take(10)
            .map(|f| {
                let value = escape(&f.value);
                let value = if f.code { format!("`{value}`") } else { value };
                json!({"type": "mrkdwn", "text": format!("*{}*\n{value}", f.label)})
            })
            .collect();
        blocks.push(json!({"type": "section", "fields": fields}));
    }
    if let Some(link) = &s.link {
        blocks.push(json!({
            "type": "actions",
            "elements": [{
                "type": "button",
                "text": {"type": "plain_text", "text": "Open"},
                "url": link,
            }],
        }));
    }
    blocks.push(json!({
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": format!("hookline · {}", escape(&s.time))}],
    }));
    json!({
        "text": format!("{mention}{}", escape(&s.title)),
        "blocks": blocks,
    })
}

fn section(text: String) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": text}})
}
