//! Self-test of the registry harness (`harness::registry`) against a bare HTTP receiver:
//! the real registry sends the envelopes the fixtures show, with our token, for a push
//! and for a tag delete. Documents the exact event sequence tests can rely on.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use serde_json::Value;

use crate::harness::registry::Registry;

const TOKEN: &str = "selftest-registry-token";

/// One POST the registry made.
struct Envelope {
    content_type: String,
    authorization: String,
    body: Value,
}

type Received = Arc<Mutex<Vec<Envelope>>>;

async fn record(State(received): State<Received>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let envelope = Envelope {
        content_type: header(header::CONTENT_TYPE),
        authorization: header(header::AUTHORIZATION),
        body: serde_json::from_slice(&body).expect("the registry sends JSON"),
    };
    received.lock().expect("receiver lock").push(envelope);
    StatusCode::OK
}

async fn start_receiver() -> (SocketAddr, Received) {
    let received = Received::default();
    let app = axum::Router::new()
        .route("/v1/notify", post(record))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding the receiver");
    let addr = listener.local_addr().expect("receiver address");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("receiver serves") });
    (addr, received)
}

/// All events received so far, in arrival order.
fn events(received: &Received) -> Vec<Value> {
    received
        .lock()
        .expect("receiver lock")
        .iter()
        .flat_map(|e| e.body["events"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// Waits (bounded) until an event with this action and tag has arrived.
async fn wait_for_tag_event(received: &Received, registry: &Registry, action: &str, tag: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !events(received)
        .iter()
        .any(|e| e["action"] == action && e["target"]["tag"] == tag)
    {
        assert!(
            Instant::now() < deadline,
            "no {action} event for tag {tag} within 15 s\n{}",
            registry.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn push_and_delete_tag_send_the_fixture_envelopes() {
    let (addr, received) = start_receiver().await;
    let registry = Registry::start(&format!("http://{addr}/v1/notify"), TOKEN).await;

    let digest = registry.push_image("acme/app", "1.0").await;
    assert!(digest.starts_with("sha256:"), "{digest}");
    wait_for_tag_event(&received, &registry, "push", "1.0").await;

    // A push: every blob (layer, config), then the manifest; only the manifest has the tag.
    let pushed = events(&received);
    assert_eq!(pushed.len(), 3, "{pushed:#?}");
    let (blobs, manifest) = (&pushed[..2], &pushed[2]);
    for blob in blobs {
        assert_eq!(blob["action"], "push");
        assert_eq!(blob["target"]["mediaType"], "application/octet-stream");
        assert_eq!(blob["target"]["repository"], "acme/app");
        assert!(blob["target"].get("tag").is_none(), "{blob:#}");
    }
    assert_eq!(manifest["action"], "push");
    assert_eq!(
        manifest["target"]["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(manifest["target"]["digest"], digest.as_str());
    assert_eq!(manifest["target"]["tag"], "1.0");
    let mut referenced: Vec<&Value> = manifest["target"]["references"]
        .as_array()
        .expect("includereferences: true adds references")
        .iter()
        .map(|r| &r["digest"])
        .collect();
    let mut blob_digests: Vec<&Value> = blobs.iter().map(|b| &b["target"]["digest"]).collect();
    referenced.sort_by_key(|v| v.to_string());
    blob_digests.sort_by_key(|v| v.to_string());
    assert_eq!(referenced, blob_digests);

    // Each push builds a new image: another tag gets another digest.
    let other = registry.push_image("acme/app", "2.0").await;
    assert_ne!(other, digest);
    wait_for_tag_event(&received, &registry, "push", "2.0").await;
    let before_delete = events(&received).len();

    // A tag delete: the manifest delete (digest, no media type), then the tag delete.
    assert_eq!(registry.delete_tag("acme/app", "1.0").await, digest);
    wait_for_tag_event(&received, &registry, "delete", "1.0").await;
    let deleted = events(&received).split_off(before_delete);
    assert_eq!(deleted.len(), 2, "{deleted:#?}");
    assert_eq!(deleted[0]["action"], "delete");
    assert_eq!(deleted[0]["target"]["digest"], digest.as_str());
    assert!(deleted[0]["target"].get("mediaType").is_none());
    assert!(deleted[0]["target"].get("tag").is_none());
    assert_eq!(deleted[1]["action"], "delete");
    assert_eq!(deleted[1]["target"]["tag"], "1.0");
    assert_eq!(deleted[1]["target"]["repository"], "acme/app");
    assert_eq!(deleted[0]["request"]["id"], deleted[1]["request"]["id"]);
    assert_eq!(deleted[1]["request"]["method"], "DELETE");

    // Envelope level: one event each, the v1 media type, our bearer token; never a pull.
    let envelopes = received.lock().expect("receiver lock");
    assert_eq!(envelopes.len(), 8);
    for envelope in envelopes.iter() {
        assert_eq!(
            envelope.content_type,
            "application/vnd.docker.distribution.events.v1+json"
        );
        assert_eq!(envelope.authorization, format!("Bearer {TOKEN}"));
        let events = envelope.body["events"].as_array().expect("events list");
        assert_eq!(events.len(), 1);
        assert_ne!(events[0]["action"], "pull");
    }
}
