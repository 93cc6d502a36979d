//! Message buses as destinations, against real brokers of the test's own (`redis-server`,
//! `nats-server -js`, `rabbitmq-server`, `mosquitto`), one file per bus: a push, and a real push
//! through a real registry, reach a Redis stream, a JetStream stream, a RabbitMQ queue and
//! an MQTT subscriber as messages a consumer reads with the broker's own client
//! (redis-rs, async-nats, lapin, rumqttc) and verifies with the `standardwebhooks` crate, the delivery id their dedupe
//! key; a broker killed and started again in the middle of a load loses nothing
//! acknowledged (and JetStream stores each event once); refused credentials and a
//! destination the broker has no place for are final; the URL is checked where the owner
//! can fix it, its password shown redacted, and an internal broker refused without an
//! allow-list. This file has what they share.

mod amqp;
mod mqtt;
mod nats;
mod redis;

use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use hookline::api::proto::{self, CreateWebhookRequest, DeliveryStatus, GetDeliveryRequest};
use hookline::store::TokenKind;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tonic::Code;

use crate::api::create;
use crate::deliveries::wait_status;
use crate::harness::api::{Client, Deliveries, expect_code, violated_fields};
use crate::harness::broker::Broker;
use crate::harness::envelopes::push;
use crate::harness::mosquitto_server::MosquittoServer;
use crate::harness::nats_server::NatsServer;
use crate::harness::rabbitmq_server::RabbitMqServer;
use crate::harness::redis_server::RedisServer;
use crate::harness::server::{TestServer, with_api};
use amqp::amqp_header;
use mqtt::property;
use nats::{nats_header, stream_messages};
use redis::entries;

/// A delivery's attempts, from the log.
pub(crate) async fn attempts(deliveries: &mut Deliveries, id: &str) -> Vec<proto::Attempt> {
    deliveries
        .get_delivery(GetDeliveryRequest { id: id.into() })
        .await
        .expect("get delivery")
        .into_inner()
        .attempts
}

/// Sends `events` pushes, killing the broker after a third and starting it again after two.
async fn push_through_a_restart(server: &TestServer, broker: &mut Broker, events: usize) {
    for i in 0..events {
        if i == events / 3 {
            broker.stop();
        }
        if i == 2 * events / 3 {
            broker.restart().await;
        }
        server.notify_ok(&push("acme/app", &format!("1.{i}"))).await;
    }
}

/// Checks a bus message's signature as an HTTP receiver would, with the `standardwebhooks`
/// crate: over `payload`, with the three headers `header` gives by name.
pub(crate) fn verify_signed(secret: &str, payload: &[u8], header: impl Fn(&str) -> String) {
    let mut headers = HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_str(&header(name)).expect("header"),
        );
    }
    standardwebhooks::Webhook::new(secret)
        .expect("secret")
        .verify(payload, &headers)
        .expect("the message verifies as an HTTP delivery does");
}

fn fast(c: &mut hookline::config::Config) {
    with_api(c);
    c.dispatch.poll_interval = Duration::from_millis(100);
    // Enough tries to outlast a broker restart on a busy machine (RabbitMQ boots in 5-20 s).
    c.dispatch.retry_schedule = vec![Duration::from_millis(200); 300];
    // A broker down for a moment must not open the circuit's long cool-down here.
    c.dispatch.circuit_threshold = u32::MAX;
}

/// Creating a webhook to each URL is INVALID_ARGUMENT on `webhook.url`, saying what the
/// pair says.
async fn refused_urls<const N: usize>(api: &mut Client, urls: [(String, &str); N]) {
    for (url, says) in urls {
        let status = expect_code(
            api.create_webhook(CreateWebhookRequest {
                webhook: Some(hook(&url)),
                secret: String::new(),
            })
            .await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&status), ["webhook.url"], "{url}");
        assert!(
            status.message().contains(says),
            "{url}: {}",
            status.message()
        );
    }
}

/// One push to a webhook at the TLS `url`, from a server on a fresh SQLite database that
/// trusts `root` as the operator's CA, or the web PKI alone (`None`). Trusted: once
/// delivered, the delivery id and the webhook's secret. Untrusted: None, once the attempt
/// is retried for the certificate.
async fn push_over_tls(
    url: &str,
    root: Option<CertificateDer<'static>>,
) -> Option<(String, String)> {
    let db = crate::harness::db::TestDb::new(crate::harness::db::Backend::Sqlite).await;
    let trusted = root.is_some();
    let server = TestServer::start(&db, |c| {
        fast(c);
        c.dispatch.destination_roots = root.into_iter().collect();
    })
    .await;
    let (_, token) = server.token(TokenKind::Namespace, "acme").await;
    let mut api = server.api_client(Some(&token)).await;
    let mut deliveries = server.deliveries_client(Some(&token)).await;
    let (w, secret) = create(&mut api, hook(url)).await;
    server.notify_ok(&push("acme/app", "1.4")).await;
    let delivered = if trusted {
        let done = wait_status(&mut deliveries, &w.id, DeliveryStatus::Succeeded, 1).await;
        Some((done[0].id.clone(), secret))
    } else {
        // Without the operator's CA the certificate proves nothing: retried, never sent.
        let retrying = wait_status(&mut deliveries, &w.id, DeliveryStatus::Retrying, 1).await;
        let log = attempts(&mut deliveries, &retrying[0].id).await;
        assert_eq!(log[0].error_class, "connect", "{log:?}");
        assert!(log[0].error.contains("certificate"), "{}", log[0].error);
        None
    };
    server.stop().await;
    db.finish().await;
    delivered
}

/// A webhook named `bus` to `url`, everything else default.
fn hook(url: &str) -> proto::Webhook {
    crate::api::hook("bus", url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_internal_broker_is_refused_without_an_allow_list() {
    let db = crate::harness::db::TestDb::new(crate::harness::db::Backend::Sqlite).await;
    let server = TestServer::start(&db, |c| {
        with_api(c);
        c.ssrf = hookline::ssrf::Guard::new(Vec::new());
    })
    .await;
    let (_, token) = server.token(TokenKind::Namespace, "acme").await;
    let mut api = server.api_client(Some(&token)).await;
    for url in [
        "redis://127.0.0.1:6379/0?stream=s",
        "nats://127.0.0.1:4222/registry.images",
        "amqp://127.0.0.1:5672/?exchange=registry",
        "mqtt://127.0.0.1:1883/registry/images",
    ] {
        let started = Instant::now();
        let status = expect_code(
            api.create_webhook(CreateWebhookRequest {
                webhook: Some(hook(url)),
                secret: String::new(),
            })
            .await,
            Code::InvalidArgument,
        );
        assert!(
            status.message().contains("refused"),
            "{url}: {}",
            status.message()
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    server.stop().await;
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_push_reaches_every_bus_consumer() {
    let db = crate::harness::db::TestDb::new(crate::harness::db::Backend::Sqlite).await;
    let mosquitto = MosquittoServer::start(None).await;
    let subscriber = mosquitto.subscribe("registry/pushes").await;
    let rabbit = RabbitMqServer::start().await;
    rabbit.bind("registry", "pushes", "pushes").await;
    let nats = NatsServer::start(None).await;
    let mut stream = nats.stream("PUSHES", &["registry.pushes"]).await;
    let redis = RedisServer::start(None).await;
    let server = TestServer::start(&db, fast).await;
    let (_, token) = server.token(TokenKind::Namespace, "acme").await;
    let mut api = server.api_client(Some(&token)).await;
    let mut deliveries = server.deliveries_client(Some(&token)).await;
    let (to_nats, nats_secret) = create(&mut api, hook(&nats.url("registry.pushes"))).await;
    let (to_redis, redis_secret) = create(&mut api, hook(&redis.url("pushes"))).await;
    let (to_rabbit, rabbit_secret) =
        create(&mut api, hook(&rabbit.url("registry", "pushes"))).await;
    let (to_mqtt, mqtt_secret) = create(&mut api, hook(&mosquitto.url("registry/pushes"))).await;
    let registry = crate::harness::registry::Registry::start(
        &server.notify_url(),
        crate::harness::server::REGISTRY_TOKEN,
    )
    .await;
    let digest = registry.push_image("acme/app", "1.4").await;

    wait_status(&mut deliveries, &to_nats.id, DeliveryStatus::Succeeded, 1).await;
    let got = stream_messages(&mut stream).await;
    assert_eq!(got.len(), 1, "one image.pushed: {}", registry.log_tail());
    let m = &got[0];
    assert_eq!(nats_header(m, "ce-type"), "io.hookline.image.pushed");
    assert_eq!(nats_header(m, "ce-subject"), "acme/app:1.4");
    let data: serde_json::Value = serde_json::from_slice(&m.payload).expect("json");
    assert_eq!(data["digest"], digest.as_str());
    verify_signed(&nats_secret, &m.payload, |name| nats_header(m, name));

    wait_status(&mut deliveries, &to_redis.id, DeliveryStatus::Succeeded, 1).await;
    let got = entries(&redis, "pushes").await;
    assert_eq!(got.len(), 1);
    let event: serde_json::Value = serde_json::from_slice(&got[0]["payload"]).expect("json");
    assert_eq!(
        event["data"]["digest"],
        digest.as_str(),
        "structured on Redis"
    );
    let field = |name: &str| String::from_utf8(got[0][name].clone()).expect("utf-8");
    verify_signed(&redis_secret, &got[0]["payload"], field);

    wait_status(&mut deliveries, &to_rabbit.id, DeliveryStatus::Succeeded, 1).await;
    let got = rabbit.drain("pushes").await;
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(amqp_header(m, "cloudEvents:subject"), "acme/app:1.4");
    let data: serde_json::Value = serde_json::from_slice(&m.delivery.data).expect("json");
    assert_eq!(data["digest"], digest.as_str());
    verify_signed(&rabbit_secret, &m.delivery.data, |name| {
        amqp_header(m, name)
    });

    wait_status(&mut deliveries, &to_mqtt.id, DeliveryStatus::Succeeded, 1).await;
    let got = subscriber.wait(1).await;
    let m = &got[0];
    assert_eq!(property(m, "subject"), "acme/app:1.4");
    let data: serde_json::Value = serde_json::from_slice(&m.payload).expect("json");
    assert_eq!(data["digest"], digest.as_str());
    verify_signed(&mqtt_secret, &m.payload, |name| property(m, name));
    server.stop().await;
    db.finish().await;
}
