//! Redis Streams: each delivery one `XADD`, read back with redis-rs.

use std::collections::HashSet;

use hookline::api::proto::{self, CreateWebhookRequest, DeliveryStatus};
use hookline::store::TokenKind;
use redis::AsyncCommands;
use redis::streams::StreamRangeReply;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tonic::Code;

use super::{
    attempts, fast, hook, push_over_tls, push_through_a_restart, refused_urls, verify_signed,
};
use crate::api::create;
use crate::deliveries::wait_status;
use crate::harness::api::{expect_code, violated_fields};
use crate::harness::envelopes::push;
use crate::harness::redis_server::RedisServer;
use crate::harness::server::TestServer;
use crate::harness::tls::TestCa;
use crate::store_test;

/// Every entry of `stream`, as (field → value) maps in order.
pub(super) async fn entries(
    server: &RedisServer,
    stream: &str,
) -> Vec<std::collections::HashMap<String, Vec<u8>>> {
    let mut connection = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let reply: StreamRangeReply = connection.xrange_all(stream).await.expect("xrange");
    reply
        .ids
        .into_iter()
        .map(|entry| {
            entry
                .map
                .into_iter()
                .map(|(k, v)| (k, redis::from_redis_value::<Vec<u8>>(v).expect("bytes")))
                .collect()
        })
        .collect()
}

store_test!(
    a_push_reaches_a_redis_stream_signed_with_its_dedupe_key,
    async |db: &TestDb| {
        let broker = RedisServer::start(Some("hunter2-broker")).await;
        let server = TestServer::start(db, fast).await;
        let (_, token) = server.token(TokenKind::Namespace, "acme").await;
        let mut api = server.api_client(Some(&token)).await;
        let mut deliveries = server.deliveries_client(Some(&token)).await;
        let (w, secret) = create(&mut api, hook(&broker.url("images"))).await;
        assert_eq!(
            w.payload_format,
            proto::PayloadFormat::Cloudevents as i32,
            "a bus carries CloudEvents"
        );
        let shown = api
            .get_webhook(proto::GetWebhookRequest { id: w.id.clone() })
            .await
            .expect("get")
            .into_inner()
            .webhook
            .expect("webhook");
        assert!(shown.url.contains(":…redacted@"), "{}", shown.url);
        assert!(!shown.url.contains("hunter2"), "{}", shown.url);

        server.notify_ok(&push("acme/app", "1.4")).await;
        let done = wait_status(&mut deliveries, &w.id, DeliveryStatus::Succeeded, 1).await;
        let got = entries(&broker, "images").await;
        assert_eq!(got.len(), 1);
        let entry = &got[0];
        let text = |name: &str| String::from_utf8(entry[name].clone()).expect("utf-8");
        assert_eq!(text("id"), done[0].id, "the delivery id is the dedupe key");
        assert_eq!(text("webhook-id"), done[0].id);
        assert_eq!(text("content-type"), "application/cloudevents+json");
        verify_signed(&secret, &entry["payload"], |name| text(name));
        let event: serde_json::Value = serde_json::from_slice(&entry["payload"]).expect("json");
        assert_eq!(event["specversion"], "1.0");
        let log = attempts(&mut deliveries, &done[0].id).await;
        assert!(
            log[0].response_body.starts_with("stream images entry "),
            "{}",
            log[0].response_body
        );
        server.stop().await;
    }
);

store_test!(
    a_broker_restarted_mid_load_loses_nothing_acknowledged,
    async |db: &TestDb| {
        let mut broker = RedisServer::start(None).await;
        let server = TestServer::start(db, fast).await;
        let (_, token) = server.token(TokenKind::Namespace, "acme").await;
        let mut api = server.api_client(Some(&token)).await;
        let mut deliveries = server.deliveries_client(Some(&token)).await;
        let (w, _) = create(&mut api, hook(&broker.url("load"))).await;
        const EVENTS: usize = 120;
        push_through_a_restart(&server, &mut broker, EVENTS).await;
        let done = wait_status(&mut deliveries, &w.id, DeliveryStatus::Succeeded, EVENTS).await;
        let expected: HashSet<String> = done.into_iter().map(|d| d.id).collect();
        let got = entries(&broker, "load").await;
        let ids: Vec<String> = got
            .iter()
            .map(|e| String::from_utf8(e["id"].clone()).expect("utf-8"))
            .collect();
        let unique: HashSet<String> = ids.iter().cloned().collect();
        assert_eq!(unique, expected, "every acknowledged event arrived");
        eprintln!(
            "{} entries for {EVENTS} deliveries ({} duplicates)",
            ids.len(),
            ids.len() - unique.len()
        );
        server.stop().await;
    }
);

store_test!(
    refused_credentials_are_final_and_urls_are_checked,
    async |db: &TestDb| {
        let broker = RedisServer::start(Some("right-password")).await;
        let server = TestServer::start(db, fast).await;
        let (_, token) = server.token(TokenKind::Namespace, "acme").await;
        let mut api = server.api_client(Some(&token)).await;
        let mut deliveries = server.deliveries_client(Some(&token)).await;
        let wrong = broker.url("s").replace("right-password", "wrong-password");
        let (w, _) = create(&mut api, hook(&wrong)).await;
        server.notify_ok(&push("acme/app", "1.4")).await;
        let failed = wait_status(&mut deliveries, &w.id, DeliveryStatus::Failed, 1).await;
        let log = attempts(&mut deliveries, &failed[0].id).await;
        assert_eq!(log.len(), 1, "final at once");
        assert_eq!(log[0].outcome, "failed");
        assert_eq!(log[0].error_class, "broker");
        assert!(log[0].reason.contains("credentials"), "{}", log[0].reason);
        assert!(
            !log[0].reason.contains("wrong-password"),
            "{}",
            log[0].reason
        );

        refused_urls(
            &mut api,
            [
                (
                    format!("redis://{}/0", broker.addr),
                    "the stream is missing",
                ),
                (
                    format!("redis://{}/0?stream=s&group=x", broker.addr),
                    "unknown query parameter `group`",
                ),
                (
                    format!("redis://{}/db?stream=s", broker.addr),
                    "database number",
                ),
                (format!("kafka://{}/topic", broker.addr), "scheme must be"),
                (
                    format!("nats://{}/registry.*", broker.addr),
                    "without wildcards",
                ),
            ],
        )
        .await;
        let mut chat = hook(&broker.url("s"));
        chat.payload_format = proto::PayloadFormat::Slack as i32;
        let status = expect_code(
            api.create_webhook(CreateWebhookRequest {
                webhook: Some(chat),
                secret: String::new(),
            })
            .await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&status), ["webhook.payload_format"]);
        server.stop().await;
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_server_is_verified_for_the_urls_host_under_the_operators_ca() {
    let ca = TestCa::new();
    let broker = RedisServer::start_tls(&ca).await;
    let root = CertificateDer::from_pem_file(&ca.pem_path).expect("ca.pem");
    let url = broker.tls_url("secure");
    let (id, secret) = push_over_tls(&url, Some(root)).await.expect("delivered");
    let got = entries(&broker, "secure").await;
    assert_eq!(got.len(), 1);
    let text = |name: &str| String::from_utf8(got[0][name].clone()).expect("utf-8");
    assert_eq!(text("id"), id);
    verify_signed(&secret, &got[0]["payload"], text);

    assert!(push_over_tls(&url, None).await.is_none());
    assert_eq!(entries(&broker, "secure").await.len(), 1, "nothing more");
}
