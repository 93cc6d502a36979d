//! Test certificates and a TLS client that shows which certificate a server presents.
//!
//! `TestCa::new()` makes a private CA (written to `ca.pem` in its own temp dir);
//! `ca.leaf()` issues a fresh key and certificate for `localhost` and 127.0.0.1 (a new
//! serial each time), which `Leaf::write` puts where `--tls-cert`/`--tls-key` point.
//! `connect(addr, ca)` opens a verified TLS connection and returns it with the DER of the
//! server's certificate, to tell one rotation from the next.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, RootCertStore, crypto::ring};

/// A private certificate authority for one test.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    /// `ca.pem`, the CA certificate for `--ca-cert` and reqwest.
    pub pem_path: PathBuf,
    /// Holds `ca.pem`; also a handy place for the server's cert and key.
    pub dir: tempfile::TempDir,
}

/// A server certificate and its key.
pub struct Leaf {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PEM (PKCS#8).
    pub key_pem: String,
    /// The certificate, DER: what a client sees.
    pub der: Vec<u8>,
}

impl TestCa {
    /// A new CA with its certificate written to `dir/ca.pem`.
    pub fn new() -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "hookline test CA");
        let key = KeyPair::generate().expect("CA key");
        let issuer = CertifiedIssuer::self_signed(params, key).expect("CA certificate");
        let dir = tempfile::tempdir().expect("dir");
        let pem_path = dir.path().join("ca.pem");
        std::fs::write(&pem_path, issuer.pem()).expect("write ca.pem");
        TestCa {
            issuer,
            pem_path,
            dir,
        }
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// Paths for the server's certificate and key in the CA's dir.
    pub fn server_paths(&self) -> (PathBuf, PathBuf) {
        (
            self.dir.path().join("server.pem"),
            self.dir.path().join("server.key"),
        )
    }

    /// A fresh key and certificate for `localhost` and 127.0.0.1, signed by this CA.
    pub fn leaf(&self) -> Leaf {
        let mut params = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("leaf params");
        params
            .distinguished_name
            .push(DnType::CommonName, "hookline test server");
        let key = KeyPair::generate().expect("leaf key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }

    /// A client config trusting only this CA, offering `alpn`.
    pub fn client_config(&self, alpn: &[&[u8]]) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots
            .add(self.issuer.der().clone())
            .expect("CA is a valid root");
        let mut config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

impl Leaf {
    /// Writes the certificate and key as a rotation does: each file replaced whole
    /// (write beside it, then rename), key first.
    pub fn write(&self, cert: &Path, key: &Path) {
        for (path, text) in [(key, &self.key_pem), (cert, &self.cert_pem)] {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, text).expect("write");
            std::fs::rename(&tmp, path).expect("rename");
        }
    }
}

/// A TLS connection to `addr` verified as `localhost` against `ca` (ALPN http/1.1), and
/// the DER of the certificate the server presented.
pub async fn connect(addr: SocketAddr, ca: &TestCa) -> (TlsStream<TcpStream>, Vec<u8>) {
    let tcp = TcpStream::connect(addr).await.expect("tcp connect");
    let connector = TlsConnector::from(ca.client_config(&[b"http/1.1"]));
    let name = ServerName::try_from("localhost").expect("name");
    let stream = connector.connect(name, tcp).await.expect("TLS handshake");
    let der = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| certs.first())
        .expect("server presented a certificate")
        .to_vec();
    (stream, der)
}

/// Sends `GET path` over an open HTTP/1.1 connection (kept alive); the status code.
pub async fn get(stream: &mut TlsStream<TcpStream>, path: &str) -> u16 {
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("write request");
    // The health answers are small: read until the headers and the declared body are in.
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await.expect("read response");
        assert!(n > 0, "connection closed mid-response");
        response.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&response);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if body.len() >= length {
                return head
                    .split(' ')
                    .nth(1)
                    .and_then(|code| code.parse().ok())
                    .expect("status code");
            }
        }
    }
}

/// TLS in front of a plain server: accepts TLS on its own port with a certificate for
/// `localhost` from `ca` and relays the bytes to `to` (an `https://` egress proxy, or an
/// HTTPS receiver made of `receiver::Receiver`). It can demand a client certificate.
pub struct TlsFront {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl TlsFront {
    pub async fn start(ca: &TestCa, to: SocketAddr) -> TlsFront {
        Self::start_with(ca, None, to).await
    }

    /// One that completes a handshake only with a client certificate `client_ca` issued.
    pub async fn requiring_client_certificates(
        ca: &TestCa,
        client_ca: &TestCa,
        to: SocketAddr,
    ) -> TlsFront {
        Self::start_with(ca, Some(client_ca), to).await
    }

    async fn start_with(ca: &TestCa, client_ca: Option<&TestCa>, to: SocketAddr) -> TlsFront {
        use tokio_rustls::rustls::ServerConfig;
        use tokio_rustls::rustls::pki_types::pem::PemObject;
        use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
        use tokio_rustls::rustls::server::WebPkiClientVerifier;

        let leaf = ca.leaf();
        let chain = vec![CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).expect("cert")];
        let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).expect("key");
        let builder = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("protocol versions");
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(client_ca) => {
                let mut roots = RootCertStore::empty();
                roots
                    .add(client_ca.issuer.der().clone())
                    .expect("client CA");
                let verifier = WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    Arc::new(ring::default_provider()),
                )
                .build()
                .expect("client verifier");
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder.with_single_cert(chain, key).expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    if let Ok(mut upstream) = tokio::net::TcpStream::connect(to).await {
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
                    }
                });
            }
        });
        TlsFront { addr, task }
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}
