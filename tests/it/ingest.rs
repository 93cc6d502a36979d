//! The notify endpoint through real HTTP, on both backends: recorded fixtures, bad input,
//! deduplication, database outages, and a real registry end to end.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use hookline::event::{Event, EventType};
use hookline::store::{NewToken, Store, TokenKind};

use crate::harness::db::Backend;
use crate::harness::proxy::Proxy;
use crate::harness::registry::Registry;
use crate::harness::server::{REGISTRY_TOKEN, TestServer};
use crate::store_test;

const V1: &str = "application/vnd.docker.distribution.events.v1+json";

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/distribution")
}

fn fixture(prefix: &str) -> String {
    let dir = fixtures_dir();
    let entry = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .unwrap_or_else(|| panic!("no fixture {prefix}* in {}", dir.display()));
    std::fs::read_to_string(entry.path()).expect("read fixture")
}

async fn stored_events(store: &Store) -> Vec<Event> {
    let mut events = store.recent_events(1000).await.expect("recent events");
    events.reverse();
    events
}

/// What each recorded fixture must normalise to.
struct Expect {
    file: &'static str,
    kind: EventType,
    repository: &'static str,
    tag: Option<&'static str>,
    digest: Option<&'static str>,
    media_type: Option<&'static str>,
    references: usize,
    actor: Option<&'static str>,
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const OCTET: &str = "application/octet-stream";
const D_LAYER: &str = "sha256:dd0ef9ccca5407012802e027dc0966e536140d7098c591c98422b21ca89570d8";
const D_OCI: &str = "sha256:ab09df3b044990449fbd0a7f841bbfba912842e49212a79a8e029b8370aa6fb0";
const D_DOCKER: &str = "sha256:5f3e2beeaec1cbddb12b9be6d34a44fdd3c1461f918888b2bf2814625041dfa2";
const D_BLOB: &str = "sha256:2f5b65959ad78e451cc9e87d3d30acf69312bc45d05e7ae990206edd44127e6b";
const D_LIST: &str = "sha256:e42e7849b465c80de968937cfdedbb5d5822aea0a91816020bcf785a7a3dfa20";

#[rustfmt::skip]
const EXPECTED: &[Expect] = &[
    Expect { file: "01", kind: EventType::BlobPushed, repository: "acme/app", tag: None, digest: Some(D_LAYER), media_type: Some(OCTET), references: 0, actor: None },
    Expect { file: "02", kind: EventType::ImagePushed, repository: "acme/app", tag: Some("1.0"), digest: Some(D_OCI), media_type: Some(OCI_MANIFEST), references: 2, actor: None },
    Expect { file: "03", kind: EventType::ImagePushed, repository: "acme/app", tag: Some("1.1"), digest: Some(D_DOCKER), media_type: Some(DOCKER_MANIFEST), references: 2, actor: None },
    Expect { file: "04", kind: EventType::ImagePulled, repository: "acme/app", tag: Some("1.1"), digest: Some(D_DOCKER), media_type: Some(DOCKER_MANIFEST), references: 2, actor: None },
    Expect { file: "05", kind: EventType::BlobPulled, repository: "acme/app", tag: None, digest: Some(D_BLOB), media_type: Some(OCTET), references: 0, actor: None },
    Expect { file: "06", kind: EventType::BlobMounted, repository: "acme/tools/app", tag: None, digest: Some(D_BLOB), media_type: Some(OCTET), references: 0, actor: None },
    Expect { file: "07", kind: EventType::ImagePushed, repository: "acme/tools/app", tag: Some("latest"), digest: Some(D_DOCKER), media_type: Some(DOCKER_MANIFEST), references: 2, actor: None },
    Expect { file: "08", kind: EventType::ImageDeleted, repository: "acme/app", tag: None, digest: Some(D_OCI), media_type: None, references: 0, actor: None },
    Expect { file: "09", kind: EventType::ImageDeleted, repository: "acme/app", tag: Some("1.0"), digest: None, media_type: None, references: 0, actor: None },
    Expect { file: "10", kind: EventType::ImagePushed, repository: "acme/app", tag: Some("2.0"), digest: Some(D_LIST), media_type: Some("application/vnd.docker.distribution.manifest.list.v2+json"), references: 1, actor: None },
    Expect { file: "11", kind: EventType::ImagePushed, repository: "acme/web", tag: Some("3.2"), digest: Some(D_OCI), media_type: Some(OCI_MANIFEST), references: 2, actor: Some("alice") },
];

store_test!(
    every_recorded_fixture_is_accepted_and_normalised,
    async |db: &TestDb| {
        let server = TestServer::start(db, |_| {}).await;
        for expect in EXPECTED {
            let body = fixture(expect.file);
            let raw: serde_json::Value = serde_json::from_str(&body).expect("fixture JSON");
            let reply = server.notify_ok(&body).await;
            assert_eq!(reply["accepted"], 1, "fixture {}: {reply}", expect.file);
            let events = stored_events(&server.store).await;
            let e = events.last().expect("stored");
            let f = expect.file;
            assert_eq!(e.kind, expect.kind, "type of {f}");
            assert_eq!(e.repository, expect.repository, "repository of {f}");
            assert_eq!(e.tag.as_deref(), expect.tag, "tag of {f}");
            assert_eq!(e.digest.as_deref(), expect.digest, "digest of {f}");
            assert_eq!(
                e.media_type.as_deref(),
                expect.media_type,
                "media type of {f}"
            );
            assert_eq!(e.references.len(), expect.references, "references of {f}");
            assert_eq!(e.actor.as_deref(), expect.actor, "actor of {f}");
            assert_eq!(e.source, "default", "source of {f}");
            assert_eq!(
                e.registry_event_id,
                raw["events"][0]["id"].as_str().expect("id")
            );
            assert_eq!(
                e.original, raw["events"][0],
                "original kept verbatim for {f}"
            );
            assert!(
                e.registry_host
                    .as_deref()
                    .is_some_and(|h| h.starts_with("127.0.0.1:500"))
            );
            assert!(
                e.request_id.is_some() && e.request_useragent.is_some() && e.timestamp.is_some()
            );
            assert!(e.id.starts_with("evt_"));
        }
        assert_eq!(stored_events(&server.store).await.len(), EXPECTED.len());
        // References are complete descriptors.
        let events = stored_events(&server.store).await;
        let list = &events[9];
        assert_eq!(list.references[0].digest, D_DOCKER);
        assert_eq!(
            list.references[0].media_type.as_deref(),
            Some(DOCKER_MANIFEST)
        );
        assert_eq!(list.references[0].size, Some(423));
        server.stop().await;
    }
);

/// An envelope of `n` events built from fixture 02 with fresh registry ids.
fn envelope_of(ids: &[&str]) -> String {
    let template: serde_json::Value = serde_json::from_str(&fixture("02")).expect("fixture");
    let events: Vec<serde_json::Value> = ids
        .iter()
        .map(|id| {
            let mut e = template["events"][0].clone();
            e["id"] = serde_json::Value::String((*id).into());
            e
        })
        .collect();
    serde_json::json!({ "events": events }).to_string()
}

store_test!(
    bad_input_gets_an_exact_status_and_reason_and_stores_nothing,
    async |db: &TestDb| {
        let server = TestServer::start(db, |c| c.ingest.max_body_bytes = 64 * 1024).await;
        let good = envelope_of(&["bad-input-1"]);
        let missing_target =
            r#"{"events":[{"id":"x1","action":"push","timestamp":"2026-11-25T01:16:56Z"}]}"#;
        let oversized = format!("{{\"events\":[],\"pad\":\"{}\"}}", "x".repeat(70 * 1024));
        #[rustfmt::skip]
    // (case, body, content type, token, status, reason)
    type Case<'a> = (&'a str, String, &'a str, Option<&'a str>, u16, &'a str);
        let cases: Vec<Case> = vec![
            (
                "no token",
                good.clone(),
                V1,
                None,
                401,
                "missing `Authorization: Bearer <token>`",
            ),
            (
                "wrong token",
                good.clone(),
                V1,
                Some("not-the-token"),
                401,
                "not a valid registry token",
            ),
            (
                "wrong content type",
                good.clone(),
                "text/plain",
                Some(REGISTRY_TOKEN),
                415,
                "unsupported content type `text/plain`",
            ),
            (
                "malformed JSON",
                "{\"events\": [".into(),
                V1,
                Some(REGISTRY_TOKEN),
                400,
                "malformed JSON",
            ),
            (
                "no events array",
                "{\"foo\": 1}".into(),
                V1,
                Some(REGISTRY_TOKEN),
                400,
                "no `events` array",
            ),
            (
                "oversized body",
                oversized,
                V1,
                Some(REGISTRY_TOKEN),
                413,
                "larger than 65536 bytes",
            ),
        ];
        for (name, body, content_type, token, status, reason) in cases {
            // A body over the limit is answered 413 before it is all read, and the
            // connection closed: the client may see its write fail instead of the answer
            // (HTTP/1.1 cannot stop a sender mid-body). A registry sends again; so do we.
            let mut tries = 0;
            let (got, json) = loop {
                match server.try_notify(body.clone(), content_type, token).await {
                    Ok(answer) => break answer,
                    Err(error) if tries < 5 && name == "oversized body" => {
                        tries += 1;
                        eprintln!("{name}: {error}; sending again");
                    }
                    Err(error) => panic!("{name}: {error}"),
                }
            };
            assert_eq!(got, status, "{name}: {json}");
            let text = json["reason"].as_str().unwrap_or_default();
            assert!(
                text.contains(reason),
                "{name}: reason `{text}` lacks `{reason}`"
            );
            assert!(json["error"].is_string(), "{name}: JSON error code");
        }
        assert!(
            stored_events(&server.store).await.is_empty(),
            "nothing stored by refused requests"
        );

        // An event without `target` is rejected alone, with its reason; the envelope is 2xx.
        let (got, json) = server
            .notify(missing_target.to_owned(), V1, Some(REGISTRY_TOKEN))
            .await;
        assert_eq!(got, 200, "{json}");
        assert_eq!(json["accepted"], 0);
        assert!(
            json["rejected"][0]["reason"]
                .as_str()
                .unwrap_or_default()
                .contains("target"),
            "{json}"
        );
        assert_eq!(json["rejected"][0]["id"], "x1");

        // 1 bad + 2 good: the 2 good ones are stored.
        let mut mixed: serde_json::Value =
            serde_json::from_str(&envelope_of(&["mix-1", "mix-2"])).expect("json");
        let events = mixed["events"].as_array_mut().expect("events");
        events.insert(1, serde_json::json!({"id": "mix-bad", "action": "push", "target": {"repository": "Not Valid"}}));
        let body = mixed.to_string();
        let (got, json) = server
            .notify(body.clone(), "application/json", Some(REGISTRY_TOKEN))
            .await;
        assert_eq!(got, 200, "{json}");
        assert_eq!(
            (
                json["accepted"].as_u64(),
                json["rejected"][0]["index"].as_u64()
            ),
            (Some(2), Some(1))
        );
        assert_eq!(stored_events(&server.store).await.len(), 2);

        // The same envelope again (a registry retry): 2xx, nothing stored twice.
        let (got, json) = server.notify(body, V1, Some(REGISTRY_TOKEN)).await;
        assert_eq!(got, 200, "{json}");
        assert_eq!(
            (json["accepted"].as_u64(), json["duplicates"].as_u64()),
            (Some(0), Some(2))
        );
        assert_eq!(stored_events(&server.store).await.len(), 2);

        // The distribution 3.x media type is accepted too.
        let (got, _) = server
            .notify(
                envelope_of(&["v2-1"]),
                "application/vnd.docker.distribution.events.v2+json; charset=utf-8",
                Some(REGISTRY_TOKEN),
            )
            .await;
        assert_eq!(got, 200);
        let metrics = server.get("/metrics").await.1;
        assert!(
            metrics.contains("hookline_events_rejected_total"),
            "{metrics}"
        );
        server.stop().await;
    }
);

store_test!(
    registry_tokens_from_the_database_name_the_source,
    async |db: &TestDb| {
        let server = TestServer::start(db, |c| c.ingest.registry_token = None).await;
        let token = hookline::secret::generate_token();
        let record = NewToken {
            id: hookline::ids::new_id("tok"),
            kind: TokenKind::Registry,
            subject: "eu-mirror".into(),
            hash: hookline::secret::hash_token(token.expose()),
            created_at: 0,
            registry: None,
        };
        server.store.insert_token(&record).await.expect("token");
        let (status, json) = server
            .notify(envelope_of(&["db-token-1"]), V1, Some(token.expose()))
            .await;
        assert_eq!(status, 200, "{json}");
        assert_eq!(stored_events(&server.store).await[0].source, "eu-mirror");
        // The env token is not configured here, so it is refused.
        let (status, _) = server
            .notify(envelope_of(&["db-token-2"]), V1, Some(REGISTRY_TOKEN))
            .await;
        assert_eq!(status, 401);
        // A revoked token (never cached) is refused.
        let revoked = hookline::secret::generate_token();
        let mut r = record.clone();
        r.id = hookline::ids::new_id("tok");
        r.hash = hookline::secret::hash_token(revoked.expose());
        server.store.insert_token(&r).await.expect("token");
        server.store.revoke_token(&r.id, 1).await.expect("revoke");
        let (status, _) = server
            .notify(envelope_of(&["db-token-3"]), V1, Some(revoked.expose()))
            .await;
        assert_eq!(status, 401);
        // An API token is not a registry token.
        let api = hookline::secret::generate_token();
        let mut a = record.clone();
        a.id = hookline::ids::new_id("tok");
        a.kind = TokenKind::Admin;
        a.hash = hookline::secret::hash_token(api.expose());
        server.store.insert_token(&a).await.expect("token");
        let (status, _) = server
            .notify(envelope_of(&["db-token-4"]), V1, Some(api.expose()))
            .await;
        assert_eq!(status, 401);
        server.store.insert_events(&[]).await.expect("no-op");
        server.stop().await;
    }
);

store_test!(health_and_readiness, async |db: &TestDb| {
    let server = TestServer::start(db, |_| {}).await;
    assert_eq!(server.get("/healthz").await.0, 200);
    let (status, body) = server.get("/readyz").await;
    assert_eq!((status, body.contains("ready")), (200, true), "{body}");
    server.stop().await;
});

/// POSTs until 2xx, like a registry does (bounded).
async fn retry_like_a_registry(server: &TestServer, body: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, json) = server
            .notify(body.to_owned(), V1, Some(REGISTRY_TOKEN))
            .await;
        if status == 200 {
            return json;
        }
        assert_eq!(status, 503, "only 503 is expected while recovering: {json}");
        assert!(Instant::now() < deadline, "the database never came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_locked_by_another_process_answers_503_then_stores_the_retry_once() {
    let db = crate::harness::db::TestDb::new(Backend::Sqlite).await;
    let server = TestServer::start(&db, |c| {
        c.ingest.commit_timeout = Duration::from_millis(300)
    })
    .await;
    // Another process holds SQLite's write lock (as root, a read-only file would not stop us).
    let locker = sqlx::SqlitePool::connect(&db.url).await.expect("connect");
    let mut lock = locker.begin_with("BEGIN EXCLUSIVE").await.expect("lock");
    sqlx::query("UPDATE store_meta SET value = value WHERE key = 'webhooks_revision'")
        .execute(&mut *lock)
        .await
        .expect("take the write lock");
    let body = envelope_of(&["outage-sqlite-1"]);
    let (status, json) = server.notify(body.clone(), V1, Some(REGISTRY_TOKEN)).await;
    assert_eq!(status, 503, "{json}");
    assert!(
        json["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("retry later")
    );
    lock.rollback().await.expect("unlock");
    locker.close().await;
    let json = retry_like_a_registry(&server, &body).await;
    assert_eq!(
        json["accepted"].as_u64().unwrap_or(0) + json["duplicates"].as_u64().unwrap_or(0),
        1
    );
    assert_eq!(
        stored_events(&server.store).await.len(),
        1,
        "stored exactly once"
    );
    server.stop().await;
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_unreachable_answers_503_then_stores_the_retry_once() {
    let db = crate::harness::db::TestDb::new(Backend::Postgres).await;
    let url = reqwest::Url::parse(&db.url).expect("url");
    let upstream = format!(
        "{}:{}",
        url.host_str().expect("host"),
        url.port().unwrap_or(5432)
    );
    let upstream = tokio::net::lookup_host(upstream)
        .await
        .expect("resolve")
        .next()
        .expect("addr");
    let proxy = Proxy::start(upstream).await;
    let mut via_proxy = url.clone();
    via_proxy.set_port(Some(proxy.addr.port())).expect("port");
    via_proxy.set_host(Some("127.0.0.1")).expect("host");
    let server = TestServer::start_url(via_proxy.as_str(), |c| {
        c.ingest.commit_timeout = Duration::from_millis(500);
    })
    .await;
    let body = envelope_of(&["outage-pg-1"]);
    proxy.cut();
    let (status, json) = server.notify(body.clone(), V1, Some(REGISTRY_TOKEN)).await;
    assert_eq!(status, 503, "{json}");
    proxy.restore();
    let json = retry_like_a_registry(&server, &body).await;
    assert_eq!(
        json["accepted"].as_u64().unwrap_or(0) + json["duplicates"].as_u64().unwrap_or(0),
        1
    );
    let direct = db.store().await;
    assert_eq!(stored_events(&direct).await.len(), 1, "stored exactly once");
    direct.close().await;
    server.stop().await;
    db.finish().await;
}

store_test!(
    a_real_registry_push_and_tag_delete_are_stored,
    async |db: &TestDb| {
        let server = TestServer::start(db, |_| {}).await;
        let registry = Registry::start(&server.notify_url(), REGISTRY_TOKEN).await;
        let digest = registry.push_image("acme/app", "1.0").await;
        let deleted_digest = registry.delete_tag("acme/app", "1.0").await;
        assert_eq!(deleted_digest, digest);
        let deadline = Instant::now() + Duration::from_secs(30);
        let events = loop {
            let events = stored_events(&server.store).await;
            let pushed = events.iter().any(|e| e.kind == EventType::ImagePushed);
            let tag_deleted = events
                .iter()
                .any(|e| e.kind == EventType::ImageDeleted && e.tag.is_some());
            if pushed && tag_deleted {
                break events;
            }
            assert!(
                Instant::now() < deadline,
                "events not stored in time: {events:?}\n{}",
                registry.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let push = events
            .iter()
            .find(|e| e.kind == EventType::ImagePushed)
            .expect("push");
        assert_eq!(
            (push.repository.as_str(), push.tag.as_deref()),
            ("acme/app", Some("1.0"))
        );
        assert_eq!(push.digest.as_deref(), Some(digest.as_str()));
        assert!(
            push.references.len() >= 2,
            "config and layer referenced: {push:?}"
        );
        assert!(
            events.iter().any(|e| e.kind == EventType::BlobPushed),
            "blob pushes stored too"
        );
        // 2.8 deletes the manifest by digest, then reports each tag that pointed at it.
        let by_digest = events
            .iter()
            .find(|e| e.kind == EventType::ImageDeleted && e.tag.is_none())
            .expect("delete by digest");
        assert_eq!(
            (by_digest.repository.as_str(), by_digest.digest.as_deref()),
            ("acme/app", Some(digest.as_str()))
        );
        let by_tag = events
            .iter()
            .find(|e| e.kind == EventType::ImageDeleted && e.tag.is_some())
            .expect("tag delete");
        assert_eq!(
            (by_tag.repository.as_str(), by_tag.tag.as_deref()),
            ("acme/app", Some("1.0"))
        );
        let pushes_before = events.iter().position(|e| e.kind == EventType::ImagePushed);
        let delete_at = events
            .iter()
            .position(|e| e.kind == EventType::ImageDeleted);
        assert!(
            pushes_before < delete_at,
            "stored in the order they happened"
        );
        let ids: std::collections::HashSet<_> =
            events.iter().map(|e| &e.registry_event_id).collect();
        assert_eq!(ids.len(), events.len(), "no duplicates");
        drop(registry);
        server.stop().await;
    }
);

/// A client hammering the notify endpoint with a wrong token, and a registry far above the
/// rate limit, each leave one log line (not one per request) and are counted in metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_floods_are_counted_and_logged_once_not_per_request() {
    use crate::harness::process::{Hookline, free_addr};

    let dir = tempfile::tempdir().expect("dir");
    let db = format!("sqlite://{}", dir.path().join("hookline.db").display());
    let addr = free_addr();
    let addr_s = addr.to_string();
    let server = Hookline::spawn(&[
        "serve",
        "--roles",
        "ingest",
        "--db",
        &db,
        "--ingest-addr",
        &addr_s,
        "--registry-token",
        REGISTRY_TOKEN,
        "--ingest-rate-limit",
        "1",
        "--ingest-rate-burst",
        "1",
    ]);
    server.wait_healthy(addr).await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let url = format!("http://{addr}/v1/notify");
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for (token, n) in [("not-the-token", 300), (REGISTRY_TOKEN, 300)] {
        for _ in 0..n {
            let status = client
                .post(&url)
                .bearer_auth(token)
                .header("content-type", V1)
                .body(envelope_of(&["flood"]))
                .send()
                .await
                .expect("notify")
                .status()
                .as_u16();
            *statuses.entry(status).or_default() += 1;
        }
    }
    assert_eq!(statuses.get(&401), Some(&300), "{statuses:?}");
    assert!(
        statuses.get(&429).copied().unwrap_or(0) >= 290,
        "{statuses:?}"
    );
    let refused_429 = statuses[&429];

    let metrics = client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics body");
    assert!(
        metrics.contains("hookline_notify_refused_total{reason=\"unauthenticated\"} 300"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "hookline_notify_refused_total{{reason=\"rate_limited\"}} {refused_429}"
        )),
        "{metrics}"
    );
    let log = server.log();
    let refusal_lines: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("refused"))
        .collect();
    // One line for the peer's 401s, one for the registry's 429s; the repeats wait for the
    // periodic summary.
    assert_eq!(refusal_lines.len(), 2, "{log}");
    assert!(
        refusal_lines
            .iter()
            .any(|l| l.contains("unauthenticated") && l.contains("127.0.0.1")),
        "{log}"
    );
    assert!(
        refusal_lines
            .iter()
            .any(|l| l.contains("rate_limited") && l.contains("default")),
        "{log}"
    );
}
