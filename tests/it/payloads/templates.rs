//! Request templates and presets, checked against what each CI reads: every preset
//! rendered for every fixture event and for a two-platform push, GitHub's body against
//! GitHub's own published request schema (`tests/vendor/github-repository-dispatch.schema.json`),
//! GitLab's form fields as its trigger API parses them, the JSON fields the Tekton, Argo
//! Events and Jenkins examples read. Then through a real server on both backends: the
//! API's validation with line and column, a GitHub dispatch delivered to a receiver, a
//! template that cannot render a real event ending as a final not-sent attempt, and
//! PreviewPayload, its tenancy and its redaction.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use hookline::api::proto::{
    self, CreateWebhookRequest, DeliveryStatus, GetDeliveryRequest, PreviewPayloadRequest,
};
use hookline::dispatch::payload::template::presets;
use hookline::dispatch::payload::{Template, sample};
use hookline::event::{Event, EventType};
use hookline::store::TokenKind;
use serde_json::Value;
use tonic::Code;

use super::{fast, fixtures};
use crate::api::{create, mask};
use crate::deliveries::wait_status;
use crate::harness::api::{expect_code, violated_fields};
use crate::harness::envelopes::push;
use crate::harness::receiver::Receiver;
use crate::harness::server::TestServer;
use crate::store_test;

/// Every fixture event a preset may get, and the two-platform sample push.
fn events() -> Vec<(String, Event)> {
    let mut all: Vec<(String, Event)> = fixtures().into_iter().map(|f| (f.name, f.event)).collect();
    all.push((
        "two-platform push".into(),
        sample(EventType::ImagePushed, "acme", 1_795_569_430_000),
    ));
    all
}

/// The preset compiled with its own headers.
fn preset(name: &str) -> Template {
    let p = presets::find(name).expect("preset");
    let headers: BTreeMap<String, String> = p
        .headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Template::compile(p.body, Some(p.content_type), &headers).expect("compiles")
}

fn github_schema() -> jsonschema::Validator {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vendor/github-repository-dispatch.schema.json"
    );
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("vendored schema"))
            .expect("json");
    jsonschema::validator_for(&schema).expect("the schema compiles")
}

#[track_caller]
fn assert_github_accepts(validator: &jsonschema::Validator, body: &[u8], what: &str) -> Value {
    assert!(
        body.len() < 64 * 1024,
        "{what}: GitHub takes less than 64 KB"
    );
    let v: Value = serde_json::from_slice(body).expect("json");
    let errors: Vec<String> = validator
        .iter_errors(&v)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{what}: {errors:?}\n{v:#}");
    v
}

#[test]
fn github_dispatch_bodies_pass_githubs_request_schema() {
    let validator = github_schema();
    let t = preset("github-dispatch");
    for (name, e) in events() {
        let r = t.render(&e).unwrap_or_else(|err| panic!("{name}: {err}"));
        let v = assert_github_accepts(&validator, &r.body, &name);
        assert_eq!(v["event_type"], format!("registry-{}", e.kind));
        let payload = &v["client_payload"];
        assert_eq!(payload["repository"], e.repository.as_str(), "{name}");
        assert_eq!(payload["event_id"], e.id.as_str(), "{name}");
        assert!(
            v.as_object().is_some_and(|o| o.len() == 2),
            "only event_type and client_payload: {v}"
        );
        assert_eq!(
            r.headers,
            [
                (
                    "Accept".to_owned(),
                    "application/vnd.github+json".to_owned()
                ),
                ("X-GitHub-Api-Version".to_owned(), "2022-11-28".to_owned()),
            ]
        );
    }
    let two = sample(EventType::ImagePushed, "acme", 0);
    let r = t.render(&two).expect("renders");
    let v: Value = serde_json::from_slice(&r.body).expect("json");
    assert_eq!(
        v["client_payload"]["platforms"],
        serde_json::json!(["linux/amd64", "linux/arm64"])
    );
}

/// `application/x-www-form-urlencoded`, decoded as GitLab's Rails parses it.
fn form(body: &[u8]) -> HashMap<String, String> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8()
            .expect("utf-8")
            .into_owned()
    };
    std::str::from_utf8(body)
        .expect("utf-8")
        .split('&')
        .map(|pair| {
            let (k, v) = pair.split_once('=').expect("name=value");
            (decode(k), decode(v))
        })
        .collect()
}

#[test]
fn gitlab_triggers_carry_ref_and_variables() {
    let t = preset("gitlab-trigger");
    for (name, e) in events() {
        let r = t.render(&e).unwrap_or_else(|err| panic!("{name}: {err}"));
        assert_eq!(r.content_type, "application/x-www-form-urlencoded");
        let fields = form(&r.body);
        assert_eq!(fields["ref"], "main", "{name}");
        assert_eq!(
            fields["variables[HOOKLINE_REPOSITORY]"], e.repository,
            "{name}"
        );
        assert_eq!(
            fields["variables[HOOKLINE_EVENT]"],
            e.kind.as_str(),
            "{name}"
        );
        assert_eq!(
            fields["variables[HOOKLINE_TAG]"],
            e.tag.clone().unwrap_or_default(),
            "{name}"
        );
        let image = fields["variables[HOOKLINE_IMAGE]"].clone();
        if e.kind == EventType::ImagePushed {
            assert_eq!(image, hookline::dispatch::payload::image_reference(&e));
        }
        for key in fields.keys() {
            assert!(
                key == "ref" || (key.starts_with("variables[") && key.ends_with(']')),
                "{name}: GitLab reads only ref and variables[…]: {key}"
            );
        }
    }
}

#[test]
fn tekton_argo_and_jenkins_read_flat_json_fields() {
    for name in ["tekton", "argo-events", "jenkins-generic"] {
        let t = preset(name);
        for (event_name, e) in events() {
            let r = t
                .render(&e)
                .unwrap_or_else(|err| panic!("{name} {event_name}: {err}"));
            let v: Value = serde_json::from_slice(&r.body).expect("json");
            // `$(body.image)`, `body.image`, `$.image`: top-level fields.
            assert_eq!(v["repository"], e.repository.as_str());
            assert_eq!(v["type"], e.kind.as_str());
            assert_eq!(v["tag"], serde_json::json!(e.tag));
            assert!(v["platforms"].is_array());
        }
    }
}

fn template_hook(url: &str, body: &str) -> proto::Webhook {
    proto::Webhook {
        payload_format: proto::PayloadFormat::Template as i32,
        payload_options: Some(proto::PayloadOptions {
            template: body.into(),
            ..Default::default()
        }),
        ..crate::api::hook("ci", url)
    }
}

store_test!(
    templates_are_checked_where_the_owner_can_fix_them,
    async |db: &TestDb| {
        let server = TestServer::start(db, fast).await;
        let (_, token) = server.token(TokenKind::Namespace, "acme").await;
        let mut api = server.api_client(Some(&token)).await;
        let refused = async |api: &mut crate::harness::api::Client, w: proto::Webhook| {
            let status = expect_code(
                api.create_webhook(CreateWebhookRequest {
                    webhook: Some(w),
                    secret: String::new(),
                })
                .await,
                Code::InvalidArgument,
            );
            let fields = violated_fields(&status);
            let detail = status
                .get_details_bad_request()
                .map(|b| b.field_violations[0].description.clone())
                .unwrap_or_default();
            (fields, detail)
        };
        use tonic_types::StatusExt;
        let url = "http://127.0.0.1:9/ci";

        let (fields, detail) = refused(
            &mut api,
            template_hook(url, "{\n  \"tag\": {{ tag|tojson }\n}"),
        )
        .await;
        assert_eq!(fields, ["webhook.payload_options.template"]);
        assert!(detail.starts_with("line 2, column "), "{detail}");

        let (_, detail) = refused(&mut api, template_hook(url, "{{ tag|center(99) }}")).await;
        assert!(
            detail.contains("unknown filter `center` is not allowed"),
            "{detail}"
        );

        // Checked against a sample of each subscribed type: a delete has no platforms.
        let mut deletes = template_hook(url, "{\"p\": {{ enrichment.platforms[0]|tojson }}}");
        deletes.event_types = vec![proto::EventType::ImageDeleted as i32];
        let (_, detail) = refused(&mut api, deletes).await;
        assert!(
            detail.starts_with("for a sample image.deleted event: line 1"),
            "{detail}"
        );

        let (_, detail) = refused(&mut api, template_hook(url, "{\"tag\": {{ tag }}x}")).await;
        assert!(detail.contains("not JSON"), "{detail}");

        let mut header = template_hook(url, "{}");
        header.headers = [("X-Image".to_owned(), "{{ image".to_owned())].into();
        let (fields, _) = refused(&mut api, header).await;
        assert_eq!(fields, ["webhook.headers[\"X-Image\"]"]);

        let mut plain = template_hook(url, "{}");
        plain.payload_format = proto::PayloadFormat::Hookline as i32;
        let (fields, _) = refused(&mut api, plain).await;
        assert_eq!(fields, ["webhook.payload_options.template"]);

        let mut unknown = template_hook(url, "{}");
        unknown.payload_options = Some(proto::PayloadOptions {
            preset: "circleci".into(),
            template: "{}".into(),
            ..Default::default()
        });
        let (fields, detail) = refused(&mut api, unknown).await;
        assert_eq!(fields, ["webhook.payload_options.preset"]);
        assert!(detail.contains("github-dispatch"), "{detail}");

        // Leaving the template format drops the template with it.
        let (w, _) = create(&mut api, template_hook(url, "{}")).await;
        let updated = api
            .update_webhook(proto::UpdateWebhookRequest {
                webhook: Some(proto::Webhook {
                    payload_format: proto::PayloadFormat::Hookline as i32,
                    ..w
                }),
                update_mask: mask(&["payload_format"]),
            })
            .await
            .expect("back to hookline")
            .into_inner()
            .webhook
            .expect("webhook");
        assert_eq!(
            updated.payload_options.map(|o| o.template),
            Some(String::new())
        );
        server.stop().await;
    }
);

store_test!(
    a_github_dispatch_arrives_signed_and_shaped_as_github_reads_it,
    async |db: &TestDb| {
        let server = TestServer::start(db, fast).await;
        let (_, token) = server.token(TokenKind::Namespace, "acme").await;
        let mut api = server.api_client(Some(&token)).await;
        let mut deliveries = server.deliveries_client(Some(&token)).await;
        let github = Receiver::start().await;
        let (ci, secret) = create(
            &mut api,
            proto::Webhook {
                name: "ci".into(),
                url: github.url(),
                headers: [(
                    "Authorization".to_owned(),
                    "Bearer github_pat_TOKEN".to_owned(),
                )]
                .into(),
                event_types: vec![proto::EventType::ImagePushed as i32],
                payload_options: Some(proto::PayloadOptions {
                    preset: "github-dispatch".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(ci.payload_format, proto::PayloadFormat::Template as i32);
        assert_eq!(ci.headers["Accept"], "application/vnd.github+json");

        // A template that a real event cannot fill: validated against an enriched sample,
        // it meets an event without enrichment. Nothing is sent; the log says why.
        let strict = Receiver::start().await;
        let mut needs = template_hook(
            &strict.url(),
            "{% if type == 'ping' %}{}{% else %}{\"p\": {{ enrichment.platforms[0]|tojson }}}{% endif %}",
        );
        needs.event_types = vec![proto::EventType::ImagePushed as i32];
        let (needs, _) = create(&mut api, needs).await;

        server.notify_ok(&push("acme/app", "1.4")).await;
        let got = github.wait_for(1, Duration::from_secs(10)).await;
        let r = &got[0];
        assert_github_accepts(&github_schema(), &r.body, "delivered");
        assert_eq!(r.header("authorization"), "Bearer github_pat_TOKEN");
        assert_eq!(r.header("accept"), "application/vnd.github+json");
        assert_eq!(r.header("content-type"), "application/json");
        assert!(r.signed_with(&secret), "signed over the exact bytes sent");

        let failed = wait_status(&mut deliveries, &needs.id, DeliveryStatus::Failed, 1).await;
        let log = deliveries
            .get_delivery(GetDeliveryRequest {
                id: failed[0].id.clone(),
            })
            .await
            .expect("get")
            .into_inner()
            .attempts;
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].error_class, "not_sent");
        assert!(
            log[0]
                .reason
                .starts_with("not sent, and final: the template: line 1"),
            "{}",
            log[0].reason
        );
        assert!(strict.received().is_empty(), "no half-rendered body");
        server.stop().await;
    }
);

store_test!(
    previews_render_without_sending_and_reveal_nothing,
    async |db: &TestDb| {
        let server = TestServer::start(db, fast).await;
        let (_, token) = server.token(TokenKind::Namespace, "acme").await;
        let (_, other) = server.token(TokenKind::Namespace, "globex").await;
        let mut api = server.api_client(Some(&token)).await;
        let mut stranger = server.api_client(Some(&other)).await;
        let receiver = Receiver::start().await;
        let mut hook = template_hook(
            &receiver.url(),
            "{\"image\": {{ image|tojson }}, \"event\": {{ id|tojson }}}",
        );
        hook.headers = [("Authorization".to_owned(), "Bearer s3cret-token".to_owned())].into();
        let (w, _) = create(&mut api, hook).await;

        let sample = api
            .preview_payload(PreviewPayloadRequest {
                id: w.id.clone(),
                ..Default::default()
            })
            .await
            .expect("preview")
            .into_inner();
        assert_eq!(sample.content_type, "application/json");
        assert_eq!(sample.event_id, "evt_sample");
        let v: Value = serde_json::from_str(&sample.body).expect("json");
        assert_eq!(
            v["image"],
            "registry.example.com/acme/app:1.4@sha256:6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b"
        );
        assert_eq!(sample.headers["Authorization"], "…redacted");
        assert!(!format!("{sample:?}").contains("s3cret"));

        // A stored event of the caller's namespace; the stranger sees neither.
        server.notify_ok(&push("acme/app", "2.0")).await;
        let mut deliveries = server.deliveries_client(Some(&token)).await;
        let done = wait_status(&mut deliveries, &w.id, DeliveryStatus::Succeeded, 1).await;
        let event_id = done[0].event_id.clone();
        {
            let stored = api
                .preview_payload(PreviewPayloadRequest {
                    id: w.id.clone(),
                    event_id: event_id.clone(),
                    ..Default::default()
                })
                .await
                .expect("preview")
                .into_inner();
            assert_eq!(stored.event_id, event_id);
            assert!(stored.body.contains("acme/app:2.0"), "{}", stored.body);
            receiver.wait_for(1, Duration::from_secs(1)).await;
            assert_eq!(receiver.received().len(), 1, "a preview sends nothing");
        }
        let mut strangers_deliveries = server.deliveries_client(Some(&other)).await;
        drop(
            strangers_deliveries
                .get_event(hookline::api::proto::GetEventRequest {
                    id: event_id.clone(),
                })
                .await
                .expect_err("not theirs"),
        );
        let (own, _) = create(&mut stranger, template_hook(&receiver.url(), "{}")).await;
        expect_code(
            stranger
                .preview_payload(PreviewPayloadRequest {
                    id: own.id,
                    event_id: event_id.clone(),
                    ..Default::default()
                })
                .await,
            Code::NotFound,
        );
        expect_code(
            stranger
                .preview_payload(PreviewPayloadRequest {
                    id: w.id.clone(),
                    ..Default::default()
                })
                .await,
            Code::NotFound,
        );

        // A draft: the same rules as CreateWebhook, errors on the template's field.
        let draft = api
            .preview_payload(PreviewPayloadRequest {
                webhook: Some(proto::Webhook {
                    payload_options: Some(proto::PayloadOptions {
                        preset: "gitlab-trigger".into(),
                        ..Default::default()
                    }),
                    ..template_hook(
                        "https://gitlab.example.com/api/v4/projects/1/trigger/pipeline",
                        "",
                    )
                }),
                event_type: proto::EventType::ImageDeleted as i32,
                ..Default::default()
            })
            .await
            .expect("draft preview")
            .into_inner();
        assert_eq!(draft.content_type, "application/x-www-form-urlencoded");
        assert!(
            draft
                .body
                .contains("variables[HOOKLINE_EVENT]=image.deleted"),
            "{}",
            draft.body
        );
        let status = expect_code(
            api.preview_payload(PreviewPayloadRequest {
                webhook: Some(template_hook("https://ci.example.com/", "{{ tag")),
                ..Default::default()
            })
            .await,
            Code::InvalidArgument,
        );
        assert_eq!(
            violated_fields(&status),
            ["webhook.payload_options.template"]
        );
        server.stop().await;
    }
);
