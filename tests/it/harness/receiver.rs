//! A real HTTP receiver on 127.0.0.1 that records every request and answers as scripted.
//!
//! `receiver.script([Reply::status(500), Reply::ok()])` answers the next requests in
//! order, then the default reply. It also tracks how many requests are in flight at once,
//! overall and per `webhook-id`, so tests can check caps and "never twice at once".

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tokio::sync::Notify;

/// A scripted answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Extra response headers.
    pub headers: Vec<(String, String)>,
    /// Wait this long before answering.
    pub delay: Duration,
    /// Response body (what hookline keeps in the attempt log).
    pub body: String,
}

impl Reply {
    /// 200 at once.
    pub fn ok() -> Reply {
        Reply::status(200)
    }
    /// This status at once.
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: vec![],
            delay: Duration::ZERO,
            body: String::new(),
        }
    }
    /// Answers with this body.
    pub fn body(mut self, body: &str) -> Reply {
        self.body = body.into();
        self
    }
    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }
    /// Waits before answering.
    pub fn after(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    /// Path and query.
    pub uri: String,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
    /// When it arrived.
    pub at: Instant,
}

impl Received {
    /// A header as text ("" if absent).
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }

    /// Whether one of the `webhook-signature` values is the Standard Webhooks signature
    /// with `secret` (`whsec_…`), computed here independently of hookline's signing code.
    pub fn signed_with(&self, secret: &str) -> bool {
        use base64::Engine;
        use hmac::{Hmac, Mac};
        let b64 = base64::engine::general_purpose::STANDARD;
        let key = b64
            .decode(secret.trim_start_matches("whsec_"))
            .expect("secret");
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).expect("hmac");
        let content = format!(
            "{}.{}.",
            self.header("webhook-id"),
            self.header("webhook-timestamp")
        );
        mac.update(content.as_bytes());
        mac.update(&self.body);
        let expected = format!("v1,{}", b64.encode(mac.finalize().into_bytes()));
        self.header("webhook-signature")
            .split(' ')
            .any(|s| s == expected)
    }
}

#[derive(Default)]
struct Inner {
    received: Vec<Received>,
    script: VecDeque<Reply>,
    default: Option<Reply>,
    in_flight: usize,
    max_in_flight: usize,
    by_id: HashMap<String, usize>,
    overlapping_ids: Vec<String>,
    /// Past this many in flight, answer 429 at once (a receiver that sheds load).
    capacity: Option<usize>,
    /// How many requests were shed with 429.
    shed: usize,
}

#[derive(Default)]
struct Shared {
    inner: Mutex<Inner>,
    arrived: Notify,
}

/// A running receiver.
pub struct Receiver {
    /// Where it listens.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Starts a receiver answering 200 unless scripted.
    pub async fn start() -> Receiver {
        let shared = Arc::new(Shared::default());
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().expect("receiver addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { addr, shared, task }
    }

    /// `http://127.0.0.1:PORT/hook`.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Answers the next requests with these replies, in order.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.lock().script.extend(replies);
    }

    /// The reply once the script is used up.
    pub fn set_default(&self, reply: Reply) {
        self.lock().default = Some(reply);
    }

    /// From now on, a request arriving while `n` others are in flight is answered 429 at
    /// once (not counted in `max_in_flight`), like a receiver that sheds load.
    pub fn set_capacity(&self, n: usize) {
        self.lock().capacity = Some(n);
    }

    /// How many requests were answered 429 for lack of capacity.
    pub fn shed(&self) -> usize {
        self.lock().shed
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Received> {
        self.lock().received.clone()
    }

    /// Most requests in flight at once so far.
    pub fn max_in_flight(&self) -> usize {
        self.lock().max_in_flight
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> usize {
        self.lock().in_flight
    }

    /// `webhook-id`s that arrived while a request with the same id was still in flight.
    pub fn overlapping_ids(&self) -> Vec<String> {
        self.lock().overlapping_ids.clone()
    }

    /// Waits until at least `n` requests arrived; panics after `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.shared.arrived.notified();
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!(
                    "receiver got {} requests, expected {n} within {timeout:?}",
                    self.received().len()
                );
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.shared.inner.lock().expect("receiver lock")
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let reply = {
        let mut inner = shared.inner.lock().expect("receiver lock");
        if inner.capacity.is_some_and(|n| inner.in_flight >= n) {
            inner.shed += 1;
            return StatusCode::TOO_MANY_REQUESTS.into_response();
        }
        inner.received.push(Received {
            uri: uri.to_string(),
            headers: headers.clone(),
            body,
            at: Instant::now(),
        });
        inner.in_flight += 1;
        inner.max_in_flight = inner.max_in_flight.max(inner.in_flight);
        let same = inner.by_id.entry(id.clone()).or_insert(0);
        *same += 1;
        if *same > 1 && !id.is_empty() {
            inner.overlapping_ids.push(id.clone());
        }
        inner
            .script
            .pop_front()
            .or_else(|| inner.default.clone())
            .unwrap_or_else(Reply::ok)
    };
    shared.arrived.notify_waiters();
    // Counted out on drop: a client that gives up (timeout) cancels this handler.
    let _guard = InFlight {
        shared: shared.clone(),
        id,
    };
    tokio::time::sleep(reply.delay).await;
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
    let mut response = if reply.body.is_empty() {
        status.into_response()
    } else {
        (status, reply.body).into_response()
    };
    for (name, value) in reply.headers {
        if let (Ok(n), Ok(v)) = (
            axum::http::HeaderName::try_from(name.as_str()),
            axum::http::HeaderValue::try_from(value.as_str()),
        ) {
            response.headers_mut().insert(n, v);
        }
    }
    response
}

struct InFlight {
    shared: Arc<Shared>,
    id: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut inner) = self.shared.inner.lock() {
            inner.in_flight -= 1;
            if let Some(n) = inner.by_id.get_mut(&self.id) {
                *n -= 1;
            }
        }
    }
}
