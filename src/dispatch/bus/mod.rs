//! Destinations that are not HTTP: message buses. [`Router`] is the dispatcher's one
//! [`Transport`]: it sends each message by its destination's scheme, `http(s)` through
//! `client::Http`, `redis` to a Redis stream (`redis.rs`), `nats` to NATS JetStream
//! (`nats.rs`), `amqp(s)` to a RabbitMQ exchange (`amqp.rs`), `mqtt` to an MQTT 5 topic
//! (`mqtt.rs`). Each keeps its broker
//! connections in a [`pool::Pool`]. Every bus transport vets the broker's host with the same SSRF guard as HTTP and connects to the vetted address, and
//! maps its broker's answers to outcomes in one place, as `client::outcome` does for HTTP.

pub mod amqp;
pub mod mqtt;
pub mod nats;
mod pool;
pub mod redis;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::client::Http;
use super::transport::{Attempt, Destination, Exchange, Message, Outcome, RetryClass, Transport};
use super::trust::Trust;
use crate::ssrf::Guard;

/// The URL schemes a webhook's destination may have.
pub const SCHEMES: [&str; 10] = [
    "http", "https", "amqp", "amqps", "mqtt", "mqtts", "nats", "redis", "rediss", "tls",
];

/// `url`'s scheme, in lower case ("" when it has none).
fn scheme(url: &str) -> String {
    url.split_once("://")
        .map(|(scheme, _)| scheme.to_ascii_lowercase())
        .unwrap_or_default()
}

/// Where `url`'s protocol has a CloudEvents binding with a binary content mode, the
/// prefix its attribute headers take there: `ce-` on NATS, `cloudEvents:` in AMQP
/// application properties, none in MQTT 5 user properties.
pub fn cloudevents_prefix(url: &str) -> Option<&'static str> {
    match scheme(url).as_str() {
        "nats" | "tls" => Some("ce-"),
        "amqp" | "amqps" => Some("cloudEvents:"),
        "mqtt" | "mqtts" => Some(""),
        _ => None,
    }
}

/// Whether `url` names a message bus rather than an HTTP receiver.
pub fn is_bus(url: &str) -> bool {
    matches!(
        scheme(url).as_str(),
        "amqp" | "amqps" | "mqtt" | "mqtts" | "nats" | "tls" | "redis" | "rediss"
    )
}

/// Whether a bus URL names a destination hookline can publish to; if not, what is wrong,
/// for the owner, naming the bus.
pub fn check(url: &reqwest::Url) -> Result<(), String> {
    let (bus, read) = match url.scheme() {
        "amqp" | "amqps" => ("an AMQP", amqp::target(url).map(drop)),
        "mqtt" | "mqtts" => ("an MQTT", mqtt::target(url).map(drop)),
        "nats" | "tls" => ("a NATS", nats::target(url).map(drop)),
        "redis" | "rediss" => ("a Redis", redis::target(url).map(drop)),
        other => return Err(format!("`{other}` is not a message bus")),
    };
    read.map_err(|problem| format!("{bus} destination: {problem}"))
}

/// A broker's host, port and credentials, as a bus URL gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The host name or address.
    pub host: String,
    /// The port (the bus's default unless given).
    pub port: u16,
    /// The user, if any.
    pub username: Option<String>,
    /// The password, if any: a credential.
    pub password: Option<String>,
}

impl Endpoint {
    /// Reads `url`'s authority, `default_port` unless it names one; the error names the
    /// missing host as `what`'s (server, broker).
    pub fn of(url: &reqwest::Url, default_port: u16, what: &str) -> Result<Endpoint, String> {
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("the {what}'s host is missing"))?
            .trim_matches(['[', ']'])
            .to_owned();
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        Ok(Endpoint {
            host,
            port: url.port().unwrap_or(default_port),
            username: (!url.username().is_empty()).then(|| decode(url.username())),
            password: url.password().map(decode),
        })
    }

    /// What a shared connection to it at `ip` is kept under, with `more` (a database):
    /// in memory only, since it holds the password.
    fn key(&self, ip: IpAddr, more: &str) -> String {
        format!(
            "{ip}|{}|{more}|{}|{}",
            self.port,
            self.username.as_deref().unwrap_or_default(),
            self.password.as_deref().unwrap_or_default()
        )
    }
}

/// Every way out, by scheme.
pub struct Router {
    http: Http,
    redis: redis::Streams,
    nats: nats::JetStream,
    amqp: amqp::Exchanges,
    mqtt: mqtt::Topics,
}

impl Router {
    /// HTTP and the buses, each vetting hosts with `guard`, TLS brokers verified under
    /// `trust`, each publish bounded by `timeout`.
    pub fn new(
        http: Http,
        guard: Guard,
        trust: Trust,
        connect_timeout: Duration,
        timeout: Duration,
    ) -> Router {
        Router {
            http,
            redis: redis::Streams::new(guard.clone(), trust.clone(), connect_timeout, timeout),
            nats: nats::JetStream::new(guard.clone(), trust.clone(), connect_timeout, timeout),
            amqp: amqp::Exchanges::new(guard.clone(), trust.clone(), connect_timeout, timeout),
            mqtt: mqtt::Topics::new(guard, trust, connect_timeout, timeout),
        }
    }
}

#[async_trait::async_trait]
impl Transport for Router {
    async fn send(&self, destination: Destination<'_>, message: Message) -> Attempt {
        let scheme = scheme(destination.address);
        match scheme.as_str() {
            "redis" | "rediss" => self.redis.send(destination, message).await,
            "nats" | "tls" => self.nats.send(destination, message).await,
            "amqp" | "amqps" => self.amqp.send(destination, message).await,
            "mqtt" | "mqtts" => self.mqtt.send(destination, message).await,
            "http" | "https" => self.http.send(destination, message).await,
            _ => rejected(
                Instant::now(),
                "invalid_url",
                format!(
                    "hookline cannot send to a `{scheme}` address; use one of: {}",
                    SCHEMES.join(", ")
                ),
            ),
        }
    }
}

/// A bus destination read (`read`, which says what is wrong for the owner) and its
/// broker's address vetted; or, as an attempt, why not.
pub(crate) async fn locate<T>(
    guard: &Guard,
    address: &str,
    bus: &str,
    read: fn(&reqwest::Url) -> Result<T, String>,
    host: fn(&T) -> &str,
) -> Result<(T, IpAddr), Box<Attempt>> {
    let started = Instant::now();
    let target = reqwest::Url::parse(address)
        .map_err(|e| e.to_string())
        .and_then(|url| read(&url))
        .map_err(|reason| {
            let reason = format!("the {bus} URL cannot be used: {reason}");
            Box::new(rejected(started, "invalid_url", reason))
        })?;
    let ip = vetted_address(guard, host(&target)).await?;
    Ok((target, ip))
}

/// The broker's address, vetted by the SSRF guard exactly as an HTTP host is (its IP
/// literal, or every address its name resolves to); or, as an attempt, the refusal (final)
/// or the failed lookup (retried).
pub(crate) async fn vetted_address(guard: &Guard, host: &str) -> Result<IpAddr, Box<Attempt>> {
    let started = Instant::now();
    let vetted = match host.parse::<IpAddr>() {
        Ok(ip) => guard.check(ip, None).map(|_| ip).map_err(|r| r.to_string()),
        Err(_) => match guard.resolve(host).await {
            Ok(ips) => ips.first().copied().ok_or_else(|| "no address".to_owned()),
            Err(error) if error.is_refused() => Err(error.to_string()),
            Err(error) => {
                let attempt = retry(
                    started,
                    RetryClass::Connect,
                    "connect",
                    format!("resolving the broker: {error}"),
                );
                return Err(Box::new(attempt));
            }
        },
    };
    vetted.map_err(|refused| {
        Box::new(not_sent(
            started,
            "refused",
            format!(
                "destination refused: {refused}; refused destinations are final: change the URL, or ask the operator to allow it, then redeliver"
            ),
        ))
    })
}

/// The broker took the message; `said` is what the attempt log shows of its answer.
pub(crate) fn delivered(started: Instant, said: String) -> Attempt {
    Attempt {
        outcome: Outcome::Delivered,
        exchange: Exchange {
            started_at: started_at(started),
            duration: started.elapsed(),
            body: Some(said),
            ..Exchange::default()
        },
    }
}

/// A final answer: the broker will never take this message as it is (refused credentials,
/// no stream for the subject), or the address cannot be used; of `class`, for `reason`.
pub(crate) fn rejected(started: Instant, class: &'static str, reason: String) -> Attempt {
    let outcome = Outcome::Rejected {
        reason: reason.clone(),
        disable: None,
    };
    unsent(started, outcome, class, reason)
}

/// An attempt the SSRF guard stopped before anything was sent (final), of `class`, for
/// `reason`: the same outcome as HTTP's refusal.
pub(crate) fn not_sent(started: Instant, class: &'static str, reason: String) -> Attempt {
    let outcome = Outcome::NotSent {
        reason: reason.clone(),
    };
    unsent(started, outcome, class, reason)
}

/// An attempt to try again, of `class` (the attempt log's `error_class` and the retry
/// class), saying `error`.
pub(crate) fn retry(
    started: Instant,
    class: RetryClass,
    error_class: &'static str,
    error: String,
) -> Attempt {
    let outcome = Outcome::Retry {
        class,
        subject: error_class.replace('_', " "),
        retry_after: None,
    };
    unsent(started, outcome, error_class, error)
}

/// An attempt the broker did not take: `outcome`, and the log's class and error.
fn unsent(started: Instant, outcome: Outcome, class: &'static str, error: String) -> Attempt {
    Attempt {
        outcome,
        exchange: Exchange {
            started_at: started_at(started),
            duration: started.elapsed(),
            error: Some(error),
            error_class: Some(class),
            ..Exchange::default()
        },
    }
}

/// Unix ms when the send that began at `started` began.
pub(crate) fn started_at(started: Instant) -> i64 {
    crate::store::now_ms() - started.elapsed().as_millis() as i64
}
