//! `hookline serve` as an operator first runs it: no configuration, an empty directory.

use std::time::Duration;

use crate::harness::process::free_addr;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_no_configuration_creates_its_database_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("dir");
    // Only the port is moved off 8080, so parallel tests cannot collide; the database
    // and everything else are defaults.
    let addr = free_addr();
    let log = tempfile::NamedTempFile::new().expect("log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hookline"))
        .arg("serve")
        .current_dir(dir.path())
        .env("HOOKLINE_INGEST_ADDR", addr.to_string())
        .env("HOOKLINE_API_ADDR", free_addr().to_string())
        .stdout(std::process::Stdio::null())
        .stderr(log.reopen().expect("log"))
        .spawn()
        .expect("spawn");
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let healthz = loop {
        if let Ok(r) = client.get(format!("http://{addr}/healthz")).send().await {
            break r.status().as_u16();
        }
        assert!(std::time::Instant::now() < deadline, "never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(healthz, 200);
    let readyz = client
        .get(format!("http://{addr}/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(readyz.status().as_u16(), 200);
    assert!(
        dir.path().join("hookline.db").exists(),
        "created ./hookline.db"
    );
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}");
    // The key that seals stored secrets was made beside the database, for its owner only,
    // and the log said so (once: a second start finds it).
    let key = dir.path().join("hookline.key");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&key).expect("key").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let logged = std::fs::read_to_string(log.path()).expect("log");
    assert!(logged.contains("made a new secret key file"), "{logged}");
}

/// PostgreSQL has no key by default: its replicas must share one, so `serve` refuses
/// without it and says how to make one.
#[test]
fn serve_on_postgresql_without_a_secret_key_refuses_saying_how_to_make_one() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_hookline"))
        .args([
            "serve",
            "--db",
            "postgres://postgres@127.0.0.1:5432/postgres",
        ])
        .env_remove("HOOKLINE_SECRET_KEY")
        .env_remove("HOOKLINE_SECRET_KEY_FILE")
        .output()
        .expect("run");
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("hookline keys generate"), "{said}");
}

/// A dispatcher-only process listens on nothing but `--admin-addr`, where it can be probed
/// and scraped: its own metrics (the queue gauges only dispatchers record) are there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispatcher_only_process_is_probed_and_scraped_on_its_admin_address() {
    use crate::harness::process::Hookline;

    let dir = tempfile::tempdir().expect("dir");
    let db = format!("sqlite://{}", dir.path().join("hookline.db").display());
    let admin = free_addr();
    let admin_s = admin.to_string();
    let server = Hookline::spawn(&[
        "serve",
        "--roles",
        "dispatcher",
        "--db",
        &db,
        "--admin-addr",
        &admin_s,
    ]);
    server.wait_healthy(admin).await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let readyz = client
        .get(format!("http://{admin}/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(readyz.status().as_u16(), 200);
    // The dispatcher's first queue sample lands within its poll interval (1 s).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let metrics = client
            .get(format!("http://{admin}/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("body");
        if metrics.contains("hookline_queue_pending") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no queue gauges on the admin address: {metrics}\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let notify = client
        .post(format!("http://{admin}/v1/notify"))
        .send()
        .await
        .expect("notify");
    assert_eq!(
        notify.status().as_u16(),
        404,
        "the admin address takes no events"
    );
    assert!(server.log().contains("admin listening"), "{}", server.log());
}
