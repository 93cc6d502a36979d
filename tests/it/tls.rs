//! TLS on both listeners (`--tls-cert`, `--tls-key`): HTTPS notify, gRPC and the console
//! over TLS with the CLI verifying the server, clean failures for plaintext and untrusted
//! clients, and certificate rotation (file change and SIGHUP) without dropping connections.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use hookline::store::TokenKind;
use hookline::tls::TlsFiles;

use crate::harness::db::{Backend, TestDb};
use crate::harness::envelopes;
use crate::harness::process::{Hookline, free_addr};
use crate::harness::server::{REGISTRY_TOKEN, TestServer, with_api};
use crate::harness::tls::{Leaf, TestCa, connect, get};

/// An HTTPS client trusting only `ca`, with `localhost` pinned to `addr`'s IP.
fn https_client(ca: &TestCa, addr: SocketAddr) -> reqwest::Client {
    let root = reqwest::Certificate::from_pem(ca.pem().as_bytes()).expect("CA pem");
    reqwest::Client::builder()
        .no_proxy()
        .tls_built_in_root_certs(false)
        .add_root_certificate(root)
        .resolve("localhost", addr)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("https client")
}

/// A TLS server (ingest and api) on SQLite with a fresh certificate from `ca`.
pub(crate) async fn tls_server(db: &TestDb, ca: &TestCa) -> (TestServer, Leaf) {
    let (cert, key) = ca.server_paths();
    let leaf = ca.leaf();
    leaf.write(&cert, &key);
    let server = TestServer::start(db, |config| {
        with_api(config);
        config.tls = Some(TlsFiles { cert, key });
    })
    .await;
    (server, leaf)
}

/// Runs the `hookline` CLI against `server` with `args`.
fn cli(server: &str, token: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hookline"))
        .args(args)
        .env("HOOKLINE_SERVER", server)
        .env("HOOKLINE_TOKEN", token)
        .env_remove("HOOKLINE_CA_CERT")
        .output()
        .expect("run hookline")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_grpc_and_console_work_over_tls_with_a_verified_certificate() {
    let db = TestDb::new(Backend::Sqlite).await;
    let ca = TestCa::new();
    let (server, _) = tls_server(&db, &ca).await;

    // Ingest: HTTPS, verified against the test CA.
    let client = https_client(&ca, server.ingest);
    let response = client
        .post(format!(
            "https://localhost:{}/v1/notify",
            server.ingest.port()
        ))
        .header(
            "content-type",
            "application/vnd.docker.distribution.events.v1+json",
        )
        .bearer_auth(REGISTRY_TOKEN)
        .body(envelopes::push("team/app", "v1"))
        .send()
        .await
        .expect("HTTPS notify");
    assert_eq!(response.status().as_u16(), 200);
    let body: serde_json::Value =
        serde_json::from_str(&response.text().await.expect("body")).expect("json");
    assert_eq!(body["accepted"], 1, "{body}");

    // The api port: gRPC through the real CLI, verifying with --ca-cert.
    let api = server.api.expect("api runs");
    let (_, token) = server.token(TokenKind::Namespace, "acme").await;
    let url = format!("https://localhost:{}", api.port());
    let ca_path = ca.pem_path.to_str().expect("utf-8 path");
    let listed = cli(&url, &token, &["webhooks", "list", "--ca-cert", ca_path]);
    assert!(
        listed.status.success(),
        "CLI over TLS failed: {}",
        String::from_utf8_lossy(&listed.stderr)
    );

    // The console shares the api port over HTTP/1.1 (ALPN offers h2 and http/1.1), and
    // its cookies are `Secure` since the browser speaks HTTPS.
    let console = https_client(&ca, api)
        .get(format!("https://localhost:{}/console/sign-in", api.port()))
        .send()
        .await
        .expect("console over TLS");
    assert_eq!(console.status().as_u16(), 200);
    let cookie = console
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(cookie.contains("; Secure"), "{cookie}");

    // Without the CA the CLI refuses the certificate and says how to fix it.
    let refused = cli(&url, &token, &["webhooks", "list"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "untrusted server accepted");
    assert!(
        stderr.contains("cannot verify the TLS certificate") && stderr.contains("--ca-cert"),
        "{stderr}"
    );

    server.stop().await;
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_and_untrusted_clients_fail_cleanly_and_the_server_keeps_serving() {
    let db = TestDb::new(Backend::Sqlite).await;
    let ca = TestCa::new();
    let (server, _) = tls_server(&db, &ca).await;
    let plain = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");

    for addr in [server.ingest, server.api.expect("api runs")] {
        // Plaintext HTTP to a TLS port: the handshake fails, the client gets an error
        // (not a hang: the server closes the connection at once).
        let started = Instant::now();
        let error = plain
            .get(format!("http://{addr}/healthz"))
            .send()
            .await
            .expect_err("plaintext must not be answered");
        assert!(started.elapsed() < Duration::from_secs(5), "{error}");

        // A TLS client that does not trust the certificate: a verification error.
        let stranger = reqwest::Client::builder()
            .no_proxy()
            .tls_built_in_root_certs(false)
            .add_root_certificate(
                reqwest::Certificate::from_pem(TestCa::new().pem().as_bytes()).expect("pem"),
            )
            .resolve("localhost", addr)
            .build()
            .expect("client");
        let error = stranger
            .get(format!("https://localhost:{}/healthz", addr.port()))
            .send()
            .await
            .expect_err("untrusted certificate");
        let chain = format!("{error:?}");
        assert!(chain.contains("InvalidCertificate"), "{chain}");
    }

    // … and the next TLS request is served.
    let response = https_client(&ca, server.ingest)
        .get(format!(
            "https://localhost:{}/healthz",
            server.ingest.port()
        ))
        .send()
        .await
        .expect("TLS after the failures");
    assert_eq!(response.status().as_u16(), 200);

    server.stop().await;
    db.finish().await;
}

/// Polls new connections to `addr` until one presents `want` (bounded).
async fn wait_for_certificate(addr: SocketAddr, ca: &TestCa, want: &[u8], within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let (_, der) = connect(addr, ca).await;
        if der == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "new connections still get the old certificate after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewritten_certificate_is_served_to_new_connections_while_old_ones_keep_working() {
    let db = TestDb::new(Backend::Sqlite).await;
    let ca = TestCa::new();
    let (server, first) = tls_server(&db, &ca).await;
    let (cert, key) = ca.server_paths();

    let (mut before, der) = connect(server.ingest, &ca).await;
    assert_eq!(der, first.der);
    assert_eq!(get(&mut before, "/healthz").await, 200);

    // A half-finished rotation (garbage in the cert file) is refused; the old one stays.
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nnope\n").expect("write");
    tokio::time::sleep(hookline::tls::POLL_INTERVAL + Duration::from_millis(500)).await;
    let (_, der) = connect(server.ingest, &ca).await;
    assert_eq!(
        der, first.der,
        "a broken file must not replace the certificate"
    );

    // The real rotation: new key, new certificate, same paths. The file watch notices.
    let second = ca.leaf();
    assert_ne!(second.der, first.der);
    second.write(&cert, &key);
    let api = server.api.expect("api runs");
    wait_for_certificate(server.ingest, &ca, &second.der, Duration::from_secs(10)).await;
    wait_for_certificate(api, &ca, &second.der, Duration::from_secs(2)).await;

    // The connection opened before the rotation still works, on its old session.
    assert_eq!(get(&mut before, "/healthz").await, 200);
    assert_eq!(
        before.get_ref().1.peer_certificates().expect("certs")[0].as_ref(),
        first.der.as_slice()
    );

    server.stop().await;
    db.finish().await;
}

/// `text` without ANSI colour sequences (the log is written as for a terminal).
fn without_colours(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // ESC [ … m
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A new leaf whose files have the same lengths as `old`'s, so that with the old
/// modification times restored only SIGHUP (not the file poll) can notice the change.
fn same_size_leaf(ca: &TestCa, old: &Leaf) -> Leaf {
    for _ in 0..100 {
        let leaf = ca.leaf();
        if leaf.cert_pem.len() == old.cert_pem.len() && leaf.key_pem.len() == old.key_pem.len() {
            return leaf;
        }
    }
    panic!("no same-size certificate in 100 tries");
}

/// Rewrites `path` and puts its modification time back.
fn rewrite_keeping_mtime(path: &Path, text: &str) {
    let modified = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .expect("mtime");
    std::fs::write(path, text).expect("write");
    std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(modified))
        .expect("set mtime");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_tls_reloads_on_sighup_and_refuses_bad_files_by_name() {
    let ca = TestCa::new();
    let (cert, key) = ca.server_paths();
    let first = ca.leaf();
    first.write(&cert, &key);
    let dir = tempfile::tempdir().expect("dir");
    let db = format!("sqlite://{}", dir.path().join("hookline.db").display());
    let (cert_arg, key_arg) = (cert.to_str().expect("utf-8"), key.to_str().expect("utf-8"));

    // Start-up errors name what is wrong.
    let missing = dir.path().join("missing.pem");
    let missing_arg = missing.to_str().expect("utf-8");
    for (args, expect) in [
        (
            vec!["--tls-cert", missing_arg, "--tls-key", key_arg],
            "missing.pem",
        ),
        (
            vec!["--tls-cert", cert_arg, "--tls-key", cert_arg],
            "holds no PEM private key",
        ),
        (
            vec!["--tls-cert", cert_arg],
            "tls_cert is set but tls_key is not",
        ),
    ] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_hookline"));
        command.args(["serve", "--roles", "ingest", "--db", &db]);
        let output = command
            .args(&args)
            .env("HOOKLINE_INGEST_ADDR", free_addr().to_string())
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} started");
        assert!(stderr.contains(expect), "{args:?}: {stderr}");
    }

    let addr = free_addr();
    let addr_arg = addr.to_string();
    let server = Hookline::spawn(&[
        "serve",
        "--roles",
        "ingest",
        "--db",
        &db,
        "--ingest-addr",
        &addr_arg,
        "--tls-cert",
        cert_arg,
        "--tls-key",
        key_arg,
    ]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let client = https_client(&ca, addr);
    let url = format!("https://localhost:{}/healthz", addr.port());
    while client.get(&url).send().await.is_err() {
        assert!(
            Instant::now() < deadline,
            "never served TLS\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = without_colours(&server.log());
    assert!(
        log.contains("ingest listening") && log.contains("tls=true"),
        "{log}"
    );
    let (mut before, der) = connect(addr, &ca).await;
    assert_eq!(der, first.der);

    // Plaintext to the TLS port fails for that client only, quietly in the log.
    let plain = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    assert!(
        plain
            .get(format!("http://{addr}/healthz"))
            .send()
            .await
            .is_err()
    );

    // Same sizes, same modification times: only SIGHUP can make it look.
    let second = same_size_leaf(&ca, &first);
    rewrite_keeping_mtime(&key, &second.key_pem);
    rewrite_keeping_mtime(&cert, &second.cert_pem);
    let hup = Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .expect("kill");
    assert!(hup.success());
    wait_for_certificate(addr, &ca, &second.der, Duration::from_secs(5)).await;
    assert_eq!(
        get(&mut before, "/healthz").await,
        200,
        "old connection kept"
    );

    let log = without_colours(&server.log());
    assert!(log.contains("TLS certificate reloaded"), "{log}");
    assert!(log.contains("SIGHUP"), "{log}");
    assert!(
        !log.lines()
            .any(|l| l.contains("WARN") && l.contains("handshake")),
        "a failed handshake is not a warning: {log}"
    );
}

/// The first attempt of the first delivery to `webhook_id`, once made.
pub(crate) async fn first_attempt(
    deliveries: &mut crate::harness::api::Deliveries,
    webhook_id: &str,
) -> hookline::api::proto::Attempt {
    use hookline::api::proto::{DeliveryStatus, GetDeliveryRequest};
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let all = [
            DeliveryStatus::Retrying,
            DeliveryStatus::Failed,
            DeliveryStatus::Succeeded,
        ];
        let found = crate::deliveries::deliveries_in(deliveries, webhook_id, &all).await;
        if let Some(delivery) = found.first() {
            let attempts = deliveries
                .get_delivery(GetDeliveryRequest {
                    id: delivery.id.clone(),
                })
                .await
                .expect("get delivery")
                .into_inner()
                .attempts;
            if let Some(first) = attempts.into_iter().next() {
                return first;
            }
        }
        assert!(Instant::now() < deadline, "no attempt was made");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_receiver_on_a_private_ca_is_trusted_only_through_destination_ca_file() {
    use tokio_rustls::rustls::pki_types::CertificateDer;
    use tokio_rustls::rustls::pki_types::pem::PemObject;

    // The receiver: a hookline serving HTTPS with the private CA's certificate, whose
    // answer (401: no registry token) proves the handshake went through.
    let receiver_db = TestDb::new(Backend::Sqlite).await;
    let ca = TestCa::new();
    let (receiver, _) = tls_server(&receiver_db, &ca).await;
    let url = format!("https://localhost:{}/v1/notify", receiver.ingest.port());
    let root = CertificateDer::from_pem_file(&ca.pem_path).expect("ca.pem");

    for trusted in [true, false] {
        let db = TestDb::new(Backend::Sqlite).await;
        let sender = TestServer::start(&db, |c| {
            with_api(c);
            c.dispatch.poll_interval = Duration::from_millis(100);
            if trusted {
                c.dispatch.destination_roots = vec![root.clone()];
            }
        })
        .await;
        let (_, token) = sender.token(TokenKind::Namespace, "acme").await;
        let mut api = sender.api_client(Some(&token)).await;
        let mut deliveries = sender.deliveries_client(Some(&token)).await;
        let (w, _) = crate::api::create(&mut api, crate::api::hook("https", &url)).await;
        sender.notify_ok(&envelopes::push("acme/app", "1.4")).await;
        let attempt = first_attempt(&mut deliveries, &w.id).await;
        if trusted {
            assert_eq!(attempt.status_code, 401, "{attempt:?}");
        } else {
            assert_eq!(attempt.status_code, 0, "no answer: {attempt:?}");
            assert!(attempt.error.contains("certificate"), "{}", attempt.error);
        }
        sender.stop().await;
        db.finish().await;
    }
    receiver.stop().await;
    receiver_db.finish().await;
}
