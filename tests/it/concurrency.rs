//! How many requests at once each receiver gets, through the real dispatcher, on both
//! backends: the adaptive window grows for a receiver that keeps up and shrinks when it
//! refuses (429), the owner's `max_concurrency` and `rate_limit` are never exceeded as the
//! receiver sees it, and a `Retry-After` pauses the whole endpoint. No timing assertions
//! beyond lower bounds the server itself must respect.

use std::time::Duration;

use hookline::config::Config;
use hookline::store::{Store, Webhook};

use crate::harness::envelopes::push;
use crate::harness::receiver::{Receiver, Reply};
use crate::harness::server::TestServer;
use crate::store_contract::webhook;
use crate::store_test;

const WAIT: Duration = Duration::from_secs(30);

fn fast(c: &mut Config) {
    c.dispatch.retry_schedule = vec![Duration::from_millis(100); 5];
    c.dispatch.poll_interval = Duration::from_millis(100);
    c.dispatch.circuit_threshold = 1000;
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

/// The window the webhook's health reports (0 when none yet).
async fn window(store: &Store, webhook_id: &str) -> i64 {
    store
        .webhook_health(&[webhook_id.to_owned()])
        .await
        .expect("health")
        .first()
        .and_then(|h| h.concurrency_window)
        .unwrap_or(0)
}

/// Pushes `n` events, one envelope each.
async fn push_many(server: &TestServer, n: usize) {
    for i in 0..n {
        server.notify_ok(&push("acme/app", &format!("1.{i}"))).await;
    }
}

store_test!(
    the_window_grows_for_a_receiver_that_keeps_up_and_shrinks_when_it_refuses,
    async |db: &TestDb| {
        let receiver = Receiver::start().await;
        // Slower than events arrive, so a backlog builds and the window has work to do.
        receiver.set_default(Reply::status(204).after(Duration::from_millis(200)));
        let server = TestServer::start(db, fast).await;
        let wh = add_webhook(&server.store, &receiver.url(), |_| {}).await;
        push_many(&server, 200).await;
        receiver.wait_for(200, WAIT).await;
        assert!(
            receiver.max_in_flight() >= 16,
            "a receiver answering 2xx in 200 ms gets more than the 4 it starts with: {}",
            receiver.max_in_flight()
        );
        let grown = window(&server.store, &wh.id).await;
        assert!(grown >= 16, "the health shows the grown window: {grown}");

        // Now it refuses everything with 429: each refusal halves the window.
        receiver.set_default(Reply::status(429));
        server.notify_ok(&push("acme/app", "2.0")).await;
        receiver.wait_for(206, WAIT).await; // 1 + 5 retries
        tokio::time::sleep(Duration::from_millis(300)).await; // the last result recorded
        let shrunk = window(&server.store, &wh.id).await;
        assert!(
            shrunk * 8 <= grown,
            "six 429s in a row took the window from {grown} to {shrunk}"
        );
        server.stop().await;
    }
);

store_test!(
    a_receiver_that_sheds_load_is_held_near_what_it_takes,
    async |db: &TestDb| {
        let receiver = Receiver::start().await;
        // It takes 8 at once, 200 ms each: slower than events arrive, so the window is
        // pushed against its limit.
        receiver.set_default(Reply::status(204).after(Duration::from_millis(200)));
        receiver.set_capacity(8);
        let server = TestServer::start(db, fast).await;
        add_webhook(&server.store, &receiver.url(), |_| {}).await;
        push_many(&server, 200).await;
        receiver.wait_for(200, WAIT).await;
        let shed = receiver.shed();
        assert!(shed > 0, "the window found the receiver's limit");
        assert!(
            shed * 5 < 200,
            "after the first refusals the window stays near the limit: {shed} refused for 200 delivered"
        );
        server.stop().await;
    }
);

store_test!(
    the_owners_max_concurrency_is_never_exceeded,
    async |db: &TestDb| {
        let receiver = Receiver::start().await;
        receiver.set_default(Reply::status(204).after(Duration::from_millis(50)));
        let server = TestServer::start(db, fast).await;
        add_webhook(&server.store, &receiver.url(), |w| {
            w.max_concurrency = Some(3)
        })
        .await;
        push_many(&server, 60).await;
        receiver.wait_for(60, WAIT).await;
        assert_eq!(
            receiver.max_in_flight(),
            3,
            "at most 3 at once, and all 3 used"
        );
        server.stop().await;
    }
);

store_test!(
    the_owners_rate_limit_is_never_exceeded,
    async |db: &TestDb| {
        let receiver = Receiver::start().await;
        let server = TestServer::start(db, fast).await;
        // 5 per second: a start every 200 ms.
        add_webhook(&server.store, &receiver.url(), |w| {
            w.rate_limit_milli = Some(5_000)
        })
        .await;
        push_many(&server, 12).await;
        let got = receiver.wait_for(12, WAIT).await;
        for pair in got.windows(6) {
            let span = pair[5].at - pair[0].at;
            assert!(
                span >= Duration::from_millis(950),
                "six deliveries within {span:?}: more than 5 per second"
            );
        }
        server.stop().await;
    }
);

store_test!(
    retry_after_pauses_the_whole_endpoint,
    async |db: &TestDb| {
        let receiver = Receiver::start().await;
        receiver.script([Reply::status(429).header("retry-after", "2")]);
        let server = TestServer::start(db, fast).await;
        add_webhook(&server.store, &receiver.url(), |_| {}).await;
        server.notify_ok(&push("acme/app", "1.0")).await;
        let first = receiver.wait_for(1, WAIT).await;
        // Another event for the same endpoint waits out the pause too.
        tokio::time::sleep(Duration::from_millis(200)).await;
        server.notify_ok(&push("acme/app", "1.1")).await;
        let got = receiver.wait_for(3, WAIT).await;
        for later in &got[1..] {
            let gap = later.at - first[0].at;
            assert!(
                gap >= Duration::from_millis(1900),
                "a request {gap:?} after the 429 that asked for 2 s"
            );
        }
        server.stop().await;
    }
);

store_test!(
    owners_set_and_clear_limits_over_the_api_with_field_errors,
    async |db: &TestDb| {
        use hookline::api::proto::{GetWebhookRequest, UpdateWebhookRequest};
        use hookline::store::TokenKind;
        use tonic::Code;

        use crate::api::{create, hook};
        use crate::harness::api::expect_code;

        let server = TestServer::start(db, crate::harness::server::with_api).await;
        let (_, token) = server.token(TokenKind::Namespace, "acme").await;
        let mut api = server.api_client(Some(&token)).await;
        for (field, tweak) in [
            (
                "webhook.max_concurrency",
                Box::new(|w: &mut hookline::api::proto::Webhook| w.max_concurrency = Some(0))
                    as Box<dyn Fn(&mut hookline::api::proto::Webhook)>,
            ),
            (
                "webhook.rate_limit",
                Box::new(|w: &mut hookline::api::proto::Webhook| w.rate_limit = Some(-1.0)),
            ),
            (
                "webhook.rate_limit",
                Box::new(|w: &mut hookline::api::proto::Webhook| w.rate_limit = Some(f64::NAN)),
            ),
        ] {
            let mut w = hook("limited", "https://example.com/hook");
            tweak(&mut w);
            let refused = expect_code(
                api.create_webhook(hookline::api::proto::CreateWebhookRequest {
                    webhook: Some(w),
                    secret: String::new(),
                })
                .await,
                Code::InvalidArgument,
            );
            assert!(
                refused.message().starts_with(field),
                "{}",
                refused.message()
            );
        }
        let mut w = hook("limited", "https://example.com/hook");
        w.max_concurrency = Some(2);
        w.rate_limit = Some(0.5);
        let (created, _) = create(&mut api, w).await;
        assert_eq!(
            (created.max_concurrency, created.rate_limit),
            (Some(2), Some(0.5))
        );
        // Clearing one leaves the other.
        api.update_webhook(UpdateWebhookRequest {
            webhook: Some(hookline::api::proto::Webhook {
                id: created.id.clone(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["rate_limit".into()],
            }),
        })
        .await
        .expect("update");
        let got = api
            .get_webhook(GetWebhookRequest {
                id: created.id.clone(),
            })
            .await
            .expect("get")
            .into_inner()
            .webhook
            .expect("webhook");
        assert_eq!((got.max_concurrency, got.rate_limit), (Some(2), None));
    }
);
