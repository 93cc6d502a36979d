//! The gRPC API through a real server on 127.0.0.1:0: CRUD, pagination, tenancy, tokens,
//! secrets, reflection, health and test pings. Input rules are in `api/validation.rs`.

mod validation;

use std::collections::HashSet;
use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use hookline::api::proto::{
    self, CreateWebhookRequest, DeleteWebhookRequest, GetWebhookRequest, ListWebhooksRequest,
    RotateWebhookSecretRequest, TestWebhookRequest, UpdateWebhookRequest,
};
use hookline::config::Config;
use hookline::store::TokenKind;
use prost::Message;
use prost_types::FieldMask;
use sha2::Sha256;
use tonic::Code;

use crate::harness::api::{Client, expect_code};
use crate::harness::receiver::{Received, Receiver};
use crate::harness::server::{TestServer, with_api};
use crate::store_test;

/// A webhook to create: a name and a URL, everything else default.
pub fn hook(name: &str, url: &str) -> proto::Webhook {
    proto::Webhook {
        name: name.into(),
        url: url.into(),
        ..Default::default()
    }
}

/// Creates a webhook (generated secret); returns it and its secret.
pub async fn create(api: &mut Client, webhook: proto::Webhook) -> (proto::Webhook, String) {
    let response = api
        .create_webhook(CreateWebhookRequest {
            webhook: Some(webhook),
            secret: String::new(),
        })
        .await
        .expect("create")
        .into_inner();
    (response.webhook.expect("webhook"), response.secret)
}

fn get(id: &str) -> GetWebhookRequest {
    GetWebhookRequest { id: id.into() }
}

fn mask(paths: &[&str]) -> Option<FieldMask> {
    Some(FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    })
}

/// Every page of a listing, following page tokens.
async fn list_all(api: &mut Client, page_size: i32) -> Vec<proto::Webhook> {
    let mut all = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = api
            .list_webhooks(ListWebhooksRequest {
                page_size,
                page_token,
                ..Default::default()
            })
            .await
            .expect("list")
            .into_inner();
        let limit = if page_size == 0 {
            50
        } else {
            page_size as usize
        };
        assert!(
            page.webhooks.len() <= limit,
            "a page holds at most page_size"
        );
        all.extend(page.webhooks);
        if page.next_page_token.is_empty() {
            return all;
        }
        page_token = page.next_page_token;
    }
}

fn ids<'a>(webhooks: impl IntoIterator<Item = &'a proto::Webhook>) -> HashSet<String> {
    webhooks.into_iter().map(|w| w.id.clone()).collect()
}

store_test!(webhooks_crud_round_trip, async |db: &TestDb| {
    let server = TestServer::start(db, with_api).await;
    let (_, token) = server.token(TokenKind::Namespace, "acme").await;
    let mut api = server.api_client(Some(&token)).await;
    let input = proto::Webhook {
        event_types: vec![
            proto::EventType::ImagePushed as i32,
            proto::EventType::ImageDeleted as i32,
        ],
        repositories: vec!["acme/*".into(), "acme/tools/**".into()],
        tags: vec!["v*".into()],
        payload_format: proto::PayloadFormat::Cloudevents as i32,
        headers: [("X-Team".to_owned(), "deploy".to_owned())].into(),
        ordered: true,
        ..hook("deploy", "https://deploy.example/hook?source=hookline")
    };
    let (created, secret) = create(&mut api, input.clone()).await;
    assert!(secret.starts_with("whsec_"), "a secret is generated");
    assert!(created.id.starts_with("wh_"));
    assert_eq!(
        created.namespace.as_deref(),
        Some("acme"),
        "the token's namespace"
    );
    assert_eq!(
        created.enabled,
        Some(true),
        "enabled unless asked otherwise"
    );
    assert_eq!(
        (
            &created.name,
            &created.url,
            &created.event_types,
            &created.repositories,
            &created.tags
        ),
        (
            &input.name,
            &input.url,
            &input.event_types,
            &input.repositories,
            &input.tags
        )
    );
    assert_eq!(
        (created.payload_format, &created.headers, created.ordered),
        (input.payload_format, &input.headers, true)
    );
    assert!(created.created_at.is_some() && created.created_at == created.updated_at);

    let got = api
        .get_webhook(get(&created.id))
        .await
        .expect("get")
        .into_inner();
    assert_eq!(got.webhook.as_ref(), Some(&created));
    let listed = list_all(&mut api, 50).await;
    assert_eq!(listed, vec![created.clone()]);

    let updated = api
        .update_webhook(UpdateWebhookRequest {
            webhook: Some(proto::Webhook {
                id: created.id.clone(),
                name: "deploy-prod".into(),
                enabled: Some(false),
                url: "http://ignored.example/".into(), // not in the mask: unchanged
                ..Default::default()
            }),
            update_mask: mask(&["name", "tags", "enabled"]),
        })
        .await
        .expect("update")
        .into_inner()
        .webhook
        .expect("webhook");
    assert_eq!(updated.name, "deploy-prod");
    assert!(
        updated.tags.is_empty(),
        "tags in the mask, empty in the request: cleared"
    );
    assert_eq!(updated.enabled, Some(false));
    assert_eq!(
        (&updated.url, &updated.event_types),
        (&created.url, &created.event_types)
    );
    let millis = |t: Option<prost_types::Timestamp>| {
        let t = t.expect("timestamp");
        t.seconds * 1000 + i64::from(t.nanos / 1_000_000)
    };
    assert!(millis(updated.updated_at) > millis(created.updated_at));
    let got = api
        .get_webhook(get(&created.id))
        .await
        .expect("get")
        .into_inner();
    assert_eq!(got.webhook, Some(updated.clone()));
    let stored = server
        .store
        .get_webhook(&created.id)
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(
        (stored.format.as_str(), stored.enabled),
        ("cloudevents", false)
    );

    // Re-enabling through the API.
    let enabled = api
        .update_webhook(UpdateWebhookRequest {
            webhook: Some(proto::Webhook {
                id: created.id.clone(),
                enabled: Some(true),
                ..Default::default()
            }),
            update_mask: mask(&["enabled"]),
        })
        .await
        .expect("update")
        .into_inner()
        .webhook
        .expect("webhook");
    assert_eq!(enabled.enabled, Some(true));

    api.delete_webhook(DeleteWebhookRequest {
        id: created.id.clone(),
    })
    .await
    .expect("delete");
    expect_code(api.get_webhook(get(&created.id)).await, Code::NotFound);
    expect_code(
        api.delete_webhook(DeleteWebhookRequest {
            id: created.id.clone(),
        })
        .await,
        Code::NotFound,
    );
    assert!(list_all(&mut api, 50).await.is_empty());
    assert_eq!(
        server.store.get_webhook(&created.id).await.expect("get"),
        None
    );
    server.stop().await;
});

store_test!(
    pagination_returns_each_webhook_exactly_once,
    async |db: &TestDb| {
        let server = TestServer::start(db, with_api).await;
        let (_, acme) = server.token(TokenKind::Namespace, "acme").await;
        let (_, other) = server.token(TokenKind::Namespace, "other").await;
        let mut api = server.api_client(Some(&acme)).await;
        let mut other_api = server.api_client(Some(&other)).await;
        let mut created = Vec::new();
        for i in 0..250 {
            let (w, _) = create(&mut api, hook(&format!("hook-{i}"), "http://127.0.0.1:9/")).await;
            created.push(w.id);
            if i % 50 == 0 {
                create(&mut other_api, hook("theirs", "http://127.0.0.1:9/")).await;
            }
        }
        for page_size in [7, 0, 500] {
            let listed = list_all(&mut api, page_size).await;
            let listed: Vec<String> = listed.into_iter().map(|w| w.id).collect();
            assert_eq!(
                listed, created,
                "page size {page_size}: each once, in creation order"
            );
        }
        let first = api
            .list_webhooks(ListWebhooksRequest::default())
            .await
            .expect("list")
            .into_inner();
        assert_eq!(first.webhooks.len(), 50, "the default page size");
        assert!(!first.next_page_token.is_empty());
        assert_eq!(list_all(&mut other_api, 2).await.len(), 5);
        // Filters apply across pages.
        let named = api
            .list_webhooks(ListWebhooksRequest {
                name_contains: "HOOK-24".into(),
                page_size: 3,
                ..Default::default()
            })
            .await
            .expect("list")
            .into_inner();
        assert_eq!(
            named.webhooks.len(),
            3,
            "hook-24 and hook-240..249: 11 match, 3 per page"
        );
        assert!(!named.next_page_token.is_empty());
        server.stop().await;
    }
);

store_test!(
    a_tenant_never_sees_another_namespace,
    async |db: &TestDb| {
        let server = TestServer::start(db, with_api).await;
        let (_, acme) = server.token(TokenKind::Namespace, "acme").await;
        let (_, tools) = server.token(TokenKind::Namespace, "acme/tools").await;
        let (_, other) = server.token(TokenKind::Namespace, "other").await;
        let (_, admin) = server.token(TokenKind::Admin, "").await;
        let mut acme_api = server.api_client(Some(&acme)).await;
        let mut tools_api = server.api_client(Some(&tools)).await;
        let mut other_api = server.api_client(Some(&other)).await;
        let mut admin_api = server.api_client(Some(&admin)).await;

        let (a, _) = create(&mut acme_api, hook("a", "http://127.0.0.1:9/")).await;
        let (t, _) = create(
            &mut acme_api,
            proto::Webhook {
                namespace: Some("acme/tools".into()),
                repositories: vec!["acme/tools/*".into()],
                ..hook("t", "http://127.0.0.1:9/")
            },
        )
        .await;
        assert_eq!(
            t.namespace.as_deref(),
            Some("acme/tools"),
            "a namespace below the token's"
        );
        let (o, _) = create(&mut other_api, hook("o", "http://127.0.0.1:9/")).await;

        // Every RPC on another tenant's webhook answers exactly as for an id that does not exist.
        let missing = hookline::ids::new_id("wh");
        let mut other_again = server.api_client(Some(&other)).await;
        for (api, id) in [
            (&mut other_api, &a.id),
            (&mut tools_api, &a.id),
            (&mut other_again, &missing),
        ] {
            let mut messages = Vec::new();
            messages.push(
                expect_code(api.get_webhook(get(id)).await, Code::NotFound)
                    .message()
                    .to_owned(),
            );
            let update = UpdateWebhookRequest {
                webhook: Some(proto::Webhook {
                    id: id.clone(),
                    name: "taken".into(),
                    ..Default::default()
                }),
                update_mask: mask(&["name"]),
            };
            messages.push(
                expect_code(api.update_webhook(update).await, Code::NotFound)
                    .message()
                    .to_owned(),
            );
            let rotate = RotateWebhookSecretRequest {
                id: id.clone(),
                ..Default::default()
            };
            messages.push(
                expect_code(api.rotate_webhook_secret(rotate).await, Code::NotFound)
                    .message()
                    .to_owned(),
            );
            messages.push(
                expect_code(
                    api.test_webhook(TestWebhookRequest { id: id.clone() })
                        .await,
                    Code::NotFound,
                )
                .message()
                .to_owned(),
            );
            messages.push(
                expect_code(
                    api.delete_webhook(DeleteWebhookRequest { id: id.clone() })
                        .await,
                    Code::NotFound,
                )
                .message()
                .to_owned(),
            );
            assert!(
                messages.iter().all(|m| m == "webhook not found"),
                "{messages:?}"
            );
        }
        // Nothing was changed by those calls.
        let still = acme_api
            .get_webhook(get(&a.id))
            .await
            .expect("get")
            .into_inner()
            .webhook;
        assert_eq!(still, Some(a.clone()));
        let secrets = server
            .store
            .enabled_webhooks(hookline::store::now_ms())
            .await
            .expect("enabled");
        assert!(
            secrets.iter().all(|w| w.secrets.len() == 1),
            "no rotation happened"
        );
        assert!(
            server
                .store
                .recent_events(10)
                .await
                .expect("events")
                .is_empty(),
            "no ping was queued"
        );

        assert_eq!(ids(&list_all(&mut acme_api, 10).await), ids([&a, &t]));
        assert_eq!(ids(&list_all(&mut tools_api, 10).await), ids([&t]));
        assert_eq!(ids(&list_all(&mut other_api, 10).await), ids([&o]));
        assert_eq!(ids(&list_all(&mut admin_api, 10).await), ids([&a, &t, &o]));
        tools_api.get_webhook(get(&t.id)).await.expect("its own");
        acme_api
            .get_webhook(get(&t.id))
            .await
            .expect("below its namespace");
        let filtered = |namespace: &str| ListWebhooksRequest {
            namespace: namespace.into(),
            ..Default::default()
        };
        let foreign = acme_api
            .list_webhooks(filtered("other"))
            .await
            .expect("list")
            .into_inner();
        assert!(
            foreign.webhooks.is_empty(),
            "filtering on a foreign namespace shows nothing"
        );
        let sub = acme_api
            .list_webhooks(filtered("acme/tools"))
            .await
            .expect("list")
            .into_inner();
        assert_eq!(ids(&sub.webhooks), ids([&t]));
        let wider = tools_api
            .list_webhooks(filtered("acme"))
            .await
            .expect("list")
            .into_inner();
        assert_eq!(
            ids(&wider.webhooks),
            ids([&t]),
            "a wider filter stays within the token"
        );

        // Admins name the namespace; "" is every repository, and only admins see it.
        let (global, _) = create(
            &mut admin_api,
            proto::Webhook {
                namespace: Some(String::new()),
                ..hook("all", "http://127.0.0.1:9/")
            },
        )
        .await;
        assert_eq!(global.namespace.as_deref(), Some(""));
        expect_code(acme_api.get_webhook(get(&global.id)).await, Code::NotFound);
        admin_api
            .get_webhook(get(&a.id))
            .await
            .expect("admins see every namespace");
        server.stop().await;
    }
);

store_test!(only_live_api_tokens_are_accepted, async |db: &TestDb| {
    let server = TestServer::start(db, with_api).await;
    let (token_id, token) = server.token(TokenKind::Namespace, "acme").await;
    let (_, registry) = server.token(TokenKind::Registry, "main").await;
    let list = || ListWebhooksRequest::default();
    let mut anonymous = server.api_client(None).await;
    let status = expect_code(anonymous.list_webhooks(list()).await, Code::Unauthenticated);
    assert!(
        status.message().contains("hookline tokens create"),
        "{status:?}"
    );
    expect_code(
        anonymous.get_webhook(get("wh_x")).await,
        Code::Unauthenticated,
    );
    for bad in ["hl_0123456789abcdef", &registry] {
        let mut api = server.api_client(Some(bad)).await;
        expect_code(api.list_webhooks(list()).await, Code::Unauthenticated);
    }
    let mut api = server.api_client(Some(&token)).await;
    api.list_webhooks(list())
        .await
        .expect("a live namespace token works");
    assert!(
        server
            .store
            .revoke_token(&token_id, hookline::store::now_ms())
            .await
            .expect("revoke")
    );
    let status = expect_code(api.list_webhooks(list()).await, Code::Unauthenticated);
    assert!(
        !status.message().contains(&token),
        "the token is never echoed"
    );
    expect_code(
        api.create_webhook(CreateWebhookRequest {
            webhook: Some(hook("x", "http://127.0.0.1:9/")),
            secret: String::new(),
        })
        .await,
        Code::Unauthenticated,
    );
    server.stop().await;
});

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_and_health_are_served() {
    use tonic::codegen::tokio_stream::{self, StreamExt};
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let db = crate::harness::db::TestDb::new(crate::harness::db::Backend::Sqlite).await;
    let server = TestServer::start(&db, with_api).await;
    let channel = crate::harness::api::channel(&server.api_url()).await;

    let mut reflection = ServerReflectionClient::new(channel.clone());
    let requests = [
        MessageRequest::ListServices(String::new()),
        MessageRequest::FileContainingSymbol("hookline.v1.WebhookService".into()),
    ]
    .map(|message| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(message),
    });
    let mut answers = reflection
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .expect("reflection")
        .into_inner();
    let listed = answers
        .next()
        .await
        .expect("answer")
        .expect("ok")
        .message_response;
    let Some(MessageResponse::ListServicesResponse(list)) = listed else {
        panic!("{listed:?}")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"hookline.v1.WebhookService".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"grpc.health.v1.Health".to_owned()),
        "{names:?}"
    );
    let file = answers
        .next()
        .await
        .expect("answer")
        .expect("ok")
        .message_response;
    let Some(MessageResponse::FileDescriptorResponse(files)) = file else {
        panic!("{file:?}")
    };
    let described = files
        .file_descriptor_proto
        .iter()
        .map(|bytes| {
            prost_types::FileDescriptorProto::decode(bytes.as_slice()).expect("descriptor")
        })
        .find(|f| f.package() == "hookline.v1")
        .expect("the hookline.v1 file");
    let methods: Vec<&str> = described.service[0]
        .method
        .iter()
        .map(|m| m.name())
        .collect();
    assert!(
        methods.contains(&"CreateWebhook") && methods.contains(&"TestWebhook"),
        "{methods:?}"
    );

    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    for service in ["", "hookline.v1.WebhookService"] {
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health")
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }
    server.stop().await;
    db.finish().await;
}

/// Checks a Standard Webhooks signature with `secret`, independently of hookline's code.
fn signed_with(r: &Received, secret: &str) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .expect("secret");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("hmac");
    mac.update(
        format!(
            "{}.{}.",
            r.header("webhook-id"),
            r.header("webhook-timestamp")
        )
        .as_bytes(),
    );
    mac.update(&r.body);
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    r.header("webhook-signature")
        .split(' ')
        .any(|s| s == expected)
}

/// A registry envelope for one manifest push.
fn push(repository: &str, tag: &str) -> String {
    serde_json::json!({"events": [{
        "id": hookline::ids::new_id("reg"),
        "timestamp": "2026-11-25T01:16:56.986524926Z",
        "action": "push",
        "target": {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "size": 345,
            "digest": "sha256:ab09df3b044990449fbd0a7f841bbfba912842e49212a79a8e029b8370aa6fb0",
            "repository": repository,
            "tag": tag
        },
        "request": {"id": "r", "addr": "127.0.0.1:1", "host": "127.0.0.1:5000", "method": "PUT", "useragent": "test"},
        "actor": {},
        "source": {"addr": "vm:5000", "instanceID": "i"}
    }]})
    .to_string()
}

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
            signed_with(&got[0], &secret),
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
            signed_with(&got[1], &rotated.secret) && signed_with(&got[1], &secret),
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
