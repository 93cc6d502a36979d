//! The gRPC API through a real server on 127.0.0.1:0: CRUD, pagination,
//! reflection and health here; tenancy and tokens in `api/tenancy.rs`, secrets and test
//! pings in `api/delivery.rs`, input rules in `api/validation.rs`.

mod delivery;
mod headers;
mod tenancy;
mod validation;

use std::collections::HashSet;

use hookline::api::proto::{
    self, CreateWebhookRequest, DeleteWebhookRequest, GetWebhookRequest, ListWebhooksRequest,
    UpdateWebhookRequest,
};
use hookline::store::TokenKind;
use prost::Message;
use prost_types::FieldMask;
use tonic::Code;

use crate::harness::api::{Client, expect_code};
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

/// An update mask naming `paths`.
pub fn mask(paths: &[&str]) -> Option<FieldMask> {
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
        (
            input.payload_format,
            &input
                .headers
                .keys()
                .map(|k| (k.clone(), "…redacted".to_owned()))
                .collect(),
            true
        )
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

    // hookline disabling it (410 Gone) shows with the reason; re-enabling clears the reason.
    server
        .store
        .disable_webhook(
            &created.id,
            "the receiver answered 410 Gone",
            hookline::store::now_ms(),
        )
        .await
        .expect("disable");
    let disabled = api
        .get_webhook(get(&created.id))
        .await
        .expect("get")
        .into_inner();
    let disabled = disabled.webhook.expect("webhook");
    assert_eq!(disabled.enabled, Some(false));
    assert_eq!(disabled.disabled_reason, "the receiver answered 410 Gone");
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
    assert_eq!(enabled.disabled_reason, "");

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
