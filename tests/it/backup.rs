//! `hookline backup PATH` on a live SQLite database: ingest and dispatch keep running while
//! the real CLI copies it, and the copy opens, migrates and holds every event ingest
//! acknowledged before the backup began. A PostgreSQL URL is refused with what to use.

use std::collections::HashSet;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hookline::store::{self, OpenOptions};
use sqlx::Connection;
use tokio_util::sync::CancellationToken;

use crate::harness::db::{Backend, TestDb};
use crate::harness::envelopes::push;
use crate::harness::receiver::Receiver;
use crate::harness::server::TestServer;
use crate::store_contract::webhook;

/// The registry event id of a one-event envelope from `push`.
fn registry_event_id(envelope: &str) -> String {
    let json: serde_json::Value = serde_json::from_str(envelope).expect("envelope json");
    json["events"][0]["id"]
        .as_str()
        .expect("event id")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_during_load_holds_every_acknowledged_event_and_opens() {
    let db = TestDb::new(Backend::Sqlite).await;
    let receiver = Receiver::start().await;
    let server = TestServer::start(&db, |_| {}).await;
    let (hook, secret) = webhook("acme", &receiver.url());
    server
        .store
        .insert_webhook(&hook, &secret)
        .await
        .expect("insert webhook");

    // Load: envelopes one after another until told to stop (bounded: at most 20 000 or 60 s).
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = CancellationToken::new();
    let server = Arc::new(server);
    let load = {
        let (server, acknowledged, stop) = (server.clone(), acknowledged.clone(), stop.clone());
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            for i in 0..20_000 {
                if stop.is_cancelled() || tokio::time::Instant::now() > deadline {
                    break;
                }
                let envelope = push("acme/app", &format!("1.{i}"));
                server.notify_ok(&envelope).await;
                let mut acked = acknowledged.lock().expect("lock");
                acked.push(registry_event_id(&envelope));
            }
        })
    };
    // Let some events in, and some deliveries out, before the backup starts.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while acknowledged.lock().expect("lock").len() < 200 {
        assert!(tokio::time::Instant::now() < deadline, "load too slow");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    receiver.wait_for(50, Duration::from_secs(30)).await;

    // A backup of this small database can finish before the next notify is answered on a
    // busy machine, which proves nothing either way: back up again (bounded) until one ran
    // while ingest acknowledged something; that copy is the one checked below.
    let dir = tempfile::tempdir().expect("dir");
    let mut tries = 0;
    let (copy, before, backup, during) = loop {
        tries += 1;
        let copy = dir.path().join(format!("backup-{tries}.db"));
        let before: HashSet<String> = acknowledged.lock().expect("lock").iter().cloned().collect();
        let backup = {
            let (url, copy) = (db.url.clone(), copy.clone());
            tokio::task::spawn_blocking(move || {
                Command::new(env!("CARGO_BIN_EXE_hookline"))
                    .args(["--db", &url, "backup"])
                    .arg(&copy)
                    .output()
                    .expect("run hookline backup")
            })
            .await
            .expect("backup task")
        };
        let during = acknowledged.lock().expect("lock").len() - before.len();
        if during > 0 || tries == 10 || !backup.status.success() {
            break (copy, before, backup, during);
        }
    };
    stop.cancel();
    load.await.expect("load task");
    let stdout = String::from_utf8_lossy(&backup.stdout);
    assert!(
        backup.status.success(),
        "backup failed: {stdout}{}",
        String::from_utf8_lossy(&backup.stderr)
    );
    assert!(stdout.contains("backed up"), "{stdout}");
    assert!(stdout.contains("back the key up apart"), "{stdout}");
    assert!(
        during > 0,
        "ingest acknowledged nothing while any of {tries} backups ran"
    );

    // A second backup never overwrites the first.
    let again = Command::new(env!("CARGO_BIN_EXE_hookline"))
        .args(["--db", &db.url, "backup"])
        .arg(&copy)
        .output()
        .expect("run hookline backup");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    // The copy opens and migrates like any database, and holds what was acknowledged.
    let copy_url = format!("sqlite://{}", copy.display());
    let restored = store::open(&OpenOptions::new(&copy_url))
        .await
        .expect("the copy opens and migrates");
    restored.close().await;
    let mut connection = sqlx::SqliteConnection::connect(&copy_url)
        .await
        .expect("open copy");
    let stored: HashSet<String> =
        sqlx::query_scalar::<_, String>("SELECT registry_event_id FROM events")
            .fetch_all(&mut connection)
            .await
            .expect("events")
            .into_iter()
            .collect();
    connection.close().await.expect("close");
    let missing: Vec<_> = before.difference(&stored).collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged events are missing from the backup",
        missing.len(),
        before.len()
    );

    match Arc::try_unwrap(server) {
        Ok(server) => server.stop().await,
        Err(_) => panic!("load task still holds the server"),
    }
}

#[tokio::test]
async fn backup_of_postgresql_says_what_to_use_instead() {
    let dir = tempfile::tempdir().expect("dir");
    let output = Command::new(env!("CARGO_BIN_EXE_hookline"))
        .args(["--db", "postgres://postgres@127.0.0.1:5432/none", "backup"])
        .arg(dir.path().join("x.db"))
        .output()
        .expect("run hookline backup");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("pg_dump"), "{stderr}");
    assert!(!dir.path().join("x.db").exists());
}
