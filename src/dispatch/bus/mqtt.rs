//! MQTT 5: `mqtt://[user:pass@]host[:port]/TOPIC`, or `mqtts://` for TLS (port 8883
//! unless given; the broker's certificate verified for the URL's host under
//! `trust::Trust`).
//!
//! Each delivery is one QoS 1 publish, delivered when the broker's PUBACK says it took it.
//! The content type is the payload's; every header a webhook sends (the delivery id and
//! the Standard Webhooks signature headers included) is an MQTT 5 user property, so a
//! consumer verifies exactly as an HTTP receiver does and dedupes on `webhook-id`. A
//! broker that has no subscriber for the topic drops the message (`No matching
//! subscribers`): that is retried on the schedule, never counted as delivered. One
//! connection per broker and credentials, to the address the SSRF guard vetted; a
//! connection that fails fails what it had in flight (retried) and the next send opens
//! another.
//!
//! rumqttc numbers publishes in its event loop, so [`Link`] matches each PUBACK to its
//! send: publishes enter the loop in the order their senders queue behind [`Waiting`]'s
//! lock, and the loop reports each one's packet id as it writes it.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, Packet, PubAckReason, PublishProperties};
use rumqttc::v5::{AsyncClient, ConnectionError, Event, EventLoop, MqttOptions};
use rumqttc::{Outgoing, TlsConfiguration, Transport};
use tokio::sync::oneshot;

use super::pool::{IDLE, Pool, lock};
use super::{Endpoint, delivered, locate, rejected, retry};
use crate::dispatch::transport::{Attempt, Destination, Message, RetryClass};
use crate::dispatch::trust::Trust;
use crate::ssrf::Guard;

/// The default port, and with TLS.
const PORT: u16 = 1883;
const TLS_PORT: u16 = 8883;

/// Publishes one connection holds before `send` says "try again": far above any
/// webhook's window.
const QUEUE: usize = 4096;

/// Where a message goes, read from the webhook's URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The broker (port 1883 unless given).
    pub endpoint: Endpoint,
    /// The topic published to (the URL's path, percent-decoded).
    pub topic: String,
    /// TLS required (`mqtts://`).
    pub tls: bool,
}

/// Reads an `mqtt://` URL; the error says what is wrong, for the owner.
pub fn target(url: &reqwest::Url) -> Result<Target, String> {
    let tls = url.scheme() == "mqtts";
    let endpoint = Endpoint::of(url, if tls { TLS_PORT } else { PORT }, "broker")?;
    if url.query().is_some() {
        return Err("an MQTT destination takes no query parameters".into());
    }
    let path = url.path().strip_prefix('/').unwrap_or_default();
    let topic = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .map_err(|_| "the topic (the path) is not UTF-8")?;
    let valid = !topic.is_empty()
        && topic.len() <= 65_535
        && !topic.contains(['+', '#', '\0'])
        && !topic.starts_with('$');
    if !valid {
        return Err(
            "the topic is missing or invalid: the path is one topic such as `/registry/images`, without wildcards (`+`, `#`) or a leading `$`".into(),
        );
    }
    Ok(Target {
        endpoint,
        topic: topic.into_owned(),
        tls,
    })
}

/// The MQTT transport: its guard, its bounds, its connections by broker.
pub struct Topics {
    guard: Guard,
    trust: Trust,
    connect_timeout: Duration,
    timeout: Duration,
    /// Keyed by address, port and credentials.
    links: Pool<Arc<Link>>,
}

impl Topics {
    pub(super) fn new(
        guard: Guard,
        trust: Trust,
        connect_timeout: Duration,
        timeout: Duration,
    ) -> Topics {
        Topics {
            guard,
            trust,
            connect_timeout,
            timeout,
            links: Pool::new(IDLE),
        }
    }

    /// One QoS 1 publish, and what came of it.
    pub(super) async fn send(&self, destination: Destination<'_>, message: Message) -> Attempt {
        let started = Instant::now();
        let located = locate(&self.guard, destination.address, "MQTT", target, |t| {
            &t.endpoint.host
        });
        let (target, ip) = match located.await {
            Ok(located) => located,
            Err(attempt) => return *attempt,
        };
        let key = target.endpoint.key(ip, if target.tls { "tls" } else { "" });
        let connecting = self.links.get(&key, || self.connect(started, ip, &target));
        let link = match connecting.await {
            Ok(link) => link,
            Err(attempt) => return *attempt,
        };
        let properties = PublishProperties {
            content_type: Some(message.content_type.clone().into_owned()),
            user_properties: message.headers,
            ..PublishProperties::default()
        };
        let (acked, ack) = oneshot::channel();
        {
            let mut waiting = lock(&link.waiting);
            if waiting.closed.is_some() {
                drop(waiting);
                self.links.forget(&key);
                return retry(
                    started,
                    RetryClass::Connect,
                    "connect",
                    "the connection to the broker closed".into(),
                );
            }
            let published = link.client.try_publish_with_properties(
                target.topic.clone(),
                QoS::AtLeastOnce,
                false,
                message.body,
                properties,
            );
            if published.is_err() {
                return retry(
                    started,
                    RetryClass::Other,
                    "broker",
                    "too many publishes are waiting for this broker".into(),
                );
            }
            waiting.queued.push_back(acked);
        }
        match tokio::time::timeout(self.timeout, ack).await {
            Ok(Ok(Ok(reason))) => answered(started, &target.topic, reason),
            Ok(Ok(Err(closed))) => {
                self.links.forget(&key);
                retry(started, RetryClass::Connect, "connect", closed)
            }
            Ok(Err(_)) => {
                self.links.forget(&key);
                retry(
                    started,
                    RetryClass::Connect,
                    "connect",
                    "the connection to the broker closed".into(),
                )
            }
            Err(_) => retry(
                started,
                RetryClass::Timeout,
                "timeout",
                "the broker did not acknowledge (PUBACK) in time".into(),
            ),
        }
    }

    /// A connection to the vetted address, once the broker accepted it (CONNACK); or, as
    /// an attempt, why not.
    async fn connect(
        &self,
        started: Instant,
        ip: IpAddr,
        target: &Target,
    ) -> Result<Arc<Link>, Box<Attempt>> {
        let endpoint = &target.endpoint;
        let id = format!("hookline-{:016x}", rand::random::<u64>());
        let mut options = MqttOptions::new(id, ip.to_string(), endpoint.port);
        options
            .set_clean_start(true)
            .set_keep_alive(Duration::from_secs(30))
            .set_connection_timeout(self.connect_timeout.as_secs().max(1))
            .set_request_channel_capacity(QUEUE);
        if let Some(username) = &endpoint.username {
            let password = endpoint.password.clone().unwrap_or_default();
            options.set_credentials(username.clone(), password);
        }
        if target.tls {
            let config = self
                .trust
                .for_host(&endpoint.host)
                .map_err(|reason| Box::new(rejected(started, "invalid_url", reason)))?;
            let tls = TlsConfiguration::Rustls(Arc::new(config));
            options.set_transport(Transport::tls_with_config(tls));
        }
        let (client, mut events) = AsyncClient::new(options, QUEUE);
        let accepted = async {
            loop {
                if let Event::Incoming(Packet::ConnAck(_)) = events.poll().await? {
                    return Ok::<_, ConnectionError>(());
                }
            }
        };
        match tokio::time::timeout(self.connect_timeout, accepted).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Err(Box::new(connect_failed(started, error))),
            Err(_) => {
                return Err(Box::new(retry(
                    started,
                    RetryClass::Timeout,
                    "timeout",
                    "connecting to the broker timed out".into(),
                )));
            }
        }
        let waiting = Arc::new(Mutex::new(Waiting::default()));
        let driver = tokio::spawn(drive(events, waiting.clone()));
        Ok(Arc::new(Link {
            client,
            waiting,
            driver: driver.abort_handle(),
        }))
    }
}

/// One broker connection: where to queue publishes, who waits for which PUBACK, and the
/// task running its event loop (stopped with the last handle).
struct Link {
    client: AsyncClient,
    waiting: Arc<Mutex<Waiting>>,
    driver: tokio::task::AbortHandle,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// A PUBACK's reason, or why the connection closed before it came.
type Ack = oneshot::Sender<Result<PubAckReason, String>>;

/// The senders waiting for their PUBACK.
#[derive(Default)]
struct Waiting {
    /// Queued for the event loop, in order; not yet numbered.
    queued: VecDeque<Ack>,
    /// Numbered with an id still in flight: the loop holds it until that id is acked.
    collided: Option<(u16, Ack)>,
    /// Written, by packet id.
    in_flight: HashMap<u16, Ack>,
    /// Why the connection closed, once it has.
    closed: Option<String>,
}

impl Waiting {
    /// Fails everyone waiting: the connection closed, saying `why`.
    fn close(&mut self, why: String) {
        let collided = self.collided.take().map(|(_, ack)| ack);
        let waiting = self.queued.drain(..).chain(collided);
        for ack in waiting.chain(self.in_flight.drain().map(|(_, ack)| ack)) {
            let _ = ack.send(Err(why.clone()));
        }
        self.closed = Some(why);
    }
}

/// Runs the connection's event loop, matching packet ids and PUBACKs to their senders,
/// until the connection fails.
async fn drive(mut events: EventLoop, waiting: Arc<Mutex<Waiting>>) {
    loop {
        let event = events.poll().await;
        let mut waiting = lock(&waiting);
        match event {
            Ok(Event::Outgoing(Outgoing::Publish(id))) => {
                let ack = match waiting.collided.take() {
                    Some((collided, ack)) if collided == id => Some(ack),
                    other => {
                        waiting.collided = other;
                        waiting.queued.pop_front()
                    }
                };
                if let Some(ack) = ack {
                    waiting.in_flight.insert(id, ack);
                }
            }
            Ok(Event::Outgoing(Outgoing::AwaitAck(id))) => {
                if let Some(ack) = waiting.queued.pop_front() {
                    waiting.collided = Some((id, ack));
                }
            }
            Ok(Event::Incoming(Packet::PubAck(puback))) => {
                if let Some(ack) = waiting.in_flight.remove(&puback.pkid) {
                    let _ = ack.send(Ok(puback.reason));
                }
            }
            Ok(Event::Incoming(Packet::Disconnect(disconnect))) => {
                return waiting.close(format!(
                    "the broker closed the connection: {:?}",
                    disconnect.reason_code
                ));
            }
            Ok(_) => {}
            Err(error) => return waiting.close(format!("connection failed: {error}")),
        }
    }
}

/// What a PUBACK means.
fn answered(started: Instant, topic: &str, reason: PubAckReason) -> Attempt {
    match reason {
        PubAckReason::Success => delivered(started, format!("topic `{topic}`: acknowledged")),
        PubAckReason::NoMatchingSubscribers => retry(
            started,
            RetryClass::Other,
            "broker",
            format!(
                "no subscriber matches the topic `{topic}`, so the broker dropped the message; it is sent again on the schedule (a consumer with a persistent session gets messages while offline)"
            ),
        ),
        PubAckReason::NotAuthorized => rejected(
            started,
            "broker",
            format!(
                "the broker refused the publish to `{topic}` (not authorized): grant the user publishing on it, then redeliver"
            ),
        ),
        PubAckReason::TopicNameInvalid | PubAckReason::PayloadFormatInvalid => rejected(
            started,
            "broker",
            format!("the broker refused the message ({reason:?}) on `{topic}`"),
        ),
        _ => retry(
            started,
            RetryClass::ServerError,
            "broker",
            format!("the broker did not take the message: {reason:?}"),
        ),
    }
}

/// A connection that failed: refused credentials are final, so is a broker that does not
/// speak MQTT 5; the rest is retried.
fn connect_failed(started: Instant, error: ConnectionError) -> Attempt {
    match error {
        ConnectionError::ConnectionRefused(
            code @ (ConnectReturnCode::BadUserNamePassword
            | ConnectReturnCode::NotAuthorized
            | ConnectReturnCode::Banned
            | ConnectReturnCode::BadAuthenticationMethod),
        ) => rejected(
            started,
            "broker",
            format!(
                "the broker refused the credentials ({code:?}): fix the URL's user and password, then redeliver"
            ),
        ),
        ConnectionError::ConnectionRefused(
            code @ (ConnectReturnCode::UnsupportedProtocolVersion
            | ConnectReturnCode::RefusedProtocolVersion),
        ) => rejected(
            started,
            "broker",
            format!("the broker does not speak MQTT 5 ({code:?}), which hookline publishes with"),
        ),
        ConnectionError::Tls(error) => retry(
            started,
            RetryClass::Connect,
            "connect",
            format!("TLS with the broker failed: {error}"),
        ),
        ConnectionError::Io(error) => retry(
            started,
            RetryClass::Connect,
            "connect",
            format!("connection failed: {error}"),
        ),
        ConnectionError::Timeout(_) => retry(
            started,
            RetryClass::Timeout,
            "timeout",
            "connecting to the broker timed out".into(),
        ),
        other => retry(
            started,
            RetryClass::ServerError,
            "broker",
            format!("the broker refused the connection: {other}"),
        ),
    }
}
