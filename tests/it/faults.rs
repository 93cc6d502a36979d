//! Faults of the database are survived, not inherited: a SQLite file on a small filesystem
//! that fills up during a load answers only 2xx or 503 (with `Retry-After`) while it is full,
//! and ingest and delivery work again as soon as space is freed, with no restart and every
//! acknowledged event delivered.
//!
//! The same for PostgreSQL sessions killed mid-transaction (`pg_terminate_backend`, as a
//! failover or an operator does): no connection is reused in a broken state.
//!
//! The filesystem is a tmpfs the test mounts (root is needed: CI runs as root; elsewhere the
//! test says why it cannot run, and under `CI=true` that fails it).

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::harness::db::{Backend, TestDb};
use crate::harness::envelopes::push;
use crate::harness::receiver::Receiver;
use crate::harness::server::{REGISTRY_TOKEN, TestServer};
use crate::store_contract::webhook;

/// A tmpfs of a fixed size, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `mib` MiB, or says why it cannot (None) when not under CI.
    fn mount(mib: u32) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().expect("mount point");
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir.path())
            .output();
        match output {
            Ok(out) if out.status.success() => Some(Tmpfs { dir }),
            other => {
                let why = match other {
                    Ok(out) => String::from_utf8_lossy(&out.stderr).into_owned(),
                    Err(e) => e.to_string(),
                };
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "cannot mount a tmpfs (the full-disk test needs root): {why}"
                );
                eprintln!("skipping: cannot mount a tmpfs (run as root): {why}");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: the server's files may still be open while the test unwinds.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Writes `path` until the filesystem has no space left; returns the bytes written.
fn fill(path: &Path) -> u64 {
    let mut file = std::fs::File::create(path).expect("filler file");
    let mut written = 0u64;
    // Big chunks first, then small ones for the last partial pages (bounded: 64 MiB).
    for chunk in [1 << 20, 4096, 512] {
        let block = vec![0x5au8; chunk];
        while written < 64 << 20 {
            match file.write(&block) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(_) => break,
            }
        }
    }
    let _ = file.sync_all();
    written
}

/// Waits until every acknowledged tag has reached the receiver (at least once: an attempt
/// whose result could not be recorded during the fault is sent again after its lease).
async fn wait_all_delivered(receiver: &Receiver, acknowledged: &HashSet<String>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let delivered: HashSet<String> = receiver
            .received()
            .iter()
            .filter_map(|r| r.json()["tag"].as_str().map(str::to_owned))
            .collect();
        let missing: Vec<_> = acknowledged.difference(&delivered).collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} acknowledged events never arrived, e.g. {:?}",
            missing.len(),
            missing.iter().take(5).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (at most 10 s) until `/readyz` answers 200 after the fault ended (`since`).
async fn wait_ready(server: &TestServer, since: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while server.get("/readyz").await.0 != 200 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not ready within 10 s after {since}: {}",
            server.get("/readyz").await.1
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// POSTs one envelope; returns the status and its `Retry-After`.
async fn notify(server: &TestServer, envelope: &str) -> (u16, Option<String>) {
    let response = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
        .post(server.notify_url())
        .header(
            "content-type",
            "application/vnd.docker.distribution.events.v1+json",
        )
        .bearer_auth(REGISTRY_TOKEN)
        .body(envelope.to_owned())
        .send()
        .await
        .expect("notify request");
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (response.status().as_u16(), retry_after)
}

/// Single-event envelopes with fresh tags, and the tags whose envelope was acknowledged.
#[derive(Default)]
struct Load {
    next: u32,
    acknowledged: HashSet<String>,
}

impl Load {
    /// Sends the next envelope; only 200 or a 503 with `Retry-After` is an acceptable answer.
    async fn send(&mut self, server: &TestServer) -> u16 {
        let tag = format!("1.{}", self.next);
        self.next += 1;
        let (status, retry_after) = notify(server, &push("acme/app", &tag)).await;
        match status {
            200 => {
                self.acknowledged.insert(tag);
            }
            503 => assert_eq!(
                retry_after.as_deref(),
                Some("1"),
                "a 503 says when to retry"
            ),
            other => panic!("notify answered {other} (only 2xx or 503 are allowed)"),
        }
        status
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_503_and_everything_recovers_once_space_is_freed() {
    let Some(fs) = Tmpfs::mount(24) else { return };
    let db = fs.path().join("hookline.db");
    let receiver = Receiver::start().await;
    let server = TestServer::start_url(&format!("sqlite://{}", db.display()), |_| {}).await;
    let (hook, secret) = webhook("acme", &receiver.url());
    server
        .store
        .insert_webhook(&hook, &secret)
        .await
        .expect("insert webhook");

    let mut load = Load::default();

    // Some traffic while there is room.
    for _ in 0..20 {
        assert_eq!(load.send(&server).await, 200);
    }

    // The disk fills up under the load: every answer is 2xx or 503, and 503s come.
    let filler: PathBuf = fs.path().join("filler");
    fill(&filler);
    let mut refused = 0;
    for _ in 0..2_000 {
        if load.send(&server).await == 503 {
            refused += 1;
            if refused >= 20 {
                break;
            }
        } else {
            // A little space may still be left in the WAL; take more.
            fill(&fs.path().join(format!("filler-{}", load.next)));
        }
    }
    assert!(refused >= 20, "the full disk never refused an event");
    // Reads still work, but a process that cannot write is not ready, and says why.
    let (status, body) = server.get("/readyz").await;
    assert_eq!(status, 503, "not ready while writes fail: {body}");
    assert!(
        body.contains("writes to the database have failed"),
        "{body}"
    );
    assert!(body.contains("full"), "names the cause: {body}");

    // Space comes back: ingest works again within seconds, without a restart.
    for entry in std::fs::read_dir(fs.path()).expect("read dir") {
        let path = entry.expect("entry").path();
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("filler"))
        {
            std::fs::remove_file(&path).expect("free space");
        }
    }
    // Readiness comes back by itself (its probe write succeeds), before any notify is tried:
    // a load balancer that took the process out sends none until it is ready again.
    wait_ready(&server, "space was freed").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while load.send(&server).await != 200 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "ingest did not recover within 10 s of space being freed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for _ in 0..20 {
        assert_eq!(load.send(&server).await, 200);
    }
    let (status, body) = server.get("/readyz").await;
    assert_eq!(status, 200, "ready again: {body}");

    wait_all_delivered(&receiver, &load.acknowledged).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sessions_killed_mid_transaction_answer_503_and_everything_recovers() {
    let db = TestDb::new(Backend::Postgres).await;
    let receiver = Receiver::start().await;
    // A short lease: results lost with a killed session are sent again soon.
    let server = TestServer::start(&db, |c| c.dispatch.lease = Duration::from_secs(2)).await;
    let (hook, secret) = webhook("acme", &receiver.url());
    server
        .store
        .insert_webhook(&hook, &secret)
        .await
        .expect("insert webhook");
    let mut load = Load::default();
    for _ in 0..20 {
        assert_eq!(load.send(&server).await, 200);
    }

    // Kill every session of hookline's database, again and again, while the load runs.
    let name = reqwest::Url::parse(&db.url).expect("url").path()[1..].to_owned();
    let killer = sqlx::PgPool::connect(&db.url)
        .await
        .expect("killer connects");
    let kill = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                WHERE datname = $1 AND pid <> pg_backend_pid()";
    let mut killed = 0i64;
    let mut refused = 0;
    for round in 0..20 {
        let (n,): (i64,) = sqlx::query_as(kill)
            .bind(&name)
            .fetch_one(&killer)
            .await
            .expect("terminate sessions");
        killed += n;
        for _ in 0..5 {
            refused += usize::from(load.send(&server).await == 503);
        }
        if round % 5 == 4 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    killer.close().await;
    assert!(killed > 0, "no session was ever killed");
    eprintln!("killed {killed} sessions; {refused} notifies answered 503");

    // Once the killing stops, everything works again at once, with no restart.
    wait_ready(&server, "the killing stopped").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while load.send(&server).await != 200 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "ingest did not recover within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for _ in 0..20 {
        assert_eq!(load.send(&server).await, 200);
    }
    let (status, body) = server.get("/readyz").await;
    assert_eq!(status, 200, "ready again: {body}");
    wait_all_delivered(&receiver, &load.acknowledged).await;
    server.stop().await;
    db.finish().await;
}
