//! RabbitMQ (AMQP 0-9-1): `amqp://[user:pass@]host[:port]/VHOST?exchange=X[&routing_key=Y]`,
//! and `amqps://` for TLS (port 5671 unless given).
//!
//! Each delivery is one persistent message published `mandatory` on a channel in confirm
//! mode: it is delivered when the broker confirms it, and only if some queue took it (an
//! unroutable message comes back, and that is an error, never a silent drop). The message
//! id is the delivery id (the consumer's dedupe key); the content type is the payload's;
//! every header a webhook sends (the Standard Webhooks signature headers included) is a
//! message header. One connection per broker, vhost and credentials, to the address the
//! SSRF guard vetted, with one confirm channel per exchange; a connection or channel that
//! fails is dropped and the next send opens another. Over TLS the certificate is checked
//! for the URL's host by `trust::Trust`, while the socket goes to the vetted address.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::protocol::{AMQPErrorKind, AMQPHardError, AMQPSoftError};
use lapin::tcp::AsyncTcpStream;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::uri::{AMQPAuthority, AMQPScheme, AMQPUri, AMQPUserInfo};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ErrorKind};
use tcp_stream::RustlsConnector;

use super::pool::{IDLE, Pool};
use super::{Endpoint, delivered, locate, rejected, retry};
use crate::dispatch::transport::{Attempt, Destination, Message, RetryClass};
use crate::dispatch::trust::Trust;
use crate::ssrf::Guard;

/// The default port, and over TLS.
const PORT: u16 = 5672;
const TLS_PORT: u16 = 5671;

/// Where a message goes, read from the webhook's URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The broker (port 5672 unless given, 5671 over TLS).
    pub endpoint: Endpoint,
    /// Whether the connection is TLS (`amqps://`).
    pub tls: bool,
    /// The virtual host (the URL's path, percent-decoded; `/` when the path is empty).
    pub vhost: String,
    /// The exchange published to; "" is the default exchange (routing key = queue name).
    pub exchange: String,
    /// The routing key ("" unless given).
    pub routing_key: String,
}

/// Reads an `amqp://` URL; the error says what is wrong, for the owner.
pub fn target(url: &reqwest::Url) -> Result<Target, String> {
    let tls = url.scheme() == "amqps";
    let endpoint = Endpoint::of(url, if tls { TLS_PORT } else { PORT }, "broker")?;
    let vhost = match url.path().strip_prefix('/').unwrap_or_default() {
        "" => "/".to_owned(),
        path => percent_encoding::percent_decode_str(path)
            .decode_utf8()
            .map_err(|_| "the virtual host (the path) is not UTF-8")?
            .into_owned(),
    };
    let (mut exchange, mut routing_key) = (None, None);
    for (name, value) in url.query_pairs() {
        let short = |what: &str| {
            (value.len() <= 255)
                .then(|| value.clone().into_owned())
                .ok_or(format!("`{what}` must be at most 255 bytes"))
        };
        match name.as_ref() {
            "exchange" => exchange = Some(short("exchange")?),
            "routing_key" => routing_key = Some(short("routing_key")?),
            other => {
                return Err(format!(
                    "unknown query parameter `{other}`: an AMQP destination takes `exchange` and `routing_key`"
                ));
            }
        }
    }
    let exchange = exchange.ok_or(
        "the exchange is missing: add `?exchange=NAME` (`?exchange=&routing_key=QUEUE` for the default exchange)",
    )?;
    if exchange.is_empty() && routing_key.as_deref().is_none_or(str::is_empty) {
        return Err(
            "the default exchange (`exchange=`) routes by queue name: add `&routing_key=QUEUE`"
                .into(),
        );
    }
    Ok(Target {
        endpoint,
        tls,
        vhost,
        exchange,
        routing_key: routing_key.unwrap_or_default(),
    })
}

/// The AMQP transport: its guard, its bounds, its connections and channels.
pub struct Exchanges {
    guard: Guard,
    trust: Trust,
    connect_timeout: Duration,
    timeout: Duration,
    /// Keyed by address, port, vhost and credentials.
    connections: Pool<Arc<Connection>>,
    /// The same key and the exchange: a channel the broker closes (no such exchange)
    /// takes down no other exchange's publishes.
    channels: Pool<Channel>,
}

impl Exchanges {
    pub(super) fn new(
        guard: Guard,
        trust: Trust,
        connect_timeout: Duration,
        timeout: Duration,
    ) -> Exchanges {
        Exchanges {
            guard,
            trust,
            connect_timeout,
            timeout,
            connections: Pool::new(IDLE),
            channels: Pool::new(IDLE),
        }
    }

    /// One confirmed publish, and what came of it.
    pub(super) async fn send(&self, destination: Destination<'_>, message: Message) -> Attempt {
        let started = Instant::now();
        let located = locate(&self.guard, destination.address, "AMQP", target, |t| {
            &t.endpoint.host
        });
        let (target, ip) = match located.await {
            Ok(located) => located,
            Err(attempt) => return *attempt,
        };
        let tls = if target.tls { "|tls" } else { "" };
        let key = target.endpoint.key(ip, &format!("{}{tls}", target.vhost));
        let channel_key = format!("{key}|{}", target.exchange);
        let opened = tokio::time::timeout(
            self.connect_timeout,
            self.channels
                .get(&channel_key, || self.open_channel(&key, ip, &target)),
        );
        let channel = match opened.await {
            Ok(Ok(channel)) => channel,
            Ok(Err(error)) => return self.failed(started, &error, &key, &channel_key, &target),
            Err(_) => {
                // A connection that cannot open a channel in time is not one to keep.
                self.connections.forget(&key);
                return retry(
                    started,
                    RetryClass::Timeout,
                    "timeout",
                    "connecting to the broker timed out".into(),
                );
            }
        };
        self.connections.touch(&key);
        let properties = properties(&message);
        let publish = async {
            let confirm = channel
                .basic_publish(
                    ShortString::from(target.exchange.as_str()),
                    ShortString::from(target.routing_key.as_str()),
                    BasicPublishOptions {
                        mandatory: true,
                        immediate: false,
                    },
                    &message.body,
                    properties,
                )
                .await?;
            confirm.await
        };
        match tokio::time::timeout(self.timeout, publish).await {
            Ok(Ok(Confirmation::Ack(None))) => delivered(
                started,
                format!(
                    "exchange `{}` routing key `{}`: confirmed",
                    target.exchange, target.routing_key
                ),
            ),
            Ok(Ok(Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)))) => {
                rejected(
                    started,
                    "broker",
                    format!(
                        "the broker returned the message ({} {}): no queue is bound to exchange `{}` for routing key `{}`; bind a queue, then redeliver",
                        returned.reply_code,
                        returned.reply_text,
                        target.exchange,
                        target.routing_key
                    ),
                )
            }
            Ok(Ok(Confirmation::Nack(None) | Confirmation::NotRequested)) => retry(
                started,
                RetryClass::ServerError,
                "broker",
                "the broker refused to take the message (nack): a queue may be full".into(),
            ),
            Ok(Err(error)) => self.failed(started, &error, &key, &channel_key, &target),
            Err(_) => {
                self.channels.forget(&channel_key);
                retry(
                    started,
                    RetryClass::Timeout,
                    "timeout",
                    "the broker did not confirm the message in time".into(),
                )
            }
        }
    }

    /// A confirm channel on the endpoint's shared connection, connecting if there is none.
    async fn open_channel(&self, key: &str, ip: IpAddr, target: &Target) -> lapin::Result<Channel> {
        let connection = self
            .connections
            .get(key, || {
                connect(ip, target, &self.trust, self.connect_timeout)
            })
            .await?;
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(channel)
    }

    /// What an AMQP error means, having dropped what it broke: refused credentials or
    /// permissions, a missing vhost or exchange are final; the rest is retried.
    fn failed(
        &self,
        started: Instant,
        error: &lapin::Error,
        key: &str,
        channel_key: &str,
        target: &Target,
    ) -> Attempt {
        self.channels.forget(channel_key);
        let broker = match error.kind() {
            ErrorKind::ProtocolError(amqp) => Some(amqp),
            _ => None,
        };
        if broker.is_none_or(|amqp| matches!(amqp.kind(), AMQPErrorKind::Hard(_))) {
            self.connections.forget(key);
        }
        let Some(amqp) = broker else {
            return match error.kind() {
                ErrorKind::IOError(_) | ErrorKind::MissingHeartbeatError => retry(
                    started,
                    RetryClass::Connect,
                    "connect",
                    format!("connection failed: {error}"),
                ),
                _ => retry(
                    started,
                    RetryClass::Other,
                    "broker",
                    format!("AMQP: {error}"),
                ),
            };
        };
        let said = format!("{} {}", amqp.get_id(), amqp.get_message());
        match amqp.kind() {
            AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED)
            | AMQPErrorKind::Hard(AMQPHardError::NOTALLOWED) => rejected(
                started,
                "broker",
                format!(
                    "the broker refused access ({said}): authentication or permission on vhost `{}`; fix the URL's user, password or vhost, then redeliver",
                    target.vhost
                ),
            ),
            AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND) => rejected(
                started,
                "broker",
                format!(
                    "the broker has no exchange `{}` in vhost `{}` ({said}): declare it, then redeliver",
                    target.exchange, target.vhost
                ),
            ),
            AMQPErrorKind::Soft(AMQPSoftError::CONTENTTOOLARGE) => rejected(
                started,
                "broker",
                format!("the message is larger than the broker takes ({said})"),
            ),
            _ => retry(
                started,
                RetryClass::ServerError,
                "broker",
                format!("the broker closed the channel: {said}"),
            ),
        }
    }
}

/// A connection to the vetted address, as the URL's user (RabbitMQ's `guest` unless given).
/// Its channels keep it open: it closes when the last of them and of these handles go.
async fn connect(
    ip: IpAddr,
    target: &Target,
    trust: &Trust,
    timeout: Duration,
) -> lapin::Result<Arc<Connection>> {
    let endpoint = &target.endpoint;
    let mut userinfo = AMQPUserInfo::default();
    if let Some(username) = &endpoint.username {
        userinfo.username = username.clone();
        userinfo.password = endpoint.password.clone().unwrap_or_default();
    }
    let mut uri = AMQPUri {
        scheme: AMQPScheme::AMQP,
        authority: AMQPAuthority {
            userinfo,
            host: ip.to_string(),
            port: endpoint.port,
        },
        vhost: target.vhost.clone(),
        ..AMQPUri::default()
    };
    uri.query.connection_timeout = Some(timeout.as_millis() as u64);
    let properties = ConnectionProperties::default().with_connection_name("hookline".into());
    if !target.tls {
        return Connection::connect_uri(uri, properties).await.map(Arc::new);
    }
    // lapin would check the certificate for the address it dials (the vetted IP): the
    // handshake is ours, for the URL's host, and lapin is given the stream.
    let config = trust
        .for_host(&endpoint.host)
        .map_err(std::io::Error::other)?;
    let connector = RustlsConnector::from(Arc::new(config));
    let (host, address) = (endpoint.host.clone(), SocketAddr::new(ip, endpoint.port));
    let runtime = lapin::runtime::default_runtime()?;
    let handshake = async move |_uri, runtime| -> lapin::Result<_> {
        let tcp = AsyncTcpStream::connect(&runtime, address).await?;
        Ok(tcp.into_rustls(&connector, &host).await?)
    };
    Connection::connector(uri, runtime, handshake, properties)
        .await
        .map(Arc::new)
}

/// A persistent message with the payload's content type, the delivery id as its id, and
/// the webhook's headers.
fn properties(message: &Message) -> BasicProperties {
    let mut headers = FieldTable::default();
    for (name, value) in &message.headers {
        headers.insert(
            ShortString::from(name.as_str()),
            AMQPValue::LongString(LongString::from(value.as_str())),
        );
    }
    let mut properties = BasicProperties::default()
        .with_content_type(ShortString::from(message.content_type.as_ref()))
        .with_delivery_mode(2)
        .with_app_id(ShortString::from("hookline"))
        .with_timestamp(crate::store::now_ms() as u64 / 1000)
        .with_headers(headers);
    if let Some(id) = message.header("webhook-id") {
        properties = properties.with_message_id(ShortString::from(id));
    }
    properties
}
