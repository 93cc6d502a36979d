//! The delivery log's storage contract, on both backends: listing with filters and keyset
//! pages, redelivery that never duplicates an attempt in flight, replay once per request
//! id and bounded per call, health that only moves forward, and pruning that keeps what
//! is pending.

use hookline::event::Event;
use hookline::ids::new_id;
use hookline::store::{
    AttemptContext, CircuitView, DeliveryQuery, EventQuery, LogFilter, NewDelivery, NextState,
    PruneCursor, Redelivery, ReplayRequest, StatusFilter, Store,
};

use super::{T0, claim, event, finished, webhook};
use crate::store_test;

/// Stores `n` events of `repository` received at T0 + i, each with one delivery to
/// `webhook_id`, fanned out. Returns (event ids, delivery ids) in order.
async fn seed(
    store: &Store,
    webhook_id: &str,
    repository: &str,
    n: usize,
) -> (Vec<String>, Vec<String>) {
    let mut events = Vec::new();
    for i in 0..n {
        let mut e = event("main", &new_id("reg"), repository, Some(&i.to_string()));
        e.received_at = T0 + i as i64;
        events.push(e);
    }
    store.insert_events(&events).await.expect("insert");
    let webhook_id = webhook_id.to_owned();
    let namespace = repository.split('/').next().unwrap_or_default().to_owned();
    let plan = move |e: &Event| {
        vec![NewDelivery {
            id: new_id("dlv"),
            event_id: e.id.clone(),
            webhook_id: webhook_id.clone(),
            namespace: namespace.clone(),
            ordering_key: None,
        }]
    };
    let revision = store.webhooks_revision().await.expect("revision");
    let report = store
        .fan_out(1000, T0, revision, &plan)
        .await
        .expect("fan out");
    assert!(!report.stale);
    let mut deliveries = Vec::new();
    for e in &events {
        let d = store.deliveries_for_event(&e.id).await.expect("deliveries");
        deliveries.push(d[0].id.clone());
    }
    (events.into_iter().map(|e| e.id).collect(), deliveries)
}

/// Claims every due delivery and finishes each with `status` (200: succeeded, else failed).
async fn finish_all(store: &Store, now: i64, status: i64) {
    let claimed = store.claim_due(&claim(now, 1000)).await.expect("claim");
    let next = if status == 200 {
        NextState::Succeeded
    } else {
        NextState::Failed
    };
    let results: Vec<_> = claimed.iter().map(|c| finished(c, status, next)).collect();
    store.finish(&results, now).await.expect("finish");
}

store_test!(
    deliveries_list_by_filter_newest_first_in_stable_pages,
    async |db: &TestDb| {
        let store = db.store().await;
        let (events, deliveries) = seed(&store, "wh_1", "acme/app", 5).await;
        seed(&store, "wh_2", "other/app", 2).await;
        finish_all(&store, T0 + 10, 500).await;
        let query = |limit, before_seq| DeliveryQuery {
            within: Some("acme".into()),
            limit,
            before_seq,
            ..DeliveryQuery::default()
        };
        let first = store
            .list_deliveries(&query(2, None))
            .await
            .expect("page 1");
        let ids: Vec<&str> = first.iter().map(|d| d.delivery.id.as_str()).collect();
        assert_eq!(ids, [deliveries[4].as_str(), deliveries[3].as_str()]);
        assert_eq!(first[0].repository.as_deref(), Some("acme/app"));
        // A new delivery written between pages does not shift the next page.
        seed(&store, "wh_1", "acme/app", 1).await;
        let second = store
            .list_deliveries(&query(2, Some(first[1].delivery.seq)))
            .await
            .expect("page 2");
        let ids: Vec<&str> = second.iter().map(|d| d.delivery.id.as_str()).collect();
        assert_eq!(ids, [deliveries[2].as_str(), deliveries[1].as_str()]);
        // Filters: status, webhook, repository prefix, time.
        let failed = store
            .list_deliveries(&DeliveryQuery {
                statuses: vec![StatusFilter::Failed],
                limit: 100,
                ..DeliveryQuery::default()
            })
            .await
            .expect("failed");
        assert_eq!(failed.len(), 7);
        let pending = store
            .list_deliveries(&DeliveryQuery {
                statuses: vec![StatusFilter::Pending],
                filter: LogFilter {
                    repository_prefix: Some("acme/".into()),
                    ..LogFilter::default()
                },
                limit: 100,
                ..DeliveryQuery::default()
            })
            .await
            .expect("pending");
        assert_eq!(pending.len(), 1, "only the one seeded after finishing");
        let events_page = store
            .list_events(&EventQuery {
                within: Some("acme".into()),
                filter: LogFilter {
                    since: Some(T0 + 1),
                    until: Some(T0 + 3),
                    ..LogFilter::default()
                },
                limit: 100,
                ..EventQuery::default()
            })
            .await
            .expect("events");
        let ids: Vec<&str> = events_page.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, [events[2].as_str(), events[1].as_str()]);
        let none = store
            .list_events(&EventQuery {
                within: Some("acm".into()),
                limit: 100,
                ..EventQuery::default()
            })
            .await
            .expect("events");
        assert!(none.is_empty(), "`acm` does not hold `acme/app`");
    }
);

store_test!(
    redelivery_requeues_once_and_never_while_in_flight,
    async |db: &TestDb| {
        let store = db.store().await;
        let (_, deliveries) = seed(&store, "wh_1", "acme/app", 2).await;
        // The first is leased (in flight), the second finished.
        let claimed = store.claim_due(&claim(T0, 1)).await.expect("claim");
        assert_eq!(claimed[0].lease.delivery_id, deliveries[0]);
        assert_eq!(
            store
                .redeliver(&deliveries[0], T0 + 1)
                .await
                .expect("redeliver"),
            Redelivery::InFlight
        );
        finish_all(&store, T0 + 2, 500).await;
        let after = store
            .get_delivery(&deliveries[1])
            .await
            .expect("get")
            .expect("some");
        assert_eq!(after.status, "failed");
        assert_eq!(
            store
                .redeliver(&deliveries[1], T0 + 3)
                .await
                .expect("redeliver"),
            Redelivery::Queued
        );
        let queued = store
            .get_delivery(&deliveries[1])
            .await
            .expect("get")
            .expect("some");
        assert_eq!(
            (queued.status.as_str(), queued.next_attempt_at),
            ("pending", T0 + 3)
        );
        assert_eq!(queued.retry_base, queued.attempts, "a fresh retry schedule");
        assert_eq!(queued.display_status(), "pending");
        // Redelivering a queued one again changes nothing but its due time.
        assert_eq!(
            store
                .redeliver(&deliveries[1], T0 + 4)
                .await
                .expect("again"),
            Redelivery::Expedited
        );
        assert_eq!(
            store.redeliver("dlv_missing", T0).await.expect("missing"),
            Redelivery::NotFound
        );
    }
);

store_test!(
    replay_is_once_per_request_and_bounded_per_call,
    async |db: &TestDb| {
        let store = db.store().await;
        let (wh, secret) = webhook("acme", "http://127.0.0.1:9/");
        store.insert_webhook(&wh, &secret).await.expect("webhook");
        let (_, deliveries) = seed(&store, &wh.id, "acme/app", 5).await;
        finish_all(&store, T0 + 10, 500).await;
        let plan = |_: &Event| None;
        let request = |id: &str, after| ReplayRequest {
            webhook_id: wh.id.clone(),
            namespace: "acme".into(),
            webhook_created_at: T0,
            request_id: id.into(),
            since: T0,
            until: T0 + 100,
            failed_only: true,
            after,
            limit: 3,
            now: T0 + 20,
        };
        let first = store
            .replay(&request("a", None), &plan)
            .await
            .expect("replay");
        assert_eq!((first.queued, first.repeated), (3, false));
        let next = first.next.expect("more to come");
        let again = store
            .replay(&request("a", None), &plan)
            .await
            .expect("again");
        assert_eq!(
            (again.queued, again.repeated, again.next),
            (3, true, Some(next))
        );
        let rest = store
            .replay(&request("b", Some(next)), &plan)
            .await
            .expect("rest");
        assert_eq!((rest.queued, rest.next), (2, None));
        for id in &deliveries {
            let d = store.get_delivery(id).await.expect("get").expect("some");
            assert_eq!(d.status, "pending", "{id} queued again");
        }
        // Nothing failed any more: a failed-only replay finds nothing.
        let none = store
            .replay(&request("c", None), &plan)
            .await
            .expect("none");
        assert_eq!(
            none.queued, 3,
            "waiting ones are made due now, not duplicated"
        );
        let claimed = store.claim_due(&claim(T0 + 30, 100)).await.expect("claim");
        assert_eq!(claimed.len(), 5, "each delivery once");
    }
);

store_test!(
    replay_gives_missed_events_a_delivery,
    async |db: &TestDb| {
        let store = db.store().await;
        let (wh, secret) = webhook("acme", "http://127.0.0.1:9/");
        store.insert_webhook(&wh, &secret).await.expect("webhook");
        // Two events fanned out while the webhook had no delivery for them (it was disabled).
        seed(&store, "wh_other", "acme/app", 2).await;
        let webhook_id = wh.id.clone();
        let plan = move |e: &Event| {
            Some(NewDelivery {
                id: new_id("dlv"),
                event_id: e.id.clone(),
                webhook_id: webhook_id.clone(),
                namespace: "acme".into(),
                ordering_key: None,
            })
        };
        let replay = ReplayRequest {
            webhook_id: wh.id.clone(),
            namespace: "acme".into(),
            webhook_created_at: T0 + 1,
            request_id: "r".into(),
            since: T0,
            until: T0 + 100,
            failed_only: true,
            after: None,
            limit: 100,
            now: T0 + 20,
        };
        let done = store.replay(&replay, &plan).await.expect("replay");
        assert_eq!(
            done.queued, 1,
            "only the event received after the webhook was created"
        );
        let mine = store
            .list_deliveries(&DeliveryQuery {
                webhook_id: Some(wh.id.clone()),
                limit: 10,
                ..DeliveryQuery::default()
            })
            .await
            .expect("list");
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0].tag.as_deref(), Some("1"));
    }
);

store_test!(
    health_keeps_the_latest_attempt_and_last_success,
    async |db: &TestDb| {
        let store = db.store().await;
        let (_, deliveries) = seed(&store, "wh_1", "acme/app", 3).await;
        let claimed = store.claim_due(&claim(T0, 10)).await.expect("claim");
        assert_eq!(claimed.len(), 3);
        let mut ok = finished(&claimed[0], 200, NextState::Succeeded);
        ok.attempt.started_at = T0 + 5;
        ok.attempt.outcome = "succeeded".into();
        let mut late_failure = finished(&claimed[1], 503, NextState::RetryAt(T0 + 100));
        late_failure.attempt.started_at = T0 + 9;
        late_failure.circuit = CircuitView::Open { until: T0 + 30_000 };
        store
            .finish(&[ok, late_failure], T0 + 10)
            .await
            .expect("finish");
        // An older result recorded later (another replica) does not win.
        let mut stale = finished(&claimed[2], 500, NextState::Failed);
        stale.attempt.started_at = T0 + 1;
        store.finish(&[stale], T0 + 11).await.expect("finish stale");
        let health = store
            .webhook_health(&["wh_1".to_owned(), "wh_none".to_owned()])
            .await
            .expect("health");
        let h = health
            .iter()
            .find(|h| h.webhook_id == "wh_1")
            .expect("wh_1");
        assert_eq!(h.last_attempt_at, Some(T0 + 9));
        assert_eq!(h.last_status_code, Some(503));
        assert_eq!(h.last_success_at, Some(T0 + 5));
        assert_eq!(h.circuit.as_deref(), Some("open"));
        assert_eq!(h.circuit_until, Some(T0 + 30_000));
        assert_eq!((h.pending, h.failed), (1, 1));
        let none = health
            .iter()
            .find(|h| h.webhook_id == "wh_none")
            .expect("wh_none");
        assert_eq!((none.last_attempt_at, none.pending), (None, 0));
        let _ = deliveries;
    }
);

store_test!(
    stats_add_up_per_webhook_and_minute_across_batches,
    async |db: &TestDb| {
        let store = db.store().await;
        seed(&store, "wh_1", "acme/app", 5).await;
        let claimed = store.claim_due(&claim(T0, 10)).await.expect("claim");
        assert_eq!(claimed.len(), 5);
        // (outcome, started at, duration): two minutes; every latency bucket edge matters.
        let plan = [
            ("succeeded", T0, 10),
            ("succeeded", T0 + 1, 11),
            ("retry", T0 + 2, 30_000),
            ("failed", T0 + 60_000, 250),
            ("succeeded", T0 + 60_001, 4),
        ];
        let results: Vec<_> = claimed
            .iter()
            .zip(plan)
            .map(|(c, (outcome, started_at, duration_ms))| {
                let next = match outcome {
                    "succeeded" => NextState::Succeeded,
                    "retry" => NextState::RetryAt(T0 + 1_000_000),
                    _ => NextState::Failed,
                };
                let mut f = finished(c, 200, next);
                f.attempt.outcome = outcome.into();
                f.attempt.started_at = started_at;
                f.attempt.duration_ms = duration_ms;
                f
            })
            .collect();
        // Two batches writing the same minute add up.
        store.finish(&results[..2], T0 + 2).await.expect("finish");
        store
            .finish(&results[2..], T0 + 70_000)
            .await
            .expect("finish");
        let minute = T0 - T0.rem_euclid(60_000);
        let stats = store.webhook_stats("wh_1", minute).await.expect("stats");
        assert_eq!(stats.len(), 2, "{stats:?}");
        assert_eq!(stats[0].minute, minute);
        assert_eq!(
            (stats[0].succeeded, stats[0].retried, stats[0].failed),
            (2, 1, 0)
        );
        // 10 ms is in the first bucket (<= 10), 11 ms in the second, 30 s beyond the last.
        assert_eq!(stats[0].latency, vec![1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(stats[1].minute, minute + 60_000);
        assert_eq!(
            (stats[1].succeeded, stats[1].retried, stats[1].failed),
            (1, 0, 1)
        );
        assert_eq!(stats[1].latency, vec![1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        // A later window sees the later minute only.
        let later = store
            .webhook_stats("wh_1", minute + 60_000)
            .await
            .expect("stats");
        assert_eq!(later.len(), 1);
        let totals = store
            .webhook_totals(&["wh_1".to_owned(), "wh_none".to_owned()], minute)
            .await
            .expect("totals");
        assert_eq!(totals.len(), 1, "webhooks without attempts are absent");
        assert_eq!(
            (
                totals[0].webhook_id.as_str(),
                totals[0].succeeded,
                totals[0].retried,
                totals[0].failed
            ),
            ("wh_1", 3, 1, 1)
        );
    }
);

store_test!(
    pruning_keeps_pending_deliveries_and_their_events,
    async |db: &TestDb| {
        let store = db.store().await;
        let (events, deliveries) = seed(&store, "wh_1", "acme/app", 4).await;
        // Three finish (two succeed, one fails); the last stays pending with a retry.
        let claimed = store.claim_due(&claim(T0, 10)).await.expect("claim");
        let results: Vec<_> = claimed
            .iter()
            .map(|c| {
                let next = if c.lease.delivery_id == deliveries[3] {
                    NextState::RetryAt(T0 + 1_000_000)
                } else if c.lease.delivery_id == deliveries[2] {
                    NextState::Failed
                } else {
                    NextState::Succeeded
                };
                let mut f = finished(c, 200, next);
                f.context = AttemptContext {
                    webhook_id: "wh_1".into(),
                    ..AttemptContext::default()
                };
                f
            })
            .collect();
        store.finish(&results, T0 + 1).await.expect("finish");
        let mut cursor = PruneCursor {
            received_at: i64::MIN,
            seq: i64::MIN,
        };
        let mut pruned = (0, 0, 0);
        loop {
            let batch = store.prune(T0 + 100, cursor, 2).await.expect("prune");
            pruned.0 += batch.events;
            pruned.1 += batch.deliveries;
            pruned.2 += batch.attempts;
            cursor = batch.cursor;
            if batch.scanned < 2 {
                break;
            }
        }
        assert_eq!(pruned, (3, 3, 3));
        for id in &events[..3] {
            assert!(
                store.get_event(id).await.expect("get").is_none(),
                "{id} pruned"
            );
        }
        assert!(store.get_event(&events[3]).await.expect("get").is_some());
        let kept = store
            .get_delivery(&deliveries[3])
            .await
            .expect("get")
            .expect("kept");
        assert_eq!(kept.status, "pending");
        assert_eq!(
            store
                .attempts(&deliveries[3])
                .await
                .expect("attempts")
                .len(),
            1
        );
        // Newer than the cutoff: nothing goes.
        let (young, _) = seed(&store, "wh_1", "acme/new", 1).await;
        let batch = store
            .prune(
                T0 - 1,
                PruneCursor {
                    received_at: i64::MIN,
                    seq: i64::MIN,
                },
                10,
            )
            .await
            .expect("prune");
        assert_eq!((batch.scanned, batch.events), (0, 0));
        assert!(store.get_event(&young[0]).await.expect("get").is_some());
    }
);
