//! The dispatcher end to end: real receivers on 127.0.0.1, a real server, both backends.

use std::time::{Duration, Instant};

use hookline::config::Config;
use hookline::store::{DeliveryRecord, Store, Webhook};

use crate::harness::envelopes::push;
use crate::harness::receiver::{Received, Receiver, Reply};
use crate::harness::server::TestServer;
use crate::store_contract::webhook;
use crate::store_test;

const SECRET: &str = "whsec_dGVzdHNlY3JldHRlc3RzZWNyZXR0ZXN0c2VjcmV0";

/// Quick retries and polls so tests finish fast.
fn fast(c: &mut Config) {
    c.dispatch.retry_schedule = vec![Duration::from_millis(100); 5];
    c.dispatch.poll_interval = Duration::from_millis(100);
}

async fn add_webhook(store: &Store, url: &str, tweak: impl FnOnce(&mut Webhook)) -> Webhook {
    let (mut wh, secret) = webhook("acme", url);
    tweak(&mut wh);
    store
        .insert_webhook(&wh, &secret)
        .await
        .expect("insert webhook");
    wh
}

/// The single delivery of the single event stored so far.
async fn only_delivery(store: &Store) -> DeliveryRecord {
    let events = store.recent_events(10).await.expect("events");
    assert_eq!(events.len(), 1);
    let mut deliveries = store
        .deliveries_for_event(&events[0].id)
        .await
        .expect("deliveries");
    assert_eq!(deliveries.len(), 1);
    deliveries.remove(0)
}

/// Waits until `check` holds for the delivery, or panics after `timeout`.
async fn wait_delivery(
    store: &Store,
    id: &str,
    timeout: Duration,
    check: impl Fn(&DeliveryRecord) -> bool,
) -> DeliveryRecord {
    let deadline = Instant::now() + timeout;
    loop {
        let d = store.get_delivery(id).await.expect("get").expect("exists");
        if check(&d) {
            return d;
        }
        assert!(
            Instant::now() < deadline,
            "delivery never reached the expected state: {d:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Verifies a Standard Webhooks signature independently of hookline's signing code.
fn verify(r: &Received) {
    assert!(r.signed_with(SECRET), "bad signature on {r:?}");
    let ts: i64 = r.header("webhook-timestamp").parse().expect("timestamp");
    assert!(
        (ts - hookline::store::now_ms() / 1000).abs() < 60,
        "timestamp in seconds, recent"
    );
}

store_test!(
    a_push_is_delivered_signed_on_the_commit_wake_up,
    async |db: &TestDb| {
        let receiver = Receiver::start().await;
        // No fallback poll within the test's life: only the commit's wake-up can deliver.
        let server = TestServer::start(db, |c| {
            fast(c);
            c.dispatch.poll_interval = Duration::from_secs(3600);
        })
        .await;
        add_webhook(
            &server.store,
            &format!("{}?token=abc", receiver.url()),
            |w| {
                w.headers.insert("X-Team".into(), "deploy".into());
            },
        )
        .await;
        server.notify_ok(&push("acme/app", "1.4")).await;
        let got = receiver.wait_for(1, Duration::from_secs(10)).await;
        let r = &got[0];
        verify(r);
        let delivery = only_delivery(&server.store).await;
        assert_eq!(
            r.header("webhook-id"),
            delivery.id,
            "webhook-id is the delivery id"
        );
        assert_eq!(r.uri, "/hook?token=abc", "query string kept verbatim");
        assert_eq!(r.header("x-team"), "deploy");
        assert!(r.header("user-agent").starts_with("hookline/"));
        assert_eq!(r.header("content-type"), "application/json");
        let body = r.json();
        assert_eq!(
            (body["type"].as_str(), body["tag"].as_str()),
            (Some("image.pushed"), Some("1.4"))
        );
        assert_eq!(
            body["image"],
            "127.0.0.1:5000/acme/app:1.4@sha256:ab09df3b044990449fbd0a7f841bbfba912842e49212a79a8e029b8370aa6fb0"
        );
        let done = wait_delivery(&server.store, &delivery.id, Duration::from_secs(5), |d| {
            d.status == "succeeded"
        })
        .await;
        assert_eq!(done.attempts, 1);
        let attempts = server.store.attempts(&delivery.id).await.expect("attempts");
        assert_eq!(
            (attempts[0].status_code, attempts[0].outcome.as_str()),
            (Some(200), "succeeded")
        );
        server.stop().await;
    }
);

store_test!(
    a_500_is_retried_with_the_same_webhook_id,
    async |db: &TestDb| {
        let receiver = Receiver::start().await;
        receiver.script([Reply::status(500)]);
        let server = TestServer::start(db, fast).await;
        add_webhook(&server.store, &receiver.url(), |_| {}).await;
        server.notify_ok(&push("acme/app", "1.4")).await;
        let got = receiver.wait_for(2, Duration::from_secs(10)).await;
        assert_eq!(got[0].header("webhook-id"), got[1].header("webhook-id"));
        assert_eq!(got[0].body, got[1].body, "the same body on every attempt");
        verify(&got[1]);
        let delivery = only_delivery(&server.store).await;
        let done = wait_delivery(&server.store, &delivery.id, Duration::from_secs(5), |d| {
            d.status == "succeeded"
        })
        .await;
        assert_eq!(done.attempts, 2);
        let attempts = server.store.attempts(&delivery.id).await.expect("attempts");
        assert_eq!(
            (attempts[0].status_code, attempts[0].outcome.as_str()),
            (Some(500), "retry")
        );
        assert_eq!(attempts[1].status_code, Some(200));
        server.stop().await;
    }
);

store_test!(retry_after_on_429_is_honoured, async |db: &TestDb| {
    let receiver = Receiver::start().await;
    receiver.script([Reply::status(429).header("retry-after", "2")]);
    let server = TestServer::start(db, fast).await;
    add_webhook(&server.store, &receiver.url(), |_| {}).await;
    server.notify_ok(&push("acme/app", "1.4")).await;
    let got = receiver.wait_for(2, Duration::from_secs(10)).await;
    let gap = got[1].at - got[0].at;
    assert!(
        gap >= Duration::from_millis(1900),
        "retried after {gap:?}, not the 100ms schedule"
    );
    server.stop().await;
});

store_test!(a_410_disables_the_webhook, async |db: &TestDb| {
    let receiver = Receiver::start().await;
    receiver.set_default(Reply::status(410));
    let server = TestServer::start(db, fast).await;
    let wh = add_webhook(&server.store, &receiver.url(), |_| {}).await;
    server.notify_ok(&push("acme/app", "1.4")).await;
    receiver.wait_for(1, Duration::from_secs(10)).await;
    let delivery = only_delivery(&server.store).await;
    wait_delivery(&server.store, &delivery.id, Duration::from_secs(5), |d| {
        d.status == "failed"
    })
    .await;
    let webhook = server
        .store
        .get_webhook(&wh.id)
        .await
        .expect("get")
        .expect("exists");
    assert!(!webhook.enabled);
    assert!(
        webhook
            .disabled_reason
            .as_deref()
            .unwrap_or_default()
            .contains("410 Gone"),
        "{webhook:?}"
    );
    // Later events are not delivered to it.
    server.notify_ok(&push("acme/app", "1.5")).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.received().len(), 1);
    server.stop().await;
});

store_test!(
    a_hanging_receiver_times_out_and_is_retried,
    async |db: &TestDb| {
        let receiver = Receiver::start().await;
        receiver.script([Reply::ok().after(Duration::from_secs(30))]);
        let server = TestServer::start(db, |c| {
            fast(c);
            c.dispatch.request_timeout = Duration::from_millis(500);
            c.dispatch.shutdown_grace = Duration::from_millis(200);
        })
        .await;
        add_webhook(&server.store, &receiver.url(), |_| {}).await;
        server.notify_ok(&push("acme/app", "1.4")).await;
        receiver.wait_for(2, Duration::from_secs(10)).await;
        let delivery = only_delivery(&server.store).await;
        wait_delivery(&server.store, &delivery.id, Duration::from_secs(5), |d| {
            d.status == "succeeded"
        })
        .await;
        let attempts = server.store.attempts(&delivery.id).await.expect("attempts");
        assert_eq!(attempts[0].status_code, None);
        assert!(
            attempts[0]
                .error
                .as_deref()
                .unwrap_or_default()
                .contains("timed out"),
            "{:?}",
            attempts[0]
        );
        assert!(
            !attempts[0]
                .error
                .as_deref()
                .unwrap_or_default()
                .contains("127.0.0.1"),
            "no URL in errors"
        );
        server.stop().await;
    }
);

store_test!(
    a_redirect_is_a_failed_attempt_and_not_followed,
    async |db: &TestDb| {
        let receiver = Receiver::start().await;
        let elsewhere = format!("http://{}/elsewhere", receiver.addr);
        receiver.script([Reply::status(302).header("location", &elsewhere)]);
        let server = TestServer::start(db, fast).await;
        add_webhook(&server.store, &receiver.url(), |_| {}).await;
        server.notify_ok(&push("acme/app", "1.4")).await;
        let got = receiver.wait_for(2, Duration::from_secs(10)).await;
        assert!(
            got.iter().all(|r| r.uri == "/hook"),
            "never went to the Location: {:?}",
            got.iter().map(|r| &r.uri).collect::<Vec<_>>()
        );
        let delivery = only_delivery(&server.store).await;
        wait_delivery(&server.store, &delivery.id, Duration::from_secs(5), |d| {
            d.status == "succeeded"
        })
        .await;
        let attempts = server.store.attempts(&delivery.id).await.expect("attempts");
        assert_eq!(
            (attempts[0].status_code, attempts[0].outcome.as_str()),
            (Some(302), "retry")
        );
        server.stop().await;
    }
);

store_test!(
    a_slow_endpoint_does_not_delay_a_healthy_one,
    async |db: &TestDb| {
        let slow = Receiver::start().await;
        slow.set_default(Reply::ok().after(Duration::from_secs(10)));
        let healthy = Receiver::start().await;
        let server = TestServer::start(db, |c| {
            fast(c);
            c.dispatch.shutdown_grace = Duration::from_millis(200);
        })
        .await;
        add_webhook(&server.store, &slow.url(), |_| {}).await;
        add_webhook(&server.store, &healthy.url(), |_| {}).await;
        for i in 0..20 {
            server.notify_ok(&push("acme/app", &format!("1.{i}"))).await;
        }
        healthy.wait_for(20, Duration::from_secs(8)).await;
        // All 20 healthy deliveries went out while the slow endpoint still held its slots.
        assert_eq!(
            slow.in_flight(),
            4,
            "the slow endpoint is at its cap, and only there"
        );
        assert!(slow.received().len() <= 4);
        server.stop().await;
    }
);

store_test!(the_per_endpoint_cap_holds, async |db: &TestDb| {
    let receiver = Receiver::start().await;
    receiver.set_default(Reply::ok().after(Duration::from_millis(200)));
    let server = TestServer::start(db, |c| {
        fast(c);
        c.dispatch.max_per_endpoint = 4;
    })
    .await;
    add_webhook(&server.store, &receiver.url(), |_| {}).await;
    for i in 0..20 {
        server.notify_ok(&push("acme/app", &format!("1.{i}"))).await;
    }
    receiver.wait_for(20, Duration::from_secs(20)).await;
    assert_eq!(
        receiver.max_in_flight(),
        4,
        "at most the configured cap (4) at once, and the cap used"
    );
    server.stop().await;
});

store_test!(
    ordered_delivery_keeps_tag_order_through_failures,
    async |db: &TestDb| {
        let receiver = Receiver::start().await;
        receiver.script([Reply::status(503), Reply::status(500)]);
        let server = TestServer::start(db, fast).await;
        add_webhook(&server.store, &receiver.url(), |w| w.ordered = true).await;
        // Same repository:tag, so one ordering key: `latest` moves from 1.5's digest to 1.6's.
        let mut first: serde_json::Value =
            serde_json::from_str(&push("acme/app", "latest")).expect("json");
        first["events"][0]["target"]["digest"] = "sha256:0015".into();
        let mut second: serde_json::Value =
            serde_json::from_str(&push("acme/app", "latest")).expect("json");
        second["events"][0]["target"]["digest"] = "sha256:0016".into();
        server.notify_ok(&first.to_string()).await;
        server.notify_ok(&second.to_string()).await;
        let got = receiver.wait_for(4, Duration::from_secs(10)).await;
        let digests: Vec<String> = got
            .iter()
            .map(|r| r.json()["digest"].as_str().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(
            digests,
            ["sha256:0015", "sha256:0015", "sha256:0015", "sha256:0016"],
            "1.5 until it succeeds, then 1.6"
        );
        server.stop().await;
    }
);

store_test!(filters_choose_the_webhooks, async |db: &TestDb| {
    let wants = Receiver::start().await;
    let other = Receiver::start().await;
    let server = TestServer::start(db, fast).await;
    add_webhook(&server.store, &wants.url(), |w| {
        w.repositories = vec!["acme/app".into()];
        w.tags = vec!["1.*".into()];
    })
    .await;
    add_webhook(&server.store, &other.url(), |w| {
        w.namespace = "other".into()
    })
    .await;
    server.notify_ok(&push("acme/app", "2.0")).await; // tag does not match
    server.notify_ok(&push("acme/web", "1.0")).await; // repository does not match
    server.notify_ok(&push("acme/app", "1.7")).await; // matches
    let got = wants.wait_for(1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(wants.received().len(), 1);
    assert_eq!(got[0].json()["tag"], "1.7");
    assert!(
        other.received().is_empty(),
        "another namespace never sees acme's events"
    );
    server.stop().await;
});

store_test!(an_exhausted_schedule_ends_failed, async |db: &TestDb| {
    let receiver = Receiver::start().await;
    receiver.set_default(Reply::status(500));
    let server = TestServer::start(db, |c| {
        fast(c);
        c.dispatch.retry_schedule = vec![Duration::from_millis(50); 2];
    })
    .await;
    add_webhook(&server.store, &receiver.url(), |_| {}).await;
    server.notify_ok(&push("acme/app", "1.4")).await;
    receiver.wait_for(3, Duration::from_secs(10)).await;
    let delivery = only_delivery(&server.store).await;
    let done = wait_delivery(&server.store, &delivery.id, Duration::from_secs(5), |d| {
        d.status == "failed"
    })
    .await;
    assert_eq!(done.attempts, 3, "the first try and two retries");
    assert_eq!(done.last_error.as_deref(), Some("HTTP 500"));
    let outcomes: Vec<String> = server
        .store
        .attempts(&delivery.id)
        .await
        .expect("attempts")
        .into_iter()
        .map(|a| a.outcome)
        .collect();
    assert_eq!(outcomes, ["retry", "retry", "failed"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.received().len(), 3, "nothing after giving up");
    server.stop().await;
});

store_test!(
    an_open_circuit_holds_deliveries_then_probes_once,
    async |db: &TestDb| {
        let receiver = Receiver::start().await;
        receiver.set_default(Reply::status(500));
        let server = TestServer::start(db, |c| {
            fast(c);
            c.dispatch.retry_schedule = vec![Duration::from_millis(50); 20];
            c.dispatch.circuit_threshold = 3;
            c.dispatch.circuit_cooldown = Duration::from_millis(1500);
        })
        .await;
        add_webhook(&server.store, &receiver.url(), |_| {}).await;
        // One envelope: the three go out together and fail before a retry is due (sent
        // one by one, a retry can be the third failure while the third push is on its way).
        let events: Vec<serde_json::Value> = (0..3)
            .flat_map(|i| {
                let envelope: serde_json::Value =
                    serde_json::from_str(&push("acme/app", &format!("1.{i}"))).expect("json");
                envelope["events"].as_array().cloned().unwrap_or_default()
            })
            .collect();
        server
            .notify_ok(&serde_json::json!({ "events": events }).to_string())
            .await;
        receiver.wait_for(3, Duration::from_secs(10)).await;
        // Three failures opened the circuit: nothing goes out during the cool-down…
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert_eq!(receiver.received().len(), 3, "held during the cool-down");
        // …then exactly one probe; it fails, so the circuit opens again.
        receiver.wait_for(4, Duration::from_secs(5)).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(receiver.received().len(), 4, "one probe, not a burst");
        // A good probe closes it and the rest flows.
        receiver.set_default(Reply::ok());
        receiver.wait_for(7, Duration::from_secs(10)).await;
        server.stop().await;
    }
);

store_test!(
    a_webhook_failing_too_long_is_disabled_with_a_reason,
    async |db: &TestDb| {
        let receiver = Receiver::start().await;
        receiver.set_default(Reply::status(503));
        let server = TestServer::start(db, |c| {
            fast(c);
            c.dispatch.retry_schedule = vec![Duration::from_millis(100); 50];
            c.dispatch.circuit_threshold = 1000;
            c.dispatch.disable_after = Duration::from_millis(600);
        })
        .await;
        let wh = add_webhook(&server.store, &receiver.url(), |_| {}).await;
        server.notify_ok(&push("acme/app", "1.4")).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        let disabled = loop {
            let w = server
                .store
                .get_webhook(&wh.id)
                .await
                .expect("get")
                .expect("exists");
            if !w.enabled {
                break w;
            }
            assert!(Instant::now() < deadline, "never disabled: {w:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let reason = disabled.disabled_reason.unwrap_or_default();
        assert!(reason.contains("failing continuously since"), "{reason}");
        assert!(disabled.failing_since.is_some());
        server.stop().await;
    }
);
