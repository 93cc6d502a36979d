//! The delivery log through the real server over a socket, on both backends: a receiver
//! that fails and recovers is visible attempt by attempt, and everything it missed comes
//! back by redelivery and replay, exactly once per request. Also final answers, the live
//! tail, tenancy of every DeliveryService RPC, and retention.

mod retention;
mod tail;
mod tenancy;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hookline::api::proto::{
    self, DeliveryStatus, GetDeliveryRequest, GetWebhookRequest, GetWebhookStatsRequest,
    ListDeliveriesRequest, ListEventsRequest, RedeliverDeliveryRequest, ReplayWebhookRequest,
    redeliver_delivery_response,
};
use hookline::store::TokenKind;

use crate::api::{create, hook};
use crate::harness::api::Deliveries;
use crate::harness::envelopes::push;
use crate::harness::receiver::{Receiver, Reply};
use crate::harness::server::{TestServer, with_api};
use crate::store_test;

/// Deliveries of a webhook in these states (all pages).
pub async fn deliveries_in(
    api: &mut Deliveries,
    webhook_id: &str,
    statuses: &[DeliveryStatus],
) -> Vec<proto::Delivery> {
    let mut all = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = api
            .list_deliveries(ListDeliveriesRequest {
                webhook_id: webhook_id.into(),
                statuses: statuses.iter().map(|s| *s as i32).collect(),
                page_size: 2,
                page_token,
                ..Default::default()
            })
            .await
            .expect("list deliveries")
            .into_inner();
        all.extend(page.deliveries);
        if page.next_page_token.is_empty() {
            return all;
        }
        page_token = page.next_page_token;
    }
}

/// Polls until `n` deliveries of the webhook are in `status` (within 20 s).
pub async fn wait_status(
    api: &mut Deliveries,
    webhook_id: &str,
    status: DeliveryStatus,
    n: usize,
) -> Vec<proto::Delivery> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = deliveries_in(api, webhook_id, &[status]).await;
        if found.len() == n {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "expected {n} deliveries {status:?}, found {}",
            found.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn since(ms: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    })
}

store_test!(
    a_failing_receiver_is_visible_then_redelivered_and_replayed,
    async |db: &TestDb| {
        let server = TestServer::start(db, |c| {
            with_api(c);
            // Two attempts: one retry, 100 ms later.
            c.dispatch.retry_schedule = vec![Duration::from_millis(100)];
            c.dispatch.circuit_threshold = 1000;
        })
        .await;
        let receiver = Receiver::start().await;
        receiver.set_default(Reply::status(500).body("{\"error\":\"database down\"}"));
        let (_, token) = server.token(TokenKind::Namespace, "acme").await;
        let mut webhooks = server.api_client(Some(&token)).await;
        let mut api = server.deliveries_client(Some(&token)).await;
        let (webhook, _) = create(&mut webhooks, hook("deploy", &receiver.url())).await;
        let started = hookline::store::now_ms() - 1;
        for tag in ["1", "2", "3"] {
            server.notify_ok(&push("acme/app", tag)).await;
        }

        // Every delivery fails twice, then is given up: the owner sees why.
        let failed = wait_status(&mut api, &webhook.id, DeliveryStatus::Failed, 3).await;
        assert_eq!(receiver.received().len(), 6, "two attempts each");
        let one = &failed[0];
        assert_eq!((one.attempts, one.last_status_code), (2, 500));
        assert_eq!(one.repository, "acme/app");
        let got = api
            .get_delivery(GetDeliveryRequest { id: one.id.clone() })
            .await
            .expect("get delivery")
            .into_inner();
        assert_eq!(got.attempts.len(), 2);
        let first = &got.attempts[0];
        assert_eq!((first.number, first.status_code), (1, 500));
        assert_eq!(first.response_body, "{\"error\":\"database down\"}");
        assert_eq!(first.error_class, "http");
        assert_eq!(first.outcome, "retry");
        assert!(first.reason.contains("retried"), "{}", first.reason);
        assert!(first.next_attempt_at.is_some(), "a retry was scheduled");
        assert!(first.response_headers.contains_key("content-length"));
        let last = &got.attempts[1];
        assert_eq!(last.outcome, "failed");
        assert!(last.reason.contains("no retry left"), "{}", last.reason);
        assert_eq!(
            got.event.expect("event").repository,
            "acme/app",
            "the event comes with the delivery"
        );

        // The webhook's health says so where people look.
        let shown = webhooks
            .get_webhook(GetWebhookRequest {
                id: webhook.id.clone(),
            })
            .await
            .expect("get webhook")
            .into_inner()
            .webhook
            .expect("webhook");
        let health = shown.health.expect("health");
        assert_eq!((health.failed, health.pending), (3, 0));
        assert_eq!(health.last_status_code, 500);
        assert_eq!(health.last_outcome, "failed");
        assert!(health.failing_since.is_some() && health.last_success_at.is_none());
        assert_eq!(
            (health.succeeded_24h, health.retried_24h, health.failed_24h),
            (0, 3, 3),
            "attempts of the last 24 h by outcome"
        );
        let stats = api
            .get_webhook_stats(GetWebhookStatsRequest {
                webhook_id: webhook.id.clone(),
                ..Default::default()
            })
            .await
            .expect("stats")
            .into_inner();
        assert_eq!(stats.buckets.len(), 60, "the last hour by the minute");
        let total = stats.total.expect("total");
        assert_eq!((total.succeeded, total.retried, total.failed), (0, 3, 3));
        assert!(
            total.p50_ms > 0.0 && total.p99_ms >= total.p50_ms,
            "{total:?}"
        );
        let per_bucket: i64 = stats.buckets.iter().map(|b| b.retried + b.failed).sum();
        assert_eq!(per_bucket, 6, "buckets add up to the total");
        let refused = crate::harness::api::expect_code(
            api.get_webhook_stats(GetWebhookStatsRequest {
                webhook_id: webhook.id.clone(),
                window: Some(prost_types::Duration {
                    seconds: 90,
                    nanos: 0,
                }),
                ..Default::default()
            })
            .await,
            tonic::Code::InvalidArgument,
        );
        assert!(
            refused.message().starts_with("window:"),
            "{}",
            refused.message()
        );

        // The receiver recovers. A redelivery sends the same webhook-id again.
        receiver.set_default(Reply::status(204));
        let redelivered = api
            .redeliver_delivery(RedeliverDeliveryRequest { id: one.id.clone() })
            .await
            .expect("redeliver")
            .into_inner();
        assert_eq!(
            redelivered.result,
            redeliver_delivery_response::Result::Queued as i32
        );
        let arrived = receiver.wait_for(7, Duration::from_secs(10)).await;
        assert_eq!(arrived[6].header("webhook-id"), one.id);
        wait_status(&mut api, &webhook.id, DeliveryStatus::Succeeded, 1).await;

        // Replay of the failed ones since the outage began: each missed event once.
        let replay = |request_id: &str, failed_only: bool| ReplayWebhookRequest {
            webhook_id: webhook.id.clone(),
            since: since(started),
            failed_only,
            request_id: request_id.into(),
            ..Default::default()
        };
        let first_replay = api
            .replay_webhook(replay("outage-1", true))
            .await
            .expect("replay")
            .into_inner();
        assert_eq!((first_replay.queued, first_replay.repeated), (2, false));
        assert!(first_replay.next_page_token.is_empty());
        wait_status(&mut api, &webhook.id, DeliveryStatus::Succeeded, 3).await;
        let received = receiver.received();
        assert_eq!(received.len(), 9);
        let mut per_id: HashMap<String, usize> = HashMap::new();
        for r in &received[6..] {
            *per_id.entry(r.header("webhook-id")).or_default() += 1;
        }
        assert!(per_id.values().all(|n| *n == 1), "once each: {per_id:?}");

        // The same request again (a client retrying the call) queues nothing.
        let again = api
            .replay_webhook(replay("outage-1", true))
            .await
            .expect("replay again")
            .into_inner();
        assert_eq!((again.queued, again.repeated), (2, true));
        let waiting = deliveries_in(
            &mut api,
            &webhook.id,
            &[DeliveryStatus::Pending, DeliveryStatus::Retrying],
        )
        .await;
        assert!(waiting.is_empty(), "a repeated request queued {waiting:?}");

        // A new request replays everything, succeeded included.
        let all = api
            .replay_webhook(replay("outage-2", false))
            .await
            .expect("replay all")
            .into_inner();
        assert_eq!(all.queued, 3);
        receiver.wait_for(12, Duration::from_secs(10)).await;
        wait_status(&mut api, &webhook.id, DeliveryStatus::Succeeded, 3).await;

        // The events are listed too, newest first.
        let events = api
            .list_events(ListEventsRequest {
                repository: "acme/*".into(),
                ..Default::default()
            })
            .await
            .expect("list events")
            .into_inner()
            .events;
        let tags: Vec<&str> = events.iter().map(|e| e.tag.as_str()).collect();
        assert_eq!(tags, ["3", "2", "1"]);
        let shown = webhooks
            .get_webhook(GetWebhookRequest {
                id: webhook.id.clone(),
            })
            .await
            .expect("get webhook")
            .into_inner()
            .webhook
            .expect("webhook");
        let health = shown.health.expect("health");
        assert_eq!((health.failed, health.pending), (0, 0));
        assert!(health.last_success_at.is_some() && health.failing_since.is_none());
        assert_eq!(health.circuit, "closed");
        server.stop().await;
    }
);

store_test!(
    final_answers_are_not_retried_and_say_why,
    async |db: &TestDb| {
        let server = TestServer::start(db, |c| {
            with_api(c);
            c.dispatch.retry_schedule = vec![Duration::from_millis(50); 5];
        })
        .await;
        let receiver = Receiver::start().await;
        receiver.script([Reply::status(422).body("tag cannot be empty")]);
        let (_, token) = server.token(TokenKind::Namespace, "acme").await;
        let mut webhooks = server.api_client(Some(&token)).await;
        let mut api = server.deliveries_client(Some(&token)).await;
        let (webhook, _) = create(&mut webhooks, hook("final", &receiver.url())).await;
        server.notify_ok(&push("acme/app", "1")).await;
        let failed = wait_status(&mut api, &webhook.id, DeliveryStatus::Failed, 1).await;
        assert_eq!(failed[0].attempts, 1, "a final answer is not retried");
        let got = api
            .get_delivery(GetDeliveryRequest {
                id: failed[0].id.clone(),
            })
            .await
            .expect("get")
            .into_inner();
        let attempt = &got.attempts[0];
        assert_eq!(attempt.status_code, 422);
        assert!(attempt.reason.contains("is final"), "{}", attempt.reason);
        assert!(attempt.next_attempt_at.is_none());

        // A 503 is retried, with the reason on the attempt.
        receiver.script([Reply::status(503)]);
        server.notify_ok(&push("acme/app", "2")).await;
        receiver.wait_for(3, Duration::from_secs(10)).await;
        let done = wait_status(&mut api, &webhook.id, DeliveryStatus::Succeeded, 1).await;
        let got = api
            .get_delivery(GetDeliveryRequest {
                id: done[0].id.clone(),
            })
            .await
            .expect("get")
            .into_inner();
        assert_eq!(got.attempts.len(), 2);
        assert!(got.attempts[0].reason.starts_with("HTTP 503 is retried"));
        assert_eq!(got.attempts[1].outcome, "succeeded");
        server.stop().await;
    }
);

store_test!(
    a_redelivery_held_by_an_open_circuit_says_until_when,
    async |db: &TestDb| {
        let server = TestServer::start(db, |c| {
            with_api(c);
            c.dispatch.retry_schedule = vec![Duration::from_secs(3600)];
            c.dispatch.circuit_threshold = 1;
            c.dispatch.circuit_cooldown = Duration::from_secs(3600);
        })
        .await;
        let receiver = Receiver::start().await;
        receiver.set_default(Reply::status(503));
        let (_, token) = server.token(TokenKind::Namespace, "acme").await;
        let mut webhooks = server.api_client(Some(&token)).await;
        let mut api = server.deliveries_client(Some(&token)).await;
        let (webhook, _) = create(&mut webhooks, hook("held", &receiver.url())).await;
        server.notify_ok(&push("acme/app", "1")).await;
        let waiting = wait_status(&mut api, &webhook.id, DeliveryStatus::Retrying, 1).await;
        let redelivered = api
            .redeliver_delivery(RedeliverDeliveryRequest {
                id: waiting[0].id.clone(),
            })
            .await
            .expect("redeliver")
            .into_inner();
        assert_eq!(
            redelivered.result,
            redeliver_delivery_response::Result::Expedited as i32
        );
        let held = redelivered.held_until.expect("held by the open circuit");
        let in_an_hour = hookline::store::now_ms() / 1000 + 3600;
        assert!((held.seconds - in_an_hour).abs() < 60, "{held:?}");
        server.stop().await;
    }
);
