//! Google Chat incoming webhooks: a `cardsV2` card (header, the reference, one
//! decorated text per fact, an "Open" button for the owner's link) with `text` as the
//! plain fallback that notifications show; the mention (`<users/all>`) leads the text so
//! it notifies. Card texts accept Google's small HTML subset, so `&`, `<` and `>` are
//! escaped there. Far below Google Chat's 32,000-byte message.

use serde_json::{Value, json};

use super::{Summary, escape};

/// The body.
pub(in crate::dispatch::payload) fn render(s: &Summary) -> Value {
    let mut widgets = Vec::new();
    if let Some(reference) = &s.reference {
        widgets.push(json!({"textParagraph": {"text": escape(reference)}}));
    }
    for fact in &s.facts {
        widgets.push(json!({"decoratedText": {
            "topLabel": fact.label,
            "text": escape(&fact.value),
            "wrapText": true,
        }}));
    }
    if let Some(link) = &s.link {
        widgets.push(json!({"buttonList": {"buttons": [
            {"text": "Open", "onClick": {"openLink": {"url": link}}}
        ]}}));
    }
    let card = json!({
        "header": {"title": s.title, "subtitle": format!("hookline · {}", s.time)},
        "sections": [{"widgets": widgets}],
    });
    json!({
        "text": s.headline(),
        "cardsV2": [{"cardId": "hookline-event", "card": card}],
    })
}
