//! NATS JetStream: each delivery one publish acknowledged by a stream, read back with
//! async-nats.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use hookline::api::proto::{self, DeliveryStatus, GetDeliveryRequest};
use hookline::store::TokenKind;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::pki_types::pem::PemObject;

use super::{attempts, fast, hook, push_over_tls, push_through_a_restart, verify_signed};
use crate::api::create;
use crate::deliveries::wait_status;
use crate::harness::envelopes::push;
use crate::harness::nats_server::NatsServer;
use crate::harness::server::TestServer;
use crate::harness::tls::TestCa;
use crate::store_test;

/// Every message `stream` holds, in order.
pub(super) async fn stream_messages(
    stream: &mut async_nats::jetstream::stream::Stream,
) -> Vec<async_nats::jetstream::message::StreamMessage> {
    let last = stream.info().await.expect("info").state.last_sequence;
    let mut all = Vec::new();
    for sequence in 1..=last {
        if let Ok(message) = stream.get_raw_message(sequence).await {
            all.push(message);
        }
    }
    all
}

pub(super) fn nats_header(m: &async_nats::jetstream::message::StreamMessage, name: &str) -> String {
    m.headers
        .get(name)
        .map(|v| v.as_str().to_owned())
        .unwrap_or_default()
}

store_test!(
    a_push_reaches_a_jetstream_stream_signed_once,
    async |db: &TestDb| {
        let nats = NatsServer::start(Some(("hookline", "nats-s3cret"))).await;
        let mut stream = nats.stream("IMAGES", &["registry.>"]).await;
        let server = TestServer::start(db, fast).await;
        let (_, token) = server.token(TokenKind::Namespace, "acme").await;
        let mut api = server.api_client(Some(&token)).await;
        let mut deliveries = server.deliveries_client(Some(&token)).await;
        let (w, secret) = create(&mut api, hook(&nats.url("registry.images"))).await;
        assert_eq!(w.payload_format, proto::PayloadFormat::Cloudevents as i32);
        server.notify_ok(&push("acme/app", "1.4")).await;
        let done = wait_status(&mut deliveries, &w.id, DeliveryStatus::Succeeded, 1).await;
        let got = stream_messages(&mut stream).await;
        assert_eq!(got.len(), 1);
        let m = &got[0];
        assert_eq!(nats_header(m, "Nats-Msg-Id"), done[0].id, "the dedupe key");
        // CloudEvents in the NATS binding's binary mode: attributes as headers.
        assert_eq!(nats_header(m, "ce-specversion"), "1.0");
        assert_eq!(nats_header(m, "ce-type"), "io.hookline.image.pushed");
        assert_eq!(nats_header(m, "content-type"), "application/json");
        let data: serde_json::Value = serde_json::from_slice(&m.payload).expect("json");
        assert_eq!(
            data["repository"], "acme/app",
            "the body is the event's data"
        );
        verify_signed(&secret, &m.payload, |name| nats_header(m, name));
        let log = attempts(&mut deliveries, &done[0].id).await;
        assert_eq!(log[0].response_body, "stream IMAGES sequence 1");

        // A redelivery is the same message id: JetStream keeps one.
        deliveries
            .redeliver_delivery(proto::RedeliverDeliveryRequest {
                id: done[0].id.clone(),
            })
            .await
            .expect("redeliver");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let d = deliveries
                .get_delivery(GetDeliveryRequest {
                    id: done[0].id.clone(),
                })
                .await
                .expect("get")
                .into_inner();
            if d.attempts.len() == 2
                && d.delivery
                    .is_some_and(|d| d.status == DeliveryStatus::Succeeded as i32)
            {
                assert!(
                    d.attempts[1].response_body.contains("duplicate"),
                    "{}",
                    d.attempts[1].response_body
                );
                break;
            }
            assert!(Instant::now() < deadline, "the redelivery ended");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(stream_messages(&mut stream).await.len(), 1, "stored once");

        // A subject no stream captures is final, saying so; so are wrong credentials.
        let (nowhere, _) = create(&mut api, hook(&nats.url("elsewhere.images"))).await;
        let wrong = nats
            .url("registry.images")
            .replace("nats-s3cret", "wrong-pass");
        let (refused, _) = create(&mut api, hook(&wrong)).await;
        server.notify_ok(&push("acme/app", "1.5")).await;
        for (w, says) in [
            (&nowhere, "no JetStream stream captures"),
            (&refused, "credentials"),
        ] {
            let failed = wait_status(&mut deliveries, &w.id, DeliveryStatus::Failed, 1).await;
            let log = attempts(&mut deliveries, &failed[0].id).await;
            assert_eq!(log.len(), 1, "final at once");
            assert_eq!(log[0].outcome, "failed", "final, not an SSRF refusal");
            assert!(log[0].reason.contains(says), "{}", log[0].reason);
            assert!(!log[0].reason.contains("wrong-pass"));
        }
        server.stop().await;
    }
);

store_test!(
    a_nats_server_restarted_mid_load_stores_each_event_once,
    async |db: &TestDb| {
        let mut nats = NatsServer::start(None).await;
        let mut stream = nats.stream("LOAD", &["load"]).await;
        let server = TestServer::start(db, fast).await;
        let (_, token) = server.token(TokenKind::Namespace, "acme").await;
        let mut api = server.api_client(Some(&token)).await;
        let mut deliveries = server.deliveries_client(Some(&token)).await;
        let (w, _) = create(&mut api, hook(&nats.url("load"))).await;
        const EVENTS: usize = 120;
        push_through_a_restart(&server, &mut nats, EVENTS).await;
        let done = wait_status(&mut deliveries, &w.id, DeliveryStatus::Succeeded, EVENTS).await;
        let expected: HashSet<String> = done.into_iter().map(|d| d.id).collect();
        let ids: Vec<String> = stream_messages(&mut stream)
            .await
            .iter()
            .map(|m| nats_header(m, "Nats-Msg-Id"))
            .collect();
        let unique: HashSet<String> = ids.iter().cloned().collect();
        assert_eq!(unique, expected, "every acknowledged event arrived");
        assert_eq!(
            ids.len(),
            unique.len(),
            "no duplicates, thanks to Nats-Msg-Id"
        );
        server.stop().await;
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_server_is_verified_for_the_urls_host_under_the_operators_ca() {
    let ca = TestCa::new();
    let nats = NatsServer::start_tls(&ca).await;
    let mut stream = nats.stream("SECURE", &["secure.images"]).await;
    let url = format!("tls://localhost:{}/secure.images", nats.addr.port());
    let root = CertificateDer::from_pem_file(&ca.pem_path).expect("ca.pem");

    // Trusted through destination_ca_file: delivered over TLS.
    let (id, secret) = push_over_tls(&url, Some(root)).await.expect("delivered");
    let got = stream_messages(&mut stream).await;
    assert_eq!(got.len(), 1);
    assert_eq!(nats_header(&got[0], "Nats-Msg-Id"), id);
    verify_signed(&secret, &got[0].payload, |name| nats_header(&got[0], name));

    assert!(push_over_tls(&url, None).await.is_none());
    assert_eq!(
        stream_messages(&mut stream).await.len(),
        1,
        "nothing more arrived"
    );
}
