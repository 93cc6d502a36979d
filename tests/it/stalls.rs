//! A write that waits says what it waits for: a notify whose commit waits on SQLite's
//! write lock, held by another process, logs that long before its bound (here raised to
//! 20 s, so the commit can be seen going through once the lock is free).

use std::time::{Duration, Instant};

use sqlx::Connection;

use crate::harness::db::{Backend, TestDb};
use crate::harness::process::{Hookline, free_addr};
use crate::replicas::notify_pushes;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_waiting_for_the_sqlite_write_lock_says_so_then_goes_through() {
    let db = TestDb::new(Backend::Sqlite).await;
    let addr = free_addr();
    let server = Hookline::serve(&db.url, "ingest", addr, &[]);
    server.wait_healthy(addr).await;

    // Another process's writer (as a CLI command or a tool would be) takes the lock.
    let mut other = sqlx::SqliteConnection::connect(&db.url)
        .await
        .expect("open the file");
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .expect("take the write lock");

    // Acknowledged (200) only once the lock is free: the task waits meanwhile.
    let notify = tokio::spawn(notify_pushes(addr, "1", 1));
    let deadline = Instant::now() + Duration::from_secs(3);
    while !server.log().contains("a database write has waited") {
        assert!(
            Instant::now() < deadline,
            "nothing logged about the wait\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = server.log();
    assert!(
        log.contains("SQLite's write lock (BEGIN IMMEDIATE), held by another process"),
        "says what it waits for\n{log}"
    );

    sqlx::query("ROLLBACK")
        .execute(&mut other)
        .await
        .expect("free the lock");
    assert!(
        notify.await.is_ok(),
        "the notify was not acknowledged\n{}",
        server.log()
    );
    assert!(
        server.log().contains("the slow database write step ended"),
        "{}",
        server.log()
    );
    other.close().await.expect("close");
    drop(server);
    db.finish().await;
}
