//! MQTT 5: each delivery one QoS 1 publish the broker acknowledges, received by a
//! subscriber with rumqttc.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use hookline::api::proto::{self, DeliveryStatus};
use hookline::store::TokenKind;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::pki_types::pem::PemObject;

use super::{
    attempts, fast, hook, push_over_tls, push_through_a_restart, refused_urls, verify_signed,
};
use crate::api::create;
use crate::deliveries::wait_status;
use crate::harness::envelopes::push;
use crate::harness::mosquitto_server::MosquittoServer;
use crate::harness::server::TestServer;
use crate::harness::tls::TestCa;
use crate::store_test;

/// A message's user property `name` ("" when it has none).
pub(super) fn property(m: &rumqttc::v5::mqttbytes::v5::Publish, name: &str) -> String {
    m.properties
        .as_ref()
        .and_then(|p| p.user_properties.iter().find(|(n, _)| n == name))
        .map(|(_, value)| value.clone())
        .unwrap_or_default()
}

store_test!(
    a_push_reaches_an_mqtt_subscriber_acknowledged_and_signed,
    async |db: &TestDb| {
        let broker = MosquittoServer::start(Some(("hookline", "mqtt-s3cret"))).await;
        let consumer = broker.subscribe("registry/images").await;
        let server = TestServer::start(db, fast).await;
        let (_, token) = server.token(TokenKind::Namespace, "acme").await;
        let mut api = server.api_client(Some(&token)).await;
        let mut deliveries = server.deliveries_client(Some(&token)).await;
        let (w, secret) = create(&mut api, hook(&broker.url("registry/images"))).await;
        assert_eq!(w.payload_format, proto::PayloadFormat::Cloudevents as i32);

        server.notify_ok(&push("acme/app", "1.4")).await;
        let done = wait_status(&mut deliveries, &w.id, DeliveryStatus::Succeeded, 1).await;
        let got = consumer.wait(1).await;
        let m = &got[0];
        assert_eq!(property(m, "webhook-id"), done[0].id, "the dedupe key");
        // CloudEvents in the MQTT 5 binding's binary mode: attributes as user properties.
        let properties = m.properties.as_ref().expect("MQTT 5 properties");
        assert_eq!(properties.content_type.as_deref(), Some("application/json"));
        assert_eq!(property(m, "specversion"), "1.0");
        assert_eq!(property(m, "type"), "io.hookline.image.pushed");
        let data: serde_json::Value = serde_json::from_slice(&m.payload).expect("json");
        assert_eq!(data["repository"], "acme/app");
        verify_signed(&secret, &m.payload, |name| property(m, name));
        let log = attempts(&mut deliveries, &done[0].id).await;
        assert_eq!(
            log[0].response_body,
            "topic `registry/images`: acknowledged"
        );

        // A topic nobody subscribes to is sent again until someone does; wrong
        // credentials are final.
        let (unheard, _) = create(&mut api, hook(&broker.url("nobody/yet"))).await;
        let wrong = broker
            .url("registry/images")
            .replace("mqtt-s3cret", "wrong-pass");
        let (refused, _) = create(&mut api, hook(&wrong)).await;
        server.notify_ok(&push("acme/app", "1.5")).await;
        let failed = wait_status(&mut deliveries, &refused.id, DeliveryStatus::Failed, 1).await;
        let log = attempts(&mut deliveries, &failed[0].id).await;
        assert_eq!(log.len(), 1, "final at once");
        assert_eq!(log[0].outcome, "failed");
        assert!(log[0].reason.contains("credentials"), "{}", log[0].reason);
        assert!(!log[0].reason.contains("wrong-pass"));

        let deadline = Instant::now() + Duration::from_secs(10);
        let pending = loop {
            let pending = wait_status(&mut deliveries, &unheard.id, DeliveryStatus::Retrying, 1)
                .await
                .remove(0);
            let log = attempts(&mut deliveries, &pending.id).await;
            if log.len() >= 2 {
                assert_eq!(log[0].outcome, "retry");
                assert!(log[0].error.contains("no subscriber"), "{}", log[0].error);
                break pending;
            }
            assert!(Instant::now() < deadline, "retried");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let late = broker.subscribe("nobody/yet").await;
        wait_status(&mut deliveries, &unheard.id, DeliveryStatus::Succeeded, 1).await;
        assert_eq!(property(&late.wait(1).await[0], "webhook-id"), pending.id);

        refused_urls(
            &mut api,
            [
                (format!("mqtt://{}/", broker.addr), "the topic is missing"),
                (
                    format!("mqtt://{}/registry/+", broker.addr),
                    "without wildcards",
                ),
                (
                    format!("mqtt://{}/t?qos=2", broker.addr),
                    "takes no query parameters",
                ),
            ],
        )
        .await;
        server.stop().await;
    }
);

store_test!(
    an_mqtt_broker_restarted_mid_load_loses_nothing_acknowledged,
    async |db: &TestDb| {
        let mut broker = MosquittoServer::start(None).await;
        let consumer = broker.subscribe("load").await;
        let server = TestServer::start(db, fast).await;
        let (_, token) = server.token(TokenKind::Namespace, "acme").await;
        let mut api = server.api_client(Some(&token)).await;
        let mut deliveries = server.deliveries_client(Some(&token)).await;
        let (w, _) = create(&mut api, hook(&broker.url("load"))).await;
        const EVENTS: usize = 120;
        push_through_a_restart(&server, &mut broker, EVENTS).await;
        let done = wait_status(&mut deliveries, &w.id, DeliveryStatus::Succeeded, EVENTS).await;
        let expected: HashSet<String> = done.into_iter().map(|d| d.id).collect();
        let deadline = Instant::now() + Duration::from_secs(20);
        let (ids, unique) = loop {
            let ids: Vec<String> = consumer
                .wait(0)
                .await
                .iter()
                .map(|m| property(m, "webhook-id"))
                .collect();
            let unique: HashSet<String> = ids.iter().cloned().collect();
            if unique.is_superset(&expected) || Instant::now() > deadline {
                break (ids, unique);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let missing: Vec<&String> = expected.difference(&unique).collect();
        assert!(
            missing.is_empty(),
            "every acknowledged event arrived; missing {missing:?}"
        );
        eprintln!(
            "{} messages for {EVENTS} deliveries ({} duplicates)",
            ids.len(),
            ids.len() - unique.len()
        );
        server.stop().await;
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_broker_is_verified_for_the_urls_host_under_the_operators_ca() {
    let ca = TestCa::new();
    let broker = MosquittoServer::start_tls(&ca).await;
    let consumer = broker.subscribe("secure/images").await;
    let root = CertificateDer::from_pem_file(&ca.pem_path).expect("ca.pem");
    let url = broker.tls_url("secure/images");
    let (id, secret) = push_over_tls(&url, Some(root)).await.expect("delivered");
    let got = consumer.wait(1).await;
    assert_eq!(property(&got[0], "webhook-id"), id);
    verify_signed(&secret, &got[0].payload, |name| property(&got[0], name));

    assert!(push_over_tls(&url, None).await.is_none());
    assert_eq!(consumer.wait(1).await.len(), 1, "nothing more");
}
