//! Retention while ingest runs: finished events, deliveries and attempts older than the
//! retention disappear; a delivery still waiting for a retry (and its event) stays;
//! nothing in flight is disturbed.

use std::time::{Duration, Instant};

use hookline::api::proto::{self, DeliveryStatus};
use hookline::store::{DeliveryQuery, EventQuery, LogFilter, TokenKind};

use super::deliveries_in;
use crate::api::{create, hook};
use crate::harness::envelopes::push;
use crate::harness::receiver::{Receiver, Reply};
use crate::harness::server::{TestServer, with_api};
use crate::store_test;

async fn events_of(server: &TestServer, repository: &str) -> usize {
    server
        .store
        .list_events(&EventQuery {
            filter: LogFilter {
                repository_prefix: Some(repository.into()),
                ..LogFilter::default()
            },
            limit: 10_000,
            ..EventQuery::default()
        })
        .await
        .expect("list events")
        .len()
}

store_test!(
    old_finished_rows_are_pruned_pending_ones_stay,
    async |db: &TestDb| {
        let server = TestServer::start(db, |c| {
            with_api(c);
            c.retention = Duration::from_secs(3);
            // The failing webhook's retry is far away: its delivery stays pending (retrying).
            c.dispatch.retry_schedule = vec![Duration::from_secs(3600)];
        })
        .await;
        let healthy = Receiver::start().await;
        let failing = Receiver::start().await;
        failing.set_default(Reply::status(500));
        let (_, token) = server.token(TokenKind::Namespace, "acme").await;
        let mut webhooks = server.api_client(Some(&token)).await;
        let mut api = server.deliveries_client(Some(&token)).await;
        let ok_hook = proto::Webhook {
            repositories: vec!["acme/ok".into(), "acme/live".into()],
            ..hook("ok", &healthy.url())
        };
        let (ok_hook, _) = create(&mut webhooks, ok_hook).await;
        let bad_hook = proto::Webhook {
            repositories: vec!["acme/bad".into()],
            ..hook("bad", &failing.url())
        };
        let (bad_hook, _) = create(&mut webhooks, bad_hook).await;

        for n in 0..20 {
            server.notify_ok(&push("acme/ok", &n.to_string())).await;
        }
        server.notify_ok(&push("acme/bad", "1")).await;
        healthy.wait_for(20, Duration::from_secs(10)).await;
        failing.wait_for(1, Duration::from_secs(10)).await;
        assert_eq!(events_of(&server, "acme/ok").await, 20);

        // Ingest keeps running while the old rows go: a push every 20 ms to acme/live.
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut live = 0;
        while events_of(&server, "acme/ok").await > 0 {
            assert!(
                Instant::now() < deadline,
                "old finished events were never pruned"
            );
            server
                .notify_ok(&push("acme/live", &live.to_string()))
                .await;
            live += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Every live push was delivered, once: pruning disturbed nothing in flight.
        let received = healthy.wait_for(20 + live, Duration::from_secs(10)).await;
        let mut ids: Vec<String> = received.iter().map(|r| r.header("webhook-id")).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 20 + live, "each delivery once");

        // The failing webhook's delivery waits for its retry: it stays, with its event and attempt.
        assert_eq!(events_of(&server, "acme/bad").await, 1);
        let waiting = deliveries_in(&mut api, &bad_hook.id, &[DeliveryStatus::Retrying]).await;
        assert_eq!(waiting.len(), 1);
        let attempts = server
            .store
            .attempts(&waiting[0].id)
            .await
            .expect("attempts");
        assert_eq!(attempts.len(), 1);
        // None of the healthy webhook's old deliveries is left; the metric counted them.
        let old = server
            .store
            .list_deliveries(&DeliveryQuery {
                webhook_id: Some(ok_hook.id.clone()),
                filter: LogFilter {
                    repository_prefix: Some("acme/ok".into()),
                    ..LogFilter::default()
                },
                limit: 100,
                ..DeliveryQuery::default()
            })
            .await
            .expect("list");
        assert!(old.is_empty(), "{old:?}");
        let (_, metrics) = server.get("/metrics").await;
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("hookline_pruned_total{table=\"events\"}")),
            "{metrics}"
        );
        server.stop().await;
    }
);
