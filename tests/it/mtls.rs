//! Mutual TLS to receivers: a webhook's client certificate is presented on every
//! connection to a receiver that demands one (rustls with a client verifier on 127.0.0.1),
//! a webhook without one fails the handshake saying why, a rotation over the API takes
//! effect on the next delivery, the key is never shown, and bad PEM is INVALID_ARGUMENT
//! naming the field.

use std::time::Duration;

use hookline::api::proto::{self, GetWebhookRequest, UpdateWebhookRequest};
use hookline::store::TokenKind;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::pki_types::pem::PemObject;

use crate::harness::db::{Backend, TestDb};
use crate::harness::envelopes::push;
use crate::harness::receiver::Receiver;
use crate::harness::server::{TestServer, with_api};
use crate::harness::tls::{Leaf, TestCa, TlsFront};
use crate::tls::first_attempt;

/// A webhook to `url` presenting `leaf` (none when None).
fn hook_with(url: &str, leaf: Option<&Leaf>) -> proto::Webhook {
    let mut webhook = crate::api::hook("mtls", url);
    if let Some(leaf) = leaf {
        webhook.client_certificate = leaf.cert_pem.clone();
        webhook.client_key = leaf.key_pem.clone();
    }
    webhook
}

/// An update of `id` to present `leaf`.
fn rotate(id: &str, leaf: &Leaf) -> UpdateWebhookRequest {
    UpdateWebhookRequest {
        webhook: Some(proto::Webhook {
            id: id.into(),
            client_certificate: leaf.cert_pem.clone(),
            client_key: leaf.key_pem.clone(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["client_certificate".into()],
        }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_demands_a_client_certificate_gets_the_webhooks() {
    let (server_ca, client_ca, stranger_ca) = (TestCa::new(), TestCa::new(), TestCa::new());
    let receiver = Receiver::start().await;
    let plain: std::net::SocketAddr = receiver
        .url()
        .trim_start_matches("http://")
        .trim_end_matches("/hook")
        .parse()
        .expect("receiver address");
    let front = TlsFront::requiring_client_certificates(&server_ca, &client_ca, plain).await;
    let url = format!("https://localhost:{}/hook", front.addr.port());
    let root = CertificateDer::from_pem_file(&server_ca.pem_path).expect("ca.pem");

    let db = TestDb::new(Backend::Sqlite).await;
    let server = TestServer::start(&db, |c| {
        with_api(c);
        c.dispatch.poll_interval = Duration::from_millis(100);
        c.dispatch.retry_schedule = vec![Duration::from_secs(60)];
        c.dispatch.destination_roots = vec![root];
    })
    .await;
    let (_, token) = server.token(TokenKind::Namespace, "acme").await;
    let mut api = server.api_client(Some(&token)).await;
    let mut deliveries = server.deliveries_client(Some(&token)).await;
    let leaf = client_ca.leaf();
    let (with, secret) = crate::api::create(&mut api, hook_with(&url, Some(&leaf))).await;
    let (without, _) = crate::api::create(&mut api, hook_with(&url, None)).await;
    assert_eq!(
        with.client_certificate, leaf.cert_pem,
        "the certificate is shown"
    );
    assert!(with.client_key.is_empty(), "the key never is");

    server.notify_ok(&push("acme/app", "1.4")).await;
    let got = receiver.wait_for(1, Duration::from_secs(20)).await;
    assert!(
        got[0].signed_with(&secret),
        "delivered, signed, through mutual TLS"
    );
    let attempt = first_attempt(&mut deliveries, &without.id).await;
    assert_eq!(attempt.status_code, 0, "{attempt:?}");
    assert!(
        attempt.error.to_lowercase().contains("certificate"),
        "the handshake failed, saying why: {}",
        attempt.error
    );

    // Rotated to a certificate the receiver does not trust: the next delivery presents it.
    let stranger = stranger_ca.leaf();
    api.update_webhook(rotate(&with.id, &stranger))
        .await
        .expect("rotate");
    let shown = api
        .get_webhook(GetWebhookRequest {
            id: with.id.clone(),
        })
        .await
        .expect("get")
        .into_inner()
        .webhook
        .expect("webhook");
    assert_eq!(shown.client_certificate, stranger.cert_pem);
    assert!(shown.client_key.is_empty());
    server.notify_ok(&push("acme/app", "1.5")).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let failed = crate::deliveries::deliveries_in(
            &mut deliveries,
            &with.id,
            &[proto::DeliveryStatus::Retrying],
        )
        .await;
        if !failed.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the rotated certificate was not used"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(receiver.received().len(), 1, "nothing more arrived");

    // Back to a trusted one: delivered again.
    let trusted = client_ca.leaf();
    api.update_webhook(rotate(&with.id, &trusted))
        .await
        .expect("rotate back");
    server.notify_ok(&push("acme/app", "1.6")).await;
    receiver.wait_for(2, Duration::from_secs(20)).await;
    server.stop().await;
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_client_certificate_is_refused_naming_the_field() {
    let db = TestDb::new(Backend::Sqlite).await;
    let server = TestServer::start(&db, with_api).await;
    let (_, token) = server.token(TokenKind::Namespace, "acme").await;
    let mut api = server.api_client(Some(&token)).await;
    let ca = TestCa::new();
    let leaf = ca.leaf();
    let https = "https://receiver.example/hook";
    let cases: Vec<(proto::Webhook, &str)> = vec![
        (
            proto::Webhook {
                client_certificate:
                    "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n".into(),
                client_key: leaf.key_pem.clone(),
                ..crate::api::hook("bad", https)
            },
            "webhook.client_certificate",
        ),
        (
            proto::Webhook {
                client_certificate: leaf.cert_pem.clone(),
                ..crate::api::hook("bad", https)
            },
            "webhook.client_key",
        ),
        (
            proto::Webhook {
                client_key: leaf.key_pem.clone(),
                ..crate::api::hook("bad", https)
            },
            "webhook.client_certificate",
        ),
        (
            proto::Webhook {
                client_certificate: leaf.cert_pem.clone(),
                client_key: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into(),
                ..crate::api::hook("bad", https)
            },
            "webhook.client_key",
        ),
        (
            proto::Webhook {
                client_certificate: leaf.cert_pem.clone(),
                client_key: leaf.key_pem.clone(),
                ..crate::api::hook("bad", "http://receiver.example/hook")
            },
            "webhook.client_certificate",
        ),
    ];
    for (webhook, field) in cases {
        let said = crate::harness::api::refused_naming(&mut api, webhook, field).await;
        assert!(!said.contains("PRIVATE KEY"), "no key quoted: {said}");
    }
    server.stop().await;
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_sets_and_rotates_a_client_certificate_and_never_shows_its_key() {
    let db = TestDb::new(Backend::Sqlite).await;
    let server = TestServer::start(&db, with_api).await;
    let (_, token) = server.token(TokenKind::Namespace, "acme").await;
    let ca = TestCa::new();
    let dir = tempfile::tempdir().expect("dir");
    let files = |leaf: &Leaf, name: &str| {
        let (cert, key) = (
            dir.path().join(format!("{name}.pem")),
            dir.path().join(format!("{name}.key")),
        );
        std::fs::write(&cert, &leaf.cert_pem).expect("cert");
        std::fs::write(&key, &leaf.key_pem).expect("key");
        (cert.display().to_string(), key.display().to_string())
    };
    let api_url = server.api_url();
    let cli = |args: &[&str]| crate::harness::api::cli_ok(&api_url, &token, args);
    let first = ca.leaf();
    let (cert, key) = files(&first, "first");
    let created = cli(&[
        "webhooks",
        "create",
        "--name",
        "mtls",
        "--url",
        "https://receiver.example/hook",
        "--client-cert",
        &cert,
        "--client-key",
        &key,
        "--output",
        "json",
    ]);
    let id = serde_json::from_str::<serde_json::Value>(&created).expect("json")["webhook"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let shown = cli(&["webhooks", "get", &id]);
    assert!(shown.contains("client certificate"), "{shown}");
    let second = ca.leaf();
    let (cert, key) = files(&second, "second");
    cli(&[
        "webhooks",
        "update",
        &id,
        "--client-cert",
        &cert,
        "--client-key",
        &key,
    ]);
    let json = cli(&["webhooks", "get", &id, "--output", "json"]);
    assert!(
        json.contains(&second.cert_pem.replace('\n', "\\n")),
        "rotated: {json}"
    );
    for text in [&created, &shown, &json] {
        for leaf in [&first, &second] {
            let line = leaf.key_pem.lines().nth(1).expect("key line");
            assert!(!text.contains(line), "the key is never shown: {text}");
        }
    }
    cli(&["webhooks", "update", &id, "--no-client-cert"]);
    let json = cli(&["webhooks", "get", &id, "--output", "json"]);
    assert!(!json.contains("BEGIN CERTIFICATE"), "removed: {json}");
    server.stop().await;
    db.finish().await;
}
