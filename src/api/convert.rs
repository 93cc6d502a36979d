//! Conversions between the `hookline.v1` messages and the domain types.
//!
//! Pure and total on the domain side: every stored webhook has a proto form. The proto
//! side may carry numbers no enum knows (proto3 enums are open); those come back as
//! `None` and `validate` turns them into INVALID_ARGUMENT.

use std::collections::BTreeMap;

use super::proto;
use crate::dispatch::payload::Format;
use crate::event::EventType;
use crate::store::{
    AttemptRecord, DeliveryView, EventRecord, HealthRecord, PayloadOptions, StatsTotals, Webhook,
};

/// The proto enum of an event type.
pub(crate) fn event_type_to_proto(kind: EventType) -> proto::EventType {
    use proto::EventType as P;
    match kind {
        EventType::ImagePushed => P::ImagePushed,
        EventType::ManifestPushed => P::ManifestPushed,
        EventType::ImageDeleted => P::ImageDeleted,
        EventType::ImagePulled => P::ImagePulled,
        EventType::ImageMounted => P::ImageMounted,
        EventType::RepositoryDeleted => P::RepositoryDeleted,
        EventType::BlobPushed => P::BlobPushed,
        EventType::BlobPulled => P::BlobPulled,
        EventType::BlobMounted => P::BlobMounted,
        EventType::Ping => P::Ping,
        EventType::WebhookFailing => P::WebhookFailing,
        EventType::WebhookCircuitOpened => P::WebhookCircuitOpened,
        EventType::WebhookDisabled => P::WebhookDisabled,
        EventType::WebhookRecovered => P::WebhookRecovered,
        EventType::DeliveryFailed => P::DeliveryFailed,
    }
}

/// The event type of a proto enum value; None for UNSPECIFIED and unknown numbers.
pub(crate) fn event_type_from_proto(value: i32) -> Option<EventType> {
    EventType::ALL
        .into_iter()
        .find(|kind| event_type_to_proto(*kind) as i32 == value)
}

/// The proto enum of a stored format name (unknown names read as `hookline`, which is
/// what the dispatcher sends for them).
pub(crate) fn format_to_proto(name: &str) -> proto::PayloadFormat {
    use proto::PayloadFormat as P;
    match Format::parse(name) {
        Format::Hookline => P::Hookline,
        Format::CloudEvents => P::Cloudevents,
        Format::DockerHub => P::Dockerhub,
        Format::Harbor => P::Harbor,
        Format::Distribution => P::Distribution,
        Format::Slack => P::Slack,
        Format::MsTeams => P::Msteams,
        Format::Discord => P::Discord,
        Format::GoogleChat => P::Googlechat,
        Format::Mattermost => P::Mattermost,
        Format::Template => P::Template,
    }
}

/// The stored name of a proto format; UNSPECIFIED means `hookline`; None for unknown numbers.
pub(crate) fn format_from_proto(value: i32) -> Option<&'static str> {
    if value == proto::PayloadFormat::Unspecified as i32 {
        return Some("hookline");
    }
    Format::ALL
        .into_iter()
        .map(Format::as_str)
        .find(|name| format_to_proto(name) as i32 == value)
}

/// What the API shows of a webhook's URL: the whole URL, except for a chat format, whose
/// URL is the credential that posts to the channel: then only its scheme and host, and
/// [`REDACTED`] (the whole URL is shown once, by CreateWebhook).
pub(crate) fn shown_url(w: &Webhook) -> String {
    let parsed = reqwest::Url::parse(&w.url);
    if Format::parse(&w.format).is_chat() {
        return match parsed {
            Ok(url) => format!(
                "{}://{}/{REDACTED}",
                url.scheme(),
                url.host_str().unwrap_or_default()
            ),
            Err(_) => REDACTED.to_owned(),
        };
    }
    // A password in the URL (a broker's) is a credential too.
    match parsed.as_ref().ok().and_then(|url| url.password()) {
        Some(password) => w
            .url
            .replacen(&format!(":{password}@"), &format!(":{REDACTED}@"), 1),
        None => w.url.clone(),
    }
}

/// What stands for the hidden part of a chat webhook's URL.
pub(crate) const REDACTED: &str = "…redacted";

/// Unix milliseconds as a protobuf timestamp.
pub(crate) fn timestamp(unix_ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: unix_ms.div_euclid(1000),
        nanos: (unix_ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// A stored webhook as the API shows it. There is no secret in a `Webhook` to leak.
pub(crate) fn webhook_to_proto(w: &Webhook) -> proto::Webhook {
    proto::Webhook {
        id: w.id.clone(),
        namespace: Some(w.namespace.clone()),
        name: w.name.clone(),
        url: shown_url(w),
        event_types: w
            .event_types
            .iter()
            .filter_map(|name| EventType::parse(name))
            .map(|kind| event_type_to_proto(kind) as i32)
            .collect(),
        repositories: w.repositories.clone(),
        tags: w.tags.clone(),
        payload_format: format_to_proto(&w.format) as i32,
        // A header's value is a secret unless its owner marked it plain.
        headers: w
            .headers
            .iter()
            .map(|(k, v)| {
                let plain = w.plain_headers.iter().any(|p| p.eq_ignore_ascii_case(k));
                let shown = if plain {
                    v.clone()
                } else {
                    REDACTED.to_owned()
                };
                (k.clone(), shown)
            })
            .collect(),
        plain_headers: w.plain_headers.clone(),
        ordered: w.ordered,
        enabled: Some(w.enabled),
        disabled_reason: w.disabled_reason.clone().unwrap_or_default(),
        created_at: Some(timestamp(w.created_at)),
        updated_at: Some(timestamp(w.updated_at)),
        signature_header: w.signature_header.clone().unwrap_or_default(),
        payload_options: Some(options_to_proto(&w.payload_options)),
        health: None,
        max_concurrency: w.max_concurrency.and_then(|n| i32::try_from(n).ok()),
        rate_limit: w.rate_limit_milli.map(|m| m as f64 / 1000.0),
        client_certificate: w
            .client_identity
            .as_ref()
            .map(|i| i.certificate.clone())
            .unwrap_or_default(),
        // Write-only: the key never leaves the server.
        client_key: String::new(),
        oauth: w.oauth.as_ref().map(|o| proto::OAuthClientCredentials {
            token_url: o.token_url.clone(),
            client_id: o.client_id.clone(),
            // Write-only too.
            client_secret: String::new(),
            scopes: o.scopes.clone(),
        }),
    }
}

/// A webhook's health as the API shows it; `None` means no attempt was ever recorded.
pub(crate) fn health_to_proto(
    w: &Webhook,
    h: Option<&HealthRecord>,
    day: Option<&StatsTotals>,
) -> proto::WebhookHealth {
    let default = HealthRecord::default();
    let h = h.unwrap_or(&default);
    let none = StatsTotals::default();
    let day = day.unwrap_or(&none);
    proto::WebhookHealth {
        last_success_at: h.last_success_at.map(timestamp),
        failing_since: w.failing_since.map(timestamp),
        last_attempt_at: h.last_attempt_at.map(timestamp),
        last_status_code: h.last_status_code.unwrap_or(0) as i32,
        last_error: h.last_error.clone().unwrap_or_default(),
        last_outcome: h.last_outcome.clone().unwrap_or_default(),
        pending: h.pending,
        failed: h.failed,
        circuit: h.circuit.clone().unwrap_or_else(|| "closed".into()),
        circuit_open_until: h.circuit_until.map(timestamp),
        concurrency_window: h
            .concurrency_window
            .and_then(|n| i32::try_from(n).ok())
            .unwrap_or(0),
        succeeded_24h: day.succeeded,
        retried_24h: day.retried,
        failed_24h: day.failed,
    }
}

/// Unix milliseconds of a protobuf timestamp (saturating).
pub(crate) fn unix_ms(t: &prost_types::Timestamp) -> i64 {
    t.seconds
        .saturating_mul(1000)
        .saturating_add(i64::from(t.nanos.clamp(0, 999_999_999)) / 1_000_000)
}

/// An event row as the API shows it.
pub(crate) fn event_to_proto(e: &EventRecord) -> proto::Event {
    proto::Event {
        id: e.id.clone(),
        r#type: EventType::parse(&e.kind)
            .map(|k| event_type_to_proto(k) as i32)
            .unwrap_or(0),
        type_name: e.kind.clone(),
        repository: e.repository.clone(),
        tag: e.tag.clone().unwrap_or_default(),
        digest: e.digest.clone().unwrap_or_default(),
        source: e.source.clone(),
        received_at: Some(timestamp(e.received_at)),
    }
}

/// A stored status (with its attempts) as the API's enum.
pub(crate) fn status_to_proto(display_status: &str) -> proto::DeliveryStatus {
    use proto::DeliveryStatus as S;
    match display_status {
        "pending" => S::Pending,
        "retrying" => S::Retrying,
        "succeeded" => S::Succeeded,
        "failed" => S::Failed,
        _ => S::Unspecified,
    }
}

/// A delivery as the API shows it.
pub(crate) fn delivery_to_proto(v: &DeliveryView) -> proto::Delivery {
    let d = &v.delivery;
    let waiting = d.status == "pending";
    proto::Delivery {
        id: d.id.clone(),
        webhook_id: d.webhook_id.clone(),
        event_id: d.event_id.clone(),
        event_type: v.event_type.clone().unwrap_or_default(),
        repository: v.repository.clone().unwrap_or_default(),
        tag: v.tag.clone().unwrap_or_default(),
        digest: v.digest.clone().unwrap_or_default(),
        status: status_to_proto(d.display_status()) as i32,
        attempts: d.attempts,
        next_attempt_at: waiting.then(|| timestamp(d.next_attempt_at)),
        last_status_code: d.last_status_code.unwrap_or(0) as i32,
        last_error: d.last_error.clone().unwrap_or_default(),
        last_duration_ms: d.last_duration_ms.unwrap_or(0),
        last_attempt_at: d.last_attempt_at.map(timestamp),
        created_at: Some(timestamp(d.created_at)),
        updated_at: Some(timestamp(d.updated_at)),
    }
}

/// An attempt as the API shows it.
pub(crate) fn attempt_to_proto(a: &AttemptRecord) -> proto::Attempt {
    let response_headers = a
        .response_headers
        .as_deref()
        .and_then(|h| serde_json::from_str::<std::collections::HashMap<String, String>>(h).ok())
        .unwrap_or_default();
    proto::Attempt {
        id: a.id.clone(),
        number: a.number,
        started_at: Some(timestamp(a.started_at)),
        duration_ms: a.duration_ms,
        status_code: a.status_code.unwrap_or(0) as i32,
        response_headers,
        response_body: a.response_body.clone().unwrap_or_default(),
        error_class: a.error_class.clone().unwrap_or_default(),
        error: a.error.clone().unwrap_or_default(),
        outcome: a.outcome.clone(),
        reason: a.reason.clone().unwrap_or_default(),
        next_attempt_at: a.next_attempt_at.map(timestamp),
    }
}

/// Payload options as the API shows them.
pub(crate) fn options_to_proto(o: &PayloadOptions) -> proto::PayloadOptions {
    proto::PayloadOptions {
        include_host_in_repo_name: o.include_host_in_repo_name,
        harbor_deletes: o.harbor_deletes,
        chat_link: o.chat_link.clone().unwrap_or_default(),
        chat_mention: o.chat_mention.clone().unwrap_or_default(),
        template: o.template.clone().unwrap_or_default(),
        template_content_type: o.template_content_type.clone().unwrap_or_default(),
        preset: String::new(),
    }
}

/// Payload options as stored; unset means the defaults.
pub(crate) fn options_from_proto(o: Option<&proto::PayloadOptions>) -> PayloadOptions {
    o.map(|o| PayloadOptions {
        include_host_in_repo_name: o.include_host_in_repo_name,
        harbor_deletes: o.harbor_deletes,
        chat_link: (!o.chat_link.is_empty()).then(|| o.chat_link.clone()),
        chat_mention: (!o.chat_mention.is_empty()).then(|| o.chat_mention.clone()),
        template: (!o.template.is_empty()).then(|| o.template.clone()),
        template_content_type: (!o.template_content_type.is_empty())
            .then(|| o.template_content_type.clone()),
    })
    .unwrap_or_default()
}

/// Headers in the stored (sorted) form.
pub(crate) fn headers(map: &std::collections::HashMap<String, String>) -> BTreeMap<String, String> {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_type_round_trips() {
        for kind in EventType::ALL {
            assert_eq!(
                event_type_from_proto(event_type_to_proto(kind) as i32),
                Some(kind)
            );
        }
        assert_eq!(event_type_from_proto(0), None, "UNSPECIFIED");
        assert_eq!(event_type_from_proto(99), None);
    }

    #[test]
    fn every_format_round_trips() {
        for name in Format::ALL.map(Format::as_str) {
            assert_eq!(format_from_proto(format_to_proto(name) as i32), Some(name));
        }
        assert_eq!(format_from_proto(0), Some("hookline"));
        assert_eq!(format_from_proto(99), None);
    }

    #[test]
    fn payload_options_round_trip() {
        let o = PayloadOptions {
            include_host_in_repo_name: Some(false),
            harbor_deletes: true,
            chat_link: Some("https://ui.example/{repository}".into()),
            chat_mention: Some("<!here>".into()),
            template: Some("{{ tag|tojson }}".into()),
            template_content_type: Some("application/json".into()),
        };
        assert_eq!(options_from_proto(Some(&options_to_proto(&o))), o);
        assert_eq!(options_from_proto(None), PayloadOptions::default());
    }

    #[test]
    fn chat_urls_are_shown_redacted() {
        let mut w = Webhook::new(
            "wh_1",
            "acme",
            "https://hooks.slack.com/services/T0/B0/XYZ",
            0,
        );
        assert_eq!(shown_url(&w), "https://hooks.slack.com/services/T0/B0/XYZ");
        w.format = "slack".into();
        assert_eq!(shown_url(&w), "https://hooks.slack.com/…redacted");
        w.url = "not a url".into();
        assert_eq!(shown_url(&w), "…redacted");
        w.format = "cloudevents".into();
        w.url = "redis://app:s3cr%40t@broker.example:6379/0?stream=images".into();
        assert_eq!(
            shown_url(&w),
            "redis://app:…redacted@broker.example:6379/0?stream=images"
        );
    }

    #[test]
    fn timestamps_split_milliseconds() {
        let t = timestamp(1_700_000_000_123);
        assert_eq!((t.seconds, t.nanos), (1_700_000_000, 123_000_000));
    }
}
