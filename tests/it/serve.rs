//! `hookline serve` as an operator first runs it: no configuration, an empty directory.

use std::time::Duration;

use crate::harness::process::free_addr;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_no_configuration_creates_its_database_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("dir");
    // Only the port is moved off 8080, so parallel tests cannot collide; the database
    // and everything else are defaults.
    let addr = free_addr();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hookline"))
        .arg("serve")
        .current_dir(dir.path())
        .env("HOOKLINE_INGEST_ADDR", addr.to_string())
        .env("HOOKLINE_API_ADDR", free_addr().to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
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
}
