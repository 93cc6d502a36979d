//! The SSRF guard through a real server with NO allow-list: each refused destination is
//! refused at registration (INVALID_ARGUMENT on `webhook.url`) and, stored behind the
//! API's back, at send time (one attempt with outcome `refused`, the delivery failed at
//! once). Nothing ever connects: loopback destinations point at a [`Tripwire`] that
//! counts connections, and the other addresses are refused before any socket exists.
//! No traffic leaves this machine: names resolve through the test resolver.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hookline::api::proto::{CreateWebhookRequest, UpdateWebhookRequest};
use hookline::dispatch::ssrf::Guard;
use hookline::store::{DeliveryRecord, Store, TokenKind};
use prost_types::FieldMask;
use tonic::Code;

use super::{Tripwire, push};
use crate::api::hook;
use crate::harness::api::{expect_code, violated_fields};
use crate::harness::db::{Backend, TestDb};
use crate::harness::resolver::Names;
use crate::harness::server::{TestServer, with_api};
use crate::store_contract::webhook;

/// Public at the first lookup (registration), private from the second on (send time).
const REBINDING: &str = "rebind.test";

/// (URL, what the refusal says). `{p}` is a 127.0.0.1 tripwire, `{p6}` one on ::1.
const REFUSED: &[(&str, &str)] = &[
    (
        "http://127.0.0.1:{p}/hook",
        "127.0.0.1 is a loopback address (127.0.0.0/8)",
    ),
    (
        "http://10.0.0.1/hook",
        "10.0.0.1 is a private address (RFC 1918, 10.0.0.0/8)",
    ),
    (
        "http://172.16.0.1/hook",
        "172.16.0.1 is a private address (RFC 1918, 172.16.0.0/12)",
    ),
    (
        "https://192.168.1.1/hook",
        "192.168.1.1 is a private address (RFC 1918, 192.168.0.0/16)",
    ),
    (
        "http://169.254.169.254/latest/meta-data/",
        "169.254.169.254 is a link-local address (169.254.0.0/16, incl. cloud metadata)",
    ),
    (
        "http://100.64.0.1/hook",
        "100.64.0.1 is a carrier-grade NAT address (100.64.0.0/10)",
    ),
    (
        "http://0.0.0.0:{p}/hook",
        "0.0.0.0 is an unspecified or \"this network\" address (0.0.0.0/8)",
    ),
    ("http://[::1]:{p6}/hook", "::1 is a loopback address (::1)"),
    (
        "http://[::ffff:127.0.0.1]:{p}/hook",
        "::ffff:127.0.0.1 is an IPv6 form of a refused IPv4 address",
    ),
    (
        "http://[fd00::1]/hook",
        "fd00::1 is a unique local address (fc00::/7",
    ),
    (
        "http://[fd00:ec2::254]/latest/meta-data/",
        "fd00:ec2::254 is a unique local address",
    ),
    (
        "http://2130706433:{p}/hook",
        "127.0.0.1 is a loopback address",
    ),
    ("http://localhost:{p}/hook", "`localhost` resolves to "),
    (
        "http://private.test/hook",
        "`private.test` resolves to 10.0.0.1, a private address (RFC 1918, 10.0.0.0/8)",
    ),
];

/// The refusal's common tail.
const TAIL: &str = "; hookline does not send there unless an operator allow-lists it (allow_cidrs)";

fn names() -> Arc<Names> {
    Arc::new(
        Names::default()
            .script("private.test", &[&["10.0.0.1"]])
            .script("nowhere.test", &[&[]])
            .script("public.test", &[&["93.184.215.14"]])
            .script(REBINDING, &[&["93.184.215.14"], &["10.0.0.1"]]),
    )
}

/// A server with no allow-list and the scripted resolver; fast retries, so a refusal
/// that was retried would show a second attempt quickly.
async fn strict_server(db: &TestDb, names: Arc<Names>) -> TestServer {
    TestServer::start(db, move |c| {
        with_api(c);
        c.ssrf = Guard::new(vec![]).with_lookup(names);
        c.dispatch.retry_schedule = vec![Duration::from_millis(100); 5];
        c.dispatch.poll_interval = Duration::from_millis(100);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_destinations_are_refused_at_registration_and_at_send_time() {
    let db = TestDb::new(Backend::Sqlite).await;
    let names = names();
    let server = strict_server(&db, names.clone()).await;
    let v4 = Tripwire::on("127.0.0.1").await.expect("127.0.0.1");
    let v6 = Tripwire::on("::1").await;
    let table: Vec<(String, &str)> = REFUSED
        .iter()
        .map(|(url, why)| {
            let url = url
                .replace("{p6}", &v6.as_ref().map_or(9, |t| t.port).to_string())
                .replace("{p}", &v4.port.to_string());
            (url, *why)
        })
        .collect();
    let (_, token) = server.token(TokenKind::Namespace, "acme").await;
    let mut api = server.api_client(Some(&token)).await;

    // At registration.
    for (url, why) in &table {
        let result = api
            .create_webhook(CreateWebhookRequest {
                webhook: Some(hook("refused", url)),
                secret: String::new(),
            })
            .await;
        let status = expect_code(result, Code::InvalidArgument);
        assert_eq!(violated_fields(&status), ["webhook.url"], "{url}");
        let message = status.message();
        assert!(
            message.starts_with("webhook.url: destination refused: ")
                && message.contains(why)
                && message.ends_with(TAIL),
            "{url}: {message}"
        );
    }
    let first = api
        .create_webhook(CreateWebhookRequest {
            webhook: Some(hook("refused", &table[0].0)),
            secret: String::new(),
        })
        .await;
    assert_eq!(
        expect_code(first, Code::InvalidArgument).message(),
        format!(
            "webhook.url: destination refused: 127.0.0.1 is a loopback address (127.0.0.0/8){TAIL}"
        )
    );
    let nowhere = api
        .create_webhook(CreateWebhookRequest {
            webhook: Some(hook("nowhere", "https://nowhere.test/hook")),
            secret: String::new(),
        })
        .await;
    assert_eq!(
        expect_code(nowhere, Code::InvalidArgument).message(),
        "webhook.url: the host `nowhere.test` does not resolve (no addresses)"
    );
    // An update that points a webhook somewhere refused is refused too.
    let mut public = hook("public", "https://public.test/hook");
    public.enabled = Some(false); // never delivered to: nothing may leave the machine
    let created = api
        .create_webhook(CreateWebhookRequest {
            webhook: Some(public),
            secret: String::new(),
        })
        .await
        .expect("a public destination registers")
        .into_inner()
        .webhook
        .expect("webhook");
    let mut target = hook("public", "http://169.254.169.254/");
    target.id = created.id.clone();
    let moved = api
        .update_webhook(UpdateWebhookRequest {
            webhook: Some(target),
            update_mask: Some(FieldMask {
                paths: vec!["url".into()],
            }),
        })
        .await;
    let status = expect_code(moved, Code::InvalidArgument);
    assert!(
        status
            .message()
            .starts_with("webhook.url: destination refused: 169.254.169.254"),
        "{status:?}"
    );

    // At send time: the same destinations stored directly, plus a name that rebinds
    // between registration and send.
    let rebinding = api
        .create_webhook(CreateWebhookRequest {
            webhook: Some(hook("rebinding", &format!("http://{REBINDING}/hook"))),
            secret: String::new(),
        })
        .await
        .expect("public at registration")
        .into_inner()
        .webhook
        .expect("webhook");
    assert_eq!(names.lookups(REBINDING), 1);
    let mut expected = vec![(
        rebinding.id.clone(),
        format!("destination refused: `{REBINDING}` resolves to 10.0.0.1, a private address"),
    )];
    for (url, why) in &table {
        let (w, secret) = webhook("acme", url);
        server
            .store
            .insert_webhook(&w, &secret)
            .await
            .expect("insert");
        expected.push((w.id, format!("destination refused: {why}")));
    }
    server.notify_ok(&push("acme/app", "v1")).await;
    let deliveries = wait_all_failed(&server.store, expected.len()).await;
    // Longer than the retry schedule: a retried refusal would show a second attempt.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (webhook_id, why) in &expected {
        let delivery = deliveries
            .iter()
            .find(|d| &d.webhook_id == webhook_id)
            .expect("a delivery per webhook");
        let attempts = server.store.attempts(&delivery.id).await.expect("attempts");
        assert_eq!(attempts.len(), 1, "refused once, never retried: {why}");
        let attempt = &attempts[0];
        assert_eq!(attempt.outcome, "refused", "{why}");
        assert_eq!(attempt.status_code, None);
        let error = attempt.error.as_deref().unwrap_or_default();
        assert!(error.starts_with(why.as_str()), "{error} / {why}");
        let record = server
            .store
            .get_delivery(&delivery.id)
            .await
            .expect("get")
            .expect("exists");
        assert_eq!((record.status.as_str(), record.attempts), ("failed", 1));
    }
    assert_eq!(
        names.lookups(REBINDING),
        2,
        "one lookup to register, one to send"
    );
    assert_eq!(v4.accepted(), 0, "nothing connected to 127.0.0.1");
    if let Some(v6) = &v6 {
        assert_eq!(v6.accepted(), 0, "nothing connected to ::1");
    }
    let (_, metrics) = server.get("/metrics").await;
    assert!(
        metrics.contains("hookline_attempts_total{outcome=\"refused\"}"),
        "refusals are counted"
    );
    server.stop().await;
    db.finish().await;
}

/// Waits until the only event's `n` deliveries have all failed.
async fn wait_all_failed(store: &Store, n: usize) -> Vec<DeliveryRecord> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let events = store.recent_events(10).await.expect("events");
        if let Some(event) = events.first() {
            let deliveries = store
                .deliveries_for_event(&event.id)
                .await
                .expect("deliveries");
            if deliveries.len() == n && deliveries.iter().all(|d| d.status == "failed") {
                return deliveries;
            }
            assert!(
                Instant::now() < deadline,
                "not all {n} deliveries failed: {deliveries:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
