//! Sample events: what the API renders a template against before accepting it, and what
//! a preview shows when no stored event is named. Each is a realistic event of its type
//! in the webhook's namespace: a two-platform image with its revision for pushes.

use crate::enrichment::{Enrichment, Facts};
use crate::event::{Event, EventType, Reference};

/// A realistic owner notice of `kind` about a webhook in `namespace`.
fn notice(kind: EventType, namespace: &str, now: i64) -> Event {
    let failing = kind != EventType::WebhookDisabled;
    let notice = crate::event::Notice {
        webhook_id: "wh_01936b1f0a7c7e3c9d4b2a1f0e9d8c7b".into(),
        webhook_name: "deploy".into(),
        reason: (kind != EventType::WebhookRecovered)
            .then(|| "HTTP 503 is retried: attempt 3 of 10 in 2m".into()),
        failing_since: failing.then(|| super::rfc3339(now - 600_000)),
        deliveries: u64::from(kind == EventType::DeliveryFailed) * 3,
        delivery_ids: if kind == EventType::DeliveryFailed {
            (1..=3).map(|i| format!("dlv_sample{i}")).collect()
        } else {
            Vec::new()
        },
    };
    let mut e = Event::new("evt_sample", "hookline", "sample", kind, namespace, now);
    e.original = serde_json::to_value(&notice).unwrap_or_default();
    e.notice = Some(notice);
    e
}

/// A realistic event of `kind` in `namespace`, received at `now` (Unix ms).
pub fn sample(kind: EventType, namespace: &str, now: i64) -> Event {
    let repository = if namespace.is_empty() {
        "acme/app".to_owned()
    } else {
        format!("{namespace}/app")
    };
    let digest = format!(
        "sha256:{}",
        "6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b"
    );
    let previous = format!(
        "sha256:{}",
        "1f3b5e6f9b0a8c7d2e4f6a8b0c2d4e6f8a0b2c4d6e8f0a2b4c6d8e0f2a4b6c8d"
    );
    if kind.is_notice() {
        return notice(kind, namespace, now);
    }
    let blob = kind.is_blob();
    let mut e = Event::new("evt_sample", "default", "sample", kind, repository, now);
    e.registry_host = Some("registry.example.com".into());
    e.actor = Some("alice".into());
    e.timestamp = Some(super::rfc3339(now));
    e.request_id = Some("b7f1c7d2-6f6e-4b59-9a57-3c1f0f5f8e21".into());
    e.request_method = Some("PUT".into());
    e.request_useragent = Some("docker/27.3.1".into());
    match kind {
        EventType::Ping | EventType::RepositoryDeleted => {}
        _ => {
            e.digest = Some(digest.clone());
            e.size = Some(if blob { 3_195_496 } else { 1_609 });
            e.media_type = Some(if blob {
                "application/vnd.oci.image.layer.v1.tar+gzip".into()
            } else {
                "application/vnd.oci.image.index.v1+json".into()
            });
        }
    }
    if matches!(
        kind,
        EventType::ImagePushed | EventType::ImageDeleted | EventType::ImagePulled
    ) {
        e.tag = Some("1.4".into());
    }
    if matches!(kind, EventType::ImageMounted | EventType::BlobMounted) {
        e.from_repository = Some("acme/base".into());
    }
    if kind == EventType::ImagePushed {
        e.previous_digest = Some(previous);
        e.changed = Some(true);
        e.references = (1..=2)
            .map(|i| Reference {
                digest: format!("sha256:{i:064x}"),
                media_type: Some("application/vnd.oci.image.manifest.v1+json".into()),
                size: Some(1_050),
            })
            .collect();
        e.enrichment = Some(Enrichment::Complete(Box::new(Facts {
            platforms: vec!["linux/amd64".into(), "linux/arm64".into()],
            revision: Some("4f2c1e9d0b7a".into()),
            version: Some("1.4.0".into()),
            source: Some("https://github.com/acme/app".into()),
            total_size: 58_214_400,
            ..Facts::default()
        })));
    }
    e.url = e.digest.as_ref().map(|d| {
        format!(
            "https://registry.example.com/v2/{}/manifests/{d}",
            e.repository
        )
    });
    e.original = serde_json::json!({"id": "sample", "action": "sample"});
    e
}
