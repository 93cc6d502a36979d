//! NATS JetStream: `nats://[user:pass@]host[:port]/SUBJECT`, or `tls://` for TLS (the
//! server's certificate verified for the URL's host under `trust::Trust`).
//!
//! Each delivery is published to the subject with the delivery id as `Nats-Msg-Id`, so the
//! stream's duplicate window drops a re-sent message, and every header a webhook sends
//! (the Standard Webhooks signature headers included) as a message header. It is delivered
//! when the stream acknowledges it (`PubAck`); the attempt log shows the stream and the
//! sequence. A subject no stream captures is final: core NATS without a stream cannot
//! acknowledge anything. One client per server and credentials, to the address the SSRF
//! guard vetted; the client reconnects by itself, and a publish it cannot get acknowledged
//! in time is retried on the schedule.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::{ConnectErrorKind, ConnectOptions};

use super::pool::{IDLE, Pool};
use super::{Endpoint, delivered, locate, rejected, retry};
use crate::dispatch::transport::{Attempt, Destination, Message, RetryClass};
use crate::dispatch::trust::Trust;
use crate::ssrf::Guard;

/// The default port.
const PORT: u16 = 4222;

/// Where a message goes, read from the webhook's URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The server (port 4222 unless given).
    pub endpoint: Endpoint,
    /// The subject published to; a stream must capture it.
    pub subject: String,
    /// TLS required (`tls://`).
    pub tls: bool,
}

/// Reads a `nats://` URL; the error says what is wrong, for the owner.
pub fn target(url: &reqwest::Url) -> Result<Target, String> {
    let endpoint = Endpoint::of(url, PORT, "server")?;
    if url.query().is_some() {
        return Err("a NATS destination takes no query parameters".into());
    }
    let subject = url.path().trim_start_matches('/');
    let valid = !subject.is_empty()
        && subject.len() <= 256
        && subject.split('.').all(|token| {
            !token.is_empty()
                && token != "*"
                && token != ">"
                && token.bytes().all(|b| b.is_ascii_graphic() && b != b'/')
        });
    if !valid {
        return Err(
            "the subject is missing or invalid: the path is one subject such as `/registry.images`, without wildcards".into(),
        );
    }
    Ok(Target {
        endpoint,
        subject: subject.to_owned(),
        tls: url.scheme() == "tls",
    })
}

/// The JetStream transport: its guard, its bounds, its clients by server.
pub struct JetStream {
    guard: Guard,
    trust: Trust,
    connect_timeout: Duration,
    timeout: Duration,
    /// Keyed by address, port and credentials.
    clients: Pool<async_nats::jetstream::Context>,
}

impl JetStream {
    pub(super) fn new(
        guard: Guard,
        trust: Trust,
        connect_timeout: Duration,
        timeout: Duration,
    ) -> JetStream {
        JetStream {
            guard,
            trust,
            connect_timeout,
            timeout,
            clients: Pool::new(IDLE),
        }
    }

    /// One publish, and what came of it.
    pub(super) async fn send(&self, destination: Destination<'_>, message: Message) -> Attempt {
        let started = Instant::now();
        let located = locate(&self.guard, destination.address, "NATS", target, |t| {
            &t.endpoint.host
        });
        let (target, ip) = match located.await {
            Ok(located) => located,
            Err(attempt) => return *attempt,
        };
        let key = target.endpoint.key(ip, if target.tls { "tls" } else { "" });
        let connecting = self
            .clients
            .get(&key, || self.connect(started, ip, &target));
        let context = match connecting.await {
            Ok(context) => context,
            Err(attempt) => return *attempt,
        };
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("content-type", message.content_type.as_ref());
        for (name, value) in &message.headers {
            headers.insert(name.as_str(), value.as_str());
        }
        let delivery_id = message.header("webhook-id").unwrap_or_default().to_owned();
        let publish = PublishMessage::build()
            .payload(message.body.into())
            .headers(headers)
            .message_id(&delivery_id);
        let sent = context.send_publish(target.subject.clone(), publish).await;
        let acked = match sent {
            Ok(ack) => ack.await,
            Err(error) => Err(error),
        };
        match acked {
            Ok(ack) => delivered(
                started,
                format!(
                    "stream {} sequence {}{}",
                    ack.stream,
                    ack.sequence,
                    if ack.duplicate {
                        " (a duplicate: already stored)"
                    } else {
                        ""
                    }
                ),
            ),
            Err(error) => match error.kind() {
                PublishErrorKind::StreamNotFound => rejected(
                    started,
                    "broker",
                    format!(
                        "no JetStream stream captures the subject `{}`: create a stream for it (core NATS cannot acknowledge a message), then redeliver",
                        target.subject
                    ),
                ),
                PublishErrorKind::MaxPayloadExceeded => rejected(
                    started,
                    "broker",
                    "the message is larger than the server's max_payload".into(),
                ),
                PublishErrorKind::TimedOut => retry(
                    started,
                    RetryClass::Timeout,
                    "timeout",
                    "the stream did not acknowledge in time".into(),
                ),
                PublishErrorKind::BrokenPipe => {
                    retry(started, RetryClass::Connect, "connect", error.to_string())
                }
                _ => retry(
                    started,
                    RetryClass::ServerError,
                    "broker",
                    format!("NATS: {error}"),
                ),
            },
        }
    }

    /// A client of the vetted address (over TLS for `tls://`); it reconnects by itself.
    /// Or, as an attempt, why not.
    async fn connect(
        &self,
        started: Instant,
        ip: IpAddr,
        target: &Target,
    ) -> Result<async_nats::jetstream::Context, Box<Attempt>> {
        let mut options = ConnectOptions::new()
            .connection_timeout(self.connect_timeout)
            .name("hookline");
        let endpoint = &target.endpoint;
        if target.tls {
            let config = self
                .trust
                .for_host(&endpoint.host)
                .map_err(|reason| Box::new(rejected(started, "invalid_url", reason)))?;
            options = options.require_tls(true).tls_client_config(config);
        }
        if let (Some(user), Some(password)) = (&endpoint.username, &endpoint.password) {
            options = options.user_and_password(user.clone(), password.clone());
        }
        let client = options
            .connect(SocketAddr::new(ip, endpoint.port).to_string())
            .await
            .map_err(|error| Box::new(connect_failed(started, &error)))?;
        let mut context = async_nats::jetstream::new(client);
        context.set_timeout(self.timeout);
        Ok(context)
    }
}

/// A connection that failed: refused credentials are final, the rest retried (a TLS
/// failure too: a certificate may be renewed).
fn connect_failed(started: Instant, error: &async_nats::ConnectError) -> Attempt {
    match error.kind() {
        ConnectErrorKind::Tls => retry(
            started,
            RetryClass::Connect,
            "connect",
            format!("TLS with the server failed: {error}"),
        ),
        ConnectErrorKind::AuthorizationViolation | ConnectErrorKind::Authentication => rejected(
            started,
            "broker",
            "NATS refused the credentials (authorization violation): fix the URL's user and password, then redeliver".into(),
        ),
        ConnectErrorKind::TimedOut => retry(
            started,
            RetryClass::Timeout,
            "timeout",
            format!("connecting timed out: {error}"),
        ),
        _ => retry(
            started,
            RetryClass::Connect,
            "connect",
            format!("connection failed: {error}"),
        ),
    }
}
