//! OAuth 2.0 client credentials: a token endpoint on 127.0.0.1 speaking RFC 6749 §4.4 and a
//! receiver that accepts only the endpoint's current token. Tokens are cached (one token
//! request per lifetime, counted), an expired one is renewed, a revoked one is replaced
//! after one 401 without counting a failed attempt, a token endpoint answering 500 is
//! retried with its reason, the secret is never shown, and bad credentials are refused
//! naming the field.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hookline::api::proto::{self, DeliveryStatus, GetWebhookRequest};
use hookline::store::TokenKind;

use crate::deliveries::wait_status;
use crate::harness::db::{Backend, TestDb};
use crate::harness::envelopes::push;
use crate::harness::server::{TestServer, with_api};
use crate::tls::first_attempt;

const CLIENT_ID: &str = "hookline-deployer";
const CLIENT_SECRET: &str = "cs-SECRET-oauth-7a1f";

#[derive(Default)]
struct Idp {
    /// Token requests answered, good or bad.
    token_requests: usize,
    /// The one token the receiver accepts now.
    current: Option<String>,
    issued: usize,
    /// Lifetime announced, seconds.
    expires_in: u64,
    /// Answer token requests with 500.
    down: bool,
    /// Requests the receiver accepted, and those it refused with 401.
    accepted: usize,
    refused: usize,
    /// The scope the last token request asked for.
    scope: Option<String>,
}

type Shared = Arc<Mutex<Idp>>;

async fn token(
    State(idp): State<Shared>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, String) {
    use base64::Engine;
    let mut idp = idp.lock().expect("idp");
    idp.token_requests += 1;
    if idp.down {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            r#"{"error":"temporarily_unavailable"}"#.into(),
        );
    }
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
    let authorized = headers.get("authorization").and_then(|v| v.to_str().ok())
        == Some(format!("Basic {basic}").as_str());
    let form: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let client_credentials = form
        .iter()
        .any(|(k, v)| k == "grant_type" && v == "client_credentials");
    if !authorized || !client_credentials {
        return (
            StatusCode::UNAUTHORIZED,
            r#"{"error":"invalid_client"}"#.into(),
        );
    }
    idp.scope = form.into_iter().find(|(k, _)| k == "scope").map(|(_, v)| v);
    idp.issued += 1;
    let token = format!("at-{}", idp.issued);
    idp.current = Some(token.clone());
    let expires_in = idp.expires_in;
    (
        StatusCode::OK,
        format!(r#"{{"access_token":"{token}","token_type":"Bearer","expires_in":{expires_in}}}"#),
    )
}

async fn hook(State(idp): State<Shared>, headers: HeaderMap) -> StatusCode {
    let mut idp = idp.lock().expect("idp");
    let presented = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    match (&idp.current, presented) {
        (Some(current), Some(presented)) if presented == format!("Bearer {current}") => {
            idp.accepted += 1;
            StatusCode::NO_CONTENT
        }
        _ => {
            idp.refused += 1;
            StatusCode::UNAUTHORIZED
        }
    }
}

/// The token endpoint (`/token`) and the receiver (`/hook`) on one 127.0.0.1 port.
async fn idp(expires_in: u64) -> (Shared, String) {
    let state: Shared = Arc::new(Mutex::new(Idp {
        expires_in,
        ..Idp::default()
    }));
    let app = axum::Router::new()
        .route("/token", post(token))
        .route("/hook", post(hook))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (state, base)
}

/// A webhook to `base`/hook with the test's client credentials.
fn webhook(base: &str, secret: &str, scopes: &[&str]) -> proto::Webhook {
    proto::Webhook {
        oauth: Some(proto::OAuthClientCredentials {
            token_url: format!("{base}/token"),
            client_id: CLIENT_ID.into(),
            client_secret: secret.into(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        }),
        ..crate::api::hook("oauth", &format!("{base}/hook"))
    }
}

fn quick(c: &mut hookline::config::Config) {
    with_api(c);
    c.dispatch.poll_interval = Duration::from_millis(100);
    c.dispatch.retry_schedule = vec![Duration::from_millis(300); 5];
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_cached_renewed_when_they_expire_and_replaced_after_a_401() {
    let (idp, base) = idp(2).await;
    let db = TestDb::new(Backend::Sqlite).await;
    let server = TestServer::start(&db, quick).await;
    let (_, token) = server.token(TokenKind::Namespace, "acme").await;
    let mut api = server.api_client(Some(&token)).await;
    let mut deliveries = server.deliveries_client(Some(&token)).await;
    let (w, _) = crate::api::create(
        &mut api,
        webhook(&base, CLIENT_SECRET, &["deploy:write", "read"]),
    )
    .await;
    assert!(
        w.oauth.as_ref().is_some_and(|o| o.client_secret.is_empty()),
        "never shown: {w:?}"
    );

    // A burst within one token's life: one token request.
    for i in 0..10 {
        server.notify_ok(&push("acme/app", &format!("1.{i}"))).await;
    }
    wait_status(&mut deliveries, &w.id, DeliveryStatus::Succeeded, 10).await;
    {
        let idp = idp.lock().expect("idp");
        assert_eq!(idp.token_requests, 1, "one token for the burst");
        assert_eq!(idp.accepted, 10);
        assert_eq!(idp.scope.as_deref(), Some("deploy:write read"));
    }

    // Past its life (2 s, renewed half a second early): a second token.
    tokio::time::sleep(Duration::from_millis(1700)).await;
    server.notify_ok(&push("acme/app", "2.0")).await;
    wait_status(&mut deliveries, &w.id, DeliveryStatus::Succeeded, 11).await;
    assert_eq!(idp.lock().expect("idp").token_requests, 2, "renewed once");

    // Revoked at the receiver (its endpoint issued another): one 401, a new token, and
    // the delivery succeeds in one attempt.
    idp.lock().expect("idp").current = Some("revoked-everything".into());
    let refused_before = idp.lock().expect("idp").refused;
    server.notify_ok(&push("acme/app", "3.0")).await;
    let done = wait_status(&mut deliveries, &w.id, DeliveryStatus::Succeeded, 12).await;
    let idp_now = idp.lock().expect("idp").token_requests;
    assert_eq!(idp_now, 3, "one new token after the 401");
    assert_eq!(idp.lock().expect("idp").refused, refused_before + 1);
    let newest = done
        .iter()
        .max_by_key(|d| d.created_at.as_ref().map(|t| (t.seconds, t.nanos)));
    let attempts = crate::buses::attempts(&mut deliveries, &newest.expect("a delivery").id).await;
    assert_eq!(attempts.len(), 1, "the 401 was not counted: {attempts:?}");
    server.stop().await;
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_endpoint_that_fails_is_retried_and_one_that_refuses_is_final() {
    let (idp, base) = idp(3600).await;
    idp.lock().expect("idp").down = true;
    let db = TestDb::new(Backend::Sqlite).await;
    let server = TestServer::start(&db, quick).await;
    let (_, token) = server.token(TokenKind::Namespace, "acme").await;
    let mut api = server.api_client(Some(&token)).await;
    let mut deliveries = server.deliveries_client(Some(&token)).await;
    let (down, _) = crate::api::create(&mut api, webhook(&base, CLIENT_SECRET, &[])).await;
    let (wrong, _) = crate::api::create(&mut api, webhook(&base, "not-the-secret", &[])).await;
    server.notify_ok(&push("acme/app", "1.0")).await;
    let attempt = first_attempt(&mut deliveries, &down.id).await;
    assert_eq!(attempt.error_class, "oauth", "{attempt:?}");
    assert!(attempt.error.contains("HTTP 500"), "{}", attempt.error);
    assert_eq!(attempt.outcome, "retry", "{attempt:?}");
    assert!(!attempt.error.contains(CLIENT_SECRET));

    // Up again: the retry gets a token and delivers; the wrong secret's is refused for good.
    idp.lock().expect("idp").down = false;
    wait_status(&mut deliveries, &down.id, DeliveryStatus::Succeeded, 1).await;
    let failed = wait_status(&mut deliveries, &wrong.id, DeliveryStatus::Failed, 1).await;
    let attempts = crate::buses::attempts(&mut deliveries, &failed[0].id).await;
    let last = attempts.last().expect("an attempt");
    assert_eq!(last.error_class, "oauth");
    assert!(last.reason.contains("invalid_client"), "{}", last.reason);
    assert!(!last.reason.contains("not-the-secret"));
    server.stop().await;
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_credentials_are_checked_naming_the_field_and_the_secret_never_shown() {
    let db = TestDb::new(Backend::Sqlite).await;
    let server = TestServer::start(&db, with_api).await;
    let (_, token) = server.token(TokenKind::Namespace, "acme").await;
    let mut api = server.api_client(Some(&token)).await;
    let base = "http://127.0.0.1:9";
    for (webhook, field) in [
        (webhook(base, "", &[]), "webhook.oauth.client_secret"),
        (
            webhook(base, CLIENT_SECRET, &["two words"]),
            "webhook.oauth.scopes[0]",
        ),
        (
            proto::Webhook {
                oauth: Some(proto::OAuthClientCredentials {
                    token_url: "ftp://idp.example/token".into(),
                    ..webhook(base, CLIENT_SECRET, &[]).oauth.expect("oauth")
                }),
                ..webhook(base, CLIENT_SECRET, &[])
            },
            "webhook.oauth.token_url",
        ),
    ] {
        let said = crate::harness::api::refused_naming(&mut api, webhook, field).await;
        assert!(!said.contains(CLIENT_SECRET));
    }
    let (w, _) = crate::api::create(&mut api, webhook(base, CLIENT_SECRET, &["read"])).await;
    let got = api
        .get_webhook(GetWebhookRequest { id: w.id.clone() })
        .await
        .expect("get")
        .into_inner()
        .webhook
        .expect("webhook");
    let oauth = got.oauth.clone().expect("oauth shown");
    assert_eq!(
        (oauth.client_id.as_str(), oauth.scopes.as_slice()),
        (CLIENT_ID, &["read".to_owned()][..])
    );
    assert!(oauth.client_secret.is_empty());
    assert!(!format!("{got:?}").contains(CLIENT_SECRET));
    server.stop().await;
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_sets_oauth_credentials_and_never_shows_the_secret() {
    let db = TestDb::new(Backend::Sqlite).await;
    let server = TestServer::start(&db, with_api).await;
    let (_, token) = server.token(TokenKind::Namespace, "acme").await;
    let dir = tempfile::tempdir().expect("dir");
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, format!("{CLIENT_SECRET}\n")).expect("secret file");
    let api_url = server.api_url();
    let cli = |args: &[&str]| {
        let text = crate::harness::api::cli_ok(&api_url, &token, args);
        assert!(!text.contains(CLIENT_SECRET), "never shown: {text}");
        text
    };
    let secret_path = secret_file.display().to_string();
    let created = cli(&[
        "webhooks",
        "create",
        "--name",
        "oauth",
        "--url",
        "http://127.0.0.1:9/hook",
        "--oauth-token-url",
        "http://127.0.0.1:9/token",
        "--oauth-client-id",
        CLIENT_ID,
        "--oauth-client-secret-file",
        &secret_path,
        "--oauth-scope",
        "deploy:write",
        "--output",
        "json",
    ]);
    let id = serde_json::from_str::<serde_json::Value>(&created).expect("json")["webhook"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let shown = cli(&["webhooks", "get", &id]);
    assert!(
        shown.contains(&format!(
            "client {CLIENT_ID} at http://127.0.0.1:9/token, scopes deploy:write"
        )),
        "{shown}"
    );
    cli(&["webhooks", "update", &id, "--no-oauth"]);
    let json = cli(&["webhooks", "get", &id, "--output", "json"]);
    assert!(json.contains("\"oauth\":null"), "removed: {json}");
    server.stop().await;
    db.finish().await;
}
