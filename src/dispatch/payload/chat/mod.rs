//! Chat messages: one event told to people in one glance, in each chat service's shape.
//!
//! [`Summary`] is what every chat message says, worked out once from the event and the
//! webhook's options: what happened, to what (the reference people copy), the short
//! digest, who, and when known the platforms, the revision and the digest it replaced,
//! plus the owner's link and mention. Each service's file lays it out in that service's
//! shape. Every text is capped here ([`clip`]), so every message stays inside each
//! service's documented limits by construction, whatever the registry sent: a long field
//! ends with an ellipsis instead of the message being refused.

mod discord;
mod googlechat;
mod mattermost;
mod msteams;
mod notice;
mod slack;

use super::{event_time_text, image_reference};
use crate::event::{Event, EventType};
use crate::store::PayloadOptions;

pub(super) use discord::render as discord;
pub(super) use googlechat::render as googlechat;
pub(super) use mattermost::render as mattermost;
pub(super) use msteams::render as msteams;
pub(super) use slack::render as slack;

/// Caps, in characters. Their sum stays far below the smallest message limit among the
/// services (Discord's 6,000 characters across embeds), so no message can outgrow one.
const TITLE_MAX: usize = 150;
const REFERENCE_MAX: usize = 400;
const VALUE_MAX: usize = 200;
const PLATFORMS_SHOWN: usize = 8;
const LINK_MAX: usize = 1_000;
/// The longest mention or prefix text the API accepts (`api::validate`).
pub const MENTION_MAX: usize = 300;

/// What a chat message says about one event.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Summary {
    /// One line: "Pushed acme/app:1.4".
    pub title: String,
    /// The full reference to copy, `registry/repo:tag@sha256:…`; None when there is no
    /// image (a ping, a whole repository deleted).
    pub reference: Option<String>,
    /// Label and value pairs, in order, only those the event has.
    pub facts: Vec<Fact>,
    /// The owner's link for this event (its URL template filled in), if any.
    pub link: Option<String>,
    /// The owner's mention or prefix text, verbatim (it may be `<!here>`, `<@&123>`).
    pub mention: Option<String>,
    /// The event's time, RFC 3339.
    pub time: String,
    /// How the message is coloured where a service allows it.
    pub tone: Tone,
}

/// One labelled value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Fact {
    pub label: &'static str,
    pub value: String,
    /// Shown in a monospace font (digests, revisions).
    pub code: bool,
}

/// The colour of a message, by what happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tone {
    /// Something new: a push.
    Good,
    /// Something gone: a delete.
    Removed,
    /// Anything else: pulls, mounts, pings.
    Neutral,
}

impl Tone {
    /// `#rrggbb`.
    pub fn hex(self) -> &'static str {
        match self {
            Tone::Good => "#2EB67D",
            Tone::Removed => "#E01E5A",
            Tone::Neutral => "#868E96",
        }
    }

    /// As a 24-bit number (Discord).
    pub fn rgb(self) -> u32 {
        u32::from_str_radix(&self.hex()[1..], 16).unwrap_or(0)
    }
}

impl Summary {
    /// Everything a chat message says about `e`.
    pub fn of(e: &Event, options: &PayloadOptions) -> Summary {
        if let Some(notice) = &e.notice {
            return notice::summary(e, notice, options);
        }
        let subject = subject(e);
        let title = match e.kind {
            EventType::Ping => "Test message from hookline: this webhook reaches you".to_owned(),
            kind => {
                let unchanged = if kind == EventType::ImagePushed && e.changed == Some(false) {
                    " (unchanged)"
                } else {
                    ""
                };
                format!("{} {subject}{unchanged}", action(kind))
            }
        };
        let reference = match e.kind {
            EventType::Ping | EventType::RepositoryDeleted => None,
            _ => Some(clip(&image_reference(e), REFERENCE_MAX)),
        };
        Summary {
            title: clip(&title, TITLE_MAX),
            reference,
            facts: facts(e),
            link: options
                .chat_link
                .as_deref()
                .and_then(|template| fill_link(template, e)),
            mention: options
                .chat_mention
                .as_deref()
                .filter(|m| !m.trim().is_empty())
                .map(|m| clip(m, MENTION_MAX)),
            time: event_time_text(e),
            tone: match e.kind {
                EventType::ImagePushed | EventType::ManifestPushed | EventType::BlobPushed => {
                    Tone::Good
                }
                EventType::ImageDeleted | EventType::RepositoryDeleted => Tone::Removed,
                _ => Tone::Neutral,
            },
        }
    }

    /// The title after the mention, for a one-line notification text.
    pub fn headline(&self) -> String {
        match &self.mention {
            Some(mention) => format!("{mention} {}", self.title),
            None => self.title.clone(),
        }
    }
}

/// The verb of a title.
fn action(kind: EventType) -> &'static str {
    match kind {
        EventType::ImagePushed => "Pushed",
        EventType::ManifestPushed => "Pushed by digest",
        EventType::ImageDeleted => "Deleted",
        EventType::ImagePulled => "Pulled",
        EventType::ImageMounted => "Mounted",
        EventType::RepositoryDeleted => "Deleted repository",
        EventType::BlobPushed => "Pushed blob to",
        EventType::BlobPulled => "Pulled blob from",
        EventType::BlobMounted => "Mounted blob into",
        EventType::Ping => "Tested",
        // Notices carry their own title (`notice.rs`).
        EventType::WebhookFailing
        | EventType::WebhookCircuitOpened
        | EventType::WebhookDisabled
        | EventType::WebhookRecovered
        | EventType::DeliveryFailed => "Notice about",
    }
}

/// What a title names: `repo:tag`, else `repo@sha256:short`, else the repository.
fn subject(e: &Event) -> String {
    match (&e.tag, &e.digest) {
        (Some(tag), _) => format!("{}:{tag}", e.repository),
        (None, Some(digest)) if !e.kind.is_blob() => {
            format!("{}@{}", e.repository, short_digest(digest))
        }
        _ => e.repository.clone(),
    }
}

/// The facts worth a glance, in the order people read them.
fn facts(e: &Event) -> Vec<Fact> {
    let mut facts = Vec::new();
    let mut add = |label, value: &str, code| {
        facts.push(Fact {
            label,
            value: clip(value, VALUE_MAX),
            code,
        })
    };
    if e.kind == EventType::Ping {
        add("Namespace", &e.repository, false);
        return facts;
    }
    if let Some(digest) = &e.digest {
        add("Digest", &short_digest(digest), true);
    }
    if let Some(actor) = &e.actor {
        add("By", actor, false);
    }
    if let Some(from) = &e.from_repository {
        add("From", from, false);
    }
    if let Some(crate::enrichment::Enrichment::Complete(facts_read)) = &e.enrichment {
        if !facts_read.platforms.is_empty() {
            add("Platforms", &platforms(&facts_read.platforms), false);
        }
        if let Some(revision) = &facts_read.revision {
            add("Revision", revision, true);
        }
    }
    if e.changed == Some(true)
        && let Some(previous) = &e.previous_digest
    {
        add("Replaces", &short_digest(previous), true);
    }
    facts
}

/// `linux/amd64, linux/arm64`, the first few, then how many more.
fn platforms(all: &[String]) -> String {
    let shown: Vec<&str> = all
        .iter()
        .take(PLATFORMS_SHOWN)
        .map(String::as_str)
        .collect();
    let mut text = shown.join(", ");
    if all.len() > PLATFORMS_SHOWN {
        text.push_str(&format!(" and {} more", all.len() - PLATFORMS_SHOWN));
    }
    text
}

/// `sha256:` and the first 12 hex digits: enough to tell images apart at a glance.
pub(crate) fn short_digest(digest: &str) -> String {
    match digest.split_once(':') {
        Some((algorithm, hex)) => {
            format!("{algorithm}:{}", hex.chars().take(12).collect::<String>())
        }
        None => digest.chars().take(19).collect(),
    }
}

/// `text` on one line (control characters become spaces), at most `max` characters, the
/// last of them an ellipsis when it was cut.
pub(crate) fn clip(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max * 4));
    for (i, c) in text.chars().enumerate() {
        if i + 1 == max && text.chars().nth(max).is_some() {
            out.push('…');
            break;
        }
        out.push(if c.is_control() { ' ' } else { c });
    }
    out
}

/// `&`, `<` and `>` as entities: what Slack's `mrkdwn` and Google Chat's card HTML need
/// so a value reads as text, never as markup or a mention.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// An inline code span (Markdown); a backtick in the value could end it, so none is kept.
fn code_span(text: &str) -> String {
    format!("`{}`", text.replace('`', ""))
}

/// A fenced code block (Markdown), likewise without backticks inside.
fn code_block(text: &str) -> String {
    format!("```\n{}\n```", text.replace('`', ""))
}

/// What a filled-in value keeps as it is: RFC 3986's unreserved characters.
const URL_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The placeholders a link template may use (`api::validate` refuses any other).
pub const LINK_PLACEHOLDERS: [&str; 6] = [
    "registry",
    "repository",
    "namespace",
    "name",
    "tag",
    "digest",
];

/// Fills the owner's link template with the event's values, each percent-encoded for a
/// URL (a repository keeps its `/`). None when the template names a value this event does
/// not have (a digest-only delete has no tag), or the result is too long: no link then.
pub(crate) fn fill_link(template: &str, e: &Event) -> Option<String> {
    let (namespace, name) = e.repository.split_once('/').unwrap_or(("", &e.repository));
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after.find('}')?;
        let value = match &after[..close] {
            "registry" => e.registry_host.as_deref()?,
            "repository" => &e.repository,
            "namespace" => namespace,
            "name" => name,
            "tag" => e.tag.as_deref()?,
            "digest" => e.digest.as_deref()?,
            _ => return None,
        };
        out.extend(value.split('/').enumerate().flat_map(|(i, segment)| {
            let slash = (i > 0).then_some("/");
            slash
                .into_iter()
                .chain(percent_encoding::utf8_percent_encode(segment, URL_VALUE))
        }));
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    (out.len() <= LINK_MAX).then_some(out)
}

/// Checks a link template as the API does: placeholders known and closed, and the
/// template an http(s) URL. The error says what is wrong.
pub fn check_link_template(template: &str) -> Result<(), String> {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            return Err("a `{` without its `}`".to_owned());
        };
        let name = &after[..close];
        if !LINK_PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "unknown placeholder {{{name}}}: use {}",
                LINK_PLACEHOLDERS.map(|p| format!("{{{p}}}")).join(", ")
            ));
        }
        rest = &after[close + 1..];
    }
    if !(template.starts_with("https://") || template.starts_with("http://")) {
        return Err("must start with https:// or http://".to_owned());
    }
    if template.len() > LINK_MAX / 2 {
        return Err(format!("at most {} characters", LINK_MAX / 2));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
