//! RabbitMQ: each delivery one persistent, mandatory publish the broker confirms, read
//! back off a durable queue with lapin.

use std::collections::HashSet;

use hookline::api::proto::{self, DeliveryStatus};
use hookline::store::TokenKind;
use lapin::types::AMQPValue;

use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::pki_types::pem::PemObject;

use super::{
    attempts, fast, hook, push_over_tls, push_through_a_restart, refused_urls, verify_signed,
};
use crate::api::create;
use crate::deliveries::wait_status;
use crate::harness::envelopes::push;
use crate::harness::rabbitmq_server::RabbitMqServer;
use crate::harness::server::TestServer;
use crate::harness::tls::TestCa;
use crate::store_test;

/// A message's header `name` as text ("" when it has none).
pub(super) fn amqp_header(m: &lapin::message::BasicGetMessage, name: &str) -> String {
    let value = m
        .delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|headers| headers.inner().get(name).cloned());
    match value {
        Some(AMQPValue::LongString(text)) => text.to_string(),
        Some(AMQPValue::ShortString(text)) => text.to_string(),
        _ => String::new(),
    }
}

/// A message's id ("" when it has none).
pub(super) fn message_id(m: &lapin::message::BasicGetMessage) -> String {
    m.delivery
        .properties
        .message_id()
        .as_ref()
        .map(|id| id.to_string())
        .unwrap_or_default()
}

store_test!(
    a_push_reaches_a_rabbitmq_queue_confirmed_and_signed,
    async |db: &TestDb| {
        let rabbit = RabbitMqServer::start().await;
        rabbit.bind("registry", "images", "pushes").await;
        let server = TestServer::start(db, fast).await;
        let (_, token) = server.token(TokenKind::Namespace, "acme").await;
        let mut api = server.api_client(Some(&token)).await;
        let mut deliveries = server.deliveries_client(Some(&token)).await;
        let (w, secret) = create(&mut api, hook(&rabbit.url("registry", "pushes"))).await;
        assert_eq!(w.payload_format, proto::PayloadFormat::Cloudevents as i32);

        server.notify_ok(&push("acme/app", "1.4")).await;
        let done = wait_status(&mut deliveries, &w.id, DeliveryStatus::Succeeded, 1).await;
        let got = rabbit.drain("images").await;
        assert_eq!(got.len(), 1);
        let m = &got[0];
        let properties = &m.delivery.properties;
        assert_eq!(message_id(m), done[0].id, "the dedupe key");
        assert_eq!(*properties.delivery_mode(), Some(2), "persistent");
        // CloudEvents in the AMQP binding's binary mode: attributes as properties.
        assert_eq!(
            properties.content_type().as_ref().map(|c| c.to_string()),
            Some("application/json".to_owned())
        );
        assert_eq!(amqp_header(m, "cloudEvents:specversion"), "1.0");
        assert_eq!(
            amqp_header(m, "cloudEvents:type"),
            "io.hookline.image.pushed"
        );
        let data: serde_json::Value = serde_json::from_slice(&m.delivery.data).expect("json");
        assert_eq!(data["repository"], "acme/app");
        verify_signed(&secret, &m.delivery.data, |name| amqp_header(m, name));
        let log = attempts(&mut deliveries, &done[0].id).await;
        assert_eq!(
            log[0].response_body,
            "exchange `registry` routing key `pushes`: confirmed"
        );

        // No queue for the key, no such exchange, refused credentials: each final, and
        // the good webhook's next delivery is not held up by them.
        let (unroutable, _) = create(&mut api, hook(&rabbit.url("registry", "nowhere"))).await;
        let (no_exchange, _) = create(&mut api, hook(&rabbit.url("missing", "pushes"))).await;
        let wrong = rabbit
            .url("registry", "pushes")
            .replace("guest:guest", "guest:wrong-pass");
        let (refused, _) = create(&mut api, hook(&wrong)).await;
        server.notify_ok(&push("acme/app", "1.5")).await;
        for (w, says) in [
            (&unroutable, "no queue is bound"),
            (&no_exchange, "no exchange `missing`"),
            (&refused, "refused access"),
        ] {
            let failed = wait_status(&mut deliveries, &w.id, DeliveryStatus::Failed, 1).await;
            let log = attempts(&mut deliveries, &failed[0].id).await;
            assert_eq!(log.len(), 1, "final at once: {:?}", log[0].reason);
            assert_eq!(log[0].outcome, "failed");
            assert_eq!(log[0].error_class, "broker");
            assert!(log[0].reason.contains(says), "{}", log[0].reason);
            assert!(!log[0].reason.contains("wrong-pass"));
        }
        wait_status(&mut deliveries, &w.id, DeliveryStatus::Succeeded, 2).await;
        assert_eq!(rabbit.drain("images").await.len(), 1);

        refused_urls(
            &mut api,
            [
                (
                    format!("amqp://{}/vhost", rabbit.addr),
                    "the exchange is missing",
                ),
                (
                    format!("amqp://{}/?exchange=x&queue=q", rabbit.addr),
                    "unknown query parameter `queue`",
                ),
                (
                    format!("amqp://{}/?exchange=", rabbit.addr),
                    "add `&routing_key=QUEUE`",
                ),
            ],
        )
        .await;
        server.stop().await;
    }
);

store_test!(
    a_rabbitmq_broker_restarted_mid_load_loses_nothing_confirmed,
    async |db: &TestDb| {
        let mut rabbit = RabbitMqServer::start().await;
        rabbit.bind("registry", "load", "load").await;
        let server = TestServer::start(db, fast).await;
        let (_, token) = server.token(TokenKind::Namespace, "acme").await;
        let mut api = server.api_client(Some(&token)).await;
        let mut deliveries = server.deliveries_client(Some(&token)).await;
        let (w, _) = create(&mut api, hook(&rabbit.url("registry", "load"))).await;
        const EVENTS: usize = 120;
        push_through_a_restart(&server, &mut rabbit, EVENTS).await;
        let done = wait_status(&mut deliveries, &w.id, DeliveryStatus::Succeeded, EVENTS).await;
        let expected: HashSet<String> = done.into_iter().map(|d| d.id).collect();
        let ids: Vec<String> = rabbit.drain("load").await.iter().map(message_id).collect();
        let unique: HashSet<String> = ids.iter().cloned().collect();
        assert_eq!(unique, expected, "every confirmed event arrived");
        eprintln!(
            "{} messages for {EVENTS} deliveries ({} duplicates)",
            ids.len(),
            ids.len() - unique.len()
        );
        server.stop().await;
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_rabbitmq_is_verified_for_the_urls_host_under_the_operators_ca() {
    let ca = TestCa::new();
    let rabbit = RabbitMqServer::start_tls(&ca).await;
    rabbit.bind("secure", "images", "pushes").await;
    let root = CertificateDer::from_pem_file(&ca.pem_path).expect("ca.pem");
    let url = rabbit.tls_url("secure", "pushes");
    let (id, secret) = push_over_tls(&url, Some(root)).await.expect("delivered");
    let got = rabbit.drain("images").await;
    assert_eq!(got.len(), 1);
    assert_eq!(message_id(&got[0]), id);
    verify_signed(&secret, &got[0].delivery.data, |name| {
        amqp_header(&got[0], name)
    });

    assert!(push_over_tls(&url, None).await.is_none());
    assert!(rabbit.drain("images").await.is_empty(), "nothing more");
}
