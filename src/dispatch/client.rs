//! The HTTP side of a delivery: one pooled client, one request, its response captured.
//!
//! Keep-alive pooling, HTTP/1.1 and HTTP/2 (ALPN), connect and whole-request timeouts,
//! no redirects followed (a 3xx is a failed attempt), and at most `body_limit` bytes of
//! the response kept. Error texts never include the URL: its query string may carry a
//! receiver's secret.
//!
//! Every destination passes the SSRF guard (`ssrf`): names resolve through
//! `Guard::resolver`, which answers only vetted addresses, so the socket connects to an
//! address that was vetted; IP literals are vetted here before any socket exists. A
//! refusal comes back as a [`Response`] with `refused` set, never as a connection.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::backoff::parse_retry_after;
use super::ssrf::{self, Guard};

/// Response headers kept in the attempt log, at most.
const MAX_LOGGED_HEADERS: usize = 32;

/// Builds the dispatcher's shared client, resolving every name through `guard`.
pub fn build(
    connect_timeout: Duration,
    request_timeout: Duration,
    guard: &Guard,
) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .dns_resolver(guard.resolver())
        .user_agent(concat!("hookline/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(connect_timeout)
        .timeout(request_timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .no_proxy()
        .build()
}

/// One request to send.
pub struct Outgoing<'a> {
    /// Destination, verbatim.
    pub url: &'a str,
    /// Content type of the body.
    pub content_type: &'a str,
    /// The webhook's custom headers.
    pub custom_headers: &'a BTreeMap<String, String>,
    /// Standard Webhooks headers (`webhook-id`, `webhook-timestamp`, `webhook-signature`) and
    /// any other signature header.
    pub signature_headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Vec<u8>,
}

/// What came back.
#[derive(Debug, Clone)]
pub struct Response {
    /// Unix ms when the request started.
    pub started_at: i64,
    /// Time to the end of the (capped) body read, or the error.
    pub duration: Duration,
    /// HTTP status, if a response arrived.
    pub status: Option<u16>,
    /// Response headers as a JSON object.
    pub headers: Option<String>,
    /// The first `body_limit` bytes of the body, lossily decoded.
    pub body: Option<String>,
    /// Transport error (connect, timeout, …), without the URL.
    pub error: Option<String>,
    /// A `Retry-After` hint on 429/503.
    pub retry_after: Option<Duration>,
    /// The SSRF guard refused the destination: nothing was sent, and retrying cannot help.
    pub refused: bool,
    /// What kind of transport failure, if no response came: `timeout`, `connect`,
    /// `request`, `invalid_url`, `refused`.
    pub error_class: Option<&'static str>,
}

impl Response {
    fn failed(started_at: i64, started: Instant, error: String, class: &'static str) -> Response {
        Response {
            started_at,
            duration: started.elapsed(),
            status: None,
            headers: None,
            body: None,
            error: Some(error),
            retry_after: None,
            refused: class == "refused",
            error_class: Some(class),
        }
    }
}

/// Sends one request and captures the result. Never fails: errors are part of the result.
pub async fn send(
    client: &reqwest::Client,
    guard: &Guard,
    out: Outgoing<'_>,
    body_limit: usize,
) -> Response {
    let started_at = crate::store::now_ms();
    let started = Instant::now();
    let url = match reqwest::Url::parse(out.url) {
        Ok(url) => url,
        Err(error) => {
            let error = format!("the webhook URL is invalid: {error}");
            return Response::failed(started_at, started, error, "invalid_url");
        }
    };
    // reqwest connects to an IP literal without asking the resolver: vet it here.
    if let Err(refused) = guard.vet_literal(&url) {
        let error = format!("destination refused: {refused}");
        return Response::failed(started_at, started, error, "refused");
    }
    let mut headers = HeaderMap::new();
    for (name, value) in out.custom_headers {
        // Validated at the API; a bad one here is skipped rather than failing the delivery.
        if let (Ok(n), Ok(v)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) {
            headers.insert(n, v);
        }
    }
    if let Ok(v) = HeaderValue::try_from(out.content_type) {
        headers.insert(reqwest::header::CONTENT_TYPE, v);
    }
    for (name, value) in &out.signature_headers {
        if let Ok(v) = HeaderValue::try_from(value.as_str()) {
            headers.insert(*name, v);
        }
    }
    let result = client
        .post(url)
        .headers(headers)
        .body(out.body)
        .send()
        .await;
    let mut response = match result {
        Ok(response) => response,
        Err(error) => {
            // The resolver's refusal surfaces as a connect error; find the verdict in it.
            if let Some(refused) = ssrf::refused_in(&error) {
                let error = refused.to_string();
                return Response::failed(started_at, started, error, "refused");
            }
            let (class, text) = describe(error);
            return Response::failed(started_at, started, text, class);
        }
    };
    let status = response.status().as_u16();
    let retry_after = if status == 429 || status == 503 {
        response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()))
    } else {
        None
    };
    let logged: BTreeMap<&str, &str> = response
        .headers()
        .iter()
        .take(MAX_LOGGED_HEADERS)
        .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
        .collect();
    let headers_json = serde_json::to_string(&logged).ok();
    let mut body = Vec::new();
    let mut error = None;
    while body.len() < body_limit {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = body_limit - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) => break,
            Err(e) => {
                // The status already decided the outcome; a broken body is only noted.
                error = Some(format!("reading the response body: {}", describe(e).1));
                break;
            }
        }
    }
    Response {
        started_at,
        duration: started.elapsed(),
        status: Some(status),
        headers: headers_json,
        // NUL cannot be stored in a PostgreSQL text column; a receiver may send one.
        body: Some(String::from_utf8_lossy(&body).replace('\0', "\u{fffd}")),
        error,
        retry_after,
        refused: false,
        error_class: None,
    }
}

/// A transport error's class and one line describing it, without the URL.
fn describe(error: reqwest::Error) -> (&'static str, String) {
    let (class, kind) = if error.is_timeout() {
        ("timeout", "timed out")
    } else if error.is_connect() {
        ("connect", "connection failed")
    } else {
        ("request", "request failed")
    };
    let mut text = kind.to_owned();
    let error = error.without_url();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    (class, text)
}
