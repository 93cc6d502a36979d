//! `hookline deliveries|events|replay` and webhook health end to end: `hookline serve`
//! as a child process (ingest, api and dispatcher roles), a receiver that fails with a
//! body and then recovers, and the real binary as the client, on both backends.
//!
//! The retry schedule is `200ms,1h`: the second attempt comes fast, and after it the
//! delivery waits an hour, so `retrying` is a state the test can observe and expedite
//! without racing the dispatcher. Every wait polls a condition under a deadline.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::cli::{fails, hookline, json, namespace_token, ok, wait_listening};
use crate::harness::envelopes;
use crate::harness::process::{Hookline, free_addr};
use crate::harness::receiver::{Receiver, Reply};
use crate::harness::server::REGISTRY_TOKEN;
use crate::store_test;

/// How long any awaited condition may take (generous: CI machines are slow).
const DEADLINE: Duration = Duration::from_secs(30);

/// POSTs one registry push of `acme/app:tag` to the notify endpoint.
async fn push(ingest: std::net::SocketAddr, tag: &str) {
    let status = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
        .post(format!("http://{ingest}/v1/notify"))
        .bearer_auth(REGISTRY_TOKEN)
        .header(
            "content-type",
            "application/vnd.docker.distribution.events.v1+json",
        )
        .body(envelopes::push("acme/app", tag))
        .send()
        .await
        .expect("notify")
        .status();
    assert_eq!(status, 200);
}

/// Polls `check` (which runs a CLI command) until it returns `Some`, or panics.
async fn poll<T>(what: &str, server: &Hookline, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

store_test!(
    the_cli_shows_deliveries_and_recovers_them,
    async |db: &TestDb| {
        let receiver = Receiver::start().await;
        receiver.set_default(
            Reply::status(500)
                .header("x-trace", "trace-42")
                .body("upstream exploded"),
        );
        let (api, ingest) = (free_addr(), free_addr());
        let (api_text, ingest_text) = (api.to_string(), ingest.to_string());
        let server = Hookline::spawn(&[
            "serve",
            "--db",
            &db.url,
            "--roles",
            "ingest,api,dispatcher",
            "--api-addr",
            &api_text,
            "--ingest-addr",
            &ingest_text,
            "--registry-token",
            REGISTRY_TOKEN,
            "--poll-interval",
            "100ms",
            "--retry-schedule",
            "200ms,1h",
        ]);
        server.wait_healthy(ingest).await;
        wait_listening(api, &server).await;
        let url = format!("http://{api}");
        let mut stderrs = Vec::new();
        let token = namespace_token(&url, &db.url, "acme", &mut stderrs);
        let run = |args: &[&str]| hookline(&url, Some(&token), args);
        let created = json(&ok(
            run(&[
                "webhooks",
                "create",
                "--name",
                "deploy",
                "--url",
                &receiver.url(),
                "--output",
                "json",
            ]),
            &mut stderrs,
        ));
        let webhook = created["webhook"]["id"].as_str().expect("id").to_owned();

        // A push fails twice (500 with a body), then waits an hour for its next retry.
        push(ingest, "1.0").await;
        let delivery = poll("a retrying delivery with 2 attempts", &server, || {
            let listed = json(&ok(
                run(&["deliveries", "list", "--output", "json"]),
                &mut Vec::new(),
            ));
            let d = listed.as_array().expect("array").first()?.clone();
            (d["status"] == "retrying" && d["attempts"] == 2).then_some(d)
        })
        .await;
        let id = delivery["id"].as_str().expect("id").to_owned();
        assert_eq!(
            (
                delivery["webhook_id"].as_str(),
                delivery["event_type"].as_str(),
                delivery["repository"].as_str(),
                delivery["tag"].as_str(),
                delivery["last_status_code"].as_i64(),
            ),
            (
                Some(webhook.as_str()),
                Some("image.pushed"),
                Some("acme/app"),
                Some("1.0"),
                Some(500)
            ),
            "{delivery}"
        );
        let table = ok(run(&["deliveries", "list"]), &mut stderrs);
        assert!(
            table.starts_with("ID")
                && table.contains(&id)
                && table.contains("image.pushed acme/app:1.0")
                && table.contains("retrying"),
            "{table}"
        );
        let filtered = json(&ok(
            run(&[
                "deliveries",
                "list",
                "--status",
                "succeeded",
                "--output",
                "json",
            ]),
            &mut stderrs,
        ));
        assert_eq!(filtered, serde_json::json!([]), "a status filter applies");

        let shown = json(&ok(
            run(&["deliveries", "get", &id, "--output", "json"]),
            &mut stderrs,
        ));
        let first = &shown["attempts"][0];
        assert_eq!(
            (
                first["number"].as_i64(),
                first["status_code"].as_i64(),
                first["response_body"].as_str(),
                first["response_headers"]["x-trace"].as_str(),
                first["error_class"].as_str(),
            ),
            (
                Some(1),
                Some(500),
                Some("upstream exploded"),
                Some("trace-42"),
                Some("http")
            ),
            "{shown}"
        );
        assert!(first["reason"].as_str().is_some_and(|r| !r.is_empty()));
        let shown = ok(run(&["deliveries", "get", &id]), &mut stderrs);
        assert!(
            shown.contains("ERROR CLASS")
                && shown.contains("500")
                && shown.contains("x-trace: trace-42")
                && shown.contains("upstream exploded"),
            "{shown}"
        );

        // A failing receiver shows in the webhook's health.
        let health = json(&ok(
            run(&["webhooks", "get", &webhook, "--output", "json"]),
            &mut stderrs,
        ))["health"]
            .clone();
        assert_eq!(
            (
                health["state"].as_str(),
                health["pending"].as_i64(),
                health["failed"].as_i64(),
                health["last_status_code"].as_i64(),
            ),
            (Some("failing"), Some(1), Some(0), Some(500)),
            "{health}"
        );
        assert!(health["failing_since"].is_string(), "{health}");
        let shown = ok(run(&["webhooks", "get", &webhook]), &mut stderrs);
        assert!(
            shown.contains("failing since") && shown.contains("pending"),
            "{shown}"
        );
        let listed = ok(run(&["webhooks", "list"]), &mut stderrs);
        assert!(
            listed.contains("HEALTH") && listed.contains("failing"),
            "{listed}"
        );

        // The receiver recovers; redelivering sends the waiting retry now, same webhook-id.
        receiver.set_default(Reply::status(204));
        let before = receiver.received().len();
        let redelivered = json(&ok(
            run(&["deliveries", "redeliver", &id, "--output", "json"]),
            &mut stderrs,
        ));
        assert_eq!(redelivered["result"], "expedited", "{redelivered}");
        let got = receiver.wait_for(before + 1, DEADLINE).await;
        assert_eq!(got[before].header("webhook-id"), id);
        poll("the delivery to succeed", &server, || {
            let shown = json(&ok(
                run(&["deliveries", "get", &id, "--output", "json"]),
                &mut Vec::new(),
            ));
            (shown["status"] == "succeeded").then_some(())
        })
        .await;

        // Replay is idempotent per request id.
        let replayed = json(&ok(
            run(&[
                "replay",
                &webhook,
                "--since",
                "1h",
                "--request-id",
                "outage-1",
                "--output",
                "json",
            ]),
            &mut stderrs,
        ));
        assert_eq!(
            (
                replayed["queued"].as_i64(),
                replayed["repeated"].as_bool(),
                replayed["request_ids"].clone()
            ),
            (Some(1), Some(false), serde_json::json!(["outage-1"])),
            "{replayed}"
        );
        let got = receiver.wait_for(before + 2, DEADLINE).await;
        assert_eq!(got[before + 1].header("webhook-id"), id);
        let again = ok(
            run(&[
                "replay",
                &webhook,
                "--since",
                "1h",
                "--request-id",
                "outage-1",
            ]),
            &mut stderrs,
        );
        assert!(
            again.contains("queued 0 deliveries") && again.contains("was used before"),
            "{again}"
        );

        let events = json(&ok(
            run(&["events", "list", "--output", "json"]),
            &mut stderrs,
        ));
        let event = &events.as_array().expect("array")[0];
        assert_eq!(
            (
                event["type"].as_str(),
                event["repository"].as_str(),
                event["tag"].as_str()
            ),
            (Some("image.pushed"), Some("acme/app"), Some("1.0")),
            "{events}"
        );
        let table = ok(run(&["events", "list"]), &mut stderrs);
        assert!(
            table.contains("acme/app:1.0") && table.contains("sha256:ab09df3b0449"),
            "{table}"
        );
        let event_id = event["id"].as_str().expect("event id");
        let shown = ok(run(&["events", "get", event_id]), &mut stderrs);
        assert!(
            shown.contains(&id) && shown.contains("succeeded"),
            "{shown}"
        );

        // The live tail prints the next attempt as a JSON line; SIGTERM ends it cleanly.
        // tokio's process API: a blocking read would stall the in-process receiver.
        let mut tail = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookline"))
            .args(["deliveries", "tail", "--output", "json"])
            .env("HOOKLINE_SERVER", &url)
            .env("HOOKLINE_TOKEN", &token)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn tail");
        let mut out = BufReader::new(tail.stdout.take().expect("stdout")).lines();
        let mut err = BufReader::new(tail.stderr.take().expect("stderr")).lines();
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let line = tokio::time::timeout_at(deadline, err.next_line())
                .await
                .expect("the tail never started")
                .expect("stderr")
                .expect("the tail ended before it started");
            if line.contains("watching attempts") {
                break;
            }
        }
        push(ingest, "2.0").await;
        let line: Value = loop {
            let line = tokio::time::timeout_at(deadline, out.next_line())
                .await
                .expect("no attempt on the tail")
                .expect("stdout")
                .expect("the tail ended early");
            let line = json(&line);
            if line["tag"] == "2.0" {
                break line;
            }
        };
        assert_eq!(
            (
                line["webhook_id"].as_str(),
                line["event_type"].as_str(),
                line["delivery_status"].as_str(),
                line["attempt"]["status_code"].as_i64(),
                line["attempt"]["outcome"].as_str(),
            ),
            (
                Some(webhook.as_str()),
                Some("image.pushed"),
                Some("succeeded"),
                Some(204),
                Some("succeeded")
            ),
            "{line}"
        );
        let pid = tail.id().expect("pid").to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(status.success());
        let exit = tokio::time::timeout(DEADLINE, tail.wait())
            .await
            .expect("the tail did not stop on SIGTERM")
            .expect("wait");
        assert!(exit.success(), "{exit:?}");

        // The repeated replay queued nothing: the first delivery got exactly its 2 failed
        // attempts, the redelivery and one replay, although the later push went through.
        let sent = receiver
            .received()
            .iter()
            .filter(|r| r.header("webhook-id") == id)
            .count();
        assert_eq!(sent, 4);
        let health = poll("the webhook to be healthy", &server, || {
            let shown = json(&ok(
                run(&["webhooks", "get", &webhook, "--output", "json"]),
                &mut Vec::new(),
            ));
            let health = shown["health"].clone();
            (health["pending"] == 0).then_some(health)
        })
        .await;
        assert_eq!(
            (
                health["state"].as_str(),
                health["failed"].as_i64(),
                health["last_status_code"].as_i64()
            ),
            (Some("ok"), Some(0), Some(204)),
            "{health}"
        );
        assert!(health["last_success_at"].is_string(), "{health}");

        // Two events now: --limit shows the newest and says how to go on; --all shows both.
        let limited = run(&["events", "list", "--limit", "1", "--output", "json"]);
        let more = String::from_utf8_lossy(&limited.stderr).into_owned();
        let newest = json(&ok(limited, &mut stderrs));
        assert_eq!(newest.as_array().map(Vec::len), Some(1), "{newest}");
        assert_eq!(newest[0]["tag"], "2.0");
        assert!(more.contains("--page-token"), "{more}");
        let all = json(&ok(
            run(&["events", "list", "--all", "--output", "json"]),
            &mut stderrs,
        ));
        assert_eq!(all.as_array().map(Vec::len), Some(2), "{all}");

        // Errors say what to do.
        let bad = fails(
            run(&["replay", &webhook, "--since", "yesterday"]),
            &mut stderrs,
        );
        assert!(
            bad.contains("--since") && bad.contains("`1h`") && bad.contains("RFC 3339"),
            "{bad}"
        );
        let missing = fails(run(&["deliveries", "get", "dlv_nope"]), &mut stderrs);
        assert!(
            missing.contains("delivery dlv_nope not found")
                && missing.contains("hookline deliveries list"),
            "{missing}"
        );
        let missing = fails(run(&["replay", "wh_nope", "--since", "1h"]), &mut stderrs);
        assert!(missing.contains("webhook wh_nope not found"), "{missing}");
        for stderr in &stderrs {
            assert!(!stderr.contains(&token), "the token on stderr: {stderr}");
        }
    }
);
