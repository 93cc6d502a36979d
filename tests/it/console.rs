//! The web console in a real browser (headless Chromium over WebDriver), on both backends:
//! sign in, create a webhook (field errors beside the field first), see a delivery arrive
//! without reloading, open a failed delivery's attempts, redeliver and see the new
//! attempt, replay since a time, and sign out. Also what must be refused: another
//! tenant's ids answer 404 like absent ones, a form without its CSRF token or from
//! another site gets 403, and every page carries the security headers. Screenshots of
//! each page go to `target/console-screenshots/`.

use std::time::Duration;

use fantoccini::Locator;
use hookline::api::proto;
use hookline::store::TokenKind;

use crate::api::{create, hook};
use crate::harness::browser::Browser;
use crate::harness::envelopes::push;
use crate::harness::receiver::{Receiver, Reply};
use crate::harness::server::{TestServer, with_api};
use crate::store_test;

mod formats;

const WAIT: Duration = Duration::from_secs(15);

/// Types `text` into the field `css`, replacing what it held.
async fn fill(browser: &Browser, css: &str, text: &str) {
    let field = browser.wait_for(css, WAIT).await;
    field.clear().await.expect("clear");
    field.send_keys(text).await.expect("type");
}

async fn click(browser: &Browser, css: &str) {
    browser
        .wait_for(css, WAIT)
        .await
        .click()
        .await
        .expect("click");
}

/// Polls until `css` matches `n` elements.
async fn wait_count(browser: &Browser, css: &str, n: usize) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let found = browser
            .find_all(Locator::Css(css))
            .await
            .expect("find")
            .len();
        if found == n {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "expected {n} of `{css}`, found {found} on {}",
            browser.current_url().await.expect("url")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A marker the page keeps until it is reloaded.
async fn mark_page(browser: &Browser) {
    browser
        .execute("window.__notReloaded = true;", vec![])
        .await
        .expect("mark");
}

async fn page_was_not_reloaded(browser: &Browser) -> bool {
    browser
        .execute("return window.__notReloaded === true;", vec![])
        .await
        .expect("read mark")
        .as_bool()
        .unwrap_or(false)
}

store_test!(
    a_team_signs_in_sees_deliveries_live_and_recovers_a_failed_one,
    async |db: &TestDb| {
        let backend = match db.backend {
            crate::harness::db::Backend::Sqlite => "sqlite",
            crate::harness::db::Backend::Postgres => "postgres",
        };
        let shot = |page: &str| format!("console-{backend}-{page}");
        let server = TestServer::start(db, |c| {
            with_api(c);
            // Two attempts: one retry, 100 ms later.
            c.dispatch.retry_schedule = vec![Duration::from_millis(100)];
            c.dispatch.circuit_threshold = 1000;
        })
        .await;
        let base = format!("http://{}/console", server.api.expect("api"));
        let receiver = Receiver::start().await;
        receiver.set_default(Reply::status(500).body("{\"error\":\"database down\"}"));
        let (_, token) = server.token(TokenKind::Namespace, "acme").await;
        let browser = Browser::start().await;

        // Signed out, any page leads to sign-in, then back.
        browser.goto(&format!("{base}/deliveries")).await;
        browser.wait_for("input#token", WAIT).await;
        browser.screenshot(&shot("sign-in")).await;
        fill(&browser, "input#token", "hl_not_a_token").await;
        click(&browser, "form button[type=submit]").await;
        browser
            .wait_for_text(".notice.error", "unknown, revoked", WAIT)
            .await;
        fill(&browser, "input#token", &token).await;
        click(&browser, "form button[type=submit]").await;
        browser.wait_for_text("h1", "Deliveries", WAIT).await;

        // A webhook, created in the form; the API's field error shows beside its field.
        browser.goto(&format!("{base}/webhooks/new")).await;
        fill(&browser, "#name", "deploy").await;
        fill(&browser, "#url", "ftp://deploy.example/hook").await;
        fill(&browser, "#repositories", "other/*").await;
        click(&browser, "form.form button.primary").await;
        browser.wait_for_text("#url-error", "http", WAIT).await;
        browser
            .wait_for_text("#repositories-error", "acme", WAIT)
            .await;
        browser.screenshot(&shot("webhook-form-errors")).await;
        fill(&browser, "#url", &receiver.url()).await;
        fill(&browser, "#repositories", "acme/*").await;
        click(&browser, "form.form button.primary").await;
        let secret = browser.wait_for("#new-secret", WAIT).await;
        let secret = secret
            .prop("value")
            .await
            .expect("value")
            .unwrap_or_default();
        assert!(
            secret.starts_with("whsec_"),
            "the secret is shown once: {secret}"
        );
        browser.screenshot(&shot("webhook-created")).await;
        let mut webhooks = server.api_client(Some(&token)).await;
        let listed = webhooks
            .list_webhooks(proto::ListWebhooksRequest::default())
            .await
            .expect("list")
            .into_inner()
            .webhooks;
        assert_eq!(listed.len(), 1, "the console created it through the API");
        let webhook_id = listed[0].id.clone();

        // A push shows up on the open deliveries page without a reload, then fails.
        browser.goto(&format!("{base}/deliveries")).await;
        browser
            .wait_for("table.deliveries[data-live-state=open]", WAIT)
            .await;
        mark_page(&browser).await;
        server.notify_ok(&push("acme/app", "1.4")).await;
        browser
            .wait_for_text("table.deliveries tbody tr", "failed", WAIT)
            .await;
        assert!(page_was_not_reloaded(&browser).await, "it arrived live");
        browser.screenshot(&shot("deliveries-live")).await;

        // The failed delivery's attempts: status, body, reason.
        click(&browser, "table.deliveries tbody tr a").await;
        wait_count(&browser, "li.attempt", 2).await;
        let attempts = browser
            .wait_for("ol.attempts", WAIT)
            .await
            .text()
            .await
            .expect("text");
        assert!(attempts.contains("HTTP 500"), "{attempts}");
        assert!(attempts.contains("no retry left"), "{attempts}");
        browser.screenshot(&shot("delivery-failed")).await;

        // The receiver recovers; Redeliver sends it again and the attempt appears.
        receiver.set_default(Reply::status(204));
        click(&browser, ".actions button.primary").await;
        browser
            .wait_for_text(".notice.ok", "Redelivery queued", WAIT)
            .await;
        wait_count(&browser, "li.attempt", 3).await;
        browser
            .wait_for_text("ol.attempts li:first-child", "succeeded", WAIT)
            .await;
        browser.screenshot(&shot("delivery-redelivered")).await;

        // Two more pushes fail for good, then a replay since an hour ago sends them.
        receiver.set_default(Reply::status(503));
        server.notify_ok(&push("acme/app", "1.5")).await;
        server.notify_ok(&push("acme/app", "1.6")).await;
        let mut deliveries = server.deliveries_client(Some(&token)).await;
        crate::deliveries::wait_status(
            &mut deliveries,
            &webhook_id,
            proto::DeliveryStatus::Failed,
            2,
        )
        .await;
        receiver.set_default(Reply::status(204));
        browser.goto(&format!("{base}/webhooks/{webhook_id}")).await;
        fill(&browser, "#since", "1h").await;
        click(&browser, "form.inline button[type=submit]").await;
        browser
            .wait_for_text(".notice.ok", "Replay queued 2 deliveries", WAIT)
            .await;
        crate::deliveries::wait_status(
            &mut deliveries,
            &webhook_id,
            proto::DeliveryStatus::Succeeded,
            3,
        )
        .await;
        browser.goto(&format!("{base}/webhooks/{webhook_id}")).await;
        browser
            .wait_for_text(".chart-summary", "attempts in the last hour", WAIT)
            .await;
        browser.screenshot(&shot("webhook")).await;
        browser.goto(&format!("{base}/webhooks")).await;
        browser.wait_for_text("ul.cards", "deploy", WAIT).await;
        browser.screenshot(&shot("webhooks")).await;
        browser.set_viewport(390, 844).await;
        browser.screenshot(&shot("webhooks-phone")).await;
        browser.goto(&format!("{base}/webhooks/{webhook_id}")).await;
        browser.screenshot(&shot("webhook-phone")).await;
        browser.set_viewport(1280, 900).await;

        // Another tenant's webhook answers 404, exactly like one that does not exist.
        let (_, other_token) = server.token(TokenKind::Namespace, "acmecorp").await;
        let mut others = server.api_client(Some(&other_token)).await;
        let (theirs, _) = create(&mut others, hook("theirs", &receiver.url())).await;
        browser
            .goto(&format!("{base}/webhooks/{}", theirs.id))
            .await;
        browser.wait_for_text("h1", "Not found", WAIT).await;
        browser.screenshot(&shot("not-found")).await;
        let cookie = browser
            .get_named_cookie("hookline_session")
            .await
            .expect("session cookie");
        let session = format!("hookline_session={}", cookie.value());
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let get = |path: String| {
            http.get(format!("{base}{path}"))
                .header("cookie", &session)
                .send()
        };
        let theirs_page = get(format!("/webhooks/{}", theirs.id)).await.expect("get");
        let absent_page = get("/webhooks/wh_absent".into()).await.expect("get");
        assert_eq!(theirs_page.status(), 404);
        assert_eq!(absent_page.status(), 404);
        let theirs_body = theirs_page.text().await.expect("body");
        assert_eq!(theirs_body, absent_page.text().await.expect("body"));
        assert!(!theirs_body.contains("theirs"), "nothing of theirs shows");
        let their_delivery = get("/deliveries/dlv_absent".into()).await.expect("get");
        assert_eq!(their_delivery.status(), 404);

        // A state-changing request without the CSRF token, or from another site, is refused.
        let post = |path: &str, form: Vec<(&'static str, String)>, origin: Option<&str>| {
            let mut request = http
                .post(format!("{base}{path}"))
                .header("cookie", &session)
                .form(&form);
            if let Some(origin) = origin {
                request = request.header("origin", origin);
            }
            request.send()
        };
        let before = receiver.received().len();
        let no_csrf = post(&format!("/webhooks/{webhook_id}/test"), vec![], None)
            .await
            .expect("post");
        assert_eq!(no_csrf.status(), 403);
        let wrong_csrf = post(
            &format!("/webhooks/{webhook_id}/test"),
            vec![("csrf", "0".repeat(64))],
            None,
        )
        .await
        .expect("post");
        assert_eq!(wrong_csrf.status(), 403);
        browser.goto(&format!("{base}/webhooks/{webhook_id}")).await;
        let csrf = browser
            .wait_for("input[name=csrf]", WAIT)
            .await
            .prop("value")
            .await
            .expect("value")
            .unwrap_or_default();
        let cross_site = post(
            &format!("/webhooks/{webhook_id}/test"),
            vec![("csrf", csrf.clone())],
            Some("https://evil.example"),
        )
        .await
        .expect("post");
        assert_eq!(cross_site.status(), 403);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(receiver.received().len(), before, "nothing was sent");
        // With its token, the same form works: the ping is queued and delivered.
        let with_csrf = post(
            &format!("/webhooks/{webhook_id}/test"),
            vec![("csrf", csrf)],
            None,
        )
        .await
        .expect("post");
        assert_eq!(with_csrf.status(), 303);
        receiver.wait_for(before + 1, WAIT).await;

        // Signing out ends the session in the database too.
        browser.goto(&format!("{base}/webhooks")).await;
        click(&browser, ".who button").await;
        browser.wait_for("input#token", WAIT).await;
        let after = get("/webhooks".into()).await.expect("get");
        assert_eq!(after.status(), 303, "the old cookie no longer works");
        browser.close().await;
    }
);

store_test!(
    console_pages_carry_security_headers_and_share_the_grpc_port,
    async |db: &TestDb| {
        let server = TestServer::start(db, with_api).await;
        let base = format!("http://{}/console", server.api.expect("api"));
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .http1_only()
            .build()
            .expect("client");
        let page = http
            .get(format!("{base}/sign-in"))
            .send()
            .await
            .expect("HTTP/1.1 on the API port");
        assert_eq!(page.status(), 200);
        assert_eq!(page.version(), reqwest::Version::HTTP_11);
        let headers = page.headers();
        let csp = headers["content-security-policy"].to_str().expect("csp");
        assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"));
        assert!(!csp.contains("unsafe-inline"));
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["cache-control"], "no-store");
        let cookie = headers["set-cookie"].to_str().expect("cookie");
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        // Signed out: pages send the browser to sign in, and back afterwards.
        let gated = http
            .get(format!("{base}/deliveries?status=failed"))
            .send()
            .await
            .expect("get");
        assert_eq!(gated.status(), 303);
        assert_eq!(
            gated.headers()["location"],
            "/console/sign-in?next=/console/deliveries%3Fstatus%3Dfailed"
        );
        let unknown = http
            .get(format!("{base}/nothing/here"))
            .send()
            .await
            .expect("get");
        assert_eq!(unknown.status(), 404);
        let script = http
            .get(format!("{base}/assets/console.js"))
            .send()
            .await
            .expect("get");
        assert_eq!(script.status(), 200);
        assert!(
            script.headers()["content-type"]
                .to_str()
                .expect("type")
                .starts_with("text/javascript")
        );
        // gRPC still answers on the same port.
        let (_, token) = server.token(TokenKind::Namespace, "acme").await;
        let mut api = server.api_client(Some(&token)).await;
        api.list_webhooks(proto::ListWebhooksRequest::default())
            .await
            .expect("gRPC beside the console");
    }
);
