//! The CLI's side of the payload options: `webhooks create|update|get` with
//! `--signature-header`, `--include-host-in-repo-name` and `--harbor-deletes` through the
//! real binary against a real server, on both backends.

use std::process::{Command, Output};

use hookline::store::TokenKind;
use serde_json::Value;

use crate::harness::server::{TestServer, with_api};
use crate::store_test;

fn hookline(server: &TestServer, token: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hookline"))
        .arg("webhooks")
        .args(args)
        .env("HOOKLINE_SERVER", server.api_url())
        .env("HOOKLINE_TOKEN", token)
        .output()
        .expect("run hookline")
}

#[track_caller]
fn ok_json(output: Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

store_test!(
    the_cli_sets_the_signature_header_and_format_options,
    async |db: &TestDb| {
        let server = TestServer::start(db, with_api).await;
        let (_, token) = server.token(TokenKind::Namespace, "acme").await;
        let created = ok_json(hookline(
            &server,
            &token,
            &[
                "create",
                "--name",
                "harbor",
                "--url",
                "http://127.0.0.1:9/hook",
                "--format",
                "harbor",
                "--harbor-deletes",
                "--signature-header",
                "X-Signature",
                "--output",
                "json",
            ],
        ));
        let w = &created["webhook"];
        assert_eq!(w["format"], "harbor");
        assert_eq!(w["signature_header"], "X-Signature");
        assert_eq!(w["payload_options"]["harbor_deletes"], true);
        assert!(w["payload_options"]["include_host_in_repo_name"].is_null());
        let id = w["id"].as_str().expect("id").to_owned();

        // One option changes; the other is kept (the CLI merges with the stored ones).
        let updated = ok_json(hookline(
            &server,
            &token,
            &[
                "update",
                &id,
                "--include-host-in-repo-name",
                "false",
                "--output",
                "json",
            ],
        ));
        assert_eq!(
            updated["payload_options"]["include_host_in_repo_name"],
            false
        );
        assert_eq!(updated["payload_options"]["harbor_deletes"], true);
        assert_eq!(updated["signature_header"], "X-Signature");

        let updated = ok_json(hookline(
            &server,
            &token,
            &[
                "update",
                &id,
                "--no-signature-header",
                "--harbor-deletes",
                "false",
                "--output",
                "json",
            ],
        ));
        assert!(updated["signature_header"].is_null());
        assert_eq!(updated["payload_options"]["harbor_deletes"], false);
        assert_eq!(
            updated["payload_options"]["include_host_in_repo_name"],
            false
        );

        let table = hookline(&server, &token, &["get", &id]);
        let table = String::from_utf8_lossy(&table.stdout).into_owned();
        assert!(table.contains("hmac header     (none)"), "{table}");
        assert!(table.contains("include_host_in_repo_name=false"), "{table}");

        // A reserved name is refused with the field named.
        let refused = hookline(
            &server,
            &token,
            &[
                "create",
                "--name",
                "x",
                "--url",
                "http://127.0.0.1:9/x",
                "--signature-header",
                "webhook-id",
            ],
        );
        assert!(!refused.status.success());
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains("signature_header"), "{stderr}");
        server.stop().await;
    }
);

store_test!(
    the_cli_makes_chat_and_template_webhooks_and_previews_them,
    async |db: &TestDb| {
        let server = TestServer::start(db, with_api).await;
        let (_, token) = server.token(TokenKind::Namespace, "acme").await;
        let slack = ok_json(hookline(
            &server,
            &token,
            &[
                "create",
                "--name",
                "deploys",
                "--url",
                "http://127.0.0.1:9/services/T/B/cred",
                "--format",
                "slack",
                "--chat-mention",
                "<!here>",
                "--chat-link",
                "https://ui.example/{repository}/tags/{tag}",
                "--output",
                "json",
            ],
        ));
        let w = &slack["webhook"];
        assert_eq!(w["format"], "slack");
        assert_eq!(w["payload_options"]["chat_mention"], "<!here>");
        let id = w["id"].as_str().expect("id");
        let got = ok_json(hookline(&server, &token, &["get", id, "--output", "json"]));
        assert_eq!(got["url"], "http://127.0.0.1/…redacted");

        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("body.j2");
        std::fs::write(
            &file,
            "{\"image\": {{ image|tojson }}, \"tag\": {{ tag|tojson }}}",
        )
        .expect("write");
        let made = ok_json(hookline(
            &server,
            &token,
            &[
                "create",
                "--name",
                "ci",
                "--url",
                "http://127.0.0.1:9/ci",
                "--template-file",
                file.to_str().expect("path"),
                "--header",
                "Authorization=Bearer tok-SECRET",
                "--output",
                "json",
            ],
        ));
        assert_eq!(
            made["webhook"]["format"], "template",
            "a template implies the format"
        );
        let id = made["webhook"]["id"].as_str().expect("id").to_owned();
        let shown = ok_json(hookline(
            &server,
            &token,
            &[
                "preview",
                &id,
                "--event-type",
                "image.deleted",
                "--output",
                "json",
            ],
        ));
        assert_eq!(shown["content_type"], "application/json");
        let body: Value =
            serde_json::from_str(shown["body"].as_str().expect("body")).expect("json");
        assert_eq!(body["tag"], "1.4");
        assert_eq!(shown["headers"]["Authorization"], "…redacted");
        let table = hookline(&server, &token, &["preview", &id]);
        let text = String::from_utf8_lossy(&table.stdout);
        assert!(
            text.starts_with("Content-Type: application/json\n"),
            "{text}"
        );
        assert!(!text.contains("tok-SECRET"), "{text}");

        // A template error names its place; the preset says what it needs.
        std::fs::write(&file, "{{ tag").expect("write");
        let refused = hookline(
            &server,
            &token,
            &[
                "update",
                &id,
                "--template-file",
                file.to_str().expect("path"),
            ],
        );
        assert!(!refused.status.success());
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(
            stderr.contains("payload_options.template") && stderr.contains("line 1"),
            "{stderr}"
        );
        let preset = hookline(
            &server,
            &token,
            &[
                "create",
                "--name",
                "gh",
                "--url",
                "http://127.0.0.1:9/dispatches",
                "--preset",
                "github-dispatch",
            ],
        );
        assert!(
            preset.status.success(),
            "{}",
            String::from_utf8_lossy(&preset.stderr)
        );
        assert!(
            String::from_utf8_lossy(&preset.stderr).contains("this preset needs"),
            "the owner learns about the token header"
        );
        server.stop().await;
    }
);
