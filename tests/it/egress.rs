//! Deliveries through the operator's egress proxy (`egress_proxy`), a real tinyproxy with
//! its access log: every delivery goes through it to the address the SSRF guard vetted
//! (never a name the proxy would resolve), an internal address is still refused with the
//! proxy configured, and proxy authentication works (a wrong password is retried, saying
//! why).

use std::sync::Arc;
use std::time::Duration;

use hookline::config::{Config, EgressProxy};
use hookline::store::TokenKind;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::pki_types::pem::PemObject;

use crate::harness::db::{Backend, TestDb};
use crate::harness::envelopes::push;
use crate::harness::receiver::Receiver;
use crate::harness::server::{TestServer, with_api};
use crate::harness::tinyproxy_server::Tinyproxy;
use crate::harness::tls::{TestCa, TlsFront};
use crate::tls::{first_attempt, tls_server};

const PROXY_USER: &str = "hookline";
const PROXY_PASSWORD: &str = "pw-SECRET-egress-0b4e";

/// The port of a URL.
fn port_of(url: &str) -> u16 {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.port())
        .expect("a port")
}

/// Sends through the proxy at `proxy_url`, quickly retried.
fn through(proxy_url: String, roots: Vec<CertificateDer<'static>>) -> impl FnOnce(&mut Config) {
    move |c| {
        with_api(c);
        c.dispatch.poll_interval = Duration::from_millis(100);
        c.dispatch.retry_schedule = vec![Duration::from_millis(200); 3];
        c.dispatch.destination_roots = roots;
        let proxy = EgressProxy::parse(&proxy_url).expect("proxy url");
        c.dispatch.egress_proxy = Some(Arc::new(proxy));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_delivery_goes_through_the_proxy_to_the_vetted_address() {
    let proxy = Tinyproxy::start(Some((PROXY_USER, PROXY_PASSWORD))).await;
    let receiver = Receiver::start().await;
    // An HTTPS receiver on a private CA: a hookline serving TLS, whose answer (401: no
    // registry token) proves the handshake inside the tunnel went through.
    let https_db = TestDb::new(Backend::Sqlite).await;
    let ca = TestCa::new();
    let (https, _) = tls_server(&https_db, &ca).await;
    let root = CertificateDer::from_pem_file(&ca.pem_path).expect("ca.pem");

    let db = TestDb::new(Backend::Sqlite).await;
    let sender = TestServer::start(&db, through(proxy.url_with(None), vec![root])).await;
    let (_, token) = sender.token(TokenKind::Namespace, "acme").await;
    let mut api = sender.api_client(Some(&token)).await;
    let mut deliveries = sender.deliveries_client(Some(&token)).await;
    // Names the test resolver answers with 127.0.0.1: the proxy must be asked for that.
    let http_port = port_of(&receiver.url());
    let http_url = format!("http://receiver.example:{http_port}/hook");
    let https_url = format!("https://localhost:{}/v1/notify", https.ingest.port());
    let (plain, secret) = crate::api::create(&mut api, crate::api::hook("plain", &http_url)).await;
    let (tls, _) = crate::api::create(&mut api, crate::api::hook("tls", &https_url)).await;
    sender.notify_ok(&push("acme/app", "1.4")).await;

    let attempt = first_attempt(&mut deliveries, &plain.id).await;
    assert!((200..300).contains(&attempt.status_code), "{attempt:?}");
    let got = receiver.wait_for(1, Duration::from_secs(20)).await;
    assert!(got[0].signed_with(&secret), "signed as ever");
    let attempt = first_attempt(&mut deliveries, &tls.id).await;
    assert_eq!(
        attempt.status_code, 401,
        "the HTTPS receiver answered: {attempt:?}"
    );

    let requests = proxy.requests();
    let https_port = https.ingest.port();
    assert!(
        requests.contains(&format!("POST http://127.0.0.1:{http_port}/hook HTTP/1.1")),
        "the plain delivery, in absolute form to the vetted address: {requests:?}"
    );
    assert!(
        requests.contains(&format!("CONNECT 127.0.0.1:{https_port} HTTP/1.1")),
        "the HTTPS delivery, tunnelled to the vetted address: {requests:?}"
    );
    assert!(
        !requests
            .iter()
            .any(|r| r.contains("receiver.example") || r.contains("localhost")),
        "the proxy was never asked to resolve a name: {requests:?}"
    );
    sender.stop().await;
    https.stop().await;
    db.finish().await;
    https_db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_internal_address_is_still_refused_with_a_proxy() {
    let proxy = Tinyproxy::start(None).await;
    let receiver = Receiver::start().await;
    let db = TestDb::new(Backend::Sqlite).await;
    let sender = TestServer::start(&db, |c| {
        through(proxy.anonymous_url(), Vec::new())(c);
        // No allow-list: loopback receivers are internal, whoever carries the request.
        c.ssrf = hookline::ssrf::Guard::new(Vec::new())
            .with_lookup(Arc::new(crate::harness::resolver::Names::default()));
    })
    .await;
    let (_, token) = sender.token(TokenKind::Namespace, "acme").await;
    let mut deliveries = sender.deliveries_client(Some(&token)).await;
    // Stored straight in the database: the API would refuse them at registration.
    let port = port_of(&receiver.url());
    let mut ids = Vec::new();
    for url in [
        format!("http://127.0.0.1:{port}"),
        format!("http://internal.example:{port}"),
        format!("https://internal.example:{port}"),
    ] {
        let (webhook, secret) = crate::store_contract::webhook("acme", &url);
        sender
            .store
            .insert_webhook(&webhook, &secret)
            .await
            .expect("insert");
        ids.push(webhook.id);
    }
    sender.notify_ok(&push("acme/app", "1.4")).await;
    for id in &ids {
        let attempt = first_attempt(&mut deliveries, id).await;
        assert_eq!(attempt.error_class, "refused", "{attempt:?}");
    }
    assert!(
        receiver.received().is_empty(),
        "nothing reached the receiver"
    );
    assert!(
        proxy.requests().is_empty(),
        "nothing asked of the proxy: {:?}",
        proxy.requests()
    );
    sender.stop().await;
    db.finish().await;
}

/// A receiver's answer for an HTTPS delivery (through the tunnel) and its webhook's id,
/// and a plain-HTTP webhook's id, sent through the proxy at `proxy_url`.
async fn attempts_through(proxy_url: String) -> Vec<hookline::api::proto::Attempt> {
    let receiver = Receiver::start().await;
    let https_db = TestDb::new(Backend::Sqlite).await;
    let ca = TestCa::new();
    let (https, _) = tls_server(&https_db, &ca).await;
    let root = CertificateDer::from_pem_file(&ca.pem_path).expect("ca.pem");
    let db = TestDb::new(Backend::Sqlite).await;
    let sender = TestServer::start(&db, through(proxy_url, vec![root])).await;
    let (_, token) = sender.token(TokenKind::Namespace, "acme").await;
    let mut api = sender.api_client(Some(&token)).await;
    let mut deliveries = sender.deliveries_client(Some(&token)).await;
    let https_url = format!("https://localhost:{}/v1/notify", https.ingest.port());
    let (plain, _) = crate::api::create(&mut api, crate::api::hook("plain", &receiver.url())).await;
    let (tls, _) = crate::api::create(&mut api, crate::api::hook("tls", &https_url)).await;
    sender.notify_ok(&push("acme/app", "1.4")).await;
    let mut attempts = Vec::new();
    for id in [&tls.id, &plain.id] {
        attempts.push(first_attempt(&mut deliveries, id).await);
    }
    assert!(
        receiver.received().is_empty(),
        "nothing reached the receiver"
    );
    sender.stop().await;
    https.stop().await;
    db.finish().await;
    https_db.finish().await;
    attempts
}

/// Panics unless `attempt` is a retried failure that blames the proxy and quotes no
/// password.
fn blames_the_proxy(attempt: &hookline::api::proto::Attempt) {
    assert_eq!(attempt.status_code, 0, "no receiver's answer: {attempt:?}");
    assert_eq!(attempt.outcome, "retry", "{attempt:?}");
    assert!(attempt.error.contains("proxy"), "{}", attempt.error);
    assert!(!attempt.error.contains(PROXY_PASSWORD), "{}", attempt.error);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_that_wants_credentials_is_retried_saying_why() {
    let proxy = Tinyproxy::start(Some((PROXY_USER, PROXY_PASSWORD))).await;
    // Without credentials the proxy answers 407, to a CONNECT and to a request alike.
    for attempt in attempts_through(
        proxy
            .url_with(None)
            .replace(&format!("{PROXY_USER}:{PROXY_PASSWORD}@"), ""),
    )
    .await
    {
        blames_the_proxy(&attempt);
    }
    // With a wrong password, the tunnel is refused (tinyproxy answers a plain request with
    // its own 401, which hookline cannot tell from a receiver's: docs/security.md).
    let attempts = attempts_through(proxy.url_with(Some("not-the-password"))).await;
    blames_the_proxy(&attempts[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_proxy_is_spoken_to_over_tls_verified_like_a_destination() {
    let proxy = Tinyproxy::start(Some((PROXY_USER, PROXY_PASSWORD))).await;
    let ca = TestCa::new();
    let front = TlsFront::start(&ca, proxy.addr).await;
    let root = CertificateDer::from_pem_file(&ca.pem_path).expect("ca.pem");
    let receiver = Receiver::start().await;
    let db = TestDb::new(Backend::Sqlite).await;
    let url = format!(
        "https://{PROXY_USER}:{PROXY_PASSWORD}@localhost:{}",
        front.addr.port()
    );
    let sender = TestServer::start(&db, through(url.clone(), vec![root])).await;
    let (_, token) = sender.token(TokenKind::Namespace, "acme").await;
    let mut api = sender.api_client(Some(&token)).await;
    let (_, secret) =
        crate::api::create(&mut api, crate::api::hook("plain", &receiver.url())).await;
    sender.notify_ok(&push("acme/app", "1.4")).await;
    let got = receiver.wait_for(1, Duration::from_secs(20)).await;
    assert!(got[0].signed_with(&secret));
    let port = port_of(&receiver.url());
    assert!(
        proxy
            .requests()
            .contains(&format!("POST http://127.0.0.1:{port}/hook HTTP/1.1")),
        "{:?}",
        proxy.requests()
    );
    sender.stop().await;
    db.finish().await;

    // Without the proxy's CA, its certificate proves nothing: retried, never sent.
    let db = TestDb::new(Backend::Sqlite).await;
    let sender = TestServer::start(&db, through(url, Vec::new())).await;
    let (_, token) = sender.token(TokenKind::Namespace, "acme").await;
    let mut api = sender.api_client(Some(&token)).await;
    let mut deliveries = sender.deliveries_client(Some(&token)).await;
    let (w, _) = crate::api::create(&mut api, crate::api::hook("plain", &receiver.url())).await;
    sender.notify_ok(&push("acme/app", "1.5")).await;
    let attempt = first_attempt(&mut deliveries, &w.id).await;
    assert_eq!(attempt.outcome, "retry", "{attempt:?}");
    assert!(
        attempt.error.contains("TLS to the egress proxy"),
        "{}",
        attempt.error
    );
    assert!(!attempt.error.contains(PROXY_PASSWORD), "{}", attempt.error);
    assert_eq!(receiver.received().len(), 1, "nothing more arrived");
    sender.stop().await;
    db.finish().await;
}
