//! Enrichment from the registry against a real distribution registry, on both backends:
//! a two-platform push is delivered as one `image.pushed` naming its platforms, revision
//! label, config digests and total size, the same bytes on every attempt; a registry that
//! is down or stalls leaves the event delivered without enrichment, saying why; a registry
//! with token auth is read with the configured credentials, which appear in no log, error,
//! listing or payload (the real binary at debug logging for every crate).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use hookline::store::{NewToken, RegistryAccess, Store, TokenKind, Webhook};
use serde_json::Value;

use crate::harness::envelopes;
use crate::harness::process::{Hookline, free_addr};
use crate::harness::receiver::{Receiver, Reply};
use crate::harness::registry::Registry;
use crate::harness::server::{REGISTRY_TOKEN, TestServer};
use crate::harness::token_issuer::TokenIssuer;
use crate::store_contract::webhook;
use crate::store_test;

const WAIT: Duration = Duration::from_secs(30);
const PLATFORMS: [(&str, &str); 2] = [("linux", "amd64"), ("linux", "arm64")];

/// Adds a webhook for `acme/*` pushes to `url`; returns its id.
async fn add_webhook(store: &Store, url: &str, tweak: impl FnOnce(&mut Webhook)) -> String {
    let (mut hook, secret) = webhook("acme", url);
    // hookline's own reads are pulls the registry notifies too (user agent `hookline/…`).
    hook.event_types = vec!["image.pushed".into()];
    tweak(&mut hook);
    store
        .insert_webhook(&hook, &secret)
        .await
        .expect("insert webhook");
    hook.id
}

fn is_digest(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|d| d.starts_with("sha256:") && d.len() == 71)
}

/// docs/payloads/README.md shows a hookline body a real run of the test below delivered,
/// between these markers; `HOOKLINE_BLESS=1` rewrites it.
const EXAMPLE_START: &str = "<!-- enriched-example -->\n```json\n";
const EXAMPLE_END: &str = "\n```\n<!-- /enriched-example -->";

fn check_or_bless_example(body: &Value, bless: bool) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/payloads/README.md");
    let page = std::fs::read_to_string(&path).expect("docs/payloads/README.md");
    let start = page.find(EXAMPLE_START).expect("enriched example marker") + EXAMPLE_START.len();
    let end = page[start..].find(EXAMPLE_END).expect("end marker") + start;
    if bless {
        let pretty = serde_json::to_string_pretty(body).expect("json");
        let page = format!("{}{pretty}{}", &page[..start], &page[end..]);
        std::fs::write(&path, page).expect("write the example");
        return;
    }
    let committed: Value = serde_json::from_str(&page[start..end]).expect("the example is JSON");
    // Digests, ids and times differ from run to run; what the push says does not.
    for field in ["status", "platforms", "revision", "labels", "config_digest"] {
        assert_eq!(
            committed["enrichment"][field], body["enrichment"][field],
            "docs/payloads/README.md: the enriched example is stale (HOOKLINE_BLESS=1)"
        );
    }
}

store_test!(
    a_two_platform_push_is_delivered_enriched,
    async |db: &TestDb| {
        // The registry notifies an address picked now; hookline then listens there, and
        // reads the registry at the operator's URL (not the one its events name).
        let ingest = free_addr();
        let registry = Registry::start(&format!("http://{ingest}/v1/notify"), REGISTRY_TOKEN).await;
        let registry_url = format!("http://{}", registry.addr);
        let server = TestServer::start(db, |c| {
            c.ingest.addr = ingest;
            c.dispatch.poll_interval = Duration::from_millis(100);
            c.dispatch.retry_schedule = vec![Duration::from_millis(100)];
            // Generous: this test is about what is read, not how fast.
            c.dispatch.enrichment_timeout = Duration::from_secs(20);
            c.dispatch.default_registry = Some(RegistryAccess {
                url: registry_url,
                username: None,
                password: None,
            });
        })
        .await;
        let hookline = Receiver::start().await;
        // The first attempt fails: the retry must carry the same bytes.
        hookline.script([Reply::status(503)]);
        let cloudevents = Receiver::start().await;
        let dockerhub = Receiver::start().await;
        add_webhook(&server.store, &hookline.url(), |_| {}).await;
        add_webhook(&server.store, &cloudevents.url(), |w| {
            w.format = "cloudevents".into();
        })
        .await;
        add_webhook(&server.store, &dockerhub.url(), |w| {
            w.format = "dockerhub".into();
        })
        .await;

        let (index, children) = registry
            .push_multi_platform("acme/multi", "v2", &PLATFORMS, "abc123")
            .await;
        let got = hookline.wait_for(2, WAIT).await;
        assert_eq!(
            got[0].body, got[1].body,
            "every attempt carries the same bytes"
        );
        let body = got[1].json();
        assert_eq!(body["type"], "image.pushed", "{}", registry.log_tail());
        assert_eq!(body["digest"], index.as_str());
        let e = &body["enrichment"];
        assert_eq!(e["status"], "complete", "{body:#}");
        assert_eq!(
            e["platforms"],
            serde_json::json!(["linux/amd64", "linux/arm64"])
        );
        assert_eq!(e["revision"], "abc123");
        assert_eq!(e["labels"]["org.opencontainers.image.revision"], "abc123");
        assert_eq!(e["created"], "2026-12-01T00:00:00Z");
        assert!(
            e["config_digest"].is_null(),
            "an index names its images' configs"
        );
        let manifests = e["manifests"].as_array().expect("manifests");
        assert_eq!(manifests.len(), 2);
        let listed: Vec<&str> = manifests
            .iter()
            .filter_map(|m| m["digest"].as_str())
            .collect();
        assert_eq!(
            listed,
            children.iter().map(String::as_str).collect::<Vec<_>>()
        );
        assert!(
            manifests.iter().all(|m| is_digest(&m["config_digest"])),
            "{e:#}"
        );
        assert_ne!(manifests[0]["config_digest"], manifests[1]["config_digest"]);
        let parts: i64 = manifests.iter().filter_map(|m| m["size"].as_i64()).sum();
        let total = e["total_size"].as_i64().expect("total_size");
        assert!(total > 0 && total <= parts + 4096, "{total} vs {parts}");

        // CloudEvents carries the same enrichment; Docker Hub's shape is unchanged.
        let ce = cloudevents.wait_for(1, WAIT).await[0].json();
        assert_eq!(&ce["data"]["enrichment"], e);
        let hub = dockerhub.wait_for(1, WAIT).await;
        assert!(
            !String::from_utf8_lossy(&hub[0].body).contains("enrichment"),
            "dockerhub payloads keep their consumers' shape"
        );
        // Stored once on the event, as delivered.
        let event_id = body["id"].as_str().expect("id");
        let stored = server
            .store
            .event_enrichment(event_id)
            .await
            .expect("read")
            .expect("stored");
        assert_eq!(serde_json::from_str::<Value>(&stored).expect("json"), *e);

        let bless = std::env::var_os("HOOKLINE_BLESS").is_some() && db.url.starts_with("sqlite");
        check_or_bless_example(&body, bless);
        server.stop().await;
    }
);

/// Accepts connections and never answers: a registry that hangs.
async fn stalling_registry() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (addr, task)
}

store_test!(
    a_registry_that_is_down_or_stalls_leaves_the_event_unenriched_saying_why,
    async |db: &TestDb| {
        let (stalled, stall_task) = stalling_registry().await;
        // Bound but never listening: connections to it are refused, and no socket started
        // later in this test (the receiver) can be given its port, as a released one could.
        let down_socket = tokio::net::TcpSocket::new_v4().expect("socket");
        down_socket
            .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("bind");
        let down = down_socket.local_addr().expect("addr");
        // A registry token of its own for the stalling registry, stored before the server
        // starts (registry sources are read at start, then every 10 s).
        let slow_token = hookline::secret::generate_token();
        {
            let store = db.store().await;
            store
                .insert_token(&NewToken {
                    id: hookline::ids::new_id("tok"),
                    kind: TokenKind::Registry,
                    subject: "slow".into(),
                    hash: hookline::secret::hash_token(slow_token.expose()),
                    created_at: hookline::store::now_ms(),
                    registry: Some(RegistryAccess {
                        url: format!("http://{stalled}"),
                        username: None,
                        password: None,
                    }),
                })
                .await
                .expect("insert token");
            store.close().await;
        }
        let server = TestServer::start(db, |c| {
            c.dispatch.poll_interval = Duration::from_millis(100);
            c.dispatch.retry_schedule = vec![Duration::from_millis(100)];
            c.dispatch.enrichment_timeout = Duration::from_millis(300);
            c.dispatch.default_registry = Some(RegistryAccess {
                url: format!("http://{down}"),
                username: None,
                password: None,
            });
        })
        .await;
        let receiver = Receiver::start().await;
        receiver.script([Reply::status(503)]);
        add_webhook(&server.store, &receiver.url(), |_| {}).await;

        let json = "application/json";
        let (status, _) = server
            .notify(
                envelopes::push("acme/slow", "v1"),
                json,
                Some(slow_token.expose()),
            )
            .await;
        assert_eq!(status, 200);
        let got = receiver.wait_for(2, WAIT).await;
        assert_eq!(got[0].body, got[1].body, "the retry says the same");
        let body = got[0].json();
        assert_eq!(body["repository"], "acme/slow");
        assert_eq!(
            body["enrichment"],
            serde_json::json!({"status": "unavailable", "reason": "timeout"})
        );
        assert_eq!(body["source"], "slow");

        let (status, _) = server
            .notify(
                envelopes::push("acme/down", "v1"),
                json,
                Some(REGISTRY_TOKEN),
            )
            .await;
        assert_eq!(status, 200);
        let got = receiver.wait_for(3, WAIT).await;
        let body = got[2].json();
        assert_eq!(body["repository"], "acme/down");
        assert_eq!(
            body["enrichment"],
            serde_json::json!({"status": "unavailable", "reason": "unreachable"})
        );
        stall_task.abort();
        server.stop().await;
    }
);

const USER: &str = "reader";
const PASSWORD: &str = "pw-SECRET-registry-reader-61c2";
const WRONG_PASSWORD: &str = "pw-SECRET-wrong-9d04";
const NOTIFY_TOKEN: &str = "regtok-enrich-notify-5b7e";

fn cli(db_url: &str, args: &[&str]) -> (bool, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_hookline"))
        .args(args)
        .env("HOOKLINE_DB", db_url)
        .env("HOOKLINE_SECRET_KEY", crate::harness::db::TEST_KEY)
        .env("HOOKLINE_LOG_LEVEL", "debug")
        .output()
        .expect("run hookline");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

store_test!(
    a_registry_with_token_auth_is_read_with_the_configured_credentials_which_leak_nowhere,
    async |db: &TestDb| {
        let issuer = TokenIssuer::start(USER, PASSWORD).await;
        let (ingest, api) = (free_addr(), free_addr());
        let registry = Registry::start_with_token_auth(
            &format!("http://{ingest}/v1/notify"),
            NOTIFY_TOKEN,
            &issuer.registry_auth(),
        )
        .await;
        let dir = tempfile::tempdir().expect("dir");
        let (good, wrong) = (dir.path().join("good"), dir.path().join("wrong"));
        std::fs::write(&good, format!("{PASSWORD}\n")).expect("password file");
        std::fs::write(&wrong, WRONG_PASSWORD).expect("password file");
        let registry_url = format!("http://{}", registry.addr);
        let (good_path, wrong_path) = (
            good.to_str().expect("utf-8"),
            wrong.to_str().expect("utf-8"),
        );

        // A second source reads the same registry with a wrong password: refused.
        let mut outputs = Vec::new();
        let (ok, out, err) = cli(
            &db.url,
            &[
                "tokens",
                "create",
                "--registry",
                "wrongpw",
                "--registry-url",
                &registry_url,
                "--registry-username",
                USER,
                "--registry-password-file",
                wrong_path,
                "--output",
                "json",
            ],
        );
        assert!(ok, "{err}");
        let created: Value = serde_json::from_str(&out).expect("json");
        assert_eq!(created["registry_url"], registry_url.as_str());
        assert_eq!(created["registry_credentials"], true);
        let wrong_token = created["token"].as_str().expect("token").to_owned();
        outputs.push(err);
        for output in ["table", "json"] {
            let (ok, out, err) = cli(&db.url, &["tokens", "list", "--output", output]);
            assert!(ok, "{err}");
            assert!(out.contains(&registry_url), "{out}");
            outputs.extend([out, err]);
        }
        let (ok, out, err) = cli(
            &db.url,
            &[
                "tokens",
                "create",
                "--registry",
                "bad",
                "--registry-url",
                &format!("http://{USER}:{PASSWORD}@{}", registry.addr),
            ],
        );
        assert!(!ok, "a URL holding credentials is refused");
        assert!(err.contains("must not hold credentials"), "{err}");
        outputs.extend([out, err]);

        let mut server = Hookline::spawn(&[
            "serve",
            "--db",
            &db.url,
            "--ingest-addr",
            &ingest.to_string(),
            "--api-addr",
            &api.to_string(),
            "--registry-token",
            NOTIFY_TOKEN,
            "--registry-url",
            &registry_url,
            "--registry-username",
            USER,
            "--registry-password-file",
            good_path,
            "--enrichment-timeout",
            "20s",
            "--allow-cidrs",
            "127.0.0.0/8",
            "--poll-interval",
            "100ms",
            "--log-level",
            "debug",
        ]);
        server.wait_healthy(ingest).await;
        let store = db.store().await;
        let receiver = Receiver::start().await;
        add_webhook(&store, &receiver.url(), |_| {}).await;

        let (index, _) = registry
            .push_multi_platform("acme/private", "v1", &PLATFORMS, "feed42")
            .await;
        let got = receiver.wait_for(1, WAIT).await;
        let body = got[0].json();
        assert_eq!(body["digest"], index.as_str(), "{}", server.log());
        assert_eq!(body["enrichment"]["status"], "complete", "{}", server.log());
        assert_eq!(body["enrichment"]["revision"], "feed42");
        assert_eq!(
            body["enrichment"]["platforms"],
            serde_json::json!(["linux/amd64", "linux/arm64"])
        );
        assert!(
            issuer
                .scopes()
                .iter()
                .any(|s| s == "repository:acme/private:pull"),
            "hookline asked the token service for read access: {:?}",
            issuer.scopes()
        );

        // The same image through the source with the wrong password: refused, and said so.
        let envelope = envelopes::push("acme/private", "v2").replace(
            "sha256:ab09df3b044990449fbd0a7f841bbfba912842e49212a79a8e029b8370aa6fb0",
            &index,
        );
        let status = reqwest::Client::new()
            .post(format!("http://{ingest}/v1/notify"))
            .header("content-type", "application/json")
            .bearer_auth(&wrong_token)
            .body(envelope)
            .send()
            .await
            .expect("notify")
            .status();
        assert_eq!(status.as_u16(), 200);
        let got = receiver.wait_for(2, WAIT).await;
        let refused = got[1].json();
        assert_eq!(refused["source"], "wrongpw");
        assert_eq!(
            refused["enrichment"],
            serde_json::json!({"status": "unavailable", "reason": "refused"}),
            "{}",
            server.log()
        );
        let metrics = reqwest::get(format!("http://{ingest}/metrics"))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text");
        server.sigterm();
        server.wait_exit(Duration::from_secs(20)).await;

        let basic = |password: &str| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{password}"))
        };
        let mut secrets = vec![
            PASSWORD.to_owned(),
            WRONG_PASSWORD.to_owned(),
            basic(PASSWORD),
            basic(WRONG_PASSWORD),
        ];
        let tokens = issuer.issued();
        assert!(!tokens.is_empty());
        // A JWT's signature part is what makes it a credential.
        secrets.extend(
            tokens
                .iter()
                .filter_map(|t| t.rsplit('.').next().map(str::to_owned)),
        );
        let log = server.log();
        assert!(log.contains("DEBUG"), "the server ran at debug level");
        let bodies: Vec<String> = receiver
            .received()
            .iter()
            .map(|r| String::from_utf8_lossy(&r.body).into_owned())
            .collect();
        for secret in &secrets {
            assert!(
                !log.contains(secret.as_str()),
                "a credential is in the server log"
            );
            assert!(
                !metrics.contains(secret.as_str()),
                "a credential is in /metrics"
            );
            for text in outputs.iter().chain(&bodies) {
                assert!(
                    !text.contains(secret.as_str()),
                    "a credential in output: {text}"
                );
            }
        }
        store.close().await;
    }
);
