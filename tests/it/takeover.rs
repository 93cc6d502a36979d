//! Takeover: what a killed process held goes out again within seconds, not when its leases
//! expire (`dispatch/takeover.rs`), and a SQLite file is served by one process at a time.

use std::collections::HashSet;
use std::net::SocketAddr;

use std::time::{Duration, Instant};

use crate::harness::db::{Backend, TestDb};
use crate::harness::process::{Hookline, free_addr};
use crate::harness::receiver::{Receiver, Reply};
use crate::replicas::notify_pushes;
use crate::store_contract::webhook;

/// Deliveries in flight when the process is killed.
const IN_FLIGHT: usize = 20;

/// Far longer than the promise, so only a takeover can meet it.
const LEASE: &str = "60s";

/// The promise: what a dead process held goes out again within this of its death being
/// knowable (the restart on SQLite, the death on PostgreSQL).
const PROMISE: Duration = Duration::from_secs(5);

/// `hookline serve` with `roles` on `db`, ingest on `addr` when it runs ingest.
fn serve(db: &TestDb, roles: &str, addr: SocketAddr) -> Hookline {
    Hookline::serve(&db.url, roles, addr, &["--lease", LEASE])
}

/// Starts a server, registers one webhook to `receiver` (which holds each request until
/// long after the test), and has it hold the `IN_FLIGHT` deliveries: some in flight, the
/// rest leased in its lane behind them.
async fn busy_server(db: &TestDb, receiver: &Receiver) -> (Hookline, SocketAddr) {
    let store = db.store().await;
    let (wh, secret) = webhook("acme", &receiver.url());
    store.insert_webhook(&wh, &secret).await.expect("webhook");
    store.close().await;
    receiver.set_default(Reply::ok().after(Duration::from_secs(120)));
    let addr = free_addr();
    let server = serve(db, "ingest,dispatcher", addr);
    server.wait_healthy(addr).await;
    notify_pushes(addr, "3", IN_FLIGHT).await;
    // Nothing is answered: what arrived is still in flight when the test kills it.
    receiver.wait_for(1, Duration::from_secs(10)).await;
    (server, addr)
}

/// Waits until every one of the `IN_FLIGHT` deliveries succeeded, and returns how long
/// after `since` that was.
async fn all_delivered_after(db: &TestDb, since: Instant, log: impl Fn() -> String) -> Duration {
    let store = db.store().await;
    let deadline = since + Duration::from_secs(90);
    loop {
        let stats = store
            .queue_stats(hookline::store::now_ms())
            .await
            .expect("stats");
        if stats.succeeded == IN_FLIGHT as i64 {
            store.close().await;
            return since.elapsed();
        }
        assert!(Instant::now() < deadline, "{stats:?}\n{}", log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_on_the_same_sqlite_file_sends_what_the_killed_process_held_at_once() {
    let db = TestDb::new(Backend::Sqlite).await;
    let receiver = Receiver::start().await;
    let (mut server, addr) = busy_server(&db, &receiver).await;
    server.kill9();
    receiver.set_default(Reply::ok());
    let restarted = Instant::now();
    let next = serve(&db, "ingest,dispatcher", addr);
    let took = all_delivered_after(&db, restarted, || next.log()).await;
    assert!(
        took < PROMISE,
        "the last delivery arrived {took:?} after the restart\n{}",
        next.log()
    );
    assert!(
        next.log()
            .contains("gave back the leases of dispatchers that died"),
        "{}",
        next.log()
    );
    drop(next);
    db.finish().await;
}

/// A PostgreSQL dispatcher started beside a busy one, which is killed `after` it started:
/// what the dead one held arrives within the promise, and nothing twice while it lived.
async fn a_survivor_takes_over(after: Duration) {
    let db = TestDb::new(Backend::Postgres).await;
    let receiver = Receiver::start().await;
    let (mut server, _) = busy_server(&db, &receiver).await;
    let survivor = serve(&db, "dispatcher", free_addr());
    tokio::time::sleep(after).await;
    server.kill9();
    receiver.set_default(Reply::ok());
    let died = Instant::now();
    let took = all_delivered_after(&db, died, || survivor.log()).await;
    assert!(
        took < PROMISE,
        "the last delivery arrived {took:?} after the death\n{}",
        survivor.log()
    );
    // While its owner lived, nothing it held was sent by the survivor too.
    let before: Vec<String> = receiver
        .received()
        .iter()
        .filter(|r| r.at < died)
        .map(|r| r.header("webhook-id"))
        .collect();
    let distinct: HashSet<&String> = before.iter().collect();
    assert_eq!(
        distinct.len(),
        before.len(),
        "sent twice while its owner lived: {before:?}"
    );
    drop(survivor);
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_surviving_postgres_replica_sends_what_a_killed_one_held_within_seconds() {
    // Long after the survivor's start-up look: the death is found by its watch.
    a_survivor_takes_over(Duration::from_secs(4)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_death_between_the_survivors_first_looks_is_found_too() {
    // After its start-up release (at 2 s) and before its first watch (at 3 s): only the
    // owners it saw alive at its very start tell it someone died.
    a_survivor_takes_over(Duration::from_millis(2_500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_serve_on_one_sqlite_file_is_refused_and_says_why() {
    let db = TestDb::new(Backend::Sqlite).await;
    let addr = free_addr();
    let first = serve(&db, "ingest,dispatcher", addr);
    first.wait_healthy(addr).await;
    let mut second = serve(&db, "dispatcher", free_addr());
    let status = second.wait_exit(Duration::from_secs(20)).await;
    assert!(!status.success(), "refused\n{}", second.log());
    assert!(
        second.log().contains("another `hookline serve` is using"),
        "says why\n{}",
        second.log()
    );
    // The first one is untouched, and once it is gone the file can be served again.
    drop(first);
    let third_addr = free_addr();
    let third = serve(&db, "ingest,dispatcher", third_addr);
    third.wait_healthy(third_addr).await;
    drop(third);
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispatcher_whose_liveness_session_drops_is_not_taken_for_dead() {
    // A network blip, a proxy or an operator ends the liveness sessions of live
    // dispatchers (a database restart ends them with every other session): they reopen
    // theirs within the grace, so none takes another's leases and nothing is in flight
    // twice. (Whether a look falls inside the gap depends on timing; the grace's rule
    // itself is unit-tested in `dispatch/takeover.rs`. What this proves is the reopening:
    // a session not reopened would be taken for dead two seconds later.)
    let db = TestDb::new(Backend::Postgres).await;
    let receiver = Receiver::start().await;
    receiver.set_default(Reply::ok().after(Duration::from_millis(1500)));
    let store = db.store().await;
    let (wh, secret) = webhook("acme", &receiver.url());
    store.insert_webhook(&wh, &secret).await.expect("webhook");
    let ingest_addr = free_addr();
    let ingest = serve(&db, "ingest", ingest_addr);
    ingest.wait_healthy(ingest_addr).await;
    let a = serve(&db, "dispatcher", free_addr());
    let b = serve(&db, "dispatcher", free_addr());
    tokio::time::sleep(Duration::from_secs(3)).await;
    notify_pushes(ingest_addr, "4", IN_FLIGHT * 2).await;
    receiver.wait_for(4, Duration::from_secs(10)).await;

    let killer = sqlx::PgPool::connect(&db.url).await.expect("connect");
    let (killed,): (i64,) = sqlx::query_as(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_locks \
         WHERE locktype = 'advisory' AND classid = 1751870464 AND objsubid = 2 \
           AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_one(&killer)
    .await
    .expect("terminate the liveness sessions");
    killer.close().await;
    assert_eq!(killed, 2, "both dispatchers' liveness sessions");

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stats = store.queue_stats(hookline::store::now_ms()).await;
        if stats.is_ok_and(|s| s.succeeded == (IN_FLIGHT * 2) as i64) {
            break;
        }
        assert!(Instant::now() < deadline, "{}\n{}", a.log(), b.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        receiver.overlapping_ids().is_empty(),
        "in flight twice at once: {:?}\n--- a ---\n{}\n--- b ---\n{}",
        receiver.overlapping_ids(),
        a.log(),
        b.log()
    );
    for log in [a.log(), b.log()] {
        assert!(
            !log.contains("gave back the leases"),
            "a live dispatcher taken for dead:\n{log}"
        );
    }
    store.close().await;
    drop((ingest, a, b));
    db.finish().await;
}
