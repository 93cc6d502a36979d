//! hookline (JSON Schema), CloudEvents (`cloudevents-sdk`) and distribution (round trip,
//! Keel and Jenkins fields) built from every fixture event; which formats carry which.

use std::collections::BTreeSet;
use std::path::PathBuf;

use cloudevents::AttributesReader;
use hookline::dispatch::payload::{Format, delivers};
use hookline::event::{Event, EventType};
use hookline::store::PayloadOptions;
use serde_json::{Value, json};

use super::{RECEIVED_AT, event_id, fixtures, integer, render, string};

fn schema() -> Value {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/schema/hookline-v1.schema.json");
    serde_json::from_slice(&std::fs::read(path).expect("schema file")).expect("schema is JSON")
}

fn validator() -> jsonschema::Validator {
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema())
        .expect("the schema compiles")
}

#[track_caller]
fn assert_valid(validator: &jsonschema::Validator, body: &Value, what: &str) {
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{what}: {errors:?}\n{body:#}");
}

/// An envelope of one event, normalised by ingest.
fn ingest(event: Value, i: usize) -> Event {
    let body = json!({ "events": [event] }).to_string();
    let parsed =
        hookline::ingest::envelope::parse(body.as_bytes(), "default", RECEIVED_AT, 10, || {
            event_id(i)
        })
        .expect("parses");
    parsed.events.into_iter().next().expect("accepted")
}

/// One event of every type: the first fixture of each, and made-up ones for the four
/// types the fixtures lack (a manifest mount, a push by digest, a 3.x repository delete,
/// a ping).
fn one_of_each_type() -> Vec<Event> {
    let mut events: Vec<Event> = Vec::new();
    for f in fixtures() {
        if !events.iter().any(|e| e.kind == f.event.kind) {
            events.push(f.event);
        }
    }
    let digest = "sha256:5f3e2beeaec1cbddb12b9be6d34a44fdd3c1461f918888b2bf2814625041dfa2";
    events.push(ingest(
        json!({
            "id": "b0d5a7e0-6c1f-4d51-9a43-5d1d2e9f0a11", "timestamp": "2026-11-25T01:17:07.102938475Z",
            "action": "mount",
            "target": {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "size": 423,
                "digest": digest, "length": 423, "repository": "acme/tools/app", "fromRepository": "acme/app",
                "url": format!("http://127.0.0.1:5000/v2/acme/tools/app/manifests/{digest}")},
            "request": {"id": "4c1d", "addr": "127.0.0.1:37110", "host": "127.0.0.1:5000", "method": "POST", "useragent": "skopeo/1.9.3"},
            "actor": {}, "source": {"addr": "vm:5000", "instanceID": "4e07b64a-3b5c-4de9-bbb4-b758bd84fab8"}
        }),
        20,
    ));
    // The arm64 manifest of a two-platform image, pushed by digest before its index.
    let platform = "sha256:0d1f8c2a3e4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d";
    events.push(ingest(
        json!({
            "id": "7c2e9d41-5a3b-4f60-8e1d-2b9c4a6f0e35", "timestamp": "2026-11-25T01:17:30.204817311Z",
            "action": "push",
            "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 401,
                "digest": platform, "length": 401, "repository": "acme/multi",
                "url": format!("http://127.0.0.1:5000/v2/acme/multi/manifests/{platform}")},
            "request": {"id": "5d2e", "addr": "127.0.0.1:37150", "host": "127.0.0.1:5000", "method": "PUT", "useragent": "skopeo/1.9.3"},
            "actor": {}, "source": {"addr": "vm:5000", "instanceID": "4e07b64a-3b5c-4de9-bbb4-b758bd84fab8"}
        }),
        23,
    ));
    events.push(ingest(
        json!({
            "id": "e2f1c6a4-1b8e-4a8f-8f3e-2a0c9d4b7e21", "timestamp": "2026-11-25T01:18:00.5Z",
            "action": "delete", "target": {"repository": "acme/old"},
            "request": {"id": "9e1a", "addr": "127.0.0.1:37300", "host": "127.0.0.1:5000", "method": "DELETE", "useragent": "curl/7.88.1"},
            "actor": {"name": "alice"}, "source": {"addr": "vm:5000", "instanceID": "4e07b64a-3b5c-4de9-bbb4-b758bd84fab8"}
        }),
        21,
    ));
    let mut ping = events[0].clone();
    ping.id = event_id(22);
    ping.kind = EventType::Ping;
    ping.source = "hookline".into();
    ping.repository = "acme".into();
    ping.tag = None;
    ping.digest = None;
    ping.media_type = None;
    ping.size = None;
    ping.references = vec![];
    ping.url = None;
    ping.registry_host = None;
    ping.actor = None;
    ping.request_id = None;
    ping.request_method = None;
    ping.request_useragent = None;
    ping.timestamp = Some("2026-11-25T01:20:00.000Z".into());
    events.push(ping);
    // The owner notices, about a webhook in `acme`.
    for (i, kind) in EventType::NOTICES.into_iter().enumerate() {
        let mut notice = hookline::dispatch::payload::sample(kind, "acme", RECEIVED_AT);
        notice.id = event_id(24 + i);
        events.push(notice);
    }
    let kinds: BTreeSet<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds.len(), EventType::ALL.len(), "{kinds:?}");
    events
}

#[test]
fn hookline_payloads_of_every_fixture_match_the_schema() {
    let validator = validator();
    let documented: BTreeSet<String> = schema()["properties"]
        .as_object()
        .expect("properties")
        .keys()
        .cloned()
        .collect();
    for f in fixtures() {
        let (content_type, body) = render(Format::Hookline, &f.event);
        assert_eq!(content_type, "application/json");
        assert_valid(&validator, &body, &f.name);
        let fields: BTreeSet<String> = body.as_object().expect("object").keys().cloned().collect();
        assert_eq!(fields, documented, "{}: every field documented", f.name);
        let e = &f.envelope["events"][0];
        assert_eq!(body["repository"], e["target"]["repository"], "{}", f.name);
        assert_eq!(body["time"], e["timestamp"], "{}", f.name);
        assert_eq!(body["registry"], e["request"]["host"], "{}", f.name);
        if let Some(tag) = e["target"]["tag"].as_str() {
            let image = string(&body, "/image", true);
            assert!(image.starts_with("127.0.0.1:500"), "{image}");
            assert!(image.contains(&format!(":{tag}")), "{}: {image}", f.name);
        }
    }
    // A value of the wrong type is caught: the schema is not a rubber stamp.
    let (_, mut body) = render(Format::Hookline, &fixtures()[1].event);
    body["size"] = json!("345");
    assert!(!validator.is_valid(&body));
}

/// docs/schema/examples/<type>.json: one example per event type, generated from the
/// fixtures, valid against the schema. `HOOKLINE_BLESS=1` rewrites them.
#[test]
fn the_documented_examples_are_current_and_valid() {
    let validator = validator();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/schema/examples");
    let bless = std::env::var_os("HOOKLINE_BLESS").is_some();
    for event in one_of_each_type() {
        let (_, body) = render(Format::Hookline, &event);
        assert_valid(&validator, &body, event.kind.as_str());
        let path = dir.join(format!("{}.json", event.kind.as_str()));
        let text = format!("{}\n", serde_json::to_string_pretty(&body).expect("json"));
        if bless {
            std::fs::create_dir_all(&dir).expect("examples dir");
            std::fs::write(&path, &text).expect("write example");
        }
        let committed = std::fs::read_to_string(&path)
            .unwrap_or_else(|_| panic!("{} missing (run with HOOKLINE_BLESS=1)", path.display()));
        assert_eq!(
            committed,
            text,
            "{} is stale (HOOKLINE_BLESS=1)",
            path.display()
        );
    }
}

#[test]
fn cloudevents_sdk_reads_every_fixture() {
    for f in fixtures() {
        let (content_type, body) = render(Format::CloudEvents, &f.event);
        assert_eq!(content_type, "application/cloudevents+json");
        let ce: cloudevents::Event = serde_json::from_value(body.clone())
            .unwrap_or_else(|e| panic!("{}: cloudevents-sdk refuses it: {e}\n{body:#}", f.name));
        let e = &f.envelope["events"][0];
        assert_eq!(ce.specversion().as_str(), "1.0");
        assert_eq!(ce.ty(), format!("io.hookline.{}", f.event.kind.as_str()));
        assert_eq!(ce.id(), f.event.id);
        let host = e["request"]["host"].as_str().expect("host");
        assert_eq!(ce.source().to_string(), format!("https://{host}"));
        assert_eq!(ce.datacontenttype(), Some("application/json"));
        let time = ce.time().expect("time");
        assert_eq!(
            time.timestamp(),
            time::OffsetDateTime::parse(
                e["timestamp"].as_str().expect("ts"),
                &time::format_description::well_known::Rfc3339
            )
            .expect("fixture time")
            .unix_timestamp()
        );
        let repository = e["target"]["repository"].as_str().expect("repo");
        let subject = ce.subject().expect("subject");
        assert!(subject.starts_with(repository), "{subject}");
        let Some(cloudevents::Data::Json(data)) = ce.data() else {
            panic!("{}: data must be a JSON object", f.name);
        };
        // What Argo CD Image Updater's CloudEvents webhook reads: flat strings.
        assert_eq!(string(data, "/registry", true), e["request"]["host"]);
        assert_eq!(string(data, "/repository", true), repository);
        assert_eq!(
            string(data, "/tag", false),
            e["target"]["tag"].as_str().unwrap_or_default()
        );
        assert_eq!(
            string(data, "/digest", false),
            e["target"]["digest"].as_str().unwrap_or_default()
        );
        if f.event.kind == EventType::ImagePushed {
            assert!(ce.ty().contains("image"), "Argo wants `image` in the type");
        }
    }
}

#[test]
fn distribution_round_trips_to_the_original_event() {
    for f in fixtures() {
        let (content_type, body) = render(Format::Distribution, &f.event);
        assert_eq!(
            content_type,
            "application/vnd.docker.distribution.events.v1+json"
        );
        assert_eq!(body, f.envelope, "{}: the registry's own envelope", f.name);
        let e = &body["events"][0];
        string(e, "/timestamp", true);
        string(e, "/request/host", true);
        assert!(e["request"].is_object(), "Jenkins reads the request object");
        if let Some(size) = e["target"].get("size") {
            assert!(size.is_i64(), "{}: size is an integer", f.name);
        }
        if f.event.kind == EventType::ImagePushed && f.event.tag.is_some() {
            // Keel's /v1/webhooks/registry: action, target.tag, request.host, RFC 3339 time.
            assert_eq!(e["action"], "push");
            string(e, "/target/tag", true);
            integer(e, "/target/length");
            // Jenkins: target.url is scheme://host/v2/<repo>/manifests/<digest>.
            let url = string(e, "/target/url", true);
            let repo = string(e, "/target/repository", true);
            let digest = string(e, "/target/digest", true);
            assert!(
                url.starts_with("http://") || url.starts_with("https://"),
                "{url}"
            );
            assert!(
                url.ends_with(&format!("/v2/{repo}/manifests/{digest}")),
                "{url}"
            );
        }
    }
}

#[test]
fn dockerhub_and_harbor_carry_tag_pushes_only_unless_deletes_are_asked_for() {
    let defaults = PayloadOptions::default();
    let deletes = PayloadOptions {
        harbor_deletes: true,
        ..Default::default()
    };
    let mut tag_pushes = Vec::new();
    for f in fixtures() {
        let tag_push = f.event.kind == EventType::ImagePushed && f.event.tag.is_some();
        if tag_push {
            tag_pushes.push(f.name.clone());
        }
        for format in [Format::Hookline, Format::CloudEvents, Format::Distribution] {
            assert!(delivers(format, &defaults, &f.event), "{}", f.name);
        }
        assert_eq!(
            delivers(Format::DockerHub, &defaults, &f.event),
            tag_push,
            "{}",
            f.name
        );
        assert_eq!(
            delivers(Format::DockerHub, &deletes, &f.event),
            tag_push,
            "{}",
            f.name
        );
        assert_eq!(
            delivers(Format::Harbor, &defaults, &f.event),
            tag_push,
            "{}",
            f.name
        );
        assert_eq!(
            delivers(Format::Harbor, &deletes, &f.event),
            tag_push || f.event.kind == EventType::ImageDeleted,
            "{}",
            f.name
        );
    }
    assert_eq!(
        tag_pushes,
        [
            "02-push-manifest-oci-tagged.json",
            "03-push-manifest-docker-v2-tagged.json",
            "07-push-manifest-nested-repository.json",
            "10-push-manifest-list-with-references.json",
            "11-push-manifest-authenticated-actor.json"
        ]
    );
}

/// Each page of docs/payloads/ shows its format rendered from fixture 11 (a tag push by an
/// authenticated user) between `<!-- example -->` and `<!-- /example -->`, kept current
/// by this test (`HOOKLINE_BLESS=1` rewrites the block).
#[test]
fn the_payload_reference_pages_show_current_examples() {
    let event = fixtures()
        .into_iter()
        .find(|f| f.name.starts_with("11-"))
        .expect("fixture 11")
        .event;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/payloads");
    let bless = std::env::var_os("HOOKLINE_BLESS").is_some();
    // Chat messages are described in docs/destinations.md, templates in docs/templates.md:
    // their bodies are the owner's choice of channel or shape, not a reference format.
    let reference = Format::ALL
        .into_iter()
        .filter(|f| !f.is_chat() && *f != Format::Template);
    for format in reference {
        let (content_type, body) = render(format, &event);
        let block = format!(
            "<!-- example -->\n```http\nPOST /your/endpoint HTTP/1.1\nContent-Type: {content_type}\nwebhook-id: dlv_019ab5c1f00070008000a1b2c3d4e5f6\nwebhook-timestamp: 1795569450\nwebhook-signature: v1,…\n\n{}\n```\n<!-- /example -->",
            serde_json::to_string_pretty(&body).expect("json")
        );
        let path = dir.join(format!("{}.md", format.as_str()));
        let page = std::fs::read_to_string(&path)
            .unwrap_or_else(|_| panic!("{} is missing", path.display()));
        let (start, end) = (
            page.find("<!-- example -->").expect("example marker"),
            page.find("<!-- /example -->").expect("example end marker") + "<!-- /example -->".len(),
        );
        let current = format!("{}{block}{}", &page[..start], &page[end..]);
        if bless && current != page {
            std::fs::write(&path, &current).expect("write page");
            continue;
        }
        assert_eq!(
            page,
            current,
            "{}: example is stale (HOOKLINE_BLESS=1)",
            path.display()
        );
    }
}
