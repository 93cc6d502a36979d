//! TLS for both listeners: the PEM certificate and key, reloaded without a restart, and
//! an accept loop that hands finished handshakes to axum (ingest) or tonic (api).
//!
//! [`Certificates`] is the rustls certificate resolver: every new handshake reads its
//! current [`CertifiedKey`], which [`watch`] swaps on SIGHUP or when either file changes.
//! Open connections keep the session they negotiated; a reload that fails (a half-written
//! file mid-rotation) logs a warning and the previous certificate stays. [`TlsListener`]
//! does each handshake in its own task, bounded by [`HANDSHAKE_TIMEOUT`], so a slow or
//! silent client never holds up `accept`; a failed handshake is a debug line, not a warning,
//! since anyone can open a socket and send garbage. Plaintext listeners never come here.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::crypto::{CryptoProvider, ring};
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_util::sync::CancellationToken;

/// A TLS connection accepted by a listener.
pub type TlsStream = tokio_rustls::server::TlsStream<TcpStream>;

/// Longest a client may take to finish its handshake; then the socket is closed.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the certificate and key files' modification times are compared.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);
/// Finished handshakes waiting for the HTTP server to take them. Small: the server
/// takes them as fast as it accepts plain sockets, this only smooths bursts.
const READY_QUEUE: usize = 64;

/// ALPN for the ingest endpoint: axum is built for HTTP/1.1 only.
pub const ALPN_HTTP1: &[&[u8]] = &[b"http/1.1"];
/// ALPN for the api port: gRPC needs h2, the web console is also reached over HTTP/1.1.
pub const ALPN_H2_HTTP1: &[&[u8]] = &[b"h2", b"http/1.1"];

/// Where the PEM certificate chain and private key live (`--tls-cert`, `--tls-key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain, leaf first, PEM.
    pub cert: PathBuf,
    /// Private key of the leaf (PKCS#8, PKCS#1 or SEC1), PEM.
    pub key: PathBuf,
}

/// Why the certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file is missing, unreadable or not PEM.
    #[error("cannot read the TLS {what} file {path}: {source}")]
    Read {
        /// `certificate` or `key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O or PEM error.
        #[source]
        source: pem::Error,
    },
    /// A file is PEM but holds nothing of the kind expected.
    #[error("the TLS {what} file {path} holds no {expected}")]
    Empty {
        /// `certificate` or `key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The PEM sections looked for.
        expected: &'static str,
    },
    /// The key cannot be loaded, or does not belong to the certificate.
    #[error("the TLS key file {key} cannot be used with the certificate file {cert}: {source}")]
    Unusable {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        #[source]
        source: rustls::Error,
    },
    /// rustls refused the configuration (the crypto provider lacks the protocol versions).
    #[error("cannot set up TLS: {0}")]
    Setup(#[source] rustls::Error),
}

/// The crypto provider every TLS user in the tree shares (sqlx and reqwest use ring too).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

/// The error for a file that could not be read as PEM of the `expected` kind.
fn unreadable(
    what: &'static str,
    path: &Path,
    expected: &'static str,
) -> impl FnOnce(pem::Error) -> TlsError {
    let path = path.to_owned();
    move |source| match source {
        pem::Error::NoItemsFound => TlsError::Empty {
            what,
            path,
            expected,
        },
        source => TlsError::Read { what, path, source },
    }
}

/// Reads and checks the certificate chain and key.
pub fn load(files: &TlsFiles) -> Result<CertifiedKey, TlsError> {
    const CERT: &str = "PEM certificate (`BEGIN CERTIFICATE`)";
    const KEY: &str =
        "PEM private key (`BEGIN PRIVATE KEY`, `BEGIN RSA PRIVATE KEY` or `BEGIN EC PRIVATE KEY`)";
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect())
        .map_err(unreadable("certificate", &files.cert, CERT))?;
    if chain.is_empty() {
        return Err(TlsError::Empty {
            what: "certificate",
            path: files.cert.clone(),
            expected: CERT,
        });
    }
    let key =
        PrivateKeyDer::from_pem_file(&files.key).map_err(unreadable("key", &files.key, KEY))?;
    CertifiedKey::from_der(chain, key, &provider()).map_err(|source| TlsError::Unusable {
        cert: files.cert.clone(),
        key: files.key.clone(),
        source,
    })
}

/// The server's certificate: what new handshakes get, swapped whole on reload.
#[derive(Debug)]
pub struct Certificates {
    files: TlsFiles,
    /// A std lock is enough: readers clone an `Arc` and a reload is a pointer swap.
    current: RwLock<Arc<CertifiedKey>>,
}

impl Certificates {
    /// Loads the files; fails (naming the file) if they cannot be used.
    pub fn load(files: TlsFiles) -> Result<Arc<Certificates>, TlsError> {
        let current = RwLock::new(Arc::new(load(&files)?));
        Ok(Arc::new(Certificates { files, current }))
    }

    /// Reads the files again; on success new handshakes get the new certificate, on
    /// failure nothing changes.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = Arc::new(load(&self.files)?);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = fresh;
        Ok(())
    }

    /// The certificate new handshakes get.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A rustls server configuration using these certificates, offering `alpn`.
    pub fn server_config(self: &Arc<Self>, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>, TlsError> {
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Setup)?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }

    /// Modification time and length of both files, to notice a rotation. Two `stat`s
    /// every couple of seconds: cheap enough to do inline on the runtime.
    fn stamp(&self) -> [Option<(SystemTime, u64)>; 2] {
        let of = |path: &Path| {
            let meta = std::fs::metadata(path).ok()?;
            Some((meta.modified().ok()?, meta.len()))
        };
        [of(&self.files.cert), of(&self.files.key)]
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// Reloads `certs` on SIGHUP and when either file changes, until `shutdown` fires.
///
/// The SIGHUP handler is installed by this call, before the returned future first runs:
/// from the moment the server listens, a SIGHUP reloads rather than killing the process.
pub fn watch(
    certs: Arc<Certificates>,
    shutdown: CancellationToken,
) -> impl Future<Output = ()> + Send + 'static {
    let hangup = Hangup::new();
    let seen = certs.stamp();
    watch_loop(certs, hangup, seen, shutdown)
}

async fn watch_loop(
    certs: Arc<Certificates>,
    mut hangup: Hangup,
    mut seen: [Option<(SystemTime, u64)>; 2],
    shutdown: CancellationToken,
) {
    let mut poll = tokio::time::interval(POLL_INTERVAL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let trigger = tokio::select! {
            () = shutdown.cancelled() => return,
            () = hangup.recv() => "SIGHUP",
            _ = poll.tick() => {
                if certs.stamp() == seen {
                    continue;
                }
                "file change"
            }
        };
        // Remember what was tried, good or bad: a failed reload is retried when a file
        // changes again (the second half of a rotation), not every poll.
        seen = certs.stamp();
        match certs.reload() {
            Ok(()) => {
                tracing::info!(trigger, cert = %certs.files.cert.display(), "TLS certificate reloaded")
            }
            Err(error) => tracing::warn!(
                trigger,
                %error,
                "TLS certificate reload failed; still serving the previous certificate"
            ),
        }
    }
}

/// SIGHUP, where there is such a thing; otherwise only the file poll reloads.
struct Hangup {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl Hangup {
    fn new() -> Hangup {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let signal = signal(SignalKind::hangup())
                .inspect_err(|error| {
                    tracing::warn!(%error, "cannot listen for SIGHUP; TLS files are still polled")
                })
                .ok();
            Hangup { signal }
        }
        #[cfg(not(unix))]
        Hangup {}
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        if let Some(signal) = &mut self.signal {
            if signal.recv().await.is_some() {
                return;
            }
            self.signal = None;
        }
        std::future::pending().await
    }
}

/// A TCP listener whose connections come out with their TLS handshake done.
///
/// For ingest it is an [`axum::serve::Listener`]; for the api it is a `Stream` of
/// connections for tonic's `serve_with_incoming_shutdown`.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Starts accepting on `listener` with `config` until `shutdown` fires.
    pub fn new(
        listener: TcpListener,
        config: Arc<ServerConfig>,
        shutdown: CancellationToken,
    ) -> io::Result<TlsListener> {
        let local = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(READY_QUEUE);
        tokio::spawn(accept_loop(
            listener,
            TlsAcceptor::from(config),
            tx,
            shutdown,
        ));
        Ok(TlsListener { ready, local })
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    ready: mpsc::Sender<(TlsStream, SocketAddr)>,
    shutdown: CancellationToken,
) {
    loop {
        let (tcp, peer) = tokio::select! {
            () = shutdown.cancelled() => return,
            () = ready.closed() => return,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    accept_error(error).await;
                    continue;
                }
            },
        };
        let (acceptor, ready) = (acceptor.clone(), ready.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    // Err only once the server stopped: the connection just closes.
                    let _ = ready.send((stream, peer)).await;
                }
                Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

/// What axum's own accept loop does: a reset before accept is the client's business; any
/// other error (out of file descriptors) is logged and accept pauses, rather than spinning.
async fn accept_error(error: io::Error) {
    if matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "accept failed; pausing 1s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(pair) => pair,
            // The accept loop stopped: shutdown fired and axum stops polling us.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}

impl tokio_stream::Stream for TlsListener {
    type Item = io::Result<TlsStream>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.ready
            .poll_recv(cx)
            .map(|ready| ready.map(|(stream, _)| Ok(stream)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        path
    }

    #[test]
    fn unusable_files_are_named_in_the_error() {
        let dir = tempfile::tempdir().expect("dir");
        let missing = TlsFiles {
            cert: dir.path().join("nope.pem"),
            key: dir.path().join("key.pem"),
        };
        let error = load(&missing).expect_err("missing").to_string();
        assert!(
            error.contains("certificate file") && error.contains("nope.pem"),
            "{error}"
        );

        let empty = TlsFiles {
            cert: write(dir.path(), "empty.pem", "not pem at all\n"),
            key: write(dir.path(), "key.pem", ""),
        };
        let error = load(&empty).expect_err("empty").to_string();
        assert!(
            error.contains("empty.pem") && error.contains("BEGIN CERTIFICATE"),
            "{error}"
        );

        let broken = TlsFiles {
            cert: write(
                dir.path(),
                "broken.pem",
                "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
            ),
            key: dir.path().join("key.pem"),
        };
        let error = load(&broken).expect_err("broken").to_string();
        assert!(error.contains("broken.pem"), "{error}");
    }
}
