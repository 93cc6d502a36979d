//! The storage contract: every test runs on SQLite and on PostgreSQL (see `store_test!`).

use std::collections::HashSet;
use std::time::Duration;

use hookline::event::{Event, EventType};
use hookline::store::{
    AttemptContext, AttemptRecord, CircuitView, Claim, ClaimedDelivery, FanOutNow, Finished, Lease,
    NewDelivery, NewToken, NextState, Only, Store, StoreError, TokenKind, Webhook, WebhookSecret,
};
use hookline::{ids::new_id, secret::Secret};

use crate::harness::db::Raw;
use crate::store_test;

const OWNER: &str = "test-owner";
const LEASE: Duration = Duration::from_secs(30);
const T0: i64 = 1_800_000_000_000;

pub fn event(source: &str, registry_id: &str, repository: &str, tag: Option<&str>) -> Event {
    Event {
        tag: tag.map(Into::into),
        digest: Some("sha256:abc".into()),
        size: Some(1),
        registry_host: Some("registry.example:5000".into()),
        original: serde_json::json!({"id": registry_id}),
        ..Event::new(
            new_id("evt"),
            source,
            registry_id,
            EventType::ImagePushed,
            repository,
            T0,
        )
    }
}

pub fn webhook(namespace: &str, url: &str) -> (Webhook, WebhookSecret) {
    (
        Webhook {
            name: "test".into(),
            ..Webhook::new(new_id("wh"), namespace, url, T0)
        },
        WebhookSecret {
            id: new_id("whs"),
            secret: Secret::new("whsec_dGVzdHNlY3JldHRlc3RzZWNyZXR0ZXN0c2VjcmV0"),
            created_at: T0,
            expires_at: None,
        },
    )
}

/// Enqueues `n` deliveries (one event, one webhook each) due at T0; returns their ids.
async fn enqueue_n(store: &Store, n: usize, ordering_key: Option<&str>) -> Vec<String> {
    let deliveries: Vec<NewDelivery> = (0..n)
        .map(|_| NewDelivery {
            id: new_id("dlv"),
            event_id: new_id("evt"),
            webhook_id: "wh_1".into(),
            namespace: "acme".into(),
            ordering_key: ordering_key.map(Into::into),
        })
        .collect();
    store.enqueue(&deliveries, T0).await.expect("enqueue");
    deliveries.into_iter().map(|d| d.id).collect()
}

fn claim(now: i64, limit: i64) -> Claim<'static> {
    Claim {
        owner: OWNER,
        now,
        lease: LEASE,
        limit,
        skip_webhooks: &[],
        only: Only::Any,
    }
}

fn attempt(delivery_id: &str, number: i64, status: i64) -> AttemptRecord {
    AttemptRecord {
        id: new_id("att"),
        delivery_id: delivery_id.into(),
        number,
        started_at: T0,
        duration_ms: 3,
        status_code: Some(status),
        response_headers: Some("{}".into()),
        response_body: Some("ok".into()),
        error: None,
        outcome: "test".into(),
        error_class: None,
        reason: None,
        next_attempt_at: None,
    }
}

fn finished(c: &ClaimedDelivery, status: i64, next: NextState) -> Finished {
    Finished {
        lease: c.lease.clone(),
        attempt: attempt(&c.lease.delivery_id, c.attempts + 1, status),
        next,
        context: AttemptContext {
            webhook_id: c.webhook_id.clone(),
            namespace: c.namespace.clone(),
            event_id: c.event_id.clone(),
            ..AttemptContext::default()
        },
        circuit: CircuitView::Closed,
    }
}

store_test!(migrating_twice_is_a_no_op, async |db: &TestDb| {
    let store = db.store().await;
    store
        .insert_token(&token(TokenKind::Admin, ""))
        .await
        .expect("insert");
    store.close().await;
    let again = db.store().await; // migrates again
    again.ready().await.expect("ready after second migration");
    assert_eq!(
        again.list_tokens().await.expect("list").len(),
        1,
        "data kept"
    );
    again.close().await;
});

store_test!(a_newer_schema_is_refused, async |db: &TestDb| {
    let store = db.store().await;
    store.close().await;
    // Pretend a newer hookline migrated this database.
    let sql = "INSERT INTO _sqlx_migrations (version, description, installed_on, success, checksum, execution_time) \
               VALUES (9999, 'from the future', CURRENT_TIMESTAMP, TRUE, X'00', 0)";
    let pg_sql = sql.replace("X'00'", "'\\x00'::bytea");
    match db.backend {
        crate::harness::db::Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&db.url).await.expect("connect");
            sqlx::query(sql).execute(&pool).await.expect("insert");
            pool.close().await;
        }
        crate::harness::db::Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&db.url).await.expect("connect");
            sqlx::query(&pg_sql).execute(&pool).await.expect("insert");
            pool.close().await;
        }
    }
    let error = hookline::store::open(&hookline::store::OpenOptions::new(&db.url))
        .await
        .err()
        .expect("a newer schema must be refused");
    assert!(
        matches!(error, StoreError::SchemaTooNew { found: 9999, .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("newer than this hookline"),
        "{error}"
    );
});

fn token(kind: TokenKind, subject: &str) -> NewToken {
    let secret = hookline::secret::generate_token();
    NewToken {
        id: new_id("tok"),
        kind,
        subject: subject.into(),
        hash: hookline::secret::hash_token(secret.expose()),
        created_at: T0,
        registry: None,
    }
}

store_test!(
    tokens_are_found_by_hash_until_revoked,
    async |db: &TestDb| {
        let store = db.store().await;
        let t = token(TokenKind::Registry, "main");
        store.insert_token(&t).await.expect("insert");
        let found = store
            .find_token(&t.hash)
            .await
            .expect("find")
            .expect("present");
        assert_eq!(
            (found.kind.as_str(), found.subject.as_str()),
            ("registry", "main")
        );
        assert!(store.find_token("nope").await.expect("find").is_none());
        assert!(store.revoke_token(&t.id, T0 + 1).await.expect("revoke"));
        assert!(
            !store
                .revoke_token(&t.id, T0 + 2)
                .await
                .expect("revoke twice"),
            "already revoked"
        );
        assert!(
            store.find_token(&t.hash).await.expect("find").is_none(),
            "revoked tokens stop working"
        );
        let listed = store.list_tokens().await.expect("list");
        assert_eq!(listed[0].revoked_at, Some(T0 + 1));
        store.close().await;
    }
);

store_test!(events_are_deduplicated_per_source, async |db: &TestDb| {
    let store = db.store().await;
    let a = event("main", "reg-1", "acme/app", Some("1.0"));
    let first = store
        .insert_events(std::slice::from_ref(&a))
        .await
        .expect("insert");
    assert_eq!((first.inserted, first.duplicates), (1, 0));
    // The registry re-sends the same event (hookline mints a new id each time).
    let resent = event("main", "reg-1", "acme/app", Some("1.0"));
    let other_source = event("mirror", "reg-1", "acme/app", Some("1.0"));
    let second = store
        .insert_events(&[resent, other_source])
        .await
        .expect("insert");
    assert_eq!((second.inserted, second.duplicates), (1, 1));
    let stored = store.recent_events(10).await.expect("recent");
    assert_eq!(stored.len(), 2);
    // Round-trips exactly, with what storing adds: the tag's first push changed it.
    let stored_a = Event {
        changed: Some(true),
        ..a.clone()
    };
    assert_eq!(
        store
            .get_events(std::slice::from_ref(&a.id))
            .await
            .expect("get")[0],
        stored_a,
        "round-trips exactly"
    );
    store.close().await;
});

/// A push of `repository:tag` at `digest`, as registry event `registry_id`.
fn push_at(registry_id: &str, tag: &str, digest: &str) -> Event {
    Event {
        digest: Some(digest.into()),
        ..event("main", registry_id, "acme/app", Some(tag))
    }
}

/// What the store made of a stored event: (previous_digest, changed).
async fn linked(store: &Store, event: &Event) -> (Option<String>, Option<bool>) {
    let stored = store
        .get_events(std::slice::from_ref(&event.id))
        .await
        .expect("get");
    let stored = stored.first().expect("stored");
    (stored.previous_digest.clone(), stored.changed)
}

store_test!(
    a_tagged_push_names_the_digest_it_replaced,
    async |db: &TestDb| {
        let store = db.store().await;
        let (a, b) = ("sha256:aaaa", "sha256:bbbb");
        let first = push_at("r1", "v2", a);
        store
            .insert_events(std::slice::from_ref(&first))
            .await
            .expect("insert");
        assert_eq!(
            linked(&store, &first).await,
            (None, Some(true)),
            "first push"
        );

        // A new build, and in the same envelope a re-push of it: the second sees the first.
        let second = push_at("r2", "v2", b);
        let again = push_at("r3", "v2", b);
        store
            .insert_events(&[second.clone(), again.clone()])
            .await
            .expect("insert");
        assert_eq!(linked(&store, &second).await, (Some(a.into()), Some(true)));
        assert_eq!(
            linked(&store, &again).await,
            (Some(b.into()), Some(false)),
            "unchanged is flagged"
        );

        // A re-sent old event is a duplicate and moves nothing.
        let resent = push_at("r1", "v2", a);
        let counts = store
            .insert_events(std::slice::from_ref(&resent))
            .await
            .expect("insert");
        assert_eq!(counts.duplicates, 1);
        let third = push_at("r4", "v2", b);
        store
            .insert_events(std::slice::from_ref(&third))
            .await
            .expect("insert");
        assert_eq!(linked(&store, &third).await, (Some(b.into()), Some(false)));

        // Other tags, repositories and sources have heads of their own; untagged pushes
        // and other events carry nothing.
        let other_tag = push_at("r5", "v3", b);
        let other_source = Event {
            digest: Some(a.into()),
            ..event("mirror", "r6", "acme/app", Some("v2"))
        };
        let by_digest = Event {
            kind: EventType::ManifestPushed,
            tag: None,
            ..push_at("r7", "", a)
        };
        store
            .insert_events(&[other_tag.clone(), other_source.clone(), by_digest.clone()])
            .await
            .expect("insert");
        assert_eq!(linked(&store, &other_tag).await, (None, Some(true)));
        assert_eq!(linked(&store, &other_source).await, (None, Some(true)));
        assert_eq!(linked(&store, &by_digest).await, (None, None));

        // Deleting the tag forgets it: the next push replaces nothing.
        let deleted = Event {
            kind: EventType::ImageDeleted,
            digest: None,
            ..event("main", "r8", "acme/app", Some("v2"))
        };
        store
            .insert_events(std::slice::from_ref(&deleted))
            .await
            .expect("insert");
        assert_eq!(linked(&store, &deleted).await, (None, None));
        let after = push_at("r9", "v2", a);
        store
            .insert_events(std::slice::from_ref(&after))
            .await
            .expect("insert");
        assert_eq!(linked(&store, &after).await, (None, Some(true)));
        store.close().await;
    }
);

store_test!(
    storing_events_with_a_plan_fans_them_out_and_leases_what_may_start,
    async |db: &TestDb| {
        let store = db.store().await;
        // Per event: one delivery each to a free webhook, a skipped one (full lane) and
        // an ordered one.
        let plan = |e: &Event| {
            [("wh_free", None), ("wh_full", None), ("wh_ord", Some("k"))]
                .into_iter()
                .map(|(webhook, key)| NewDelivery {
                    id: new_id("dlv"),
                    event_id: e.id.clone(),
                    webhook_id: webhook.into(),
                    namespace: "acme".into(),
                    ordering_key: key.map(Into::into),
                })
                .collect()
        };
        let skip = vec!["wh_full".to_string()];
        let fan_out = |revision: i64, limit: usize| FanOutNow {
            webhooks_revision: revision,
            plan: &plan,
            owner: OWNER,
            lease: LEASE,
            limit,
            skip_webhooks: &skip,
            served: None,
        };
        let revision = store.webhooks_revision().await.expect("revision");
        let (e1, e2) = (
            event("main", "r1", "acme/app", Some("1")),
            event("main", "r2", "acme/app", Some("2")),
        );
        let stored = store
            .store_events(
                &[std::slice::from_ref(&e1), std::slice::from_ref(&e2)],
                Some(&fan_out(revision, 1)),
            )
            .await
            .expect("store");
        assert_eq!(
            stored.counts.iter().map(|c| c.inserted).collect::<Vec<_>>(),
            [1, 1]
        );
        // At most `limit`, never a skipped webhook or an ordered delivery.
        assert_eq!(stored.leased.len(), 1, "{:?}", stored.leased);
        let handed = &stored.leased[0];
        assert_eq!(
            (handed.event_id.as_str(), handed.webhook_id.as_str()),
            (e1.id.as_str(), "wh_free")
        );
        assert_eq!(handed.attempts, 0);
        let body: Event =
            serde_json::from_str(handed.event_body.as_deref().expect("body")).expect("event");
        assert_eq!(body.id, e1.id);
        assert!(stored.work_left, "unleased deliveries wait for a claim");
        // The lease is a committed row's: a claim does not take it, release gives it back.
        let rows = store
            .deliveries_for_event(&e1.id)
            .await
            .expect("deliveries");
        assert_eq!(rows.len(), 3);
        for row in &rows {
            let leased = row.id == handed.lease.delivery_id;
            assert_eq!(row.lease_owner.is_some(), leased, "{row:?}");
            if leased {
                assert_eq!(
                    row.lease_id.as_deref(),
                    Some(handed.lease.lease_id.as_str())
                );
            }
        }
        let now = hookline::store::now_ms();
        let claimed: HashSet<String> = store
            .claim_due(&claim(now, 10))
            .await
            .expect("claim")
            .into_iter()
            .map(|c| c.lease.delivery_id)
            .collect();
        assert_eq!(claimed.len(), 4, "e2's free, both full-lane, e1's ordered");
        assert!(!claimed.contains(&handed.lease.delivery_id));
        assert_eq!(
            store
                .release(std::slice::from_ref(&handed.lease), now)
                .await
                .expect("release"),
            1
        );
        let again = store.claim_due(&claim(now, 10)).await.expect("claim");
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].lease.delivery_id, handed.lease.delivery_id);
        // Nothing is left to fan out, and a re-sent event creates nothing.
        let none = store
            .fan_out(100, now, revision, &plan)
            .await
            .expect("fan out");
        assert_eq!(none.events, 0);
        let dup = store
            .store_events(&[std::slice::from_ref(&e1)], Some(&fan_out(revision, 10)))
            .await
            .expect("store");
        assert_eq!((dup.counts[0].duplicates, dup.leased.len()), (1, 0));
        assert!(!dup.work_left);
        assert_eq!(
            store
                .deliveries_for_event(&e1.id)
                .await
                .expect("rows")
                .len(),
            3
        );

        // A plan from before a webhook change is not used: the events wait for fan-out.
        let (wh, secret) = webhook("acme", "http://127.0.0.1:9/");
        store.insert_webhook(&wh, &secret).await.expect("webhook");
        let e3 = event("main", "r3", "acme/app", Some("3"));
        let stale = store
            .store_events(&[std::slice::from_ref(&e3)], Some(&fan_out(revision, 10)))
            .await
            .expect("store");
        assert!(stale.leased.is_empty() && stale.work_left);
        assert!(
            store
                .deliveries_for_event(&e3.id)
                .await
                .expect("rows")
                .is_empty()
        );
        // Nor while an older event waits for fan-out: deliveries keep event order.
        let revision = store.webhooks_revision().await.expect("revision");
        let e4 = event("main", "r4", "acme/app", Some("4"));
        let behind = store
            .store_events(&[std::slice::from_ref(&e4)], Some(&fan_out(revision, 10)))
            .await
            .expect("store");
        assert!(behind.leased.is_empty() && behind.work_left);
        let later = store
            .fan_out(100, now, revision, &plan)
            .await
            .expect("fan out");
        assert_eq!((later.events, later.deliveries), (2, 6));
        let mut seqs = Vec::new();
        for e in [&e3, &e4] {
            seqs.push(store.deliveries_for_event(&e.id).await.expect("rows")[0].seq);
        }
        assert!(seqs[0] < seqs[1], "{seqs:?}");
        // With the backlog gone, the next batch is fanned out as it is stored.
        let e5 = event("main", "r5", "acme/app", Some("5"));
        let fresh = store
            .store_events(&[&[e5]], Some(&fan_out(revision, 10)))
            .await
            .expect("store");
        assert_eq!(fresh.leased.len(), 1, "wh_free only");
        store.close().await;
    }
);

/// A fan-out plan's deliveries for `e`: one, to `wh_1`, with this ordering key.
fn one_delivery(e: &Event, ordering_key: Option<&str>) -> Vec<NewDelivery> {
    vec![NewDelivery {
        id: new_id("dlv"),
        event_id: e.id.clone(),
        webhook_id: "wh_1".into(),
        namespace: "acme".into(),
        ordering_key: ordering_key.map(Into::into),
    }]
}

store_test!(fan_out_creates_deliveries_once, async |db: &TestDb| {
    let store = db.store().await;
    let events: Vec<Event> = (0..5)
        .map(|i| event("main", &format!("r{i}"), "acme/app", Some("1")))
        .collect();
    store.insert_events(&events).await.expect("insert");
    let plan = |e: &Event| one_delivery(e, None);
    let first = store.fan_out(3, T0, 0, &plan).await.expect("fan out");
    assert_eq!((first.events, first.deliveries), (3, 3));
    let second = store.fan_out(100, T0, 0, &plan).await.expect("fan out");
    assert_eq!((second.events, second.deliveries), (2, 2));
    let third = store.fan_out(100, T0, 0, &plan).await.expect("fan out");
    assert_eq!((third.events, third.deliveries), (0, 0));
    // A plan built before a webhook change is refused, and nothing is taken.
    store
        .insert_events(&[event("main", "r-late", "acme/app", None)])
        .await
        .expect("insert");
    let (wh, secret) = webhook("acme", "http://127.0.0.1:9/");
    store.insert_webhook(&wh, &secret).await.expect("webhook");
    let stale = store.fan_out(100, T0, 0, &plan).await.expect("fan out");
    assert!(stale.stale && stale.events == 0, "{stale:?}");
    let revision = store.webhooks_revision().await.expect("revision");
    let fresh = store
        .fan_out(100, T0, revision, &plan)
        .await
        .expect("fan out");
    assert_eq!((fresh.events, fresh.stale), (1, false));
    for e in &events {
        assert_eq!(
            store
                .deliveries_for_event(&e.id)
                .await
                .expect("deliveries")
                .len(),
            1
        );
    }
    store.close().await;
});

store_test!(
    fan_out_waits_for_an_earlier_fan_out_of_older_events,
    async |db: &TestDb| {
        let store = db.store().await;
        // Two pushes of one tag to an ordered webhook, stored for a dispatcher to fan out.
        let (older, newer) = (
            event("main", "r1", "acme/app", Some("1")),
            event("main", "r2", "acme/app", Some("1")),
        );
        store
            .insert_events(&[older.clone(), newer.clone()])
            .await
            .expect("insert");
        let plan = |e: &Event| one_delivery(e, Some("wh_1 acme/app:1"));
        // Another dispatcher is part-way through fanning out the older event: its
        // transaction holds that row. Were the newer event fanned out and committed now,
        // its delivery could be claimed and sent before the older one exists.
        let raw = Raw::open(db).await;
        let other = raw
            .hold(
                "UPDATE events SET fanned_out = fanned_out WHERE id = $1",
                &[&older.id],
            )
            .await;
        let fanning = tokio::spawn({
            let store = store.clone();
            async move { store.fan_out(100, T0, 0, &plan).await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            store
                .deliveries_for_event(&newer.id)
                .await
                .expect("rows")
                .is_empty(),
            "a newer event was fanned out past an older one still being fanned out"
        );
        other.release().await;
        let report = fanning.await.expect("task").expect("fan out");
        assert_eq!((report.events, report.deliveries), (2, 2));
        let mut seqs = Vec::new();
        for e in [&older, &newer] {
            seqs.push(store.deliveries_for_event(&e.id).await.expect("rows")[0].seq);
        }
        assert!(seqs[0] < seqs[1], "{seqs:?}");
        store.close().await;
    }
);

store_test!(claim_finish_and_retry, async |db: &TestDb| {
    let store = db.store().await;
    let ids = enqueue_n(&store, 3, None).await;
    assert!(
        store
            .claim_due(&claim(T0 - 1, 10))
            .await
            .expect("claim")
            .is_empty(),
        "not due yet"
    );
    let claimed = store.claim_due(&claim(T0, 10)).await.expect("claim");
    assert_eq!(claimed.len(), 3);
    assert!(
        store
            .claim_due(&claim(T0 + 1, 10))
            .await
            .expect("claim")
            .is_empty(),
        "leased"
    );
    let by_id = |id: &str| {
        claimed
            .iter()
            .find(|c| c.lease.delivery_id == id)
            .expect("claimed")
    };
    let results = [
        finished(by_id(&ids[0]), 200, NextState::Succeeded),
        finished(by_id(&ids[1]), 500, NextState::RetryAt(T0 + 5_000)),
        finished(by_id(&ids[2]), 400, NextState::Failed),
    ];
    assert_eq!(store.finish(&results, T0 + 10).await.expect("finish"), 3);
    let status = async |id: &str| store.get_delivery(id).await.expect("get").expect("exists");
    assert_eq!(status(&ids[0]).await.status, "succeeded");
    let retrying = status(&ids[1]).await;
    assert_eq!(
        (
            retrying.status.as_str(),
            retrying.attempts,
            retrying.next_attempt_at
        ),
        ("pending", 1, T0 + 5_000)
    );
    assert_eq!(retrying.last_error.as_deref(), Some("HTTP 500"));
    assert_eq!(retrying.lease_id, None);
    assert_eq!(status(&ids[2]).await.status, "failed");
    assert!(
        store
            .claim_due(&claim(T0 + 4_999, 10))
            .await
            .expect("claim")
            .is_empty(),
        "retry not due yet"
    );
    let again = store
        .claim_due(&claim(T0 + 5_000, 10))
        .await
        .expect("claim");
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0].lease.delivery_id.as_str(), again[0].attempts),
        (ids[1].as_str(), 1)
    );
    assert_eq!(store.attempts(&ids[1]).await.expect("attempts").len(), 1);
    let stats = store.queue_stats(T0 + 5_000).await.expect("stats");
    assert_eq!((stats.pending, stats.succeeded, stats.failed), (1, 1, 1));
    store.close().await;
});

store_test!(
    an_abandoned_lease_comes_back_when_it_expires_and_no_sooner,
    async |db: &TestDb| {
        let store = db.store().await;
        let ids = enqueue_n(&store, 2, None).await;
        let first = store.claim_due(&claim(T0, 10)).await.expect("claim");
        assert_eq!(first.len(), 2);
        // The claimer "dies" here. Just before expiry: nothing.
        let expiry = T0 + LEASE.as_millis() as i64;
        assert!(
            store
                .claim_due(&claim(expiry - 1, 10))
                .await
                .expect("claim")
                .is_empty()
        );
        // At expiry: both come back, under a new lease.
        let second = store.claim_due(&claim(expiry, 10)).await.expect("claim");
        assert_eq!(second.len(), 2);
        assert_ne!(first[0].lease.lease_id, second[0].lease.lease_id);
        // The first claimer wakes up and tries to finish with its stale lease: refused,
        // though its attempt is still recorded; the new holder can finish.
        let stale = finished(&first[0], 200, NextState::Succeeded);
        assert_eq!(store.finish(&[stale], expiry + 1).await.expect("finish"), 0);
        let d = store
            .get_delivery(&first[0].lease.delivery_id)
            .await
            .expect("get")
            .expect("exists");
        assert_eq!(
            d.status, "pending",
            "a stale lease cannot complete a delivery"
        );
        let fresh: Vec<Finished> = second
            .iter()
            .map(|c| finished(c, 200, NextState::Succeeded))
            .collect();
        assert_eq!(store.finish(&fresh, expiry + 2).await.expect("finish"), 2);
        for id in &ids {
            assert_eq!(
                store
                    .get_delivery(id)
                    .await
                    .expect("get")
                    .expect("exists")
                    .status,
                "succeeded"
            );
        }
        store.close().await;
    }
);

store_test!(reclaim_expired_and_extend_leases, async |db: &TestDb| {
    let store = db.store().await;
    enqueue_n(&store, 2, None).await;
    let claimed = store.claim_due(&claim(T0, 10)).await.expect("claim");
    let expiry = T0 + LEASE.as_millis() as i64;
    let leases: Vec<Lease> = claimed.iter().map(|c| c.lease.clone()).collect();
    assert_eq!(
        store
            .extend_leases(&leases, expiry + 60_000)
            .await
            .expect("extend"),
        2
    );
    let stale = Lease {
        delivery_id: leases[0].delivery_id.clone(),
        lease_id: "not-ours".into(),
    };
    assert_eq!(
        store
            .extend_leases(&[stale], expiry + 90_000)
            .await
            .expect("extend"),
        0,
        "only a held lease is extended"
    );
    assert!(
        store
            .claim_due(&claim(expiry + 1, 10))
            .await
            .expect("claim")
            .is_empty(),
        "extended"
    );
    assert_eq!(store.reclaim_expired(expiry + 1).await.expect("reclaim"), 0);
    assert_eq!(
        store
            .reclaim_expired(expiry + 60_000)
            .await
            .expect("reclaim"),
        2
    );
    let d = store
        .get_delivery(&claimed[0].lease.delivery_id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!((d.lease_id, d.lease_owner), (None, None));
    assert_eq!(
        store
            .claim_due(&claim(expiry + 60_000, 10))
            .await
            .expect("claim")
            .len(),
        2
    );
    store.close().await;
});

store_test!(release_makes_work_due_at_once, async |db: &TestDb| {
    let store = db.store().await;
    enqueue_n(&store, 2, None).await;
    let claimed = store.claim_due(&claim(T0, 10)).await.expect("claim");
    let leases: Vec<Lease> = claimed.iter().map(|c| c.lease.clone()).collect();
    assert_eq!(store.release(&leases, T0 + 1).await.expect("release"), 2);
    let again = store.claim_due(&claim(T0 + 1, 10)).await.expect("claim");
    assert_eq!(again.len(), 2);
    assert_eq!(again[0].attempts, 0, "a release is not an attempt");
    store.close().await;
});

store_test!(ordered_deliveries_go_one_at_a_time, async |db: &TestDb| {
    let store = db.store().await;
    let ids = enqueue_n(&store, 3, Some("wh_1/acme/app:latest")).await;
    let first = store.claim_due(&claim(T0, 10)).await.expect("claim");
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].lease.delivery_id, ids[0]);
    // A retry of the first keeps the others waiting, even once they are due.
    store
        .finish(
            &[finished(&first[0], 500, NextState::RetryAt(T0 + 100))],
            T0,
        )
        .await
        .expect("finish");
    assert!(
        store
            .claim_due(&claim(T0 + 50, 10))
            .await
            .expect("claim")
            .is_empty()
    );
    let retry = store.claim_due(&claim(T0 + 100, 10)).await.expect("claim");
    assert_eq!(retry.len(), 1);
    assert_eq!(retry[0].lease.delivery_id, ids[0]);
    store
        .finish(&[finished(&retry[0], 200, NextState::Succeeded)], T0 + 100)
        .await
        .expect("finish");
    let second = store.claim_due(&claim(T0 + 100, 10)).await.expect("claim");
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].lease.delivery_id, ids[1]);
    // A final failure also lets the next one go.
    store
        .finish(&[finished(&second[0], 400, NextState::Failed)], T0 + 100)
        .await
        .expect("finish");
    let third = store.claim_due(&claim(T0 + 100, 10)).await.expect("claim");
    assert_eq!(third[0].lease.delivery_id, ids[2]);
    store.close().await;
});

store_test!(skipped_webhooks_are_not_claimed, async |db: &TestDb| {
    let store = db.store().await;
    enqueue_n(&store, 2, None).await;
    let skip = vec!["wh_1".to_string()];
    let c = Claim {
        owner: OWNER,
        now: T0,
        lease: LEASE,
        limit: 10,
        skip_webhooks: &skip,
        only: Only::Any,
    };
    assert!(store.claim_due(&c).await.expect("claim").is_empty());
    assert_eq!(
        store.claim_due(&claim(T0, 10)).await.expect("claim").len(),
        2
    );
    store.close().await;
});

store_test!(
    webhooks_round_trip_and_bump_the_revision,
    async |db: &TestDb| {
        let store = db.store().await;
        let r0 = store.webhooks_revision().await.expect("revision");
        let (mut wh, secret) = webhook("acme", "http://127.0.0.1:9/hook?x=1");
        wh.event_types = vec!["image.pushed".into()];
        wh.repositories = vec!["acme/*".into()];
        wh.headers.insert("X-Custom".into(), "v".into());
        store.insert_webhook(&wh, &secret).await.expect("insert");
        assert_eq!(
            store.get_webhook(&wh.id).await.expect("get"),
            Some(wh.clone())
        );
        let enabled = store.enabled_webhooks(T0).await.expect("enabled");
        assert_eq!(enabled.len(), 1);
        assert_eq!(enabled[0].secrets, vec![secret]);
        let r1 = store.webhooks_revision().await.expect("revision");
        assert!(r1 > r0);
        store
            .disable_webhook(&wh.id, "receiver answered 410 Gone", T0 + 1)
            .await
            .expect("disable");
        assert!(
            store
                .enabled_webhooks(T0)
                .await
                .expect("enabled")
                .is_empty()
        );
        let disabled = store
            .get_webhook(&wh.id)
            .await
            .expect("get")
            .expect("exists");
        assert_eq!(
            disabled.disabled_reason.as_deref(),
            Some("receiver answered 410 Gone")
        );
        assert!(store.webhooks_revision().await.expect("revision") > r1);
        store.close().await;
    }
);

/// Claims everything with `claimers` concurrent claimers and checks each row was taken once.
async fn claim_all_concurrently(stores: Vec<Store>, total: usize) {
    let mut tasks = tokio::task::JoinSet::new();
    for (i, store) in stores.into_iter().enumerate() {
        tasks.spawn(async move {
            let owner = format!("claimer-{i}");
            let mut mine = Vec::new();
            loop {
                let c = Claim {
                    owner: &owner,
                    now: T0,
                    lease: LEASE,
                    limit: 50,
                    skip_webhooks: &[],
                    only: Only::Any,
                };
                let batch = store.claim_due(&c).await.expect("claim");
                if batch.is_empty() {
                    break;
                }
                mine.extend(batch.into_iter().map(|c| c.lease.delivery_id));
                tokio::task::yield_now().await;
            }
            mine
        });
    }
    let mut seen = HashSet::new();
    let mut claimers_with_work = 0;
    while let Some(joined) = tasks.join_next().await {
        let mine = joined.expect("claimer task");
        claimers_with_work += usize::from(!mine.is_empty());
        for id in mine {
            assert!(seen.insert(id.clone()), "{id} was claimed twice");
        }
    }
    assert_eq!(seen.len(), total, "every row claimed");
    assert!(
        claimers_with_work > 1,
        "the claimers actually ran concurrently"
    );
}

store_test!(
    eight_claimers_share_one_pool_and_take_each_row_once,
    async |db: &TestDb| {
        let store = db.store().await;
        let total = 10_000;
        for _ in 0..10 {
            enqueue_n(&store, total / 10, None).await;
        }
        claim_all_concurrently(vec![store.clone(); 8], total).await;
        store.close().await;
    }
);

/// Separate pools behave like separate replicas, which only PostgreSQL has: a SQLite file is
/// served by one process (`store/sqlite/liveness.rs`), whose claims share its one writer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_claimers_with_separate_pools_take_each_row_once() {
    let db = crate::harness::db::TestDb::new(crate::harness::db::Backend::Postgres).await;
    let store = db.store().await;
    let total = 10_000;
    for _ in 0..10 {
        enqueue_n(&store, total / 10, None).await;
    }
    let mut stores = Vec::new();
    for _ in 0..8 {
        stores.push(db.store().await);
    }
    claim_all_concurrently(stores, total).await;
    store.close().await;
    db.finish().await;
}

/// Enrichment: registry sources and each event's stored enrichment.
mod enrichment;
/// The delivery log: listings, redelivery, replay, health, pruning.
mod log;
/// Webhook management (the API's storage): listing, updates, deletes, rotation, pings.
mod webhooks;
