//! Deliveries through the operator's egress proxy (`egress_proxy`): where traffic may
//! leave only through an HTTP proxy, whose fixed address is also what receivers allow-list.
//!
//! The SSRF guard still decides where a delivery goes: hookline resolves and vets the
//! destination itself and asks the proxy for the vetted address, never for a name the proxy
//! would resolve on its own (a name that resolves to an internal address for the proxy but
//! not for us would otherwise be a way in). An `https` receiver is reached through a
//! `CONNECT IP:PORT` tunnel (hyper-util's `Tunnel`), inside which hookline does the TLS
//! handshake itself, with the URL's host name for SNI and the certificate check. A plain
//! `http` receiver gets the request in absolute form to `http://IP:PORT/…`, with the URL's
//! `Host` header (a proxy that follows RFC 9112 §3.2.2 rewrites it to the IP). The proxy's
//! own address is the operator's and is not vetted; its credentials are a secret.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderValue, Uri};
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;

use super::trust::Trust;
use crate::config::EgressProxy;
use crate::ssrf::Guard;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Any stream a connection runs on: TCP, TLS to the proxy, TLS inside the tunnel.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}
type BoxStream = Box<dyn Stream>;

/// A connection handed to hyper: to the receiver through the tunnel, or to the proxy for a
/// plain-HTTP request in absolute form.
pub struct Conn {
    io: TokioIo<BoxStream>,
    /// Requests go to the proxy in absolute form.
    via_proxy: bool,
    /// TLS negotiated HTTP/2.
    h2: bool,
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        let connected = Connected::new().proxy(self.via_proxy);
        if self.h2 {
            connected.negotiated_h2()
        } else {
            connected
        }
    }
}

impl hyper::rt::Read for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

type Connecting<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>>;

/// Opens a connection to the proxy itself (TLS if it is `https://`).
#[derive(Clone)]
struct ToProxy {
    proxy: Arc<EgressProxy>,
    tls: TlsConnector,
}

impl tower_service::Service<Uri> for ToProxy {
    type Response = TokioIo<BoxStream>;
    type Error = BoxError;
    type Future = Connecting<Self::Response>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let (proxy, tls) = (self.proxy.clone(), self.tls.clone());
        Box::pin(async move {
            let tcp = TcpStream::connect((proxy.host.as_str(), proxy.port))
                .await
                .map_err(|e| format!("connecting to the egress proxy: {e}"))?;
            tcp.set_nodelay(true)?;
            let stream: BoxStream = if proxy.tls {
                let name = ServerName::try_from(proxy.host.clone())?;
                Box::new(
                    tls.connect(name, tcp)
                        .await
                        .map_err(|e| format!("TLS to the egress proxy: {e}"))?,
                )
            } else {
                Box::new(tcp)
            };
            Ok(TokioIo::new(stream))
        })
    }
}

/// hyper-util's connector for deliveries through the proxy: vets the destination, then
/// tunnels (https) or hands the proxy connection over (http).
#[derive(Clone)]
pub struct Connector {
    guard: Guard,
    /// Bounds reaching the receiver: the proxy, the tunnel and the TLS handshake.
    timeout: std::time::Duration,
    proxy: Arc<EgressProxy>,
    to_proxy: ToProxy,
    /// The destination's TLS inside the tunnel (web PKI and the operator's CAs; h2, http/1.1).
    tls: TlsConnector,
}

impl Connector {
    /// A connector through `proxy`, vetting with `guard`, trusting `trust`.
    /// With `identity` (PEM chain and key) it presents that client certificate to
    /// receivers.
    pub fn new(
        proxy: Arc<EgressProxy>,
        guard: Guard,
        trust: &Trust,
        timeout: std::time::Duration,
        identity: Option<&str>,
    ) -> Result<Connector, String> {
        let mut destination = trust.standard(identity)?;
        destination.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let to_proxy = ToProxy {
            proxy: proxy.clone(),
            tls: TlsConnector::from(Arc::new(trust.standard(None)?)),
        };
        Ok(Connector {
            guard,
            timeout,
            proxy,
            to_proxy,
            tls: TlsConnector::from(Arc::new(destination)),
        })
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = Conn;
    type Error = BoxError;
    type Future = Connecting<Conn>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, destination: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let timeout = this.timeout;
            tokio::time::timeout(timeout, this.connect(destination))
                .await
                .map_err(|_| {
                    format!("reaching the receiver through the egress proxy took over {timeout:?}")
                })?
        })
    }
}

impl Connector {
    /// [`Connector`]'s connection to `destination`, unbounded.
    async fn connect(self, destination: Uri) -> Result<Conn, BoxError> {
        let this = self;
        {
            let host = destination
                .host()
                .ok_or("the URL has no host")?
                .trim_matches(['[', ']'])
                .to_owned();
            let https = destination.scheme_str() == Some("https");
            if !https {
                // `http`: the request's URI already names the vetted address (`absolute`).
                let mut to_proxy = this.to_proxy.clone();
                let io =
                    tower_service::Service::call(&mut to_proxy, this.proxy.uri.clone()).await?;
                return Ok(Conn {
                    io,
                    via_proxy: true,
                    h2: false,
                });
            }
            let ip = vet(&this.guard, &host).await?;
            let port = destination.port_u16().unwrap_or(443);
            let target: Uri = format!("https://{}", authority(ip, port)).parse()?;
            let mut tunnel = Tunnel::new(this.proxy.uri.clone(), this.to_proxy.clone());
            if let Some(authorization) = &this.proxy.authorization {
                let mut value = HeaderValue::from_str(authorization.expose())?;
                value.set_sensitive(true);
                tunnel = tunnel.with_auth(value);
            }
            let tunneled = tower_service::Service::call(&mut tunnel, target)
                .await
                .map_err(|e| format!("the egress proxy's tunnel to {ip}:{port}: {}", chain(&e)))?;
            let name = ServerName::try_from(host)?;
            let tls = this.tls.connect(name, tunneled.into_inner()).await?;
            let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
            Ok(Conn {
                io: TokioIo::new(Box::new(tls)),
                via_proxy: false,
                h2,
            })
        }
    }
}

/// The address `host` may be reached at, by the guard's verdict (a refusal is the
/// guard's error, which the transport reports as a refused destination).
async fn vet(guard: &Guard, host: &str) -> Result<IpAddr, BoxError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        guard.check(ip, None)?;
        return Ok(ip);
    }
    let ips = guard.resolve(host).await?;
    Ok(*ips.first().ok_or("the name resolved to no address")?)
}

/// `ip:port`, bracketing IPv6.
pub fn authority(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{v4}:{port}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
    }
}

/// An error and its causes on one line (hyper's errors never hold the URL).
pub(super) fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Where a plain-HTTP delivery is sent through the proxy: its URL with the host replaced
/// by the vetted address (so the proxy resolves nothing), and the `Host` it names.
pub async fn absolute(guard: &Guard, url: &reqwest::Url) -> Result<(Uri, String), BoxError> {
    let host = url.host_str().ok_or("the URL has no host")?;
    let ip = vet(guard, host.trim_matches(['[', ']'])).await?;
    let port = url.port_or_known_default().unwrap_or(80);
    let query = url.query().map(|q| format!("?{q}")).unwrap_or_default();
    let uri = format!("http://{}{}{query}", authority(ip, port), url.path()).parse()?;
    let host_header = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    Ok((uri, host_header))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities_bracket_ipv6() {
        assert_eq!(authority("10.0.0.1".parse().unwrap(), 80), "10.0.0.1:80");
        assert_eq!(authority("::1".parse().unwrap(), 443), "[::1]:443");
    }
}
