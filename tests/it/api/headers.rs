//! Custom header values are secrets unless the owner marks a header plain: the API shows
//! the others as `…redacted`, an update that sends a value back as shown keeps the stored
//! one, deliveries carry the real values, and a plain header that names no header, or a
//! redacted value where none is stored, is INVALID_ARGUMENT naming the field.

use std::time::Duration;

use hookline::api::proto::{self, UpdateWebhookRequest};
use hookline::store::TokenKind;

use super::{create, get, hook, mask};
use crate::harness::envelopes::push;
use crate::harness::receiver::Receiver;
use crate::harness::server::{TestServer, with_api};

const TOKEN_VALUE: &str = "Bearer rcv-SECRET-4d2a";
const REDACTED: &str = "…redacted";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_values_are_shown_redacted_unless_plain_and_kept_through_an_update() {
    let db = crate::harness::db::TestDb::new(crate::harness::db::Backend::Sqlite).await;
    let receiver = Receiver::start().await;
    let server = TestServer::start(&db, |c| {
        with_api(c);
        c.dispatch.poll_interval = Duration::from_millis(100);
    })
    .await;
    let (_, token) = server.token(TokenKind::Namespace, "acme").await;
    let mut api = server.api_client(Some(&token)).await;
    let mut webhook = hook("headers", &receiver.url());
    webhook.headers = [
        ("Authorization".to_owned(), TOKEN_VALUE.to_owned()),
        ("X-Team".to_owned(), "deploy".to_owned()),
    ]
    .into();
    webhook.plain_headers = vec!["x-team".into()];
    let (created, _) = create(&mut api, webhook).await;
    assert_eq!(created.headers["Authorization"], REDACTED);
    assert_eq!(created.headers["X-Team"], "deploy", "plain: shown");
    assert_eq!(
        created.plain_headers,
        ["X-Team"],
        "as the header is spelled"
    );

    // The console and scripts send back what they were shown: the stored value stays.
    let shown = api
        .get_webhook(get(&created.id))
        .await
        .expect("get")
        .into_inner();
    let mut edited = shown.webhook.expect("webhook");
    edited.headers.insert("X-Env".into(), "prod".into());
    api.update_webhook(UpdateWebhookRequest {
        webhook: Some(edited),
        update_mask: mask(&["headers"]),
    })
    .await
    .expect("update");
    server.notify_ok(&push("acme/app", "1.4")).await;
    let got = receiver.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(
        got[0].header("authorization"),
        TOKEN_VALUE,
        "the stored value kept"
    );
    assert_eq!(got[0].header("x-team"), "deploy");
    assert_eq!(got[0].header("x-env"), "prod");

    for (headers, plain, field) in [
        (
            vec![("X-Team", "deploy")],
            vec!["X-Nope"],
            "webhook.plain_headers[0]",
        ),
        (
            vec![("X-New", REDACTED)],
            vec![],
            "webhook.headers[\"X-New\"]",
        ),
    ] {
        let mut bad = hook("bad", &receiver.url());
        bad.headers = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        bad.plain_headers = plain.iter().map(|p| (*p).to_owned()).collect();
        crate::harness::api::refused_naming(&mut api, bad, field).await;
    }
    let listed = api
        .list_webhooks(proto::ListWebhooksRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert!(
        !format!("{listed:?}").contains("rcv-SECRET"),
        "never listed"
    );
    server.stop().await;
    db.finish().await;
}
