//! End to end through a real server, on both backends: real deliveries verified by the
//! `standardwebhooks` crate (good, tampered, wrong secret, stale), secret rotation and
//! its grace period, the GitHub-style header against an independent HMAC, query strings
//! and custom headers verbatim, each format's content type, and fan-out that creates no
//! delivery a format cannot carry.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use hookline::api::proto::{
    self, CreateWebhookRequest, GetWebhookRequest, RotateWebhookSecretRequest, TestWebhookRequest,
    UpdateWebhookRequest,
};
use hookline::store::{PayloadOptions, TokenKind};
use sha2::Sha256;
use standardwebhooks::{Webhook as Verifier, WebhookError};
use tonic::Code;

use super::{fast, fixtures_dir};
use crate::harness::api::{Client, expect_code, violated_fields};
use crate::harness::receiver::{Received, Receiver};
use crate::harness::server::TestServer;
use crate::store_contract::webhook;
use crate::store_test;

fn fixture(prefix: &str) -> String {
    let name = std::fs::read_dir(fixtures_dir())
        .expect("fixtures")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .find(|n| n.starts_with(prefix))
        .expect("fixture exists");
    std::fs::read_to_string(fixtures_dir().join(name)).expect("fixture")
}

async fn create(api: &mut Client, webhook: proto::Webhook) -> (proto::Webhook, String) {
    let r = api
        .create_webhook(CreateWebhookRequest {
            webhook: Some(webhook),
            secret: String::new(),
        })
        .await
        .expect("create")
        .into_inner();
    (r.webhook.expect("webhook"), r.secret)
}

/// What the `standardwebhooks` crate says about a received request under `secret`.
fn verify(secret: &str, r: &Received) -> Result<(), WebhookError> {
    Verifier::new(secret)
        .expect("secret")
        .verify(&r.body, &r.headers)
}

fn lower_hex_hmac(key: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("hmac");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn ping(api: &mut Client, id: &str) -> String {
    api.test_webhook(TestWebhookRequest { id: id.into() })
        .await
        .expect("ping")
        .into_inner()
        .delivery_id
}

store_test!(
    standard_webhooks_and_github_style_signatures_verify,
    async |db: &TestDb| {
        let receiver = Receiver::start().await;
        let server = TestServer::start(db, fast).await;
        let (_, token) = server.token(TokenKind::Namespace, "acme").await;
        let mut api = server.api_client(Some(&token)).await;

        // The header name is validated where the user can fix it.
        let mut bad = proto::Webhook {
            name: "bad".into(),
            url: receiver.url(),
            signature_header: "Webhook-Signature".into(),
            ..Default::default()
        };
        let status = expect_code(
            api.create_webhook(CreateWebhookRequest {
                webhook: Some(bad.clone()),
                secret: String::new(),
            })
            .await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&status), ["webhook.signature_header"]);
        bad.signature_header = "X Hub".into();
        expect_code(
            api.create_webhook(CreateWebhookRequest {
                webhook: Some(bad),
                secret: String::new(),
            })
            .await,
            Code::InvalidArgument,
        );

        let (w, secret) = create(
            &mut api,
            proto::Webhook {
                name: "argo".into(),
                url: format!("{}?type=docker.io&secret=s3cr%20t", receiver.url()),
                headers: [("Authorization".to_owned(), "s3cret verbatim".to_owned())].into(),
                signature_header: "X-Hub-Signature-256".into(),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(w.signature_header, "X-Hub-Signature-256");
        server.notify_ok(&fixture("02")).await;
        let got = receiver.wait_for(1, Duration::from_secs(10)).await;
        let r = &got[0];

        // Standard Webhooks, by the independent implementation.
        verify(&secret, r).expect("a real delivery verifies");
        let mut tampered = r.clone();
        tampered.body = r.body.slice(..r.body.len() - 1);
        assert!(matches!(
            verify(&secret, &tampered),
            Err(WebhookError::InvalidSignature)
        ));
        let wrong = hookline::dispatch::sign::generate_secret();
        assert!(matches!(
            verify(wrong.expose(), r),
            Err(WebhookError::InvalidSignature)
        ));
        let stale_ts = r.header("webhook-timestamp").parse::<i64>().expect("ts") - 600;
        let mut stale = r.clone();
        let resigned = Verifier::new(&secret)
            .expect("secret")
            .sign(&r.header("webhook-id"), stale_ts, &r.body)
            .expect("sign");
        stale.headers = HeaderMap::new();
        stale
            .headers
            .insert("webhook-id", r.header("webhook-id").parse().expect("v"));
        stale.headers.insert(
            "webhook-timestamp",
            stale_ts.to_string().parse().expect("v"),
        );
        stale
            .headers
            .insert("webhook-signature", resigned.parse().expect("v"));
        assert!(matches!(
            verify(&secret, &stale),
            Err(WebhookError::TimestampTooOldError)
        ));

        // The GitHub-style header: sha256=<lowercase hex HMAC-SHA256(secret as shown, body)>.
        assert_eq!(
            r.header("x-hub-signature-256"),
            format!("sha256={}", lower_hex_hmac(secret.as_bytes(), &r.body))
        );
        // Transport for existing receivers: query string and custom headers verbatim.
        assert_eq!(r.uri, "/hook?type=docker.io&secret=s3cr%20t");
        assert_eq!(r.header("authorization"), "s3cret verbatim");
        assert_eq!(r.header("content-type"), "application/json");

        // The header can be renamed and removed through an update.
        for (name, want) in [("X-Signature", "x-signature"), ("", "")] {
            api.update_webhook(UpdateWebhookRequest {
                webhook: Some(proto::Webhook {
                    id: w.id.clone(),
                    signature_header: name.into(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["signature_header".into()],
                }),
            })
            .await
            .expect("update");
            let stored = api
                .get_webhook(GetWebhookRequest { id: w.id.clone() })
                .await
                .expect("get")
                .into_inner()
                .webhook
                .expect("webhook");
            assert_eq!(stored.signature_header, name);
            let n = receiver.received().len() + 1;
            ping(&mut api, &w.id).await;
            let got = receiver.wait_for(n, Duration::from_secs(10)).await;
            let last = got.last().expect("ping");
            if want.is_empty() {
                assert!(last.headers.get("x-signature").is_none());
            } else {
                assert_eq!(
                    last.header(want),
                    format!("sha256={}", lower_hex_hmac(secret.as_bytes(), &last.body))
                );
            }
            verify(&secret, last).expect("pings verify too");
        }
        server.stop().await;
    }
);

store_test!(
    a_rotated_secret_verifies_until_its_grace_period_ends,
    async |db: &TestDb| {
        let receiver = Receiver::start().await;
        let server = TestServer::start(db, fast).await;
        let (_, token) = server.token(TokenKind::Namespace, "acme").await;
        let mut api = server.api_client(Some(&token)).await;
        let (w, old) = create(
            &mut api,
            proto::Webhook {
                name: "rotating".into(),
                url: receiver.url(),
                ..Default::default()
            },
        )
        .await;
        let rotated = api
            .rotate_webhook_secret(RotateWebhookSecretRequest {
                id: w.id.clone(),
                grace_period: Some(prost_types::Duration {
                    seconds: 2,
                    nanos: 0,
                }),
                secret: String::new(),
            })
            .await
            .expect("rotate")
            .into_inner();
        let new = rotated.secret;
        let expires = rotated.previous_secret_expires_at.expect("expiry");
        let expires_ms = expires.seconds * 1000 + i64::from(expires.nanos / 1_000_000);

        ping(&mut api, &w.id).await;
        let got = receiver.wait_for(1, Duration::from_secs(10)).await;
        verify(&new, &got[0]).expect("the new secret verifies");
        verify(&old, &got[0]).expect("the old secret verifies during the grace period");
        assert_eq!(got[0].header("webhook-signature").split(' ').count(), 2);

        // After the grace period the dispatcher signs with the new secret only.
        while hookline::store::now_ms() <= expires_ms + 50 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        ping(&mut api, &w.id).await;
        let got = receiver.wait_for(2, Duration::from_secs(10)).await;
        verify(&new, &got[1]).expect("the new secret verifies");
        assert!(matches!(
            verify(&old, &got[1]),
            Err(WebhookError::InvalidSignature)
        ));
        assert_eq!(got[1].header("webhook-signature").split(' ').count(), 1);
        server.stop().await;
    }
);

store_test!(
    each_format_gets_its_content_type_and_only_what_it_can_carry,
    async |db: &TestDb| {
        let receiver = Receiver::start().await;
        let server = TestServer::start(db, fast).await;
        let secret = webhook("acme", "").1.secret;
        let mut ids: BTreeMap<String, &str> = BTreeMap::new();
        let cases: [(&str, &str, PayloadOptions); 6] = [
            ("hookline", "hookline", PayloadOptions::default()),
            ("cloudevents", "cloudevents", PayloadOptions::default()),
            ("distribution", "distribution", PayloadOptions::default()),
            ("dockerhub", "dockerhub", PayloadOptions::default()),
            ("harbor", "harbor", PayloadOptions::default()),
            (
                "harbor-deletes",
                "harbor",
                PayloadOptions {
                    harbor_deletes: true,
                    ..Default::default()
                },
            ),
        ];
        for (path, format, options) in cases {
            let (mut w, s) = webhook("acme", &format!("http://{}/{path}", receiver.addr));
            w.format = format.into();
            w.payload_options = options;
            server.store.insert_webhook(&w, &s).await.expect("insert");
            ids.insert(w.id.clone(), path);
        }
        // A blob push (no webhook asks for blobs), a tag push, a pull, two deletes.
        for f in ["01", "02", "04", "08", "09"] {
            server.notify_ok(&fixture(f)).await;
        }
        // hookline, cloudevents, distribution: 02 04 08 09; dockerhub and harbor: 02;
        // harbor with deletes: 02 08 09.
        let expected = 3 * 4 + 1 + 1 + 3;
        let got = receiver.wait_for(expected, Duration::from_secs(15)).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let got_all = receiver.received();
        assert_eq!(got_all.len(), expected, "nothing more arrives");
        let mut per_path: BTreeMap<String, Vec<&Received>> = BTreeMap::new();
        for r in &got {
            verify(secret.expose(), r).expect("every format is signed");
            per_path
                .entry(r.uri.trim_start_matches('/').to_owned())
                .or_default()
                .push(r);
        }
        let content_type = |path: &str| per_path[path][0].header("content-type");
        assert_eq!(content_type("hookline"), "application/json");
        assert_eq!(content_type("cloudevents"), "application/cloudevents+json");
        assert_eq!(
            content_type("distribution"),
            "application/vnd.docker.distribution.events.v1+json"
        );
        assert_eq!(content_type("dockerhub"), "application/json");
        assert_eq!(content_type("harbor"), "application/json");
        assert_eq!(per_path["dockerhub"][0].json()["push_data"]["tag"], "1.0");
        assert_eq!(per_path["harbor"][0].json()["type"], "PUSH_ARTIFACT");
        let mut harbor_types: Vec<String> = per_path["harbor-deletes"]
            .iter()
            .map(|r| r.json()["type"].as_str().expect("type").to_owned())
            .collect();
        harbor_types.sort();
        assert_eq!(
            harbor_types,
            ["DELETE_ARTIFACT", "DELETE_ARTIFACT", "PUSH_ARTIFACT"]
        );

        // Fan-out never created a delivery the format cannot carry (none failed, none waits).
        for event in server.store.recent_events(10).await.expect("events") {
            let deliveries = server
                .store
                .deliveries_for_event(&event.id)
                .await
                .expect("deliveries");
            let paths: Vec<&str> = deliveries.iter().map(|d| ids[&d.webhook_id]).collect();
            let tag_push = event.kind == hookline::event::EventType::ImagePushed;
            assert_eq!(
                paths.contains(&"dockerhub"),
                tag_push,
                "{:?}: {paths:?}",
                event.kind
            );
            assert_eq!(
                paths.contains(&"harbor"),
                tag_push,
                "{:?}: {paths:?}",
                event.kind
            );
        }
        server.stop().await;
    }
);
