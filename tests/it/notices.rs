//! Owner notices (`dispatch/notices.rs`): a webhook's owner hears when it starts failing,
//! its circuit opens, it is disabled, it recovers, and when deliveries give up; signed,
//! bounded, never about another namespace, and never about a failing notice destination.

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue};
use hookline::event::EventType;
use hookline::store::{Store, Webhook};

use crate::harness::envelopes::push;
use crate::harness::receiver::{Received, Receiver, Reply};
use crate::harness::server::TestServer;
use crate::store_contract::webhook;
use crate::store_test;

/// The signing secret `store_contract::webhook` gives every webhook.
const SECRET: &str = "whsec_dGVzdHNlY3JldHRlc3RzZWNyZXR0ZXN0c2VjcmV0";

/// Registers a webhook in `namespace` to `url`, adjusted by `change`.
async fn register(
    store: &Store,
    namespace: &str,
    url: &str,
    change: impl FnOnce(&mut Webhook),
) -> Webhook {
    let (mut wh, secret) = webhook(namespace, url);
    change(&mut wh);
    store.insert_webhook(&wh, &secret).await.expect("webhook");
    wh
}

/// A notice destination: every notice type, hookline's format.
fn notices(wh: &mut Webhook) {
    wh.name = "owner notices".into();
    wh.event_types = EventType::NOTICES
        .iter()
        .map(|k| k.as_str().to_owned())
        .collect();
}

/// Quick retries and a circuit that opens after two failures with a short cool-down.
fn quick(config: &mut hookline::config::Config) {
    config.dispatch.poll_interval = Duration::from_millis(50);
    config.dispatch.retry_schedule = vec![Duration::from_millis(100); 20];
    config.dispatch.circuit_threshold = 2;
    config.dispatch.circuit_cooldown = Duration::from_millis(300);
}

/// The notice bodies a receiver got, each verified with the `standardwebhooks` crate.
fn notices_in(received: &[Received]) -> Vec<serde_json::Value> {
    received
        .iter()
        .map(|r| {
            let mut headers = axum::http::HeaderMap::new();
            for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
                headers.insert(
                    HeaderName::from_static(name),
                    HeaderValue::from_str(&r.header(name)).expect("header"),
                );
            }
            standardwebhooks::Webhook::new(SECRET)
                .expect("secret")
                .verify(&r.body, &headers)
                .expect("a notice is signed like any delivery");
            r.json()
        })
        .collect()
}

fn types(notices: &[serde_json::Value]) -> Vec<String> {
    notices
        .iter()
        .map(|n| n["type"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Waits (bounded) until `receiver` got notices of every type in `want`, and returns all.
async fn wait_for_types(receiver: &Receiver, want: &[&str]) -> Vec<serde_json::Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let got = notices_in(&receiver.received());
        let kinds = types(&got);
        if want.iter().all(|w| kinds.iter().any(|k| k == w)) {
            return got;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "wanted {want:?}, got {kinds:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

store_test!(
    a_failing_webhook_tells_its_owner_once_per_change_and_no_one_else,
    async |db: &TestDb| {
        let server = TestServer::start(db, quick).await;
        let (target, owner, stranger) = (
            Receiver::start().await,
            Receiver::start().await,
            Receiver::start().await,
        );
        // Three failures (the third is the circuit's probe), then it delivers again.
        target.script([Reply::status(500), Reply::status(500), Reply::status(500)]);
        let deploy = register(&server.store, "acme", &target.url(), |w| {
            w.name = "deploy".into()
        })
        .await;
        register(&server.store, "acme", &owner.url(), notices).await;
        register(&server.store, "globex", &stranger.url(), notices).await;

        server.notify_ok(&push("acme/app", "1.0")).await;
        target.wait_for(4, Duration::from_secs(20)).await;
        wait_for_types(
            &owner,
            &[
                "webhook.failing",
                "webhook.circuit_opened",
                "webhook.recovered",
            ],
        )
        .await;
        // Give a stray duplicate the time to arrive before counting.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let got = notices_in(&owner.received())
            .into_iter()
            .chain([])
            .collect::<Vec<_>>();
        let mut kinds = types(&got);
        kinds.sort();
        assert_eq!(
            kinds,
            [
                "webhook.circuit_opened",
                "webhook.failing",
                "webhook.recovered"
            ],
            "once each: {got:#?}"
        );
        for notice in &got {
            assert_eq!(notice["repository"], "acme", "its namespace");
            assert_eq!(notice["notice"]["webhook_id"], deploy.id.as_str());
            assert_eq!(notice["notice"]["webhook_name"], "deploy");
            assert!(notice["image"].is_null(), "a notice names no image");
        }
        let failing = got
            .iter()
            .find(|n| n["type"] == "webhook.failing")
            .expect("failing");
        assert!(
            failing["notice"]["reason"]
                .as_str()
                .is_some_and(|r| r.contains("HTTP 500")),
            "with the last error: {failing}"
        );
        assert!(
            stranger.received().is_empty(),
            "another namespace hears nothing"
        );
        server.stop().await;
    }
);

store_test!(
    a_gone_receiver_gives_webhook_disabled_with_the_reason,
    async |db: &TestDb| {
        let server = TestServer::start(db, quick).await;
        let (target, owner, operator) = (
            Receiver::start().await,
            Receiver::start().await,
            Receiver::start().await,
        );
        target.set_default(Reply::status(410));
        register(&server.store, "acme/team", &target.url(), |_| {}).await;
        // The owner's destination is a namespace above: it hears about those below.
        register(&server.store, "acme", &owner.url(), notices).await;
        // The operator's, at the root, hears about every namespace.
        register(&server.store, "", &operator.url(), notices).await;
        server.notify_ok(&push("acme/team/app", "1.0")).await;
        for receiver in [&owner, &operator] {
            let got = wait_for_types(receiver, &["webhook.disabled"]).await;
            let disabled = got
                .iter()
                .find(|n| n["type"] == "webhook.disabled")
                .expect("disabled");
            assert_eq!(disabled["repository"], "acme/team");
            assert!(
                disabled["notice"]["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("410")),
                "{disabled}"
            );
        }
        server.stop().await;
    }
);

store_test!(
    many_deliveries_giving_up_at_once_give_a_bounded_summary,
    async |db: &TestDb| {
        let server = TestServer::start(db, |c| {
            quick(c);
            c.dispatch.circuit_threshold = u32::MAX;
        })
        .await;
        let (target, owner) = (Receiver::start().await, Receiver::start().await);
        // A final answer: each delivery gives up at its first attempt.
        target.set_default(Reply::status(400));
        register(&server.store, "acme", &target.url(), |_| {}).await;
        register(&server.store, "acme", &owner.url(), notices).await;
        let total = 500;
        for i in 0..total {
            server.notify_ok(&push("acme/app", &format!("2.{i}"))).await;
        }
        target.wait_for(total, Duration::from_secs(60)).await;
        // The summaries leave a few seconds after the last failure.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let summaries = loop {
            let got = notices_in(&owner.received());
            let summaries: Vec<_> = got
                .into_iter()
                .filter(|n| n["type"] == "delivery.failed")
                .collect();
            let counted: u64 = summaries
                .iter()
                .map(|n| n["notice"]["deliveries"].as_u64().unwrap_or(0))
                .sum();
            if counted == total as u64 {
                break summaries;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{counted} of {total} counted"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(
            summaries.len() <= 10,
            "{} delivery.failed notices for {total} failures",
            summaries.len()
        );
        for summary in &summaries {
            let ids = summary["notice"]["delivery_ids"].as_array().expect("ids");
            assert!(!ids.is_empty() && ids.len() <= 20, "{summary}");
        }
        assert!(
            owner.received().len() <= hookline::dispatch::NOTICES_PER_NAMESPACE_PER_HOUR as usize,
            "bounded per namespace"
        );
        server.stop().await;
    }
);

store_test!(
    a_notice_destination_that_is_down_raises_no_notice_about_itself,
    async |db: &TestDb| {
        let server = TestServer::start(db, quick).await;
        let (target, owner) = (Receiver::start().await, Receiver::start().await);
        target.set_default(Reply::status(500));
        owner.set_default(Reply::status(500));
        register(&server.store, "acme", &target.url(), |_| {}).await;
        let destination = register(&server.store, "acme", &owner.url(), notices).await;
        server.notify_ok(&push("acme/app", "3.0")).await;
        // The notices about the target reach the destination, which fails them in turn.
        owner.wait_for(3, Duration::from_secs(20)).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let about_destination = server
            .store
            .recent_events(1000)
            .await
            .expect("events")
            .into_iter()
            .filter(|e| {
                e.notice
                    .as_ref()
                    .is_some_and(|n| n.webhook_id == destination.id)
            })
            .count();
        assert_eq!(
            about_destination, 0,
            "no notice about the notice destination"
        );
        server.stop().await;
    }
);
