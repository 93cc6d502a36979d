//! hookline's own event model: what a registry told us, normalised.
//!
//! `ingest` builds an [`Event`] from each distribution notification; `store` keeps it as
//! JSON in the `events` table; `dispatch` matches it against webhooks and renders payloads
//! from it. Nothing here does I/O.

use serde::{Deserialize, Serialize};

/// The kinds of event hookline knows. Names are stable: they appear in webhook filters,
/// payloads and the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    /// A manifest was pushed under a tag: the image people deploy (for a multi-platform
    /// image, its index, pushed after the platform manifests).
    #[serde(rename = "image.pushed")]
    ImagePushed,
    /// A manifest was deleted by digest, or a tag was deleted (then `tag` is set).
    #[serde(rename = "image.deleted")]
    ImageDeleted,
    /// A manifest was pulled.
    #[serde(rename = "image.pulled")]
    ImagePulled,
    /// A manifest was mounted from another repository.
    #[serde(rename = "image.mounted")]
    ImageMounted,
    /// A whole repository was deleted (distribution 3.x).
    #[serde(rename = "repository.deleted")]
    RepositoryDeleted,
    /// A blob (layer or config) was pushed. Delivered only to webhooks that ask for it.
    #[serde(rename = "blob.pushed")]
    BlobPushed,
    /// A blob was pulled (GET or HEAD). Delivered only to webhooks that ask for it.
    #[serde(rename = "blob.pulled")]
    BlobPulled,
    /// A blob was mounted from another repository. Delivered only to webhooks that ask for it.
    #[serde(rename = "blob.mounted")]
    BlobMounted,
    /// A test event sent through the normal delivery path on request.
    #[serde(rename = "ping")]
    Ping,
    /// A manifest was pushed by digest alone, without a tag: the platform manifests a
    /// registry receives before the index that lists them, signatures, attestations.
    /// Delivered only to webhooks that ask for it, so one push is one `image.pushed`.
    #[serde(rename = "manifest.pushed")]
    ManifestPushed,
    /// Owner notice: a webhook's deliveries started failing (after it last succeeded).
    #[serde(rename = "webhook.failing")]
    WebhookFailing,
    /// Owner notice: a webhook's circuit opened; its deliveries wait for the cool-down.
    #[serde(rename = "webhook.circuit_opened")]
    WebhookCircuitOpened,
    /// Owner notice: hookline disabled a webhook (gone, or failing for too long).
    #[serde(rename = "webhook.disabled")]
    WebhookDisabled,
    /// Owner notice: a failing webhook delivered again.
    #[serde(rename = "webhook.recovered")]
    WebhookRecovered,
    /// Owner notice: deliveries gave up (one notice may summarise many).
    #[serde(rename = "delivery.failed")]
    DeliveryFailed,
}

impl EventType {
    /// Every event type, in documentation order.
    pub const ALL: [EventType; 15] = [
        EventType::ImagePushed,
        EventType::ManifestPushed,
        EventType::ImageDeleted,
        EventType::ImagePulled,
        EventType::ImageMounted,
        EventType::RepositoryDeleted,
        EventType::BlobPushed,
        EventType::BlobPulled,
        EventType::BlobMounted,
        EventType::Ping,
        EventType::WebhookFailing,
        EventType::WebhookCircuitOpened,
        EventType::WebhookDisabled,
        EventType::WebhookRecovered,
        EventType::DeliveryFailed,
    ];

    /// The owner notices, which hookline raises about webhooks (`dispatch/notices.rs`).
    pub const NOTICES: [EventType; 5] = [
        EventType::WebhookFailing,
        EventType::WebhookCircuitOpened,
        EventType::WebhookDisabled,
        EventType::WebhookRecovered,
        EventType::DeliveryFailed,
    ];

    /// The stable name, e.g. `image.pushed`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::ImagePushed => "image.pushed",
            EventType::ManifestPushed => "manifest.pushed",
            EventType::ImageDeleted => "image.deleted",
            EventType::ImagePulled => "image.pulled",
            EventType::ImageMounted => "image.mounted",
            EventType::RepositoryDeleted => "repository.deleted",
            EventType::BlobPushed => "blob.pushed",
            EventType::BlobPulled => "blob.pulled",
            EventType::BlobMounted => "blob.mounted",
            EventType::Ping => "ping",
            EventType::WebhookFailing => "webhook.failing",
            EventType::WebhookCircuitOpened => "webhook.circuit_opened",
            EventType::WebhookDisabled => "webhook.disabled",
            EventType::WebhookRecovered => "webhook.recovered",
            EventType::DeliveryFailed => "delivery.failed",
        }
    }

    /// Parses a stable name; `None` for an unknown one.
    pub fn parse(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// Events a webhook gets only by naming them: blob events are noisy (one per layer),
    /// untagged manifest pushes are parts of an image whose tagged push is the event.
    pub fn is_opt_in(self) -> bool {
        self.is_blob() || self == EventType::ManifestPushed || self.is_notice()
    }

    /// Owner notices: about webhooks, not images; a webhook that asks for one is a notice
    /// destination.
    pub fn is_notice(self) -> bool {
        EventType::NOTICES.contains(&self)
    }

    /// Blob events: layers and configs.
    pub fn is_blob(self) -> bool {
        matches!(
            self,
            EventType::BlobPushed | EventType::BlobPulled | EventType::BlobMounted
        )
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A content descriptor the manifest refers to (manifest lists, image layers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reference {
    /// Digest of the referenced content, `sha256:…`.
    pub digest: String,
    /// Its media type, when the registry said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Its size in bytes, when the registry said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
}

/// What an owner notice is about: the webhook (in the event's `repository`, its
/// namespace) and what happened to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// The webhook the notice is about.
    pub webhook_id: String,
    /// Its name.
    pub webhook_name: String,
    /// Why: the last failure's reason, why it was disabled, why deliveries gave up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Since when it has been failing (RFC 3339), for `webhook.failing` and `.recovered`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<String>,
    /// For `delivery.failed`: how many deliveries gave up, and the first ids of them.
    #[serde(default)]
    pub deliveries: u64,
    /// Up to 20 of their ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delivery_ids: Vec<String>,
}

/// One registry event, normalised. Serialised as-is into the `events.body` column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// hookline's id for the event (`evt_…`), stable forever.
    pub id: String,
    /// Which registry sent it: the name of its registry token (`default` for the env token).
    pub source: String,
    /// The registry's own event id; (source, registry_event_id) is unique.
    pub registry_event_id: String,
    /// What happened.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// Repository path, e.g. `acme/tools/app`.
    pub repository: String,
    /// Tag, when the event concerns one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Content digest, when the event concerns a manifest or blob.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Media type of the manifest or blob.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
    /// Descriptors a manifest refers to (registry option `includereferences`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<Reference>,
    /// The registry URL of the content, as the registry gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// For mounts: the repository the content came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_repository: Option<String>,
    /// The authenticated user who caused the event, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// The registry's public host (from the request's Host header), e.g. `registry.example.com:5000`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_host: Option<String>,
    /// The registry instance (source.addr, source.instanceID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_addr: Option<String>,
    /// The registry instance id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_instance_id: Option<String>,
    /// Request metadata: the registry's request id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Request metadata: the client's user agent (e.g. `skopeo/1.9.3`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_useragent: Option<String>,
    /// Request metadata: the client's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_addr: Option<String>,
    /// Request metadata: the HTTP method of the registry request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_method: Option<String>,
    /// When the registry says it happened (RFC 3339, as sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// For a tagged push: the digest `repository:tag` pointed to before, as hookline last
    /// saw it from this source (absent on the tag's first push, or after the tag was
    /// deleted). Set by the store in the transaction that stores the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_digest: Option<String>,
    /// For a tagged push: whether the tag now points somewhere new (false for a re-push
    /// of the digest it already had). Set with `previous_digest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed: Option<bool>,
    /// What the registry said about the image (`image.pushed`, `manifest.pushed` from a
    /// source with a registry URL). Not part of the stored body: the dispatcher sets it from
    /// `events.enrichment` before rendering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrichment: Option<crate::enrichment::Enrichment>,
    /// For an owner notice: what it is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<Notice>,
    /// The W3C `traceparent` of the notify request that stored it, when traces are on: a
    /// dispatcher continues that trace (`telemetry::traces`). No payload format shows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_parent: Option<String>,
    /// The W3C `tracestate` that came with `trace_parent`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_state: Option<String>,
    /// When hookline received it (Unix milliseconds).
    pub received_at: i64,
    /// The registry's original event object, kept verbatim for the `distribution` payload format.
    pub original: serde_json::Value,
}

impl Event {
    /// An event with its identity set and every optional field empty; callers fill in
    /// what they know (ingest from the registry's event, the API for a test ping).
    pub fn new(
        id: impl Into<String>,
        source: impl Into<String>,
        registry_event_id: impl Into<String>,
        kind: EventType,
        repository: impl Into<String>,
        received_at: i64,
    ) -> Event {
        Event {
            id: id.into(),
            source: source.into(),
            registry_event_id: registry_event_id.into(),
            kind,
            repository: repository.into(),
            tag: None,
            digest: None,
            media_type: None,
            size: None,
            references: Vec::new(),
            url: None,
            from_repository: None,
            actor: None,
            registry_host: None,
            source_addr: None,
            source_instance_id: None,
            request_id: None,
            request_useragent: None,
            request_addr: None,
            request_method: None,
            timestamp: None,
            previous_digest: None,
            changed: None,
            enrichment: None,
            notice: None,
            trace_parent: None,
            trace_state: None,
            received_at,
            original: serde_json::Value::Null,
        }
    }
}
