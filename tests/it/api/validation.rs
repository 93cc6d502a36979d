//! Every input rule through the real server: INVALID_ARGUMENT, a message that starts
//! with the field, and a `google.rpc.BadRequest` detail naming the same field.

use hookline::api::proto::{
    self, CreateWebhookRequest, GetWebhookRequest, ListWebhooksRequest, RotateWebhookSecretRequest,
    UpdateWebhookRequest,
};
use hookline::store::TokenKind;
use prost_types::FieldMask;
use tonic::{Code, Status};

use super::{create, hook};
use crate::harness::api::{expect_code, violated_fields};
use crate::harness::db::{Backend, TestDb};
use crate::harness::server::{TestServer, with_api};

/// Asserts the call was refused for `field` (and for nothing it did not expect).
#[track_caller]
fn refused<T: std::fmt::Debug>(result: Result<T, Status>, field: &str) -> Status {
    let status = expect_code(result, Code::InvalidArgument);
    assert!(
        status.message().starts_with(&format!("{field}: ")),
        "message should start with {field:?}: {status:?}"
    );
    assert_eq!(violated_fields(&status), [field], "{status:?}");
    status
}

fn valid() -> proto::Webhook {
    hook("valid", "https://example.com/hook")
}

fn create_request(change: impl FnOnce(&mut proto::Webhook)) -> CreateWebhookRequest {
    let mut webhook = valid();
    change(&mut webhook);
    CreateWebhookRequest {
        webhook: Some(webhook),
        secret: String::new(),
    }
}

type Change = Box<dyn FnOnce(&mut proto::Webhook)>;

fn headers(pairs: &[(&str, &str)]) -> std::collections::HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rule_names_its_field() {
    let db = TestDb::new(Backend::Sqlite).await;
    let server = TestServer::start(&db, with_api).await;
    let (_, token) = server.token(TokenKind::Namespace, "acme").await;
    let (_, admin) = server.token(TokenKind::Admin, "").await;
    let mut api = server.api_client(Some(&token)).await;
    let mut admin_api = server.api_client(Some(&admin)).await;

    let long = |n: usize| "x".repeat(n);
    let cases: Vec<(&str, Change)> = vec![
        ("webhook.name", Box::new(|w| w.name.clear())),
        ("webhook.name", Box::new(move |w| w.name = long(129))),
        ("webhook.url", Box::new(|w| w.url.clear())),
        (
            "webhook.url",
            Box::new(|w| w.url = "ftp://example.com/x".into()),
        ),
        ("webhook.url", Box::new(|w| w.url = "http://".into())),
        (
            "webhook.url",
            Box::new(|w| w.url = "example.com/hook".into()),
        ),
        (
            "webhook.url",
            Box::new(move |w| w.url = format!("https://example.com/{}", long(2040))),
        ),
        (
            "webhook.event_types[1]",
            Box::new(|w| w.event_types = vec![1, 42]),
        ),
        (
            "webhook.event_types[0]",
            Box::new(|w| w.event_types = vec![0]),
        ),
        (
            "webhook.repositories[0]",
            Box::new(|w| w.repositories = vec!["acme/[".into()]),
        ),
        (
            "webhook.repositories[0]",
            Box::new(|w| w.repositories = vec!["other/*".into()]),
        ),
        (
            "webhook.repositories[1]",
            Box::new(|w| w.repositories = vec!["acme/*".into(), "acme*".into()]),
        ),
        (
            "webhook.repositories",
            Box::new(|w| w.repositories = vec!["acme/x".into(); 51]),
        ),
        (
            "webhook.repositories[0]",
            Box::new(move |w| w.repositories = vec![format!("acme/{}", long(251))]),
        ),
        ("webhook.tags[0]", Box::new(|w| w.tags = vec!["v{1".into()])),
        ("webhook.tags", Box::new(|w| w.tags = vec!["v*".into(); 51])),
        (
            "webhook.tags[0]",
            Box::new(move |w| w.tags = vec![long(256)]),
        ),
        (
            "webhook.payload_format",
            Box::new(|w| w.payload_format = 99),
        ),
        (
            "webhook.headers",
            Box::new(|w| {
                w.headers = (0..21)
                    .map(|i| (format!("x-h{i}"), "v".to_owned()))
                    .collect()
            }),
        ),
        (
            "webhook.headers[\"bad name\"]",
            Box::new(|w| w.headers = headers(&[("bad name", "v")])),
        ),
        (
            "webhook.headers[\"Content-Type\"]",
            Box::new(|w| w.headers = headers(&[("Content-Type", "text/plain")])),
        ),
        (
            "webhook.headers[\"host\"]",
            Box::new(|w| w.headers = headers(&[("host", "evil.example")])),
        ),
        (
            "webhook.headers[\"Webhook-Id\"]",
            Box::new(|w| w.headers = headers(&[("Webhook-Id", "x")])),
        ),
        (
            "webhook.headers[\"webhook-signature\"]",
            Box::new(|w| w.headers = headers(&[("webhook-signature", "v1,x")])),
        ),
        (
            "webhook.headers[\"x-split\"]",
            Box::new(|w| w.headers = headers(&[("x-split", "a\r\nx-injected: 1")])),
        ),
        (
            "webhook.namespace",
            Box::new(|w| w.namespace = Some("acmecorp".into())),
        ),
        (
            "webhook.namespace",
            Box::new(|w| w.namespace = Some(String::new())),
        ),
        (
            "webhook.namespace",
            Box::new(|w| w.namespace = Some("Acme/Bad Name".into())),
        ),
    ];
    for (field, change) in cases {
        refused(api.create_webhook(create_request(change)).await, field);
    }
    // Several problems at once are all reported.
    let status = expect_code(
        api.create_webhook(create_request(|w| {
            w.name.clear();
            w.url = "gopher://x".into();
        }))
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["webhook.name", "webhook.url"]);
    refused(
        api.create_webhook(CreateWebhookRequest {
            webhook: None,
            secret: String::new(),
        })
        .await,
        "webhook",
    );
    refused(
        admin_api.create_webhook(create_request(|_| {})).await,
        "webhook.namespace",
    );

    // A bad secret is refused without being quoted back.
    for secret in [
        "not-a-secret-value",
        "whsec_c2hvcnRzZWNyZXQ=",
        "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0",
    ] {
        let request = CreateWebhookRequest {
            webhook: Some(valid()),
            secret: secret.into(),
        };
        let status = refused(api.create_webhook(request).await, "secret");
        assert!(
            !status
                .message()
                .contains(secret.trim_start_matches("whsec_")),
            "{status:?}"
        );
        assert!(!format!("{status:?}").contains(secret.trim_start_matches("whsec_")));
    }

    let list = |change: fn(&mut ListWebhooksRequest)| {
        let mut r = ListWebhooksRequest::default();
        change(&mut r);
        r
    };
    refused(
        api.list_webhooks(list(|r| r.page_size = -1)).await,
        "page_size",
    );
    refused(
        api.list_webhooks(list(|r| r.page_size = 501)).await,
        "page_size",
    );
    refused(
        api.list_webhooks(list(|r| r.page_token = "not a token".into()))
            .await,
        "page_token",
    );
    refused(
        api.list_webhooks(list(|r| r.namespace = "Not/Valid".into()))
            .await,
        "namespace",
    );
    refused(
        api.list_webhooks(list(|r| r.name_contains = "n".repeat(256)))
            .await,
        "name_contains",
    );

    let (w, _) = create(&mut api, valid()).await;
    let update = |paths: &[&str], change: fn(&mut proto::Webhook)| {
        let mut webhook = proto::Webhook {
            id: w.id.clone(),
            ..Default::default()
        };
        change(&mut webhook);
        UpdateWebhookRequest {
            webhook: Some(webhook),
            update_mask: Some(FieldMask {
                paths: paths.iter().map(|p| (*p).to_owned()).collect(),
            }),
        }
    };
    refused(api.update_webhook(update(&[], |_| {})).await, "update_mask");
    refused(
        api.update_webhook(update(&["namespace"], |w| {
            w.namespace = Some("acme/x".into())
        }))
        .await,
        "update_mask",
    );
    refused(
        api.update_webhook(update(&["id"], |_| {})).await,
        "update_mask",
    );
    refused(
        api.update_webhook(update(&["url"], |w| w.url = "ftp://x/".into()))
            .await,
        "webhook.url",
    );
    refused(
        api.update_webhook(update(&["name"], |w| w.name.clear()))
            .await,
        "webhook.name",
    );
    refused(
        api.update_webhook(update(&["repositories"], |w| {
            w.repositories = vec!["**".into()]
        }))
        .await,
        "webhook.repositories[0]",
    );
    refused(
        api.get_webhook(GetWebhookRequest { id: String::new() })
            .await,
        "id",
    );

    let rotate = |seconds: i64, secret: &str| RotateWebhookSecretRequest {
        id: w.id.clone(),
        grace_period: Some(prost_types::Duration { seconds, nanos: 0 }),
        secret: secret.into(),
    };
    refused(
        api.rotate_webhook_secret(rotate(-1, "")).await,
        "grace_period",
    );
    refused(
        api.rotate_webhook_secret(rotate(31 * 24 * 3600, "")).await,
        "grace_period",
    );
    refused(
        api.rotate_webhook_secret(rotate(60, "whsec_")).await,
        "secret",
    );

    // Nothing invalid was stored along the way.
    let stored = server
        .store
        .enabled_webhooks(hookline::store::now_ms())
        .await
        .expect("list");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].secrets.len(), 1, "no rotation happened");
    server.stop().await;
    db.finish().await;
}
