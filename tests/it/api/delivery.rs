//! Secrets and test pings through the real server: secrets leave only through create and
//! rotate; a ping goes through the normal delivery path, signed with every valid secret.

use std::time::Duration;

use hookline::config::Config;
use prost::Message;

use hookline::api::proto::{
    self, CreateWebhookRequest, ListWebhooksRequest, RotateWebhookSecretRequest,
    TestWebhookRequest, UpdateWebhookRequest,
};
use hookline::store::TokenKind;
use tonic::Code;

use super::{create, get, hook, mask};
use crate::harness::api::expect_code;
use crate::harness::envelopes::push;
use crate::harness::receiver::Receiver;
use crate::harness::server::{TestServer, with_api};
use crate::store_test;

store_test!(
    secrets_appear_only_in_create_and_rotate,
    async |db: &TestDb| {
        let server = TestServer::start(db, with_api).await;
        let (_, token) = server.token(TokenKind::Namespace, "acme").await;
        let mut api = server.api_client(Some(&token)).await;
        let given = "whsec_Z2l2ZW5zZWNyZXRnaXZlbnNlY3JldGdpdmVuc2U=";
        let request = CreateWebhookRequest {
            webhook: Some(hook("s", "http://127.0.0.1:9/")),
            secret: given.into(),
        };
        assert!(
            !format!("{request:?}").contains("Z2l2ZW5z"),
            "Debug of the request redacts"
        );
        let response = api
            .create_webhook(request)
            .await
            .expect("create")
            .into_inner();
        assert_eq!(response.secret, given, "a given secret is kept");
        assert!(
            !format!("{response:?}").contains("Z2l2ZW5z"),
            "Debug of the response redacts"
        );
        let id = response.webhook.expect("webhook").id;
        let rotated = api
            .rotate_webhook_secret(RotateWebhookSecretRequest {
                id: id.clone(),
                ..Default::default()
            })
            .await
            .expect("rotate")
            .into_inner();
        assert!(rotated.secret.starts_with("whsec_") && rotated.secret != given);
        let expires = rotated.previous_secret_expires_at.expect("expiry").seconds * 1000;
        let day = 24 * 3600 * 1000;
        assert!(
            (expires - hookline::store::now_ms() - day).abs() < 60_000,
            "default grace is 24 h"
        );
        let secrets = [
            given.trim_start_matches("whsec_"),
            rotated.secret.trim_start_matches("whsec_"),
        ];

        let got = api.get_webhook(get(&id)).await.expect("get").into_inner();
        let listed = api
            .list_webhooks(ListWebhooksRequest::default())
            .await
            .expect("list")
            .into_inner();
        let updated = api
            .update_webhook(UpdateWebhookRequest {
                webhook: Some(proto::Webhook {
                    id: id.clone(),
                    name: "renamed".into(),
                    ..Default::default()
                }),
                update_mask: mask(&["name"]),
            })
            .await
            .expect("update")
            .into_inner();
        let wire = [
            got.encode_to_vec(),
            listed.encode_to_vec(),
            updated.encode_to_vec(),
        ];
        let shown = [
            format!("{got:?}"),
            format!("{listed:?}"),
            format!("{updated:?}"),
        ];
        for secret in secrets {
            for bytes in &wire {
                assert!(
                    !String::from_utf8_lossy(bytes).contains(secret),
                    "a secret on the wire"
                );
            }
            for text in &shown {
                assert!(!text.contains(secret), "a secret in {text}");
            }
        }
        // Both secrets sign until the grace period ends, the new one first.
        let stored = server
            .store
            .enabled_webhooks(hookline::store::now_ms())
            .await
            .expect("enabled");
        let values: Vec<&str> = stored[0]
            .secrets
            .iter()
            .map(|s| s.secret.expose())
            .collect();
        assert_eq!(values, [rotated.secret.as_str(), given]);
        server.stop().await;
    }
);

fn fast(c: &mut Config) {
    with_api(c);
    c.dispatch.poll_interval = Duration::from_millis(100);
    c.dispatch.retry_schedule = vec![Duration::from_millis(100); 3];
}

store_test!(
    test_pings_and_events_reach_webhooks_made_through_the_api,
    async |db: &TestDb| {
        let receiver = Receiver::start().await;
        let server = TestServer::start(db, fast).await;
        let (_, token) = server.token(TokenKind::Namespace, "acme").await;
        let mut api = server.api_client(Some(&token)).await;
        let (w, secret) = create(&mut api, hook("ping me", &receiver.url())).await;

        let queued = api
            .test_webhook(TestWebhookRequest { id: w.id.clone() })
            .await
            .expect("test")
            .into_inner();
        let got = receiver.wait_for(1, Duration::from_secs(10)).await;
        assert_eq!(got[0].header("webhook-id"), queued.delivery_id);
        assert!(
            got[0].signed_with(&secret),
            "signed with the secret Create returned"
        );
        let body = got[0].json();
        assert_eq!(
            (body["type"].as_str(), body["id"].as_str()),
            (Some("ping"), Some(queued.event_id.as_str()))
        );
        assert_eq!(body["repository"], "acme");

        // After a rotation both secrets sign, so receivers can switch at their pace.
        let rotated = api
            .rotate_webhook_secret(RotateWebhookSecretRequest {
                id: w.id.clone(),
                grace_period: Some(prost_types::Duration {
                    seconds: 3600,
                    nanos: 0,
                }),
                secret: String::new(),
            })
            .await
            .expect("rotate")
            .into_inner();
        api.test_webhook(TestWebhookRequest { id: w.id.clone() })
            .await
            .expect("test");
        let got = receiver.wait_for(2, Duration::from_secs(10)).await;
        assert!(
            got[1].signed_with(&rotated.secret) && got[1].signed_with(&secret),
            "{:?}",
            got[1]
        );

        // The dispatcher picked the new webhook up: a registry push reaches it too.
        server.notify_ok(&push("acme/app", "1.0")).await;
        let got = receiver.wait_for(3, Duration::from_secs(10)).await;
        assert_eq!(got[2].json()["type"], "image.pushed");

        // A disabled webhook is not pinged; the caller is told why.
        api.update_webhook(UpdateWebhookRequest {
            webhook: Some(proto::Webhook {
                id: w.id.clone(),
                enabled: Some(false),
                ..Default::default()
            }),
            update_mask: mask(&["enabled"]),
        })
        .await
        .expect("disable");
        let status = expect_code(
            api.test_webhook(TestWebhookRequest { id: w.id.clone() })
                .await,
            Code::FailedPrecondition,
        );
        assert!(status.message().contains("disabled"), "{status:?}");
        server.stop().await;
    }
);
