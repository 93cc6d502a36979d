//! The `hookline` binary end to end: `hookline serve` as a child process (api and
//! dispatcher roles, debug logs captured) and `hookline tokens|webhooks …` against it,
//! on both backends. Also checks that no secret or token reaches a log or an error.

use std::net::SocketAddr;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::process::{Hookline, free_addr};
use crate::harness::receiver::Receiver;
use crate::store_test;

/// Runs `hookline args…` with the server and token in the environment.
pub(crate) fn hookline(server: &str, token: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hookline"));
    command
        .args(args)
        .env("HOOKLINE_SERVER", server)
        .env_remove("HOOKLINE_TOKEN")
        .env("HOOKLINE_LOG_LEVEL", "debug");
    if let Some(token) = token {
        command.env("HOOKLINE_TOKEN", token);
    }
    command.output().expect("run hookline")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `hookline tokens create --namespace NS` on the database, as an operator does; the token.
pub(crate) fn namespace_token(
    server: &str,
    db_url: &str,
    namespace: &str,
    stderrs: &mut Vec<String>,
) -> String {
    let created = ok(
        hookline(
            server,
            None,
            &[
                "tokens",
                "create",
                "--namespace",
                namespace,
                "--output",
                "json",
                "--db",
                db_url,
            ],
        ),
        stderrs,
    );
    json(&created)["token"].as_str().expect("token").to_owned()
}

/// Runs a command that must succeed; returns its stdout.
#[track_caller]
pub(crate) fn ok(output: Output, stderrs: &mut Vec<String>) -> String {
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "failed: {stderr}\n{stdout}");
    stderrs.push(stderr);
    stdout
}

/// Runs a command that must fail; returns its stderr.
#[track_caller]
pub(crate) fn fails(output: Output, stderrs: &mut Vec<String>) -> String {
    let stderr = text(&output.stderr);
    assert!(
        !output.status.success(),
        "should have failed: {}",
        text(&output.stdout)
    );
    stderrs.push(stderr.clone());
    stderr
}

pub(crate) fn json(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

pub(crate) async fn wait_listening(addr: SocketAddr, server: &Hookline) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the api never listened\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

store_test!(the_cli_manages_webhooks_end_to_end, async |db: &TestDb| {
    let receiver = Receiver::start().await;
    let addr = free_addr();
    let addr_text = addr.to_string();
    let mut server = Hookline::spawn(&[
        "serve",
        "--db",
        &db.url,
        "--roles",
        "api,dispatcher",
        "--api-addr",
        &addr_text,
        "--poll-interval",
        "100ms",
        "--log-level",
        "debug",
    ]);
    wait_listening(addr, &server).await;
    let url = format!("http://{addr}");
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
            "--event-type",
            "image.pushed",
            "--repository",
            "acme/*",
            "--tag",
            "v*",
            "--header",
            "X-Team=deploy",
            "--output",
            "json",
        ]),
        &mut stderrs,
    ));
    let first_secret = created["secret"].as_str().expect("secret").to_owned();
    assert!(first_secret.starts_with("whsec_"));
    let id = created["webhook"]["id"].as_str().expect("id").to_owned();
    assert_eq!(created["webhook"]["namespace"], "acme");

    let listed = ok(run(&["webhooks", "list", "--output", "json"]), &mut stderrs);
    assert!(
        !listed.contains("whsec_"),
        "no secret in a listing: {listed}"
    );
    let listed = json(&listed);
    let webhooks = listed["webhooks"].as_array().expect("array");
    assert_eq!(webhooks.len(), 1);
    let w = &webhooks[0];
    assert_eq!(
        (w["id"].as_str(), w["name"].as_str()),
        (Some(id.as_str()), Some("deploy"))
    );
    assert_eq!(w["event_types"], serde_json::json!(["image.pushed"]));
    assert_eq!(w["repositories"], serde_json::json!(["acme/*"]));
    // A header's value is a secret unless marked plain.
    assert_eq!(w["headers"], serde_json::json!({"X-Team": "…redacted"}));
    assert_eq!(
        (w["format"].as_str(), w["enabled"].as_bool()),
        (Some("hookline"), Some(true))
    );

    let table = ok(run(&["webhooks", "list"]), &mut stderrs);
    assert!(
        table.starts_with("ID") && table.contains(&id) && table.contains("deploy"),
        "{table}"
    );
    let shown = ok(run(&["webhooks", "get", &id]), &mut stderrs);
    assert!(
        shown.contains(&id) && shown.contains("image.pushed") && !shown.contains("whsec_"),
        "{shown}"
    );

    let updated = json(&ok(
        run(&[
            "webhooks",
            "update",
            &id,
            "--name",
            "deploy-prod",
            "--disable",
            "--output",
            "json",
        ]),
        &mut stderrs,
    ));
    assert_eq!(
        (updated["name"].as_str(), updated["enabled"].as_bool()),
        (Some("deploy-prod"), Some(false))
    );
    assert_eq!(
        updated["tags"],
        serde_json::json!(["v*"]),
        "fields not named stay"
    );
    let refused = fails(run(&["webhooks", "test", &id]), &mut stderrs);
    assert!(refused.contains("disabled"), "{refused}");
    ok(run(&["webhooks", "update", &id, "--enable"]), &mut stderrs);

    let rotated = json(&ok(
        run(&[
            "webhooks",
            "rotate-secret",
            &id,
            "--grace",
            "1h",
            "--output",
            "json",
        ]),
        &mut stderrs,
    ));
    let second_secret = rotated["secret"].as_str().expect("secret").to_owned();
    assert!(second_secret.starts_with("whsec_") && second_secret != first_secret);
    assert!(
        rotated["previous_secret_expires_at"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );

    let tested = json(&ok(
        run(&["webhooks", "test", &id, "--output", "json"]),
        &mut stderrs,
    ));
    let got = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(
        got[0].header("webhook-id"),
        tested["delivery_id"].as_str().expect("delivery id")
    );
    assert!(got[0].signed_with(&second_secret) && got[0].signed_with(&first_secret));
    assert_eq!(got[0].header("x-team"), "deploy");
    assert_eq!(got[0].json()["type"], "ping");

    let deleted = ok(run(&["webhooks", "delete", &id]), &mut stderrs);
    assert_eq!(deleted.trim(), format!("deleted {id}"));
    let missing = fails(run(&["webhooks", "get", &id]), &mut stderrs);
    assert!(
        missing.contains("not found") && missing.contains("hookline webhooks list"),
        "{missing}"
    );

    // Errors say what to do.
    let invalid = fails(
        run(&[
            "webhooks",
            "create",
            "--name",
            "x",
            "--url",
            "ftp://example.com/",
            "--secret",
            "whsec_bm90LWVub3VnaA==",
        ]),
        &mut stderrs,
    );
    assert!(
        invalid.contains("webhook.url: scheme must be http or https"),
        "{invalid}"
    );
    assert!(invalid.contains("secret: must be"), "{invalid}");
    let refused = fails(
        hookline(&url, Some("hl_not_a_real_token"), &["webhooks", "list"]),
        &mut stderrs,
    );
    assert!(
        refused.contains("the token was refused")
            && refused.contains("hookline tokens create --namespace"),
        "{refused}"
    );
    let anonymous = fails(hookline(&url, None, &["webhooks", "list"]), &mut stderrs);
    assert!(
        anonymous.contains("no API token") && anonymous.contains("HOOKLINE_TOKEN"),
        "{anonymous}"
    );
    let unreachable = format!("http://{}", free_addr());
    let down = fails(
        hookline(&unreachable, Some(&token), &["webhooks", "list"]),
        &mut stderrs,
    );
    assert!(
        down.contains(&format!("cannot reach hookline at {unreachable}"))
            && down.contains("api role"),
        "{down}"
    );

    server.sigterm();
    assert!(
        server.wait_exit(Duration::from_secs(20)).await.success(),
        "{}",
        server.log()
    );
    let log = server.log();
    assert!(
        log.contains("webhook created") && log.contains("webhook secret rotated"),
        "{log}"
    );
    for secret in [
        &first_secret,
        &second_secret,
        &token,
        &"bm90LWVub3VnaA".to_owned(),
    ] {
        let needle = secret.trim_start_matches("whsec_");
        assert!(!log.contains(needle), "a secret or token in the server log");
        for stderr in &stderrs {
            assert!(
                !stderr.contains(needle),
                "a secret or token on stderr: {stderr}"
            );
        }
    }
});
