//! The live tail: a watcher sees attempts as they are recorded, on whichever replica made
//! them; a watcher that stops reading is ended with RESOURCE_EXHAUSTED, its buffer bounded.

use std::time::Duration;

use hookline::api::proto::{DeliveryStatus, WatchDeliveriesRequest, WatchDeliveriesResponse};
use hookline::store::{AttemptContext, AttemptRecord, AttemptView, TokenKind};
use tonic::{Code, Streaming};

use crate::api::{create, hook};
use crate::harness::db::{Backend, TestDb};
use crate::harness::envelopes::push;
use crate::harness::process::{Hookline, free_addr};
use crate::harness::receiver::{Receiver, Reply};
use crate::harness::server::{REGISTRY_TOKEN, TestServer, with_api};
use crate::store_test;

/// The next message of a tail, within `within`.
async fn next(
    stream: &mut Streaming<WatchDeliveriesResponse>,
    within: Duration,
) -> WatchDeliveriesResponse {
    tokio::time::timeout(within, stream.message())
        .await
        .expect("an attempt arrives in time")
        .expect("the stream is healthy")
        .expect("the stream goes on")
}

store_test!(
    a_watcher_sees_attempts_as_they_happen,
    async |db: &TestDb| {
        let server = TestServer::start(db, |c| {
            with_api(c);
            c.dispatch.retry_schedule = vec![Duration::from_millis(100)];
        })
        .await;
        let receiver = Receiver::start().await;
        receiver.script([Reply::status(500).body("not yet")]);
        let (_, token) = server.token(TokenKind::Namespace, "acme").await;
        let (_, other_token) = server.token(TokenKind::Namespace, "other").await;
        let mut webhooks = server.api_client(Some(&token)).await;
        let (webhook, _) = create(&mut webhooks, hook("t", &receiver.url())).await;
        let mut other_webhooks = server.api_client(Some(&other_token)).await;
        let other_receiver = Receiver::start().await;
        create(&mut other_webhooks, hook("o", &other_receiver.url())).await;

        let mut api = server.deliveries_client(Some(&token)).await;
        let mut tail = api
            .watch_deliveries(WatchDeliveriesRequest::default())
            .await
            .expect("watch")
            .into_inner();
        let mut one = api
            .watch_deliveries(WatchDeliveriesRequest {
                webhook_id: webhook.id.clone(),
            })
            .await
            .expect("watch one webhook")
            .into_inner();
        // Another tenant's attempt first: never shown to acme.
        server.notify_ok(&push("other/app", "1")).await;
        other_receiver.wait_for(1, Duration::from_secs(10)).await;
        server.notify_ok(&push("acme/app", "1")).await;

        let failed = next(&mut tail, Duration::from_secs(5)).await;
        assert_eq!(failed.webhook_id, webhook.id);
        assert_eq!(
            (failed.repository.as_str(), failed.tag.as_str()),
            ("acme/app", "1")
        );
        assert_eq!(failed.delivery_status, DeliveryStatus::Retrying as i32);
        let attempt = failed.attempt.expect("attempt");
        assert_eq!((attempt.status_code, attempt.number), (500, 1));
        assert_eq!(attempt.response_body, "not yet");
        let retried = next(&mut tail, Duration::from_secs(5)).await;
        assert_eq!(retried.delivery_id, failed.delivery_id);
        assert_eq!(retried.delivery_status, DeliveryStatus::Succeeded as i32);
        assert_eq!(retried.attempt.expect("attempt").number, 2);
        // The per-webhook tail saw the same two.
        assert_eq!(
            next(&mut one, Duration::from_secs(5)).await.delivery_id,
            failed.delivery_id
        );
        assert_eq!(
            next(&mut one, Duration::from_secs(5)).await.delivery_id,
            failed.delivery_id
        );
        server.stop().await;
    }
);

/// A recorded attempt as the recorder would publish it.
fn view(n: usize, webhook_id: &str) -> AttemptView {
    AttemptView {
        attempt: AttemptRecord {
            id: format!("att_{n}"),
            delivery_id: format!("dlv_{n}"),
            number: 1,
            started_at: hookline::store::now_ms(),
            duration_ms: 1,
            status_code: Some(204),
            response_headers: None,
            response_body: Some("x".repeat(1000)),
            error: None,
            outcome: "succeeded".into(),
            error_class: None,
            reason: None,
            next_attempt_at: None,
        },
        context: AttemptContext {
            webhook_id: webhook_id.into(),
            namespace: "acme".into(),
            event_id: format!("evt_{n}"),
            event_type: Some("image.pushed".into()),
            repository: Some("acme/app".into()),
            tag: Some("1".into()),
            concurrency_window: None,
        },
        delivery_status: "succeeded".into(),
    }
}

store_test!(
    a_watcher_that_stops_reading_is_cut_off,
    async |db: &TestDb| {
        let server = TestServer::start(db, with_api).await;
        let (_, token) = server.token(TokenKind::Namespace, "acme").await;
        let mut api = server.deliveries_client(Some(&token)).await;
        let mut tail = api
            .watch_deliveries(WatchDeliveriesRequest::default())
            .await
            .expect("watch")
            .into_inner();
        // The client reads nothing while far more attempts are recorded than it may hold.
        let flood = 20_000;
        for n in 0..flood {
            server.store.tail().publish(view(n, "wh_flood"));
            if n % 500 == 0 {
                tokio::task::yield_now().await;
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        // It is already cut off: its slot is free again, so the server holds nothing for it.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while server.store.tail().watchers() > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the slow watcher was never ended"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Reading now: what was buffered (bounded), then the reason it ended.
        let mut read = 0;
        let status = loop {
            match tokio::time::timeout(Duration::from_secs(5), tail.message()).await {
                Ok(Ok(Some(_))) => read += 1,
                Ok(Ok(None)) => panic!("the stream ended without saying why after {read}"),
                Ok(Err(status)) => break status,
                Err(_) => panic!("the stream hung after {read} messages"),
            }
        };
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        assert!(
            status.message().contains("read too slowly"),
            "{}",
            status.message()
        );
        assert!(read < flood / 2, "buffered {read} of {flood}: not bounded");
        server.stop().await;
    }
);

/// PostgreSQL, two `hookline serve` processes: a tail on the api process sees the attempts
/// the dispatcher process made (announced by NOTIFY, read back by seq).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tail_on_one_replica_sees_attempts_made_by_another() {
    let db = TestDb::new(Backend::Postgres).await;
    let receiver = Receiver::start().await;
    receiver.script([Reply::status(502)]);
    let (ingest, api) = (free_addr(), free_addr());
    let (ingest_text, api_text) = (ingest.to_string(), api.to_string());
    let front = Hookline::spawn(&[
        "serve",
        "--roles",
        "api,ingest",
        "--db",
        &db.url,
        "--ingest-addr",
        &ingest_text,
        "--api-addr",
        &api_text,
        "--registry-token",
        REGISTRY_TOKEN,
    ]);
    let back = Hookline::spawn(&[
        "serve",
        "--roles",
        "dispatcher",
        "--db",
        &db.url,
        "--retry-schedule",
        "100ms",
    ]);
    front.wait_healthy(ingest).await;
    let store = db.store().await;
    let token = hookline::secret::generate_token();
    store
        .insert_token(&hookline::store::NewToken {
            id: hookline::ids::new_id("tok"),
            kind: TokenKind::Namespace,
            subject: "acme".into(),
            hash: hookline::secret::hash_token(token.expose()),
            created_at: hookline::store::now_ms(),
            registry: None,
        })
        .await
        .expect("token");
    let url = format!("http://{api}");
    let mut webhooks = crate::harness::api::client(&url, Some(token.expose())).await;
    let (webhook, _) = create(&mut webhooks, hook("r", &receiver.url())).await;
    let mut api = crate::harness::api::deliveries(&url, Some(token.expose())).await;
    let mut tail = api
        .watch_deliveries(WatchDeliveriesRequest::default())
        .await
        .expect("watch")
        .into_inner();
    let pushed = reqwest::Client::new()
        .post(format!("http://{ingest}/v1/notify"))
        .bearer_auth(REGISTRY_TOKEN)
        .header("content-type", "application/json")
        .body(push("acme/app", "1"))
        .send()
        .await
        .expect("notify");
    assert_eq!(pushed.status().as_u16(), 200);
    let failed = next(&mut tail, Duration::from_secs(10)).await;
    assert_eq!(failed.webhook_id, webhook.id);
    assert_eq!(failed.delivery_status, DeliveryStatus::Retrying as i32);
    assert_eq!(failed.attempt.expect("attempt").status_code, 502);
    let done = next(&mut tail, Duration::from_secs(10)).await;
    assert_eq!(done.delivery_id, failed.delivery_id);
    assert_eq!(done.delivery_status, DeliveryStatus::Succeeded as i32);
    assert!(
        back.log().contains("dispatcher started") && !front.log().contains("dispatcher started"),
        "the attempts were made by the other process"
    );
    drop(tail);
    drop((front, back));
    store.close().await;
    db.finish().await;
}
