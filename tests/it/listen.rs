//! `hookline listen` end to end: the real binary receives real deliveries from a running
//! hookline, verifies and prints them, refuses forgeries with 401 and a reason, and runs
//! `--exec` once per event (a redelivered `webhook-id` is not run again); and a push to a
//! real registry reaches it in the Docker Hub shape, once.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hookline::config::Config;
use hookline::secret::Secret;
use serde_json::Value;

use crate::harness::process::free_addr;
use crate::harness::server::TestServer;
use crate::payloads::fixtures_dir;
use crate::store_contract::webhook;
use crate::store_test;

/// A running `hookline listen`, killed on drop; stdout and stderr in files.
struct Listen {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Listen {
    fn spawn(args: &[&str], env: &[(&str, &str)]) -> Listen {
        let dir = tempfile::tempdir().expect("dir");
        let port = free_addr().port();
        let out = std::fs::File::create(dir.path().join("stdout")).expect("stdout");
        let err = std::fs::File::create(dir.path().join("stderr")).expect("stderr");
        let child = Command::new(env!("CARGO_BIN_EXE_hookline"))
            .arg("listen")
            .args(["--port", &port.to_string()])
            .args(args)
            .envs(env.iter().copied())
            .env("OUT", dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn hookline listen");
        Listen { child, port, dir }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    fn out(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "listen never came up: {}",
                self.file("stderr")
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `file` has at least `n` lines; returns them.
    async fn lines(&self, file: &str, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let lines: Vec<String> = self.file(file).lines().map(str::to_owned).collect();
            if lines.len() >= n {
                return lines;
            }
            assert!(
                Instant::now() < deadline,
                "{file} has {} lines, expected {n}\nstderr: {}",
                lines.len(),
                self.file("stderr")
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Listen {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn fixture(prefix: &str) -> String {
    let name = std::fs::read_dir(fixtures_dir())
        .expect("fixtures")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .find(|n| n.starts_with(prefix))
        .expect("fixture");
    std::fs::read_to_string(fixtures_dir().join(name)).expect("fixture")
}

/// Signs `body` as hookline would, with `timestamp` (Unix seconds).
fn signed(
    http: &reqwest::Client,
    url: &str,
    secret: &Secret,
    id: &str,
    timestamp: i64,
    body: &str,
) -> reqwest::RequestBuilder {
    let key = hookline::dispatch::sign::secret_key(secret).expect("key");
    let signature = hookline::dispatch::sign::sign(&key, id, timestamp, body.as_bytes());
    http.post(url)
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .header("content-type", "application/json")
        .body(body.to_owned())
}

async fn refused(response: reqwest::Response) -> String {
    assert_eq!(response.status().as_u16(), 401);
    let body: Value =
        serde_json::from_str(&response.text().await.expect("body")).expect("json reason");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    body["reason"].as_str().expect("reason").to_owned()
}

fn fast(c: &mut Config) {
    c.dispatch.poll_interval = Duration::from_millis(100);
    c.dispatch.retry_schedule = vec![Duration::from_millis(100); 3];
}

const EXEC: &str = r#"sh -c 'cat > "$OUT/$HOOKLINE_DELIVERY_ID.json"; echo "$HOOKLINE_EVENT_TYPE $HOOKLINE_REPOSITORY $HOOKLINE_TAG $HOOKLINE_DIGEST $HOOKLINE_IMAGE $HOOKLINE_DELIVERY_ID" >> "$OUT/exec.log"'"#;

store_test!(
    listen_verifies_prints_and_runs_a_command_per_event,
    async |db: &TestDb| {
        let (_, stored_secret) = webhook("acme", "");
        let secret = stored_secret.secret.clone();
        // Secret from the environment, JSON lines, a command per event.
        let json = Listen::spawn(
            &["--output", "json", "--exec", EXEC],
            &[("HOOKLINE_LISTEN_SECRET", secret.expose())],
        );
        // Secret from the flag, lines for people.
        let table = Listen::spawn(&["--secret", secret.expose()], &[]);
        json.wait_ready().await;
        table.wait_ready().await;

        let server = TestServer::start(db, fast).await;
        for url in [json.url("deploy"), table.url("")] {
            let (w, s) = webhook("acme", &url);
            server.store.insert_webhook(&w, &s).await.expect("webhook");
        }
        server.notify_ok(&fixture("02")).await;
        server.notify_ok(&fixture("03")).await;

        // Printed as they arrive, verified.
        let lines = json.lines("stdout", 2).await;
        let events: Vec<Value> = lines
            .iter()
            .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
            .collect();
        let mut tags: Vec<&str> = events
            .iter()
            .map(|e| e["tag"].as_str().expect("tag"))
            .collect();
        tags.sort();
        assert_eq!(tags, ["1.0", "1.1"]);
        for e in &events {
            assert_eq!(e["type"], "image.pushed");
            assert_eq!(e["format"], "hookline");
            assert_eq!(e["repository"], "acme/app");
            let image = e["image"].as_str().expect("image");
            assert!(image.starts_with("127.0.0.1:5000/acme/app:1."), "{image}");
            assert!(e["delivery_id"].as_str().expect("id").starts_with("dlv_"));
            assert_eq!(e["payload"]["version"], "1");
        }
        let people = table.lines("stdout", 2).await;
        assert!(
            people
                .iter()
                .all(|l| l.contains("image.pushed") && l.contains("127.0.0.1:5000/acme/app:1.")),
            "{people:?}"
        );

        // --exec ran once per event: payload on stdin, key fields in the environment.
        let ran = json.lines("exec.log", 2).await;
        for line in &ran {
            let fields: Vec<&str> = line.split(' ').collect();
            assert_eq!(fields.len(), 6, "{line}");
            assert_eq!((fields[0], fields[1]), ("image.pushed", "acme/app"));
            assert!(fields[3].starts_with("sha256:"), "{line}");
            let stdin = std::fs::read_to_string(json.out().join(format!("{}.json", fields[5])))
                .expect("the command got the payload on stdin");
            let payload: Value = serde_json::from_str(&stdin).expect("payload");
            assert_eq!(payload["tag"], fields[2]);
            assert_eq!(payload["image"], fields[4]);
        }

        // Forgeries are refused, with the reason.
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        let body = r#"{"version":"1","type":"image.pushed","repository":"acme/app","tag":"evil"}"#;
        let now = hookline::store::now_ms() / 1000;
        let response = http
            .post(json.url("deploy"))
            .body(body)
            .send()
            .await
            .expect("post");
        assert_eq!(refused(response).await, "missing_headers");
        let forged = Secret::new("whsec_Zm9yZ2VkZm9yZ2VkZm9yZ2VkZm9yZ2VkZm9yZ2Vk");
        let response = signed(&http, &json.url("deploy"), &forged, "dlv_forged", now, body)
            .send()
            .await
            .expect("post");
        assert_eq!(refused(response).await, "bad_signature");
        let response = signed(
            &http,
            &json.url("deploy"),
            &secret,
            "dlv_old",
            now - 3600,
            body,
        )
        .send()
        .await
        .expect("post");
        assert_eq!(refused(response).await, "stale_timestamp");

        // A redelivery (same webhook-id) is acknowledged and not run again.
        for _ in 0..2 {
            let response = signed(&http, &json.url("deploy"), &secret, "dlv_again", now, body)
                .send()
                .await
                .expect("post");
            assert_eq!(response.status().as_u16(), 200);
        }
        let ran = json.lines("exec.log", 3).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(json.file("exec.log").lines().count(), 3, "{ran:?}");
        assert_eq!(
            json.lines("stdout", 3).await.len(),
            3,
            "forgeries are not printed"
        );

        for listener in [&json, &table] {
            let output = format!("{}{}", listener.file("stdout"), listener.file("stderr"));
            assert!(
                !output.contains(secret.expose()),
                "the secret is never printed"
            );
        }
        assert!(json.file("stderr").contains("stale"), "refusals are logged");
        server.stop().await;
    }
);

store_test!(
    a_real_registry_push_rolls_out_through_listen_in_docker_hub_shape,
    async |db: &TestDb| {
        // The seed's use case end to end: an image pushed to a real registry reaches a
        // `dockerhub` webhook once (its blob pushes and the later tag delete do not), and
        // `hookline listen --exec` gets a deployable image reference.
        let (_, stored_secret) = webhook("acme", "");
        let secret = stored_secret.secret.clone();
        let listen = Listen::spawn(
            &["--output", "json", "--exec", EXEC],
            &[("HOOKLINE_LISTEN_SECRET", secret.expose())],
        );
        listen.wait_ready().await;
        let server = TestServer::start(db, fast).await;
        let (mut w, s) = webhook("acme", &listen.url("rollout"));
        w.format = "dockerhub".into();
        server.store.insert_webhook(&w, &s).await.expect("webhook");
        let registry = crate::harness::registry::Registry::start(
            &server.notify_url(),
            crate::harness::server::REGISTRY_TOKEN,
        )
        .await;
        let digest = registry.push_image("acme/app", "2.0").await;
        let lines = listen.lines("stdout", 1).await;
        let event: Value = serde_json::from_str(&lines[0]).expect("json line");
        let host = registry.addr.to_string();
        assert_eq!(event["format"], "dockerhub");
        assert_eq!(event["type"], "image.pushed");
        assert_eq!(event["tag"], "2.0");
        assert_eq!(event["image"], format!("{host}/acme/app:2.0"));
        assert_eq!(
            event["payload"]["repository"]["repo_name"],
            format!("{host}/acme/app")
        );
        let ran = listen.lines("exec.log", 1).await;
        let fields: Vec<&str> = ran[0].split(' ').collect();
        assert_eq!(
            (fields[0], fields[2], fields[4]),
            (
                "image.pushed",
                "2.0",
                format!("{host}/acme/app:2.0").as_str()
            )
        );

        // A tag delete is stored but never delivered in the Docker Hub shape.
        registry.delete_tag("acme/app", "2.0").await;
        let deadline = Instant::now() + Duration::from_secs(30);
        while !server
            .store
            .recent_events(50)
            .await
            .expect("events")
            .iter()
            .any(|e| e.kind == hookline::event::EventType::ImageDeleted && e.tag.is_some())
        {
            assert!(
                Instant::now() < deadline,
                "no delete event\n{}",
                registry.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            listen.file("stdout").lines().count(),
            1,
            "one delivery: the tag push"
        );
        assert_eq!(listen.file("exec.log").lines().count(), 1);
        let pushed = server.store.recent_events(50).await.expect("events");
        assert!(
            pushed
                .iter()
                .any(|e| e.digest.as_deref() == Some(digest.as_str())),
            "the push was stored"
        );
        drop(registry);
        server.stop().await;
    }
);
