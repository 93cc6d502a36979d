//! One receiver, one set of limits: with two and three real dispatcher processes on one
//! PostgreSQL, each webhook is served by one of them at a time (`dispatch/serving.rs`), so
//! an owner's `max_concurrency`, `rate_limit` and a receiver's `Retry-After` hold across
//! replicas, webhooks spread over the dispatchers, and move without a request twice in
//! flight or an ordered lane out of order when one dies or arrives.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hookline::config::Role;
use hookline::store::{QueueStats, Webhook, now_ms};

use crate::harness::db::{Backend, TestDb};
use crate::harness::process::{Hookline, free_addr};
use crate::harness::receiver::{Receiver, Reply};
use crate::harness::server::TestServer;
use crate::store_contract::webhook;

/// One ingest (in this process) and dispatcher processes, on one PostgreSQL.
struct Cluster {
    db: TestDb,
    ingest: TestServer,
    dispatchers: Vec<(Hookline, SocketAddr)>,
}

impl Cluster {
    async fn start(dispatchers: usize) -> Cluster {
        let db = TestDb::new(Backend::Postgres).await;
        let ingest = TestServer::start(&db, |c| c.roles = vec![Role::Ingest]).await;
        let mut cluster = Cluster {
            db,
            ingest,
            dispatchers: Vec::new(),
        };
        for _ in 0..dispatchers {
            cluster.add_dispatcher().await;
        }
        cluster
    }

    /// Starts one more `serve --roles dispatcher`, scraped on its own admin address.
    async fn add_dispatcher(&mut self) {
        let admin = free_addr();
        let admin_s = admin.to_string();
        let process = Hookline::spawn(&[
            "serve",
            "--roles",
            "dispatcher",
            "--db",
            &self.db.url,
            "--admin-addr",
            &admin_s,
            "--poll-interval",
            "200ms",
            "--retry-schedule",
            "200ms,200ms,200ms,200ms,200ms",
        ]);
        process.wait_healthy(admin).await;
        self.dispatchers.push((process, admin));
    }

    /// Registers a webhook to `receiver`, shaped by `tweak`; returns its id.
    async fn webhook(&self, receiver: &Receiver, tweak: impl FnOnce(&mut Webhook)) -> String {
        let (mut wh, secret) = webhook("acme", &receiver.url());
        tweak(&mut wh);
        let store = &self.ingest.store;
        store.insert_webhook(&wh, &secret).await.expect("webhook");
        wh.id
    }

    /// Posts pushes `numbers` of `acme/app`, push `i` with tag `tag(i)` and a digest that
    /// carries `i`, so a receiver can tell the order they were pushed in.
    async fn push(&self, numbers: std::ops::Range<usize>, tag: impl Fn(usize) -> String) {
        for i in numbers {
            let body = serde_json::json!({"events": [{
                "id": hookline::ids::new_id("reg"),
                "action": "push",
                "target": {"repository": "acme/app", "tag": tag(i), "digest": format!("sha256:{i:064x}"),
                           "mediaType": "application/vnd.oci.image.manifest.v1+json"},
                "request": {"host": "127.0.0.1:5000"}
            }]});
            self.ingest.notify_ok(&body.to_string()).await;
        }
    }

    /// Waits until `n` deliveries succeeded in the database.
    async fn wait_succeeded(&self, n: i64, within: Duration) {
        self.wait_stats(within, |stats| stats.succeeded >= n).await;
    }

    /// Waits until the queue's counts satisfy `done`, and returns them.
    async fn wait_stats(&self, within: Duration, done: impl Fn(&QueueStats) -> bool) -> QueueStats {
        let deadline = Instant::now() + within;
        loop {
            let stats = self
                .ingest
                .store
                .queue_stats(now_ms())
                .await
                .expect("stats");
            if done(&stats) {
                return stats;
            }
            assert!(Instant::now() < deadline, "{stats:?}\n{}", self.logs());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// How many webhooks each live dispatcher serves, by its `hookline_webhooks_served`.
    async fn served(&self) -> Vec<u64> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        let mut served = Vec::new();
        for (_, admin) in &self.dispatchers {
            let Ok(answer) = client.get(format!("http://{admin}/metrics")).send().await else {
                continue; // killed
            };
            let text = answer.text().await.expect("metrics");
            let value = text
                .lines()
                .find_map(|l| l.strip_prefix("hookline_webhooks_served "))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(0.0);
            served.push(value as u64);
        }
        served
    }

    fn logs(&self) -> String {
        self.dispatchers
            .iter()
            .enumerate()
            .map(|(i, (p, _))| format!("--- dispatcher {i} ---\n{}", p.log()))
            .collect()
    }

    async fn finish(self) {
        drop(self.dispatchers);
        self.ingest.stop().await;
        self.db.finish().await;
    }
}

/// The digest's number (see [`Cluster::push`]) and tag of what a receiver got.
fn pushed(received: &crate::harness::receiver::Received) -> (usize, String) {
    let body = received.json();
    let digest = body["digest"].as_str().expect("digest");
    let n = usize::from_str_radix(digest.trim_start_matches("sha256:"), 16).expect("number");
    (n, body["tag"].as_str().expect("tag").to_owned())
}

async fn max_concurrency_holds_across(dispatchers: usize) {
    let cluster = Cluster::start(dispatchers).await;
    let receiver = Receiver::start().await;
    receiver.set_default(Reply::ok().after(Duration::from_millis(100)));
    cluster
        .webhook(&receiver, |w| w.max_concurrency = Some(2))
        .await;
    let total = 200;
    cluster.push(0..total, |i| format!("1.{i}")).await;
    cluster
        .wait_succeeded(total as i64, Duration::from_secs(60))
        .await;
    assert_eq!(
        receiver.max_in_flight(),
        2,
        "max_concurrency 2 across {dispatchers} dispatchers\n{}",
        cluster.logs()
    );
    assert!(receiver.overlapping_ids().is_empty());
    cluster.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrency_holds_across_two_dispatchers() {
    max_concurrency_holds_across(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrency_holds_across_three_dispatchers() {
    max_concurrency_holds_across(3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_holds_across_three_dispatchers() {
    let cluster = Cluster::start(3).await;
    let receiver = Receiver::start().await;
    cluster
        .webhook(&receiver, |w| w.rate_limit_milli = Some(20_000))
        .await;
    // More than ten seconds' worth, so the receiver is never short of work.
    cluster.push(0..260, |i| format!("1.{i}")).await;
    let first = receiver.wait_for(1, Duration::from_secs(10)).await[0].at;
    tokio::time::sleep_until((first + Duration::from_millis(10_500)).into()).await;
    let in_ten_seconds = receiver
        .received()
        .iter()
        .filter(|r| r.at.duration_since(first) < Duration::from_secs(10))
        .count();
    assert!(
        (180..=220).contains(&in_ten_seconds),
        "rate_limit 20/s: {in_ten_seconds} requests in 10 s across 3 dispatchers\n{}",
        cluster.logs()
    );
    cluster.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_pauses_every_dispatcher() {
    let cluster = Cluster::start(3).await;
    let receiver = Receiver::start().await;
    receiver.set_default(Reply::ok().after(Duration::from_millis(20)));
    let mut replies: Vec<Reply> = (0..20)
        .map(|_| Reply::ok().after(Duration::from_millis(20)))
        .collect();
    replies.push(Reply::status(429).header("retry-after", "2"));
    receiver.script(replies);
    cluster.webhook(&receiver, |_| {}).await;
    let total = 80;
    cluster.push(0..total, |i| format!("1.{i}")).await;
    cluster
        .wait_succeeded(total as i64, Duration::from_secs(60))
        .await;
    let got = receiver.received();
    let refused = got[20].at;
    // What started before the 429 reached its dispatcher may still arrive just after it;
    // nothing started after.
    let started_after = refused + Duration::from_millis(200);
    let next = got[21..]
        .iter()
        .map(|r| r.at)
        .find(|at| *at > started_after)
        .expect("requests after the pause");
    assert!(
        next.duration_since(refused) >= Duration::from_millis(1980),
        "a request {:?} after the 429 with Retry-After: 2\n{}",
        next.duration_since(refused),
        cluster.logs()
    );
    cluster.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_spread_over_dispatchers_and_move_when_one_dies_or_arrives() {
    let mut cluster = Cluster::start(2).await;
    let receiver = Receiver::start().await;
    receiver.set_default(Reply::ok().after(Duration::from_millis(30)));
    // Ordered, at most two at once: a move must keep both.
    cluster
        .webhook(&receiver, |w| {
            w.ordered = true;
            w.max_concurrency = Some(2);
        })
        .await;
    let others = Receiver::start().await;
    for _ in 0..11 {
        cluster.webhook(&others, |_| {}).await;
    }
    let spread = |served: Vec<u64>, live: usize| {
        served.len() == live && served.iter().all(|n| *n > 0) && served.iter().sum::<u64>() == 12
    };
    wait_until(&cluster, "both dispatchers serve a share", |s| spread(s, 2)).await;

    // Five tags, ten pushes each, interleaved: five ordered lanes of ten.
    let total = 50;
    let tags = |i: usize| format!("t{}", i % 5);
    cluster.push(0..total / 2, tags).await;
    cluster.dispatchers[0].0.kill9();
    cluster.push(total / 2..total, tags).await;
    cluster.add_dispatcher().await;
    cluster
        .wait_succeeded((total * 12) as i64, Duration::from_secs(60))
        .await;
    wait_until(&cluster, "the survivor and the newcomer share", |s| {
        spread(s, 2)
    })
    .await;

    assert!(
        receiver.max_in_flight() <= 2,
        "{}",
        receiver.max_in_flight()
    );
    assert!(receiver.overlapping_ids().is_empty());
    // Each lane in push order: a delivery the killed dispatcher had in flight may arrive
    // again, right after itself, never after a later one.
    let mut lanes: HashMap<String, Vec<usize>> = HashMap::new();
    for r in receiver.received() {
        let (n, tag) = pushed(&r);
        let lane = lanes.entry(tag).or_default();
        if lane.last() != Some(&n) {
            lane.push(n);
        }
    }
    assert_eq!(lanes.len(), 5);
    for (tag, lane) in &lanes {
        let expected: Vec<usize> = (0..total).filter(|i| tags(*i) == *tag).collect();
        assert_eq!(lane, &expected, "lane {tag} in push order");
    }
    cluster.finish().await;
}

/// Waits until the dispatchers' served counts satisfy `ok`.
async fn wait_until(cluster: &Cluster, what: &str, ok: impl Fn(Vec<u64>) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let served = cluster.served().await;
        if ok(served.clone()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: served {served:?}\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_of_a_deleted_webhook_end_unsent_though_nobody_serves_it() {
    let cluster = Cluster::start(2).await;
    let receiver = Receiver::start().await;
    receiver.set_default(Reply::ok().after(Duration::from_secs(1)));
    let id = cluster
        .webhook(&receiver, |w| w.max_concurrency = Some(1))
        .await;
    cluster.push(0..5, |i| format!("1.{i}")).await;
    receiver.wait_for(1, Duration::from_secs(10)).await;
    // Every event fanned out first (a dispatcher does it after ingest answered): an event
    // fanned out after the delete would rightly get no delivery at all.
    let all_fanned_out =
        |stats: &QueueStats| stats.unfanned_events == 0 && stats.pending + stats.succeeded == 5;
    cluster
        .wait_stats(Duration::from_secs(10), all_fanned_out)
        .await;
    assert!(
        cluster
            .ingest
            .store
            .delete_webhook(&id)
            .await
            .expect("delete")
    );
    let stats = cluster
        .wait_stats(Duration::from_secs(20), |stats| stats.pending == 0)
        .await;
    // The one in flight finished; the four waiting ended without a request.
    assert_eq!((stats.succeeded, stats.failed), (1, 4), "{stats:?}");
    assert_eq!(receiver.received().len(), 1);
    cluster.finish().await;
}
