//! Every input limit, hit once through the real server, with its exact error: the notify
//! endpoint's body size, events per envelope and per-registry rate (429 + Retry-After);
//! the API's filters, custom headers (count, name, value, total size, denylist),
//! webhooks per namespace, page size, message size and per-token rate.

use std::collections::HashMap;
use std::time::Duration;

use hookline::api::proto::{CreateWebhookRequest, ListWebhooksRequest};
use hookline::config::RateLimit;
use hookline::store::TokenKind;
use tonic::Code;
use tonic_types::StatusExt;

use super::push;
use crate::api::hook;
use crate::harness::api::{expect_code, violated_fields};
use crate::harness::db::{Backend, TestDb};
use crate::harness::server::{REGISTRY_TOKEN, TestServer, with_api};

const V1: &str = "application/vnd.docker.distribution.events.v1+json";

fn create(webhook: hookline::api::proto::Webhook) -> CreateWebhookRequest {
    CreateWebhookRequest {
        webhook: Some(webhook),
        secret: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_limits_answer_with_their_reason() {
    let db = TestDb::new(Backend::Sqlite).await;
    let server = TestServer::start(&db, |c| {
        c.ingest.max_body_bytes = 4096;
        c.ingest.max_events_per_envelope = 2;
        c.ingest.rate_limit = RateLimit {
            per_second: 1,
            burst: 3,
        };
    })
    .await;
    let (status, json) = server
        .notify(
            format!("{{\"events\":[],\"pad\":\"{}\"}}", "x".repeat(5000)),
            V1,
            Some(REGISTRY_TOKEN),
        )
        .await;
    assert_eq!(
        (status, json),
        (
            413,
            serde_json::json!({"error": "body_too_large", "reason": "request body is larger than 4096 bytes"})
        )
    );
    let three: Vec<serde_json::Value> = (0..3)
        .map(|_| {
            serde_json::from_str::<serde_json::Value>(&push("acme/app", "v1")).unwrap()["events"][0]
                .clone()
        })
        .collect();
    let (status, json) = server
        .notify(
            serde_json::json!({ "events": three }).to_string(),
            V1,
            Some(REGISTRY_TOKEN),
        )
        .await;
    assert_eq!(
        (status, json),
        (
            400,
            serde_json::json!({"error": "bad_envelope", "reason": "the envelope has 3 events; at most 2 are accepted per request"})
        )
    );
    // Two requests of the burst of 3 are spent; one more passes, then 429.
    server.notify_ok(&push("acme/app", "v1")).await;
    let response = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
        .post(server.notify_url())
        .header("content-type", V1)
        .bearer_auth(REGISTRY_TOKEN)
        .body(push("acme/app", "v2"))
        .send()
        .await
        .expect("notify");
    assert_eq!(response.status().as_u16(), 429);
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in whole seconds");
    assert_eq!(retry_after, 1);
    let json: serde_json::Value =
        serde_json::from_str(&response.text().await.expect("body")).expect("JSON");
    assert_eq!(json["error"], "rate_limited");
    let reason = json["reason"].as_str().expect("reason");
    assert!(
        reason.starts_with(
            "rate limit exceeded: at most 1 requests per second (bursts of 3); retry in "
        ),
        "{reason}"
    );
    server.stop().await;
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_limits_answer_with_their_exact_error() {
    let db = TestDb::new(Backend::Sqlite).await;
    let server = TestServer::start(&db, |c| {
        with_api(c);
        c.api.max_filters_per_webhook = 3;
        c.api.max_custom_headers = 2;
        c.api.max_page_size = 10;
        c.api.max_webhooks_per_namespace = 2;
        c.api.max_message_bytes = 32 * 1024;
    })
    .await;
    let (_, token) = server.token(TokenKind::Namespace, "acme").await;
    let mut api = server.api_client(Some(&token)).await;
    let url = "http://127.0.0.1:9/hook";

    let headers = |pairs: &[(&str, String)]| -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    };
    type Change = Box<dyn FnOnce(&mut hookline::api::proto::Webhook)>;
    let cases: Vec<(&str, &str, Change)> = vec![
        (
            "webhook.repositories",
            "webhook.repositories: at most 3 patterns (got 4)",
            Box::new(|w| w.repositories = vec!["acme/a".into(); 4]),
        ),
        (
            "webhook.tags",
            "webhook.tags: at most 3 patterns (got 4)",
            Box::new(|w| w.tags = vec!["v*".into(); 4]),
        ),
        (
            "webhook.headers",
            "webhook.headers: at most 2 headers (got 3)",
            Box::new(move |w| {
                w.headers = headers(&[
                    ("x-a", "1".into()),
                    ("x-b", "2".into()),
                    ("x-c", "3".into()),
                ])
            }),
        ),
        (
            "webhook.headers",
            "webhook.headers: at most 16384 bytes of names and values together (got 18006)",
            Box::new(move |w| {
                w.headers = headers(&[("x-a", "a".repeat(9000)), ("x-b", "b".repeat(9000))])
            }),
        ),
        (
            "webhook.headers[\"x-big\"]",
            "webhook.headers[\"x-big\"]: value is longer than 4096 bytes",
            Box::new(move |w| w.headers = headers(&[("x-big", "v".repeat(4097))])),
        ),
        (
            "webhook.headers",
            "webhook.headers: a header name is longer than 128 bytes",
            Box::new(move |w| w.headers = headers(&[(&"n".repeat(129), "v".into())])),
        ),
    ];
    for (field, message, change) in cases {
        let mut w = hook("limited", url);
        change(&mut w);
        let status = expect_code(api.create_webhook(create(w)).await, Code::InvalidArgument);
        assert_eq!(status.message(), message);
        assert_eq!(violated_fields(&status), [field]);
    }
    for name in [
        "Host",
        "Content-Length",
        "Transfer-Encoding",
        "Connection",
        "Keep-Alive",
        "Upgrade",
        "TE",
        "Trailer",
        "Proxy-Authorization",
        "Webhook-Id",
    ] {
        let mut w = hook("denied", url);
        w.headers = headers(&[(name, "x".into())]);
        let status = expect_code(api.create_webhook(create(w)).await, Code::InvalidArgument);
        assert_eq!(
            status.message(),
            format!(
                "webhook.headers[{name:?}]: set by hookline or hop-by-hop (host, content-*, \
                 connection, te, upgrade, proxy-*, webhook-*, …); it cannot be set"
            )
        );
    }

    let status = expect_code(
        api.list_webhooks(ListWebhooksRequest {
            page_size: 11,
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(
        status.message(),
        "page_size: must be between 1 and 10 (got 11)"
    );

    let mut big = hook("big", url);
    big.name = "n".repeat(40_000);
    let status = expect_code(api.create_webhook(create(big)).await, Code::OutOfRange);
    assert!(
        status.message().contains("message length too large") && status.message().contains("32768"),
        "{status:?}"
    );

    // Webhooks per namespace: the tenant's whole subtree counts.
    api.create_webhook(create(hook("one", url)))
        .await
        .expect("first");
    let mut below = hook("two", url);
    below.namespace = Some("acme/tools".into());
    api.create_webhook(create(below))
        .await
        .expect("second, below");
    let status = expect_code(
        api.create_webhook(create(hook("three", url))).await,
        Code::ResourceExhausted,
    );
    assert_eq!(
        status.message(),
        "namespace `acme` already has 2 webhooks, the most allowed (max_webhooks_per_namespace, \
         counting the namespaces below it); delete unused ones or ask the operator to raise the limit"
    );
    let (_, other) = server.token(TokenKind::Namespace, "other").await;
    let mut other_api = server.api_client(Some(&other)).await;
    other_api
        .create_webhook(create(hook("theirs", url)))
        .await
        .expect("another tenant has its own quota");
    server.stop().await;
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_calls_are_rate_limited_per_token() {
    let db = TestDb::new(Backend::Sqlite).await;
    let server = TestServer::start(&db, |c| {
        with_api(c);
        c.api.rate_limit = RateLimit {
            per_second: 1,
            burst: 3,
        };
    })
    .await;
    let (_, token) = server.token(TokenKind::Namespace, "acme").await;
    let (_, other) = server.token(TokenKind::Namespace, "acme").await;
    let mut api = server.api_client(Some(&token)).await;
    for _ in 0..3 {
        api.list_webhooks(ListWebhooksRequest::default())
            .await
            .expect("within the burst");
    }
    let status = expect_code(
        api.list_webhooks(ListWebhooksRequest::default()).await,
        Code::ResourceExhausted,
    );
    assert!(
        status.message().starts_with(
            "rate limit exceeded: at most 1 requests per second (bursts of 3); retry in "
        ),
        "{status:?}"
    );
    let retry = status
        .get_details_retry_info()
        .and_then(|r| r.retry_delay)
        .expect("a RetryInfo detail");
    assert!(
        retry > Duration::ZERO && retry <= Duration::from_secs(1),
        "{retry:?}"
    );
    let mut other_api = server.api_client(Some(&other)).await;
    other_api
        .list_webhooks(ListWebhooksRequest::default())
        .await
        .expect("another token has its own budget");
    tokio::time::sleep(retry).await;
    api.list_webhooks(ListWebhooksRequest::default())
        .await
        .expect("allowed again after the delay");
    server.stop().await;
    db.finish().await;
}
