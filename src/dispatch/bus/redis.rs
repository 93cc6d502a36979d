//! Redis Streams: `redis://[user:pass@]host[:port][/DB]?stream=KEY[&maxlen=N]`, or
//! `rediss://` for TLS (the server's certificate verified for the URL's host under
//! `trust::Trust`, through the tree's one rustls).
//!
//! Each delivery is one `XADD` to the stream with the fields `id` (the delivery id, the
//! consumer's dedupe key), `content-type`, `payload` (the body) and every header a
//! webhook sends (the Standard Webhooks signature headers included), so a consumer
//! verifies exactly as an HTTP receiver does. It is delivered when Redis answers the
//! entry's id. One multiplexed connection per broker endpoint, shared by every webhook
//! that uses it, to the address the SSRF guard vetted; a connection that fails is dropped
//! and the next send opens a new one.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionAddr, ErrorKind, IntoConnectionInfo, RedisError};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;

use super::pool::{IDLE, Pool};
use super::{Endpoint, delivered, locate, rejected, retry};
use crate::dispatch::transport::{Attempt, Destination, Message, RetryClass};
use crate::dispatch::trust::Trust;
use crate::ssrf::Guard;

/// The default port.
const PORT: u16 = 6379;

/// Where a message goes, read from the webhook's URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The broker (port 6379 unless given).
    pub endpoint: Endpoint,
    /// The database number (the URL's path; 0 unless given).
    pub db: i64,
    /// The stream each delivery is added to.
    pub stream: String,
    /// Trim the stream to about this many entries (`MAXLEN ~`).
    pub maxlen: Option<u64>,
    /// TLS required (`rediss://`).
    pub tls: bool,
}

/// Reads a `redis://` URL; the error says what is wrong, for the owner.
pub fn target(url: &reqwest::Url) -> Result<Target, String> {
    let endpoint = Endpoint::of(url, PORT, "broker")?;
    let db = match url.path().trim_matches('/') {
        "" => 0,
        db => db
            .parse::<i64>()
            .ok()
            .filter(|n| (0..=10_000).contains(n))
            .ok_or_else(|| format!("the path is the database number, not `{db}`"))?,
    };
    let (mut stream, mut maxlen) = (None, None);
    for (name, value) in url.query_pairs() {
        match name.as_ref() {
            "stream" if !value.is_empty() && value.len() <= 512 => {
                stream = Some(value.into_owned())
            }
            "stream" => return Err("`stream` must be 1 to 512 characters".into()),
            "maxlen" => {
                maxlen = Some(
                    value
                        .parse::<u64>()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or("`maxlen` must be a whole number above 0")?,
                )
            }
            other => {
                return Err(format!(
                    "unknown query parameter `{other}`: a Redis destination takes `stream` and `maxlen`"
                ));
            }
        }
    }
    Ok(Target {
        endpoint,
        db,
        stream: stream.ok_or("the stream is missing: add `?stream=KEY`")?,
        maxlen,
        tls: url.scheme() == "rediss",
    })
}

/// The Redis transport: its guard, its bounds, its connections by endpoint.
pub struct Streams {
    guard: Guard,
    trust: Trust,
    connect_timeout: Duration,
    timeout: Duration,
    /// Keyed by address, port, database and credentials.
    connections: Pool<MultiplexedConnection>,
}

impl Streams {
    pub(super) fn new(
        guard: Guard,
        trust: Trust,
        connect_timeout: Duration,
        timeout: Duration,
    ) -> Streams {
        Streams {
            guard,
            trust,
            connect_timeout,
            timeout,
            connections: Pool::new(IDLE),
        }
    }

    /// One `XADD`, and what came of it.
    pub(super) async fn send(&self, destination: Destination<'_>, message: Message) -> Attempt {
        let started = Instant::now();
        let located = locate(&self.guard, destination.address, "Redis", target, |t| {
            &t.endpoint.host
        });
        let (target, ip) = match located.await {
            Ok(located) => located,
            Err(attempt) => return *attempt,
        };
        let tls = if target.tls { "|tls" } else { "" };
        let key = target.endpoint.key(ip, &format!("{}{tls}", target.db));
        let connecting = self.connections.get(&key, || self.connect(ip, &target));
        let mut connection = match connecting.await {
            Ok(connection) => connection,
            Err(error) => return failed(started, &error),
        };
        let mut xadd = redis::cmd("XADD");
        xadd.arg(&target.stream);
        if let Some(maxlen) = target.maxlen {
            xadd.arg("MAXLEN").arg("~").arg(maxlen);
        }
        xadd.arg("*");
        let delivery_id = message.header("webhook-id").unwrap_or_default().to_owned();
        xadd.arg("id").arg(&delivery_id);
        xadd.arg("content-type").arg(message.content_type.as_ref());
        for (name, value) in &message.headers {
            xadd.arg(name.to_ascii_lowercase()).arg(value);
        }
        xadd.arg("payload").arg(&message.body);
        match xadd.query_async::<String>(&mut connection).await {
            Ok(entry) => delivered(started, format!("stream {} entry {entry}", target.stream)),
            Err(error) => {
                if error.is_io_error() || error.is_connection_dropped() || error.is_timeout() {
                    self.connections.forget(&key);
                }
                failed(started, &error)
            }
        }
    }

    /// A connection to the vetted address, over TLS for `rediss://`.
    async fn connect(
        &self,
        ip: IpAddr,
        target: &Target,
    ) -> Result<MultiplexedConnection, RedisError> {
        let mut redis_info = redis::RedisConnectionInfo::default().set_db(target.db);
        let endpoint = &target.endpoint;
        if let Some(username) = &endpoint.username {
            redis_info = redis_info.set_username(username);
        }
        if let Some(password) = &endpoint.password {
            redis_info = redis_info.set_password(password);
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.timeout));
        if target.tls {
            return self.connect_tls(ip, target, &redis_info, config).await;
        }
        let info = ConnectionAddr::Tcp(ip.to_string(), endpoint.port)
            .into_connection_info()?
            .set_redis_settings(redis_info);
        redis::Client::open(info)?
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }

    /// TLS to the vetted address with the URL's host name (SNI and the certificate
    /// check), then the same connection over it; its driver runs until it closes.
    async fn connect_tls(
        &self,
        ip: IpAddr,
        target: &Target,
        redis_info: &redis::RedisConnectionInfo,
        config: AsyncConnectionConfig,
    ) -> Result<MultiplexedConnection, RedisError> {
        let host = &target.endpoint.host;
        let tls = self.trust.for_host(host).map_err(std::io::Error::other)?;
        let name = ServerName::try_from(host.clone()).map_err(std::io::Error::other)?;
        let handshake = async {
            let tcp = TcpStream::connect((ip, target.endpoint.port)).await?;
            tcp.set_nodelay(true)?;
            TlsConnector::from(Arc::new(tls)).connect(name, tcp).await
        };
        let stream = tokio::time::timeout(self.connect_timeout, handshake)
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS connect"))??;
        let (connection, driver) =
            MultiplexedConnection::new_with_config(redis_info, stream, config).await?;
        tokio::spawn(driver);
        Ok(connection)
    }
}

/// What a Redis error means: refused credentials and errors in the command are final,
/// the rest (no connection, a timeout, a server loading or out of memory) retried.
fn failed(started: Instant, error: &RedisError) -> Attempt {
    let text = error.to_string();
    let code = error.code().unwrap_or_default();
    let auth = error.kind() == ErrorKind::AuthenticationFailed
        || matches!(code, "NOAUTH" | "WRONGPASS" | "NOPERM");
    if auth {
        return rejected(
            started,
            "broker",
            format!(
                "Redis refused the credentials (authentication or permission): {text}; fix the URL's user and password, then redeliver"
            ),
        );
    }
    if error.is_timeout() {
        return retry(
            started,
            RetryClass::Timeout,
            "timeout",
            format!("timed out: {text}"),
        );
    }
    if error.is_io_error() || error.is_connection_refusal() || error.is_connection_dropped() {
        return retry(
            started,
            RetryClass::Connect,
            "connect",
            format!("connection failed: {text}"),
        );
    }
    match code {
        "LOADING" | "TRYAGAIN" | "MASTERDOWN" | "BUSY" | "OOM" | "READONLY" | "CLUSTERDOWN" => {
            retry(
                started,
                RetryClass::ServerError,
                "broker",
                format!("Redis: {text}"),
            )
        }
        "" => retry(
            started,
            RetryClass::Other,
            "broker",
            format!("Redis: {text}"),
        ),
        _ => rejected(
            started,
            "broker",
            format!(
                "Redis refused the entry ({text}), which is final: fix the stream or the webhook and redeliver"
            ),
        ),
    }
}
