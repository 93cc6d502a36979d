//! What a receiver gets: the request body for an event, per payload format.
//!
//! Pure: an [`Event`] and the webhook's [`Format`] and [`PayloadOptions`] in, a [`Message`]
//! out (bytes and a content type) that any transport can carry. [`delivers`] says which
//! events a format can carry at all (fan-out asks it, so a dockerhub webhook never gets a
//! delivery for a delete). The body of a
//! delivery is the same on every attempt (only the signature headers change), so
//! receivers can deduplicate on `webhook-id` and compare bodies. One file per format;
//! docs/payloads/ documents each, and tests/it/payloads.rs checks them against the
//! consumers listed in consumers.md.

mod chat;
mod cloudevents;
mod distribution;
mod dockerhub;
mod harbor;
mod hookline;
mod sample;
pub mod template;

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::event::{Event, EventType};
use crate::store::PayloadOptions;

pub(crate) use chat::clip;
pub use chat::{MENTION_MAX, check_link_template};
pub use sample::sample;
pub use template::{Template, TemplateError};

/// A webhook's payload format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Format {
    /// hookline's own versioned JSON (docs/payloads/hookline.md).
    #[default]
    Hookline,
    /// CloudEvents 1.0, structured JSON mode.
    CloudEvents,
    /// The Docker Hub webhook callback shape; tag pushes only.
    DockerHub,
    /// Harbor's default webhook shape; pushes only unless deletes are asked for.
    Harbor,
    /// The registry's own notification envelope, unchanged.
    Distribution,
    /// A Slack incoming webhook: Block Kit blocks and a plain-text fallback.
    Slack,
    /// A Microsoft Teams Workflows webhook: a message with one Adaptive Card.
    MsTeams,
    /// A Discord webhook: one embed.
    Discord,
    /// A Google Chat incoming webhook: a `cardsV2` card and a text fallback.
    GoogleChat,
    /// A Mattermost incoming webhook: its Slack-compatible attachment.
    Mattermost,
    /// The owner's request template (`template`): body, content type and header values.
    Template,
}

impl Format {
    /// Every format, in the order of the proto enum.
    pub const ALL: [Format; 11] = [
        Format::Hookline,
        Format::CloudEvents,
        Format::DockerHub,
        Format::Harbor,
        Format::Distribution,
        Format::Slack,
        Format::MsTeams,
        Format::Discord,
        Format::GoogleChat,
        Format::Mattermost,
        Format::Template,
    ];

    /// The stored name, e.g. `cloudevents`.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Hookline => "hookline",
            Format::CloudEvents => "cloudevents",
            Format::DockerHub => "dockerhub",
            Format::Harbor => "harbor",
            Format::Distribution => "distribution",
            Format::Slack => "slack",
            Format::MsTeams => "msteams",
            Format::Discord => "discord",
            Format::GoogleChat => "googlechat",
            Format::Mattermost => "mattermost",
            Format::Template => "template",
        }
    }

    /// Whether this format posts to a chat service. A chat webhook's URL is its
    /// credential (whoever has it can post to the channel), so the API shows it redacted,
    /// and its answers are read in the service's own terms (`dialect`).
    /// The store seals such URLs, so the list is the store's (`store::CHAT_FORMATS`).
    pub fn is_chat(self) -> bool {
        crate::store::CHAT_FORMATS.contains(&self.as_str())
    }

    /// Parses a stored name. Unknown names read as `hookline` (the API stores known ones
    /// only; a newer hookline's format falls back to ours rather than to nothing).
    pub fn parse(name: &str) -> Format {
        Format::ALL
            .into_iter()
            .find(|f| f.as_str() == name)
            .unwrap_or_default()
    }
}

/// What any transport carries: a rendered body, its content type, and the headers (HTTP)
/// or properties (message buses) that travel with it. A [`Renderer`] fills all three (the
/// webhook's custom headers, rendered for a template); signing adds its own
/// (`sign::sign_message`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The body's media type: HTTP's `Content-Type`, a broker's content-type property.
    pub content_type: Cow<'static, str>,
    /// The body.
    pub body: Vec<u8>,
    /// Names and values in order; a later one replaces an earlier one of the same name.
    /// Empty as rendered.
    pub headers: Vec<(String, String)>,
}

impl Message {
    /// A message with no headers yet.
    /// The value of header `name` (any case), the last one given.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .rev()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn new(content_type: &'static str, body: Vec<u8>) -> Message {
        Message {
            content_type: Cow::Borrowed(content_type),
            body,
            headers: Vec::new(),
        }
    }
}

/// Plain JSON: what the dockerhub and harbor receivers insist on, and hookline's own.
pub const JSON: &str = "application/json";

/// Whether `format` can carry `event` at all. Fan-out creates no delivery otherwise, so a
/// receiver never gets a body it would misparse: Docker Hub consumers need a tag push
/// (Argo CD Image Updater and Keel answer 400 "tag cannot be empty" to anything else), and
/// Harbor consumers accept `PUSH_ARTIFACT` only unless the webhook asked for deletes.
/// Test pings are addressed to one webhook and never pass through here.
pub fn delivers(format: Format, options: &PayloadOptions, event: &Event) -> bool {
    let tag_push = event.kind == EventType::ImagePushed && event.tag.is_some();
    match format {
        Format::Hookline | Format::CloudEvents | Format::Distribution => true,
        // People read every event a chat webhook subscribed to; its filters decide.
        Format::Slack
        | Format::MsTeams
        | Format::Discord
        | Format::GoogleChat
        | Format::Mattermost => true,
        Format::Template => true,
        Format::DockerHub => tag_push,
        Format::Harbor => {
            tag_push || (options.harbor_deletes && event.kind == EventType::ImageDeleted)
        }
    }
}

/// How one webhook's requests are made: its format and options, and its template
/// compiled once (`template` format), so each delivery only renders.
pub struct Renderer {
    format: Format,
    options: PayloadOptions,
    /// Custom headers as the webhook stores them (templates, for the template format).
    headers: BTreeMap<String, String>,
    template: Option<Template>,
    /// CloudEvents in binary content mode, with this attribute header prefix: the
    /// destination's protocol binding has one.
    binary: Option<&'static str>,
}

impl Renderer {
    /// Compiles what `format` needs; for a template, the template from `options`.
    pub fn new(
        format: Format,
        options: &PayloadOptions,
        headers: &BTreeMap<String, String>,
    ) -> Result<Renderer, TemplateError> {
        let template = match format {
            Format::Template => Some(Template::compile(
                options.template.as_deref().unwrap_or_default(),
                options.template_content_type.as_deref(),
                headers,
            )?),
            _ => None,
        };
        Ok(Renderer {
            format,
            options: options.clone(),
            headers: headers.clone(),
            template,
            binary: None,
        })
    }

    /// Renders for this destination: a `cloudevents` webhook on a bus whose CloudEvents
    /// binding has a binary mode (NATS, AMQP, MQTT) gets it, each attribute a header (`ce-id`,
    /// `cloudEvents:id`, `id`) and `data` the body, as consumers of that binding expect.
    pub fn for_destination(mut self, address: &str) -> Renderer {
        self.binary =
            super::bus::cloudevents_prefix(address).filter(|_| self.format == Format::CloudEvents);
        self
    }

    /// The request for `event`, custom headers included; or, for a template, why this
    /// event cannot be rendered (then nothing is sent).
    pub fn render(&self, event: &Event) -> Result<Message, TemplateError> {
        if let Some(template) = &self.template {
            let rendered = template.render(event)?;
            return Ok(Message {
                content_type: Cow::Owned(rendered.content_type),
                body: rendered.body,
                headers: rendered.headers,
            });
        }
        let mut message = match self.binary {
            Some(prefix) => cloudevents::render_binary(event, prefix),
            None => render(self.format, &self.options, event),
        };
        message.headers.extend(
            self.headers
                .iter()
                .map(|(name, value)| (name.clone(), value.clone())),
        );
        Ok(message)
    }
}

/// Renders `event` in a fixed `format` (a `template` webhook renders through its
/// [`Renderer`]; here it gets hookline's body). A `ping` has no Docker Hub or Harbor
/// equivalent: those webhooks get hookline's ping body (as `application/json`), which
/// their receivers ignore or refuse without deploying anything, and which still proves
/// the connection.
pub fn render(format: Format, options: &PayloadOptions, event: &Event) -> Message {
    let json = |value: serde_json::Value| value.to_string().into_bytes();
    match format {
        Format::Hookline | Format::Template => Message::new(JSON, json(hookline::render(event))),
        Format::DockerHub | Format::Harbor if event.kind == EventType::Ping => {
            Message::new(JSON, json(hookline::render(event)))
        }
        Format::CloudEvents => {
            Message::new(cloudevents::CONTENT_TYPE, json(cloudevents::render(event)))
        }
        Format::DockerHub => Message::new(JSON, json(dockerhub::render(event, options))),
        Format::Harbor => Message::new(JSON, json(harbor::render(event))),
        Format::Distribution => Message::new(
            distribution::CONTENT_TYPE,
            json(distribution::render(event)),
        ),
        Format::Slack
        | Format::MsTeams
        | Format::Discord
        | Format::GoogleChat
        | Format::Mattermost => {
            let summary = chat::Summary::of(event, options);
            let body = match format {
                Format::Slack => chat::slack(&summary),
                Format::MsTeams => chat::msteams(&summary),
                Format::Discord => chat::discord(&summary),
                Format::GoogleChat => chat::googlechat(&summary),
                _ => chat::mattermost(&summary),
            };
            Message::new(JSON, json(body))
        }
    }
}

/// `registry/repository:tag@digest`, with whatever parts the event has.
pub fn image_reference(e: &Event) -> String {
    let mut image = qualified_repository(e);
    if let Some(tag) = &e.tag {
        image.push(':');
        image.push_str(tag);
    }
    if let Some(digest) = &e.digest {
        image.push('@');
        image.push_str(digest);
    }
    image
}

/// `registry/repository`, or the bare repository when the registry host is unknown.
fn qualified_repository(e: &Event) -> String {
    match &e.registry_host {
        Some(host) => format!("{host}/{}", e.repository),
        None => e.repository.clone(),
    }
}

/// The event's time: the registry's timestamp when it sent a valid one, else when
/// hookline received the event. Unix milliseconds.
fn event_time_ms(e: &Event) -> i64 {
    e.timestamp
        .as_deref()
        .and_then(|t| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
        })
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .unwrap_or(e.received_at)
}

/// The event's time as RFC 3339: the registry's own text when it sent a valid one.
fn event_time_text(e: &Event) -> String {
    match e.timestamp.as_deref() {
        Some(t)
            if time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .is_ok() =>
        {
            t.to_owned()
        }
        _ => rfc3339(e.received_at),
    }
}

/// Splits a repository path Docker Hub / Harbor style: the first segment is the
/// namespace (project), the rest the name. `app` has an empty namespace.
fn split_repository(repository: &str) -> (&str, &str) {
    repository.split_once('/').unwrap_or(("", repository))
}

/// The URL scheme the registry uses, from the content URL it reported; https otherwise.
fn registry_scheme(e: &Event) -> &'static str {
    match e.url.as_deref() {
        Some(url) if url.starts_with("http://") => "http",
        _ => "https",
    }
}

/// Unix milliseconds as RFC 3339 UTC.
pub fn rfc3339(unix_ms: i64) -> String {
    let nanos = i128::from(unix_ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::{Value, json};

    use super::*;

    pub(crate) fn event() -> Event {
        Event {
            tag: Some("1.4".into()),
            digest: Some("sha256:abc".into()),
            media_type: Some("application/vnd.oci.image.manifest.v1+json".into()),
            size: Some(10),
            url: Some("http://registry.example:5000/v2/acme/tools/app/manifests/sha256:abc".into()),
            actor: Some("alice".into()),
            registry_host: Some("registry.example:5000".into()),
            timestamp: Some("2026-11-25T01:16:56.986524926Z".into()),
            original: json!({"id": "r1", "action": "push"}),
            ..Event::new(
                "evt_1",
                "default",
                "r1",
                EventType::ImagePushed,
                "acme/tools/app",
                1_764_000_000_123,
            )
        }
    }

    fn body(format: Format, e: &Event) -> Value {
        let p = render(format, &PayloadOptions::default(), e);
        serde_json::from_slice(&p.body).expect("json")
    }

    #[test]
    fn format_names_round_trip_and_unknown_is_hookline() {
        for f in Format::ALL {
            assert_eq!(Format::parse(f.as_str()), f);
        }
        assert_eq!(Format::parse("carrier-pigeon"), Format::Hookline);
    }

    #[test]
    fn image_reference_has_what_the_event_has() {
        let mut e = event();
        assert_eq!(
            image_reference(&e),
            "registry.example:5000/acme/tools/app:1.4@sha256:abc"
        );
        e.registry_host = None;
        e.digest = None;
        assert_eq!(image_reference(&e), "acme/tools/app:1.4");
    }

    #[test]
    fn only_tag_pushes_reach_dockerhub_and_harbor_unless_deletes_are_asked_for() {
        let opts = PayloadOptions::default();
        let deletes = PayloadOptions {
            harbor_deletes: true,
            ..Default::default()
        };
        let push = event();
        let mut untagged = event();
        untagged.tag = None;
        let mut delete = event();
        delete.kind = EventType::ImageDeleted;
        let mut pull = event();
        pull.kind = EventType::ImagePulled;
        for f in [Format::Hookline, Format::CloudEvents, Format::Distribution] {
            for e in [&push, &untagged, &delete, &pull] {
                assert!(delivers(f, &opts, e), "{f:?} {:?}", e.kind);
            }
        }
        assert!(delivers(Format::DockerHub, &opts, &push));
        assert!(delivers(Format::Harbor, &opts, &push));
        for e in [&untagged, &delete, &pull] {
            assert!(!delivers(Format::DockerHub, &deletes, e));
            assert!(!delivers(Format::Harbor, &opts, e));
        }
        assert!(delivers(Format::Harbor, &deletes, &delete));
        assert!(!delivers(Format::Harbor, &deletes, &pull));
    }

    #[test]
    fn pings_to_dockerhub_and_harbor_are_hookline_pings() {
        let mut ping = event();
        ping.kind = EventType::Ping;
        for f in [Format::DockerHub, Format::Harbor] {
            let p = render(f, &PayloadOptions::default(), &ping);
            assert_eq!(p.content_type, "application/json");
            let v: Value = serde_json::from_slice(&p.body).expect("json");
            assert_eq!(v["type"], "ping");
        }
    }

    #[test]
    fn content_types() {
        let e = event();
        let ct = |f| render(f, &PayloadOptions::default(), &e).content_type;
        assert_eq!(ct(Format::Hookline), "application/json");
        assert_eq!(ct(Format::DockerHub), "application/json");
        assert_eq!(ct(Format::Harbor), "application/json");
        assert_eq!(ct(Format::CloudEvents), "application/cloudevents+json");
        assert_eq!(
            ct(Format::Distribution),
            "application/vnd.docker.distribution.events.v1+json"
        );
    }

    #[test]
    fn the_same_event_renders_the_same_bytes() {
        for f in Format::ALL {
            let o = PayloadOptions::default();
            assert_eq!(render(f, &o, &event()), render(f, &o, &event()));
        }
    }

    #[test]
    fn event_time_prefers_the_registry_timestamp() {
        let mut e = event();
        assert_eq!(event_time_ms(&e) / 1000, 1_795_569_416);
        assert_eq!(event_time_text(&e), "2026-11-25T01:16:56.986524926Z");
        e.timestamp = Some("yesterday".into());
        assert_eq!(event_time_ms(&e), e.received_at);
        assert_eq!(event_time_text(&e), "2025-11-24T16:00:00.123Z");
        assert_eq!(
            body(Format::Hookline, &e)["time"],
            "2025-11-24T16:00:00.123Z"
        );
    }

    #[test]
    fn repositories_split_at_the_first_segment() {
        assert_eq!(split_repository("acme/tools/app"), ("acme", "tools/app"));
        assert_eq!(split_repository("acme/app"), ("acme", "app"));
        assert_eq!(split_repository("app"), ("", "app"));
    }
}
