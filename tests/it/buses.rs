//! Message buses as destinations, against real brokers of the test's own (`redis-server`,
//! `nats-server -js`): a push, and a real push through a real registry, reach a Redis
//! stream and a JetStream stream as messages a consumer reads with the broker's own
//! client (redis-rs, async-nats) and verifies with the `standardwebhooks` crate, the
//! delivery id their dedupe key; a broker killed and started again in the middle of a load
//! loses nothing acknowledged (and JetStream stores each event once); refused credentials
//! and a subject no stream captures are final; the URL is checked where the owner can fix
//! it, its password shown redacted, and an internal broker refused without an allow-list.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use hookline::api::proto::{self, CreateWebhookRequest, DeliveryStatus, GetDeliveryRequest};
use hookline::store::TokenKind;
use redis::AsyncCommands;
use redis::streams::StreamRangeReply;
use tonic::Code;

use crate::api::create;
use crate::deliveries::wait_status;
use crate::harness::api::{Deliveries, expect_code, violated_fields};
use crate::harness::broker::Broker;
use crate::harness::envelopes::push;
use crate::harness::nats_server::NatsServer;
use crate::harness::redis_server::RedisServer;
use crate::harness::server::{TestServer, with_api};
use crate::store_test;

/// A delivery's attempts, from the log.
async fn attempts(deliveries: &mut Deliveries, id: &str) -> Vec<proto::Attempt> {
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
fn verify_signed(secret: &str, payload: &[u8], header: impl Fn(&str) -> String) {
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
    c.dispatch.retry_schedule = vec![Duration::from_millis(200); 40];
    // A broker down for a moment must not open the circuit's long cool-down here.
    c.dispatch.circuit_threshold = 1000;
}

/// A webhook named `bus` to `url`, everything else default.
fn hook(url: &str) -> proto::Webhook {
    crate::api::hook("bus", url)
}

/// Every entry of `stream`, as (field → value) maps in order.
async fn entries(
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

        for (url, says) in [
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
            (format!("amqp://{}/vhost", broker.addr), "scheme must be"),
            (
                format!("nats://{}/registry.*", broker.addr),
                "without wildcards",
            ),
        ] {
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
async fn an_internal_broker_is_refused_without_an_allow_list() {
    let db = crate::harness::db::TestDb::new(crate::harness::db::Backend::Sqlite).await;
    let server = TestServer::start(&db, |c| {
        with_api(c);
        c.ssrf = hookline::ssrf::Guard::new(Vec::new());
    })
    .await;
    let (_, token) = server.token(TokenKind::Namespace, "acme").await;
    let mut api = server.api_client(Some(&token)).await;
    let started = Instant::now();
    let status = expect_code(
        api.create_webhook(CreateWebhookRequest {
            webhook: Some(hook("redis://127.0.0.1:6379/0?stream=s")),
            secret: String::new(),
        })
        .await,
        Code::InvalidArgument,
    );
    assert!(status.message().contains("refused"), "{}", status.message());
    assert!(started.elapsed() < Duration::from_secs(5));
    server.stop().await;
    db.finish().await;
}

/// Every message `stream` holds, in order.
async fn stream_messages(
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

fn nats_header(m: &async_nats::jetstream::message::StreamMessage, name: &str) -> String {
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
async fn a_real_push_reaches_jetstream_and_redis_consumers() {
    let db = crate::harness::db::TestDb::new(crate::harness::db::Backend::Sqlite).await;
    let nats = NatsServer::start(None).await;
    let mut stream = nats.stream("PUSHES", &["registry.pushes"]).await;
    let redis = RedisServer::start(None).await;
    let server = TestServer::start(&db, fast).await;
    let (_, token) = server.token(TokenKind::Namespace, "acme").await;
    let mut api = server.api_client(Some(&token)).await;
    let mut deliveries = server.deliveries_client(Some(&token)).await;
    let (to_nats, nats_secret) = create(&mut api, hook(&nats.url("registry.pushes"))).await;
    let (to_redis, redis_secret) = create(&mut api, hook(&redis.url("pushes"))).await;
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
    server.stop().await;
    db.finish().await;
}
