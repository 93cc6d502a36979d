//! The HTTP transport: one pooled client, one request, its answer mapped to an outcome.
//!
//! Keep-alive pooling, HTTP/1.1 and HTTP/2 (ALPN), connect and whole-request timeouts,
//! no redirects followed (a 3xx is retried), and at most `body_limit` bytes of the
//! response kept. Error texts never include the URL: its query string may carry a
//! receiver's secret. [`outcome`] is the one place that reads status codes: 2xx delivers,
//! 410 Gone and the final 4xx ([`is_final`]) reject, the rest is retried (`Retry-After`
//! honoured on 429/503).
//!
//! Every destination passes the SSRF guard (`ssrf`): names resolve through
//! `Guard::resolver`, which answers only vetted addresses, so the socket connects to an
//! address that was vetted; IP literals are vetted here before any socket exists. A
//! refusal comes back as [`Outcome::NotSent`], never as a connection.
//!
//! With an egress proxy (`proxy.rs`) requests go through hyper-util's client over the
//! proxy connector instead of reqwest's; the answer is read the same way ([`Answer`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::backoff::parse_retry_after;
use super::oauth;
use super::proxy::{self, chain};
use super::ssrf::{self, Guard};
use super::transport::{
    Attempt, Destination, Exchange, Identity, Message, Outcome, RetryClass, Transport,
};
use super::trust::Trust;
use crate::config::EgressProxy;

/// Response headers kept in the attempt log, at most.
const MAX_LOGGED_HEADERS: usize = 32;

/// Builds a delivery client, resolving every name through `guard`, trusting the web PKI
/// and `trust`'s extra CAs, presenting `identity` (PEM chain and key) if given.
pub fn build(
    connect_timeout: Duration,
    request_timeout: Duration,
    guard: &Guard,
    trust: &Trust,
    identity: Option<&str>,
) -> reqwest::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder();
    for root in trust.extra() {
        builder = builder.add_root_certificate(reqwest::Certificate::from_der(root)?);
    }
    if let Some(pem) = identity {
        builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes())?);
    }
    builder
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

/// Deliveries through the egress proxy: hyper-util's client over the proxy connector.
#[derive(Clone)]
struct Proxied {
    client: HyperClient<proxy::Connector, Full<Bytes>>,
    proxy: Arc<EgressProxy>,
    /// The whole request's bound, as reqwest's `timeout` is for direct ones.
    timeout: Duration,
}

/// The pooled clients of one identity (or of none): reqwest's, or hyper-util's through the
/// egress proxy when there is one.
#[derive(Clone)]
enum Clients {
    Direct(reqwest::Client),
    Proxied(Box<Proxied>),
}

/// How long a client certificate's clients are kept unused (a rotated certificate's old
/// ones go after this).
const IDENTITY_IDLE: Duration = Duration::from_secs(600);

/// What every client is built from.
struct Settings {
    connect_timeout: Duration,
    request_timeout: Duration,
    trust: Trust,
    proxy: Option<Arc<EgressProxy>>,
}

impl Settings {
    /// The clients presenting `identity` (PEM chain and key), or no certificate.
    fn clients(&self, guard: &Guard, identity: Option<&str>) -> Result<Clients, String> {
        let Some(proxy) = &self.proxy else {
            let (connect, request) = (self.connect_timeout, self.request_timeout);
            let client = build(connect, request, guard, &self.trust, identity);
            return client.map(Clients::Direct).map_err(|e| e.to_string());
        };
        let connector = proxy::Connector::new(
            proxy.clone(),
            guard.clone(),
            &self.trust,
            self.connect_timeout,
            identity,
        )?;
        let client = HyperClient::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        Ok(Clients::Proxied(Box::new(Proxied {
            client,
            proxy: proxy.clone(),
            timeout: self.request_timeout,
        })))
    }
}

/// The HTTP transport: the dispatcher's shared clients and the guard they resolve through.
pub struct Http {
    /// The clients of webhooks without a client certificate: nearly all of them.
    shared: Clients,
    /// Clients presenting a webhook's client certificate, by [`Identity::key`], with when
    /// each was last used.
    identities: Mutex<HashMap<String, (Clients, Instant)>>,
    /// Bearer tokens of webhooks with OAuth client credentials.
    tokens: oauth::Tokens,
    settings: Settings,
    /// Vets IP literals; the clients resolve names through it too.
    guard: Guard,
    /// Response body bytes kept for the attempt log, at most.
    body_limit: usize,
}

impl Http {
    /// The transport, its clients built from these settings.
    pub fn new(
        connect_timeout: Duration,
        request_timeout: Duration,
        guard: Guard,
        trust: &Trust,
        body_limit: usize,
        proxy: Option<Arc<EgressProxy>>,
    ) -> Result<Http, String> {
        let settings = Settings {
            connect_timeout,
            request_timeout,
            trust: trust.clone(),
            proxy,
        };
        Ok(Http {
            shared: settings.clients(&guard, None)?,
            identities: Mutex::default(),
            tokens: oauth::Tokens::default(),
            settings,
            guard,
            body_limit,
        })
    }

    /// The clients to send with: the shared ones, or those of `identity`, built on its
    /// first use (the API checked that its certificate and key work together).
    fn clients(&self, identity: Option<&Identity>) -> Result<Clients, String> {
        let Some(identity) = identity else {
            return Ok(self.shared.clone());
        };
        let mut identities = self
            .identities
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        if let Some((clients, used)) = identities.get_mut(&identity.key) {
            *used = now;
            return Ok(clients.clone());
        }
        identities.retain(|_, (_, used)| now.duration_since(*used) < IDENTITY_IDLE);
        let clients = self
            .settings
            .clients(&self.guard, Some(identity.pem.expose()))
            .map_err(|e| format!("the webhook's client certificate cannot be used: {e}"))?;
        identities.insert(identity.key.clone(), (clients.clone(), now));
        Ok(clients)
    }
}

#[async_trait::async_trait]
impl Transport for Http {
    async fn send(&self, destination: Destination<'_>, message: Message) -> Attempt {
        send(self, destination, message).await
    }
}

/// Whether an HTTP answer is final: the receiver says it will never accept this request
/// as it is (400 Bad Request, 401/403 refused credentials, 404 no such route, 413 too
/// large, 422 unprocessable, …), so retrying the same bytes only hammers it. The owner
/// fixes the receiver or the webhook, then redelivers or replays. 4xx answers that speak
/// of time (408 timeout, 409 conflict, 423 locked, 425 too early, 429 too many) are
/// retried, like 3xx, 5xx and transport errors. 410 Gone is final and disables the webhook.
pub fn is_final(status: u16) -> bool {
    (400..500).contains(&status) && !matches!(status, 408 | 409 | 423 | 425 | 429)
}

/// What an HTTP answer means (docs/operations.md#which-answers-are-final), with the
/// receiver's `Retry-After` (read on 429 and 503 only).
pub fn outcome(status: u16, retry_after: Option<Duration>) -> Outcome {
    let class = match status {
        200..=299 => return Outcome::Delivered,
        410 => {
            return Outcome::Rejected {
                reason: "HTTP 410 Gone is final: the webhook is disabled; re-enable it to resume"
                    .to_owned(),
                disable: Some("the receiver answered 410 Gone".to_owned()),
            };
        }
        code if is_final(code) => {
            return Outcome::Rejected {
                reason: format!(
                    "HTTP {code} is final: the receiver refuses this request as it is; fix the receiver (or the webhook) and redeliver"
                ),
                disable: None,
            };
        }
        429 | 503 => RetryClass::Throttled,
        408 | 409 | 423 | 425 => RetryClass::NotNow,
        300..=399 => RetryClass::Redirect,
        500..=599 => RetryClass::ServerError,
        _ => RetryClass::Other,
    };
    Outcome::Retry {
        class,
        subject: format!("HTTP {status}"),
        retry_after,
    }
}

/// The outcome of a send that got no answer, from its failure's class.
fn failure(error_class: &'static str) -> Outcome {
    let class = match error_class {
        "refused" => {
            // Retrying cannot change the verdict until the URL or the allow-list changes.
            let reason = "refused destinations are final: change the URL, or ask the operator to allow it, then redeliver";
            return Outcome::NotSent {
                reason: reason.to_owned(),
            };
        }
        "timeout" => RetryClass::Timeout,
        "connect" => RetryClass::Connect,
        "invalid_url" => RetryClass::InvalidAddress,
        _ => RetryClass::Request,
    };
    Outcome::Retry {
        class,
        subject: error_class.replace('_', " "),
        retry_after: None,
    }
}

/// An answer being read, from either client.
enum Answer {
    Direct(reqwest::Response),
    Proxied {
        response: http::Response<hyper::body::Incoming>,
        deadline: tokio::time::Instant,
    },
}

impl Answer {
    fn status(&self) -> u16 {
        match self {
            Answer::Direct(r) => r.status().as_u16(),
            Answer::Proxied { response, .. } => response.status().as_u16(),
        }
    }

    fn headers(&self) -> &HeaderMap {
        match self {
            Answer::Direct(r) => r.headers(),
            Answer::Proxied { response, .. } => response.headers(),
        }
    }

    /// The body's next bytes; `None` at its end.
    async fn chunk(&mut self) -> Result<Option<Bytes>, String> {
        match self {
            Answer::Direct(r) => r.chunk().await.map_err(|e| describe(e).1),
            Answer::Proxied { response, deadline } => loop {
                let frame = tokio::time::timeout_at(*deadline, response.body_mut().frame())
                    .await
                    .map_err(|_| "timed out".to_owned())?;
                match frame {
                    None => return Ok(None),
                    Some(Err(e)) => return Err(chain(&e)),
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            return Ok(Some(data));
                        }
                    }
                }
            },
        }
    }
}

/// Sends through the egress proxy: `url` as it is for `https` (tunnelled to the vetted
/// address), in absolute form to the vetted address for `http`.
async fn via_proxy(
    proxied: &Proxied,
    guard: &Guard,
    url: &reqwest::Url,
    mut headers: HeaderMap,
    body: Bytes,
) -> Result<Answer, (&'static str, String)> {
    let deadline = tokio::time::Instant::now() + proxied.timeout;
    let uri: http::Uri = if url.scheme() == "http" {
        let (uri, host) = proxy::absolute(guard, url).await.map_err(|e| {
            let error: &(dyn std::error::Error + 'static) = &*e;
            match ssrf::refused_in(error) {
                Some(refused) => ("refused", refused.to_string()),
                None => ("connect", format!("connection failed: {}", chain(error))),
            }
        })?;
        if let Ok(host) = HeaderValue::try_from(host) {
            headers.insert(http::header::HOST, host);
        }
        // A tunnel carries it in its CONNECT; an absolute-form request in its own headers.
        if let Some(authorization) = &proxied.proxy.authorization
            && let Ok(mut value) = HeaderValue::try_from(authorization.expose())
        {
            value.set_sensitive(true);
            headers.insert(http::header::PROXY_AUTHORIZATION, value);
        }
        uri
    } else {
        url.as_str()
            .parse()
            .map_err(|e| ("invalid_url", format!("the webhook URL is invalid: {e}")))?
    };
    headers.insert(
        http::header::USER_AGENT,
        HeaderValue::from_static(concat!("hookline/", env!("CARGO_PKG_VERSION"))),
    );
    let mut request = http::Request::post(uri)
        .body(Full::new(body))
        .map_err(|e| ("request", format!("request failed: {e}")))?;
    *request.headers_mut() = headers;
    match tokio::time::timeout_at(deadline, proxied.client.request(request)).await {
        Err(_) => Err(("timeout", "timed out".to_owned())),
        Ok(Err(error)) => {
            if let Some(refused) = ssrf::refused_in(&error) {
                return Err(("refused", refused.to_string()));
            }
            let class = if error.is_connect() {
                "connect"
            } else {
                "request"
            };
            let kind = if error.is_connect() {
                "connection failed"
            } else {
                "request failed"
            };
            Err((class, format!("{kind}: {}", chain(&error))))
        }
        Ok(Ok(response)) => Ok(Answer::Proxied { response, deadline }),
    }
}

/// Sends one request and captures the result. Never fails: errors are part of the result.
async fn send(http: &Http, destination: Destination<'_>, message: Message) -> Attempt {
    let (guard, body_limit) = (&http.guard, http.body_limit);
    let started_at = crate::store::now_ms();
    let started = Instant::now();
    let ended = |outcome: Outcome, error: String, class: &'static str| Attempt {
        outcome,
        exchange: Exchange {
            started_at,
            duration: started.elapsed(),
            error: Some(error),
            error_class: Some(class),
            ..Exchange::default()
        },
    };
    let failed = |error: String, class: &'static str| ended(failure(class), error, class);
    let url = match reqwest::Url::parse(destination.address) {
        Ok(url) => url,
        Err(error) => {
            return failed(
                format!("the webhook URL is invalid: {error}"),
                "invalid_url",
            );
        }
    };
    // reqwest connects to an IP literal without asking the resolver: vet it here.
    if let Err(refused) = guard.vet_literal(&url) {
        return failed(format!("destination refused: {refused}"), "refused");
    }
    let mut headers = HeaderMap::new();
    for (name, value) in &message.headers {
        // Validated at the API; a bad one here is skipped rather than failing the delivery.
        if let (Ok(n), Ok(v)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) {
            headers.insert(n, v);
        }
    }
    if let Ok(v) = HeaderValue::try_from(message.content_type.as_ref()) {
        headers.insert(reqwest::header::CONTENT_TYPE, v);
    }
    let clients = match http.clients(destination.identity) {
        Ok(clients) => clients,
        Err(error) => return failed(error, "request"),
    };
    let body = Bytes::from(message.body);
    // With OAuth, a bearer token; a 401 gets one fresh token and one more try.
    let mut bearer = None;
    let mut response = loop {
        // Only OAuth sends twice; otherwise the headers go as they are, uncopied.
        let mut sent = if destination.oauth.is_some() {
            headers.clone()
        } else {
            std::mem::take(&mut headers)
        };
        if let Some(credentials) = destination.oauth {
            let token = match token(http, &clients, credentials).await {
                Ok(token) => token,
                Err(oauth::Refusal::Final(reason)) => {
                    let outcome = Outcome::Rejected {
                        reason: reason.clone(),
                        disable: None,
                    };
                    return ended(outcome, reason, "oauth");
                }
                Err(oauth::Refusal::Retry(reason)) => return failed(reason, "oauth"),
            };
            if let Ok(mut value) = HeaderValue::try_from(format!("Bearer {}", token.expose())) {
                value.set_sensitive(true);
                sent.insert(reqwest::header::AUTHORIZATION, value);
            }
            bearer = Some((credentials, token, bearer.is_some()));
        }
        let response = match post(&clients, guard, &url, sent, body.clone()).await {
            Ok(response) => response,
            Err((class, text)) => return failed(text, class),
        };
        match &bearer {
            Some((credentials, token, false)) if response.status() == 401 => {
                http.tokens.forget(credentials, token).await;
            }
            _ => break response,
        }
    };
    let status = response.status();
    if status == 407 && matches!(clients, Clients::Proxied(_)) {
        // The proxy's answer, not the receiver's: retried until the operator fixes it.
        return failed(
            "the egress proxy refused hookline's credentials (HTTP 407 Proxy Authentication Required): check egress_proxy".into(),
            "proxy",
        );
    }
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
    let (body, error) = read_body(&mut response, body_limit).await;
    let outcome = destination.dialect.outcome(status, retry_after, &body);
    let error_class = (outcome != Outcome::Delivered).then_some("http");
    Attempt {
        outcome,
        exchange: Exchange {
            started_at,
            duration: started.elapsed(),
            status_code: Some(status),
            headers: headers_json,
            // NUL cannot be stored in a PostgreSQL text column; a receiver may send one.
            body: Some(String::from_utf8_lossy(&body).replace('\0', "\u{fffd}")),
            error,
            error_class,
        },
    }
}

/// One POST of `body` to `url` and the answer's head, through `clients`.
async fn post(
    clients: &Clients,
    guard: &Guard,
    url: &reqwest::Url,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Answer, (&'static str, String)> {
    match clients {
        Clients::Direct(client) => {
            match client
                .post(url.clone())
                .headers(headers)
                .body(body)
                .send()
                .await
            {
                Ok(response) => Ok(Answer::Direct(response)),
                // The resolver's refusal surfaces as a connect error; find the verdict in it.
                Err(error) => match ssrf::refused_in(&error) {
                    Some(refused) => Err(("refused", refused.to_string())),
                    None => Err(describe(error)),
                },
            }
        }
        Clients::Proxied(proxied) => via_proxy(proxied, guard, url, headers, body).await,
    }
}

/// At most `limit` bytes of the answer's body, and what broke reading it, if anything
/// (the status already decided the outcome; a broken body is only noted).
async fn read_body(response: &mut Answer, limit: usize) -> (Vec<u8>, Option<String>) {
    let mut body = Vec::new();
    while body.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = limit - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) => break,
            Err(e) => return (body, Some(format!("reading the response body: {e}"))),
        }
    }
    (body, None)
}

/// A bearer token for `credentials`: the kept one, or one from its token endpoint, asked
/// like a receiver is (the same clients: the SSRF guard, the egress proxy).
async fn token(
    http: &Http,
    clients: &Clients,
    credentials: &oauth::Credentials,
) -> Result<crate::secret::Secret, oauth::Refusal> {
    let fetch = || async {
        let url = reqwest::Url::parse(&credentials.token_url).map_err(|e| e.to_string())?;
        http.guard
            .vet_literal(&url)
            .map_err(|refused| format!("refused: {refused}"))?;
        let mut headers = HeaderMap::new();
        let mut basic = HeaderValue::try_from(credentials.authorization.expose())
            .map_err(|_| "the client id or secret cannot be sent in a header".to_owned())?;
        basic.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, basic);
        headers.insert(
            reqwest::header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        headers.insert(
            reqwest::header::ACCEPT,
            HeaderValue::from_static("application/json"),
        );
        let body = Bytes::from(credentials.form.clone());
        let mut answer = post(clients, &http.guard, &url, headers, body)
            .await
            .map_err(|(_, text)| text)?;
        let (body, _) = read_body(&mut answer, TOKEN_ANSWER_LIMIT).await;
        Ok((answer.status(), body))
    };
    http.tokens.get(credentials, fetch).await
}

/// The most of a token endpoint's answer read.
const TOKEN_ANSWER_LIMIT: usize = 64 * 1024;

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

#[cfg(test)]
mod tests {
    use super::*;

    fn class(outcome: Outcome) -> Option<RetryClass> {
        match outcome {
            Outcome::Retry { class, .. } => Some(class),
            _ => None,
        }
    }

    #[test]
    fn success_final_and_retried_answers() {
        for status in [200, 201, 204, 299] {
            assert_eq!(outcome(status, None), Outcome::Delivered, "{status}");
        }
        for status in [400, 401, 403, 404, 413, 422, 451, 499] {
            assert!(is_final(status), "{status}");
            let Outcome::Rejected { reason, disable } = outcome(status, None) else {
                panic!("{status} is final");
            };
            assert_eq!(
                reason,
                format!(
                    "HTTP {status} is final: the receiver refuses this request as it is; fix the receiver (or the webhook) and redeliver"
                )
            );
            assert_eq!(disable, None);
        }
        for (status, expected) in [
            (429, RetryClass::Throttled),
            (503, RetryClass::Throttled),
            (408, RetryClass::NotNow),
            (409, RetryClass::NotNow),
            (423, RetryClass::NotNow),
            (425, RetryClass::NotNow),
            (500, RetryClass::ServerError),
            (502, RetryClass::ServerError),
            (301, RetryClass::Redirect),
            (308, RetryClass::Redirect),
            (101, RetryClass::Other),
            (600, RetryClass::Other),
        ] {
            assert!(!is_final(status), "{status}");
            assert_eq!(class(outcome(status, None)), Some(expected), "{status}");
        }
    }

    #[test]
    fn gone_disables_and_retry_after_travels() {
        assert_eq!(
            outcome(410, None),
            Outcome::Rejected {
                reason: "HTTP 410 Gone is final: the webhook is disabled; re-enable it to resume"
                    .into(),
                disable: Some("the receiver answered 410 Gone".into()),
            }
        );
        let after = Some(Duration::from_secs(7));
        assert_eq!(
            outcome(503, after),
            Outcome::Retry {
                class: RetryClass::Throttled,
                subject: "HTTP 503".into(),
                retry_after: after,
            }
        );
    }

    #[test]
    fn failures_without_an_answer() {
        assert!(matches!(failure("refused"), Outcome::NotSent { .. }));
        for (error_class, expected, subject) in [
            ("timeout", RetryClass::Timeout, "timeout"),
            ("connect", RetryClass::Connect, "connect"),
            ("request", RetryClass::Request, "request"),
            ("invalid_url", RetryClass::InvalidAddress, "invalid url"),
        ] {
            assert_eq!(
                failure(error_class),
                Outcome::Retry {
                    class: expected,
                    subject: subject.into(),
                    retry_after: None,
                }
            );
        }
    }
}
