//! No secret or token in any log line, error, metric, listing or `Debug` output.
//!
//! Drives the whole flow with distinctive values through the real binary at `debug`
//! logging for every crate (hyper, h2, tonic, reqwest, sqlx included): a registry token,
//! a wrong registry token, an API token and a bogus one, two user-chosen signing secrets
//! (create and rotate), an invalid secret, a credential in a custom header, a credential
//! in a URL's query; ingest, API create/list/get/rotate/test, a signed delivery, refused
//! inputs. Then scans the server log, every CLI stdout/stderr (but the two that print the
//! secret to its owner), every error and the metrics text for each value: none found.

use std::net::SocketAddr;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use hookline::api::proto::{CreateWebhookRequest, RotateWebhookSecretRequest};
use hookline::config::{CommonSettings, Config, ServeSettings};

use super::push;
use crate::harness::db::{Backend, TestDb};
use crate::harness::process::{Hookline, free_addr};
use crate::harness::receiver::Receiver;

const REGISTRY_TOKEN: &str = "regtok-SECRET-registry-4f1d9c7e";
const WRONG_REGISTRY_TOKEN: &str = "regtok-SECRET-wrong-8a2b61d0";
const BOGUS_API_TOKEN: &str = "hl_SECRET_bogus_api_token_3c9e";
/// `whsec_` + base64 of 32 distinctive bytes, and the same for the rotated one.
const FIRST_SECRET: &str = "whsec_U0VDUkVULWZpcnN0LXNpZ25pbmcta2V5LTAxMjM0NTY3";
const SECOND_SECRET: &str = "whsec_U0VDUkVULXNlY29uZC1zaWduaW5nLWtleS0wMTIzNDU2";
const INVALID_SECRET: &str = "whsec_SECRETinvalidNotBase64!!";
const HEADER_VALUE: &str = "Bearer hdr-SECRET-custom-header-77ab";
const QUERY_SECRET: &str = "qs-SECRET-in-url-5521";
/// The credential part of a chat webhook's URL (Slack's `/services/T…/B…/<this>`).
const CHAT_URL_SECRET: &str = "chatSECRETurl7d3e0b";

pub(super) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `hookline args…` against `server` with `token`; (success, stdout, stderr).
pub(super) fn cli(server: &str, token: &str, args: &[&str]) -> (bool, String, String) {
    let output: Output = Command::new(env!("CARGO_BIN_EXE_hookline"))
        .args(args)
        .env("HOOKLINE_SERVER", server)
        .env("HOOKLINE_TOKEN", token)
        .env("HOOKLINE_LOG_LEVEL", "debug")
        .output()
        .expect("run hookline");
    (
        output.status.success(),
        text(&output.stdout),
        text(&output.stderr),
    )
}

/// `hookline serve` on `db` logging at `debug` for every crate, ingest taking
/// `registry_token`, once both listeners answer; with its API and ingest addresses.
pub(super) async fn debug_server(
    db: &TestDb,
    registry_token: &str,
) -> (Hookline, SocketAddr, SocketAddr) {
    let (api_addr, ingest_addr) = (free_addr(), free_addr());
    let server = Hookline::spawn(&[
        "serve",
        "--db",
        &db.url,
        "--api-addr",
        &api_addr.to_string(),
        "--ingest-addr",
        &ingest_addr.to_string(),
        "--registry-token",
        registry_token,
        "--poll-interval",
        "100ms",
        "--log-level",
        "debug",
    ]);
    server.wait_healthy(ingest_addr).await;
    wait_listening(api_addr, &server).await;
    (server, api_addr, ingest_addr)
}

/// An API token for namespace `acme`, minted by the CLI at `debug`; and its stderr.
pub(super) fn mint_token(db: &TestDb) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hookline"))
        .args([
            "tokens",
            "create",
            "--namespace",
            "acme",
            "--output",
            "json",
        ])
        .args(["--db", &db.url, "--log-level", "debug"])
        .output()
        .expect("tokens create");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let token = serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("json")["token"]
        .as_str()
        .expect("token")
        .to_owned();
    (token, text(&out.stderr))
}

async fn wait_listening(addr: SocketAddr, server: &Hookline) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "not listening\n{}", server.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_or_token_reaches_a_log_an_error_a_metric_or_a_listing() {
    let db = TestDb::new(Backend::Sqlite).await;
    let receiver = Receiver::start().await;
    let (mut server, api_addr, ingest_addr) = debug_server(&db, REGISTRY_TOKEN).await;
    let api = format!("http://{api_addr}");
    let mut scanned: Vec<String> = Vec::new();

    // An operator mints an API token.
    let (api_token, stderr) = mint_token(&db);
    scanned.push(stderr);

    // Create with a chosen secret, a credential header and a credential in the query.
    let url = format!("{}?key={QUERY_SECRET}", receiver.url());
    let header = format!("Authorization={HEADER_VALUE}");
    let (ok, created, stderr) = cli(
        &api,
        &api_token,
        &[
            "webhooks",
            "create",
            "--name",
            "deploy",
            "--url",
            &url,
            "--header",
            &header,
            "--secret",
            FIRST_SECRET,
            "--repository",
            "acme/*",
            "--output",
            "json",
        ],
    );
    assert!(ok, "{stderr}");
    scanned.push(stderr);
    let created: serde_json::Value = serde_json::from_str(&created).expect("json");
    assert_eq!(
        created["secret"], FIRST_SECRET,
        "printed once, to its owner"
    );
    let id = created["webhook"]["id"].as_str().expect("id").to_owned();

    // A Slack webhook: its URL is the credential, shown whole by create only.
    let chat_receiver = Receiver::start().await;
    let chat_url = format!("{}/services/T0/B0/{CHAT_URL_SECRET}", chat_receiver.url());
    let (ok, chat_created, chat_stderr) = cli(
        &api,
        &api_token,
        &[
            "webhooks", "create", "--name", "chat", "--url", &chat_url, "--format", "slack",
            "--output", "json",
        ],
    );
    assert!(ok, "{chat_stderr}");
    let chat_created: serde_json::Value = serde_json::from_str(&chat_created).expect("json");
    assert_eq!(
        chat_created["webhook"]["url"],
        chat_url.as_str(),
        "shown once"
    );
    let chat_id = chat_created["webhook"]["id"]
        .as_str()
        .expect("id")
        .to_owned();

    // Listings and reads: scanned in full.
    for args in [
        vec!["webhooks", "list", "--output", "json"],
        vec!["webhooks", "list"],
        vec!["webhooks", "get", &id],
        vec!["webhooks", "get", &id, "--output", "json"],
    ] {
        let (ok, stdout, stderr) = cli(&api, &api_token, &args);
        assert!(ok, "{stderr}");
        scanned.push(stdout);
        scanned.push(stderr);
    }

    scanned.push(chat_stderr);
    for args in [
        vec!["webhooks", "get", &chat_id],
        vec!["webhooks", "get", &chat_id, "--output", "json"],
        vec!["webhooks", "list", "--url-contains", CHAT_URL_SECRET],
    ] {
        let (ok, stdout, stderr) = cli(&api, &api_token, &args);
        assert!(ok, "{stderr}");
        scanned.push(stdout);
        scanned.push(stderr);
    }

    // Refused inputs: their errors are scanned.
    let refused_url = format!("http://10.0.0.1/hook?key={QUERY_SECRET}");
    for args in [
        vec![
            "webhooks",
            "create",
            "--name",
            "x",
            "--url",
            &url,
            "--secret",
            INVALID_SECRET,
        ],
        vec!["webhooks", "create", "--name", "x", "--url", &refused_url],
        vec!["webhooks", "rotate-secret", &id, "--secret", INVALID_SECRET],
    ] {
        let (ok, stdout, stderr) = cli(&api, &api_token, &args);
        assert!(!ok, "{stdout}");
        assert!(
            stderr.contains("secret: must be") || stderr.contains("destination refused"),
            "{stderr}"
        );
        scanned.push(stdout);
        scanned.push(stderr);
    }
    let (ok, stdout, stderr) = cli(&api, BOGUS_API_TOKEN, &["webhooks", "list"]);
    assert!(!ok);
    scanned.push(stdout);
    scanned.push(stderr);

    // Rotate to a second chosen secret; both sign for the grace period.
    let (ok, rotated, stderr) = cli(
        &api,
        &api_token,
        &[
            "webhooks",
            "rotate-secret",
            &id,
            "--secret",
            SECOND_SECRET,
            "--grace",
            "1h",
        ],
    );
    assert!(ok && rotated.contains(SECOND_SECRET), "{stderr}");
    scanned.push(stderr);

    // Ingest with the registry token and a wrong one; the event is delivered, signed.
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let notify = format!("http://{ingest_addr}/v1/notify");
    for (token, status) in [(WRONG_REGISTRY_TOKEN, 401), (REGISTRY_TOKEN, 200)] {
        let response = http
            .post(&notify)
            .header(
                "content-type",
                "application/vnd.docker.distribution.events.v1+json",
            )
            .bearer_auth(token)
            .body(push("acme/app", "v1"))
            .send()
            .await
            .expect("notify");
        assert_eq!(response.status().as_u16(), status);
        scanned.push(response.text().await.unwrap_or_default());
    }
    let got = receiver.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(got[0].header("authorization"), HEADER_VALUE);
    assert!(got[0].uri.contains(QUERY_SECRET));
    assert_eq!(
        got[0].header("webhook-signature").split(' ').count(),
        2,
        "signed with both secrets"
    );
    let (ok, stdout, stderr) = cli(&api, &api_token, &["webhooks", "test", &id]);
    assert!(ok, "{stderr}");
    scanned.push(stdout);
    scanned.push(stderr);
    receiver.wait_for(2, Duration::from_secs(20)).await;
    let chat = chat_receiver.wait_for(1, Duration::from_secs(20)).await;
    assert!(
        chat[0].uri.ends_with(CHAT_URL_SECRET),
        "delivered to the whole URL"
    );

    let metrics = http
        .get(format!("http://{ingest_addr}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(metrics.contains("hookline_attempts_total"), "{metrics}");
    scanned.push(metrics);

    // Debug output of what holds secrets in memory.
    let config = Config::resolve(
        CommonSettings::default(),
        ServeSettings {
            registry_token: Some(REGISTRY_TOKEN.parse().expect("secret")),
            ..Default::default()
        },
    )
    .expect("config");
    scanned.push(format!("{config:?}"));
    scanned.push(format!(
        "{:?}",
        CreateWebhookRequest {
            webhook: None,
            secret: FIRST_SECRET.into()
        }
    ));
    scanned.push(format!(
        "{:?}",
        RotateWebhookSecretRequest {
            id: id.clone(),
            secret: SECOND_SECRET.into(),
            grace_period: None,
        }
    ));

    server.sigterm();
    assert!(
        server.wait_exit(Duration::from_secs(20)).await.success(),
        "{}",
        server.log()
    );
    let log = server.log();
    assert!(
        log.contains("webhook created") && log.contains("DEBUG"),
        "the log was captured at debug level"
    );
    scanned.push(log);

    let base64_of = |secret: &str| secret.trim_start_matches("whsec_").to_owned();
    let needles = [
        REGISTRY_TOKEN.to_owned(),
        WRONG_REGISTRY_TOKEN.to_owned(),
        BOGUS_API_TOKEN.to_owned(),
        api_token.clone(),
        base64_of(FIRST_SECRET),
        base64_of(SECOND_SECRET),
        "SECRETinvalidNotBase64".to_owned(),
        "hdr-SECRET-custom-header".to_owned(),
        QUERY_SECRET.to_owned(),
        CHAT_URL_SECRET.to_owned(),
    ];
    // A plain URL (its query string) is shown to its owner by get/list; it must stay out
    // of everything else. Header values are secret: shown redacted everywhere.
    let listings = 1..9;
    for (i, haystack) in scanned.iter().enumerate() {
        for needle in &needles {
            let shown_to_owner = listings.contains(&i) && needle == QUERY_SECRET;
            assert!(
                shown_to_owner || !haystack.contains(needle.as_str()),
                "`{needle}` found in scanned text #{i}:\n{}",
                excerpt(haystack, needle)
            );
        }
    }
    db.finish().await;
}

/// The lines around the first occurrence, for a useful failure.
pub(super) fn excerpt(haystack: &str, needle: &str) -> String {
    haystack
        .lines()
        .filter(|l| l.contains(needle))
        .take(3)
        .collect::<Vec<_>>()
        .join("\n")
}
