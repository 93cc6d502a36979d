//! The payload options' rules: the chat formats' link and mention, and the template
//! format's template, which must compile and render for a sample event of every type the
//! webhook subscribes to before it is accepted; and presets, expanded into a template.

use std::collections::BTreeMap;

use super::Violations;
use crate::api::proto;
use crate::dispatch::payload::template::{Part, presets};
use crate::dispatch::payload::{self, Template};
use crate::event::EventType;
use crate::store::PayloadOptions;

const TEMPLATE: &str = "webhook.payload_options.template";
const CONTENT_TYPE: &str = "webhook.payload_options.template_content_type";
const PRESET: &str = "webhook.payload_options.preset";

/// The chat formats' link template and mention text (`payload::chat`).
pub(super) fn chat_options(o: &PayloadOptions, v: &mut Violations) {
    if let Some(link) = &o.chat_link
        && let Err(problem) = payload::check_link_template(link)
    {
        v.add("webhook.payload_options.chat_link", problem);
    }
    if let Some(mention) = &o.chat_mention {
        let max = payload::MENTION_MAX;
        if mention.chars().count() > max {
            v.add(
                "webhook.payload_options.chat_mention",
                format!("at most {max} characters"),
            );
        } else if mention.chars().any(char::is_control) {
            v.add(
                "webhook.payload_options.chat_mention",
                "must not contain control characters",
            );
        }
    }
}

/// Replaces a preset's name in `w` by what it stands for: the template format, its
/// template and content type, and its headers that `w` does not set itself.
pub(crate) fn expand_preset(w: &mut proto::Webhook, v: &mut Violations) {
    let Some(options) = w.payload_options.as_mut() else {
        return;
    };
    let name = std::mem::take(&mut options.preset);
    if name.is_empty() {
        return;
    }
    let Some(preset) = presets::find(name.trim()) else {
        return v.add(
            PRESET,
            format!(
                "unknown preset `{}`; known: {}",
                payload::clip(&name, 40),
                presets::names()
            ),
        );
    };
    options.template = preset.body.to_owned();
    options.template_content_type = preset.content_type.to_owned();
    w.payload_format = proto::PayloadFormat::Template as i32;
    for (header, value) in preset.headers {
        if !w.headers.keys().any(|k| k.eq_ignore_ascii_case(header)) {
            w.headers.insert((*header).to_owned(), (*value).to_owned());
            // The preset's own text, no secret: shown back.
            w.plain_headers.push((*header).to_owned());
        }
    }
}

/// The template format's template: compiles, and renders for a sample event of each
/// subscribed type (empty: every type delivered by default, and the test ping). Other
/// formats must not carry one: it would be ignored without a word.
pub(super) fn template(
    format: &str,
    o: &PayloadOptions,
    headers: &BTreeMap<String, String>,
    event_types: &[String],
    namespace: &str,
    v: &mut Violations,
) {
    if format != "template" {
        if o.template.is_some() {
            v.add(TEMPLATE, "only the template format uses a template: set payload_format to TEMPLATE, or leave it empty");
        }
        if o.template_content_type.is_some() {
            v.add(CONTENT_TYPE, "only the template format uses it");
        }
        return;
    }
    let Some(body) = o.template.as_deref().filter(|b| !b.trim().is_empty()) else {
        return v.add(
            TEMPLATE,
            format!(
                "required for the template format (or choose a preset: {})",
                presets::names()
            ),
        );
    };
    let compiled = match Template::compile(body, o.template_content_type.as_deref(), headers) {
        Ok(compiled) => compiled,
        Err(error) => return v.add(template_field(&error.part), error.message),
    };
    let mut kinds: Vec<EventType> = if event_types.is_empty() {
        EventType::ALL
            .into_iter()
            .filter(|k| !k.is_opt_in())
            .collect()
    } else {
        event_types
            .iter()
            .filter_map(|t| EventType::parse(t))
            .collect()
    };
    kinds.push(EventType::Ping);
    let now = crate::store::now_ms();
    for kind in kinds {
        let sample = payload::sample(kind, namespace, now);
        if let Err(error) = compiled.render(&sample) {
            return v.add(
                template_field(&error.part),
                format!("for a sample {kind} event: {}", error.message),
            );
        }
    }
}

/// The request field a template problem is about.
pub(crate) fn template_field(part: &Part) -> String {
    match part {
        Part::Body => TEMPLATE.to_owned(),
        Part::ContentType => CONTENT_TYPE.to_owned(),
        Part::Header(name) => format!("webhook.headers[{name:?}]"),
    }
}
