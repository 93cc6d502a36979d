//! Several dispatcher processes on one PostgreSQL, and graceful shutdown of a real process.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use hookline::config::Role;
use hookline::store::Store;

use crate::harness::db::{Backend, TestDb};
use crate::harness::process::{Hookline, free_addr};
use crate::harness::receiver::{Receiver, Reply};
use crate::harness::server::{REGISTRY_TOKEN, TestServer};
use crate::store_contract::webhook;
use crate::store_test;

fn push(tag: &str) -> String {
    serde_json::json!({"events": [{
        "id": hookline::ids::new_id("reg"),
        "action": "push",
        "target": {"repository": "acme/app", "tag": tag, "digest": "sha256:ab",
                   "mediaType": "application/vnd.oci.image.manifest.v1+json"},
        "request": {"host": "127.0.0.1:5000"}
    }]})
    .to_string()
}

fn dispatcher_args(db: &str) -> Vec<String> {
    [
        "serve",
        "--roles",
        "dispatcher",
        "--db",
        db,
        "--lease",
        "2s",
        "--poll-interval",
        "200ms",
        "--retry-schedule",
        "200ms,200ms,200ms",
    ]
    .into_iter()
    .map(String::from)
    .collect()
}

/// Distinct `webhook-id`s the receiver got.
fn distinct_ids(receiver: &Receiver) -> HashSet<String> {
    receiver
        .received()
        .iter()
        .map(|r| r.header("webhook-id"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_dispatcher_replicas_share_the_work_and_survive_a_kill() {
    let db = TestDb::new(Backend::Postgres).await;
    let receiver = Receiver::start().await;
    receiver.set_default(Reply::ok().after(Duration::from_millis(20)));
    let ingest = TestServer::start(&db, |c| c.roles = vec![Role::Ingest]).await;
    let (wh, secret) = webhook("acme", &receiver.url());
    ingest
        .store
        .insert_webhook(&wh, &secret)
        .await
        .expect("webhook");
    let args = dispatcher_args(&db.url);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut a = Hookline::spawn(&args);
    let b = Hookline::spawn(&args);

    let total = 200;
    for i in 0..total {
        ingest.notify_ok(&push(&format!("1.{i}"))).await;
        if i == total / 2 {
            // One replica dies mid-load, holding leases.
            a.kill9();
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while distinct_ids(&receiver).len() < total {
        assert!(
            Instant::now() < deadline,
            "only {} of {total} deliveries arrived\n--- replica b ---\n{}",
            distinct_ids(&receiver).len(),
            b.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        receiver.overlapping_ids().is_empty(),
        "in flight twice at once: {:?}",
        receiver.overlapping_ids()
    );
    // Every delivery ends succeeded in the database.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stats = ingest
            .store
            .queue_stats(hookline::store::now_ms())
            .await
            .expect("stats");
        if stats.succeeded == total as i64 {
            break;
        }
        assert!(Instant::now() < deadline, "{stats:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(b);
    ingest.stop().await;
    db.finish().await;
}

/// A real `hookline serve --roles ingest,dispatcher` process on `db`, with `extra` flags,
/// one webhook to `receiver`, and `pushes` envelopes accepted through its notify endpoint.
async fn serve_with_pushes(
    db: &TestDb,
    receiver: &Receiver,
    extra: &[&str],
    pushes: usize,
) -> (Hookline, Store) {
    let store = db.store().await;
    let (wh, secret) = webhook("acme", &receiver.url());
    store.insert_webhook(&wh, &secret).await.expect("webhook");
    let addr = free_addr();
    let server = Hookline::serve(&db.url, "ingest,dispatcher", addr, extra);
    server.wait_healthy(addr).await;
    notify_pushes(addr, "2", pushes).await;
    (server, store)
}

/// Posts `n` single-push envelopes (tags `<series>.0`, `<series>.1`, …) to the notify
/// endpoint at `addr`, each acknowledged.
pub(crate) async fn notify_pushes(addr: std::net::SocketAddr, series: &str, n: usize) {
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    for i in 0..n {
        let status = client
            .post(format!("http://{addr}/v1/notify"))
            .bearer_auth(REGISTRY_TOKEN)
            .header("content-type", "application/json")
            .body(push(&format!("{series}.{i}")))
            .send()
            .await
            .expect("notify")
            .status();
        assert_eq!(status, 200, "acknowledged");
    }
}

store_test!(
    sigterm_lets_in_flight_deliveries_finish,
    async |db: &TestDb| {
        let receiver = Receiver::start().await;
        receiver.set_default(Reply::ok().after(Duration::from_secs(1)));
        let (mut server, store) =
            serve_with_pushes(db, &receiver, &["--shutdown-grace", "10s"], 3).await;
        receiver.wait_for(3, Duration::from_secs(10)).await;
        assert_eq!(receiver.in_flight(), 3, "all three requests are in flight");
        server.sigterm();
        let status = server.wait_exit(Duration::from_secs(20)).await;
        assert!(status.success(), "clean exit: {status:?}\n{}", server.log());
        let stats = store
            .queue_stats(hookline::store::now_ms())
            .await
            .expect("stats");
        assert_eq!(
            (stats.succeeded, stats.pending),
            (3, 0),
            "in-flight work completed before exit\n{}",
            server.log()
        );
        store.close().await;
    }
);

store_test!(
    sigterm_past_the_grace_period_releases_leases,
    async |db: &TestDb| {
        let receiver = Receiver::start().await;
        receiver.set_default(Reply::ok().after(Duration::from_secs(30)));
        let extra = ["--shutdown-grace", "300ms", "--lease", "60s"];
        let (mut server, store) = serve_with_pushes(db, &receiver, &extra, 2).await;
        receiver.wait_for(2, Duration::from_secs(10)).await;
        server.sigterm();
        let status = server.wait_exit(Duration::from_secs(20)).await;
        assert!(status.success(), "clean exit: {status:?}\n{}", server.log());
        // Nothing lost, nothing counted: released, due now, no lease, no attempt recorded.
        let events = store.recent_events(10).await.expect("events");
        assert_eq!(events.len(), 2);
        for e in &events {
            for d in store.deliveries_for_event(&e.id).await.expect("deliveries") {
                assert_eq!(
                    (d.status.as_str(), d.lease_id.as_deref(), d.attempts),
                    ("pending", None, 0),
                    "{d:?}\n{}",
                    server.log()
                );
            }
        }
        // The next start delivers them at once (not after the 60 s lease).
        receiver.set_default(Reply::ok());
        let next = TestServer::start(db, |_| {}).await;
        receiver.wait_for(4, Duration::from_secs(10)).await;
        next.stop().await;
        store.close().await;
    }
);
