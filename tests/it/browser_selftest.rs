//! Self-tests of the browser harness (`harness::browser`) against a tiny page served here:
//! a script loaded from its own URL reacts to a click, a form round-trips through the
//! server, screenshots are saved at desktop and phone width, two browsers started at once
//! stay independent, and Chromium is gone after `close` and after a plain drop.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::Query;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use fantoccini::Locator;

use crate::harness::browser::Browser;

/// Bound on every wait for the page.
const WAIT: Duration = Duration::from_secs(5);

const INDEX: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>browser harness self-test</title>
<style>
  body { font: 16px/1.4 sans-serif; margin: 2rem; background: #f4f6fb; color: #1d2333; }
  h1 { color: #2b59c3; }
  #message { display: inline-block; padding: .3rem .7rem; border-radius: .4rem; background: #ffe08a; }
  #message.done { background: #9be3a9; }
  button { font-size: 1rem; padding: .4rem 1rem; }
  form { margin-top: 1.5rem; }
</style>
<script src="/app.js" defer></script>
</head>
<body>
<h1>hookline browser harness</h1>
<p>Status: <span id="message">waiting for a click</span></p>
<button id="greet" type="button">Click me</button>
<form id="hello" action="/hello" method="get">
  <label>Name <input name="name" id="name"></label>
  <button type="submit">Say hello</button>
</form>
</body>
</html>
"#;

const APP_JS: &str = r#"document.getElementById("greet").addEventListener("click", () => {
  const message = document.getElementById("message");
  message.textContent = "clicked by the browser harness";
  message.className = "done";
});
"#;

async fn index() -> Html<&'static str> {
    Html(INDEX)
}

async fn app_js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        APP_JS,
    )
}

async fn hello(Query(query): Query<HashMap<String, String>>) -> Html<String> {
    let name = query.get("name").map(String::as_str).unwrap_or_default();
    // Test data only; escape anyway so the page stays well-formed.
    let name = name
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    Html(format!(
        "<!doctype html><title>hello</title><h1 id=\"result\">Hello, {name}!</h1>"
    ))
}

/// Serves the page on 127.0.0.1:<free port>.
async fn serve_page() -> SocketAddr {
    let app = axum::Router::new()
        .route("/", get(index))
        .route("/app.js", get(app_js))
        .route("/hello", get(hello));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding the page server");
    let addr = listener.local_addr().expect("page server address");
    tokio::spawn(async move {
        axum::serve(listener, app)
            .await
            .expect("page server serves")
    });
    addr
}

/// Chromium's main process id, as chromedriver reported it.
fn browser_pid(browser: &Browser) -> u32 {
    browser
        .capabilities()
        .and_then(|c| c.get("goog:processID"))
        .and_then(serde_json::Value::as_u64)
        .and_then(|pid| u32::try_from(pid).ok())
        .expect("chromedriver reports goog:processID")
}

/// Whether process `pid` has exited (gone, or a zombie awaiting its reaper).
fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => true,
    }
}

fn assert_png(path: &std::path::Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 1000,
        "{} is not a plausible PNG ({} bytes)",
        path.display(),
        bytes.len()
    );
}

#[tokio::test]
async fn clicks_types_submits_and_takes_screenshots() {
    let addr = serve_page().await;
    let browser = Browser::start().await;
    let pid = browser_pid(&browser);
    assert_eq!(
        browser.current_url().await.expect("url").as_str(),
        "about:blank"
    );
    browser.goto(&format!("http://{addr}/")).await;
    assert_eq!(
        browser.title().await.expect("title"),
        "browser harness self-test"
    );

    // The button's handler comes from /app.js, so this also proves external scripts run.
    browser
        .wait_for("#greet", WAIT)
        .await
        .click()
        .await
        .expect("click");
    let message = browser
        .wait_for_text("#message", "clicked by the browser harness", WAIT)
        .await;
    assert_eq!(
        message.attr("class").await.expect("class"),
        Some("done".into())
    );

    let desktop = browser.screenshot("browser-selftest-desktop").await;
    assert_png(&desktop);
    let size = browser
        .execute("return [window.innerWidth, window.innerHeight];", vec![])
        .await
        .expect("viewport size");
    assert_eq!(size, serde_json::json!([1280, 900]), "the default viewport");
    assert!(desktop.ends_with("console-screenshots/browser-selftest-desktop.png"));

    browser.set_viewport(390, 844).await;
    let size = browser
        .execute("return [window.innerWidth, window.innerHeight];", vec![])
        .await
        .expect("viewport size");
    assert_eq!(size, serde_json::json!([390, 844]));
    assert_png(&browser.screenshot("browser-selftest-phone").await);

    // Typed as key events, then submitted with the form's submit button.
    browser
        .wait_for("#name", WAIT)
        .await
        .send_keys("Ada & Lovelace")
        .await
        .expect("typing the name");
    let client = browser.client();
    let form = client.form(Locator::Css("#hello")).await.expect("form");
    form.submit().await.expect("submitting");
    browser
        .wait_for_text("#result", "Hello, Ada & Lovelace!", WAIT)
        .await;
    let url = browser.current_url().await.expect("current url");
    assert_eq!(url.path(), "/hello");
    assert_eq!(url.query(), Some("name=Ada+%26+Lovelace"));

    browser.close().await;
    assert!(exited(pid), "Chromium ({pid}) still runs after close");
}

#[tokio::test]
async fn two_browsers_at_once_are_independent() {
    let addr = serve_page().await;
    let (one, two) = tokio::join!(Browser::start(), Browser::start());
    one.goto(&format!("http://{addr}/")).await;
    two.goto(&format!("http://{addr}/hello?name=two")).await;
    one.wait_for("#greet", WAIT)
        .await
        .click()
        .await
        .expect("click");
    one.wait_for_text("#message", "clicked", WAIT).await;
    two.wait_for_text("#result", "Hello, two!", WAIT).await;
    assert_eq!(
        two.current_url().await.expect("url").path(),
        "/hello",
        "the second browser's navigation must not affect the first"
    );
    assert_eq!(one.current_url().await.expect("url").path(), "/");

    // A test that fails drops its Browser without close: Chromium must not outlive it.
    let pids = (browser_pid(&one), browser_pid(&two));
    assert_ne!(pids.0, pids.1);
    drop(one);
    assert!(
        exited(pids.0),
        "Chromium ({}) still runs after drop",
        pids.0
    );
    two.close().await;
    assert!(
        exited(pids.1),
        "Chromium ({}) still runs after close",
        pids.1
    );
}
