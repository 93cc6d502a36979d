//! The webhook form with the new formats, in a real browser: a Slack webhook created with
//! its mention (its URL shown redacted afterwards), a template webhook whose error shows
//! beside the template, and the Preview button showing the rendered body before saving.

use hookline::api::proto;
use hookline::store::TokenKind;

use super::{WAIT, click, fill};
use crate::harness::browser::Browser;
use crate::harness::db::{Backend, TestDb};
use crate::harness::receiver::Receiver;
use crate::harness::server::{TestServer, with_api};

async fn choose(browser: &Browser, css: &str, value: &str) {
    browser
        .wait_for(css, WAIT)
        .await
        .select_by_value(value)
        .await
        .expect("select");
}

async fn source(browser: &Browser) -> String {
    browser.source().await.expect("page source")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_and_template_webhooks_are_made_and_previewed_in_the_browser() {
    let db = TestDb::new(Backend::Sqlite).await;
    let server = TestServer::start(&db, with_api).await;
    let base = format!("http://{}/console", server.api.expect("api"));
    let receiver = Receiver::start().await;
    let (_, token) = server.token(TokenKind::Namespace, "acme").await;
    let browser = Browser::start().await;
    browser.goto(&format!("{base}/webhooks/new")).await;
    fill(&browser, "input#token", &token).await;
    click(&browser, "form button[type=submit]").await;
    browser.wait_for_text("h1", "New webhook", WAIT).await;

    // Slack: preview the message, then create; the URL is its credential.
    let slack_url = format!("{}/services/T0/B0/chatcredential", receiver.url());
    fill(&browser, "#name", "deploys").await;
    fill(&browser, "#url", &slack_url).await;
    choose(
        &browser,
        "#payload_format",
        &(proto::PayloadFormat::Slack as i32).to_string(),
    )
    .await;
    fill(&browser, "#chat_mention", "<!here>").await;
    click(&browser, "button[formaction*='/webhooks/preview']").await;
    let pane = browser
        .wait_for_text("#preview pre", "\"blocks\"", WAIT)
        .await;
    let shown = pane.text().await.expect("text");
    assert!(shown.contains("<!here> Pushed acme/app:1.4"), "{shown}");
    browser.screenshot("console-slack-preview").await;
    click(&browser, "form.form button.primary").await;
    browser.wait_for("#new-secret", WAIT).await;
    let mut api = server.api_client(Some(&token)).await;
    let listed = api
        .list_webhooks(proto::ListWebhooksRequest::default())
        .await
        .expect("list")
        .into_inner()
        .webhooks;
    assert_eq!(listed[0].payload_format, proto::PayloadFormat::Slack as i32);
    browser
        .goto(&format!("{base}/webhooks/{}", listed[0].id))
        .await;
    browser.wait_for_text("h1", "deploys", WAIT).await;
    let page = source(&browser).await;
    assert!(page.contains("…redacted"), "the URL is shown redacted");
    assert!(
        !page.contains("chatcredential"),
        "the credential is not shown"
    );

    // A template: its error beside the field, then its rendered body.
    browser.goto(&format!("{base}/webhooks/new")).await;
    fill(&browser, "#name", "ci").await;
    fill(&browser, "#url", &receiver.url()).await;
    choose(
        &browser,
        "#payload_format",
        &(proto::PayloadFormat::Template as i32).to_string(),
    )
    .await;
    fill(&browser, "#template", "{\"image\": {{ image|tojson }").await;
    click(&browser, "button[formaction*='/webhooks/preview']").await;
    browser
        .wait_for_text("#template-error", "line 1, column", WAIT)
        .await;
    browser.screenshot("console-template-error").await;
    fill(&browser, "#template", "{\"image\": {{ image|tojson }}}").await;
    click(&browser, "button[formaction*='/webhooks/preview']").await;
    browser
        .wait_for_text(
            "#preview pre",
            "registry.example.com/acme/app:1.4@sha256:",
            WAIT,
        )
        .await;
    click(&browser, "form.form button.primary").await;
    browser.wait_for("#new-secret", WAIT).await;

    // A preset fills the template and its headers.
    browser.goto(&format!("{base}/webhooks/new")).await;
    fill(&browser, "#name", "actions").await;
    fill(&browser, "#url", &receiver.url()).await;
    choose(&browser, "#preset", "github-dispatch").await;
    click(&browser, "button[formaction*='/webhooks/preview']").await;
    let pane = browser
        .wait_for_text(
            "#preview pre",
            "\"event_type\": \"registry-image.pushed\"",
            WAIT,
        )
        .await;
    let shown = pane.text().await.expect("text");
    assert!(shown.contains("Accept: …redacted"), "{shown}");
    browser.screenshot("console-preset-preview").await;

    browser.close().await;
    server.stop().await;
    db.finish().await;
}
