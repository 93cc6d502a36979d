//! Whom a TLS destination must prove itself to be: the public web PKI (webpki-roots) and
//! the operator's own CAs (`destination_ca_file`), for HTTPS receivers and TLS brokers
//! alike.
//!
//! A broker's client library is handed the address the SSRF guard vetted, not the URL's
//! host name, so the name it gives rustls is an IP; [`Trust::for_host`] builds a client
//! config whose verifier checks the certificate against the URL's host name instead, as a
//! client that resolved the name itself would.

use std::sync::Arc;

use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{CryptoProvider, ring};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::rustls::{ClientConfig, DigitallySignedStruct, Error, RootCertStore};

/// The roots a destination's certificate must chain to.
#[derive(Clone)]
pub struct Trust {
    roots: Arc<RootCertStore>,
    /// The operator's CAs alone, which the HTTP client adds to its own public roots.
    extra: Vec<CertificateDer<'static>>,
}

impl Trust {
    /// The public web PKI and `extra`, the operator's CAs (already parsed from PEM).
    pub fn new(extra: &[CertificateDer<'static>]) -> Result<Trust, String> {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for (i, cert) in extra.iter().enumerate() {
            roots
                .add(cert.clone())
                .map_err(|e| format!("destination_ca_file: certificate {}: {e}", i + 1))?;
        }
        Ok(Trust {
            roots: Arc::new(roots),
            extra: extra.to_vec(),
        })
    }

    /// The operator's CAs, for the HTTP client.
    pub fn extra(&self) -> &[CertificateDer<'static>] {
        &self.extra
    }

    /// A client config checking the certificate for the server name it is handed, under
    /// these roots (for a handshake of hookline's own, with the right name).
    /// With `identity` (a certificate chain and its key, PEM) it presents that certificate.
    pub fn standard(&self, identity: Option<&str>) -> Result<ClientConfig, String> {
        let provider = Arc::new(ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS versions: {e}"))?
            .with_root_certificates(self.roots.clone());
        let Some(pem) = identity else {
            return Ok(builder.with_no_client_auth());
        };
        let chain = CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("the client certificate: {e}"))?;
        let key = PrivateKeyDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| format!("the client certificate's key: {e}"))?;
        builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| format!("the client certificate: {e}"))
    }

    /// A client config that accepts only a certificate valid for `host` (a name or an IP
    /// literal) under these roots, whatever server name the library passes.
    pub fn for_host(&self, host: &str) -> Result<ClientConfig, String> {
        let provider = Arc::new(ring::default_provider());
        let verifier = self.pinned(host, provider.clone())?;
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS versions: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        Ok(config)
    }

    /// The verifier of [`Trust::for_host`].
    fn pinned(&self, host: &str, provider: Arc<CryptoProvider>) -> Result<NamePinned, String> {
        let name = ServerName::try_from(host.to_owned())
            .map_err(|_| format!("`{host}` is not a host name TLS can verify"))?;
        let verifier = WebPkiServerVerifier::builder_with_provider(self.roots.clone(), provider)
            .build()
            .map_err(|e| format!("building the certificate verifier: {e}"))?;
        Ok(NamePinned { name, verifier })
    }
}

/// The web PKI's verification, for the URL's host name rather than the name passed in.
#[derive(Debug)]
struct NamePinned {
    name: ServerName<'static>,
    verifier: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for NamePinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _dialled: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        self.verifier
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.verifier.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.verifier.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<tokio_rustls::rustls::SignatureScheme> {
        self.verifier.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

    /// A CA, and a leaf it signed for `names` only.
    fn ca_and_leaf(names: &[&str]) -> (CertificateDer<'static>, CertificateDer<'static>) {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca =
            CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA");
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let leaf = CertificateParams::new(names)
            .expect("params")
            .signed_by(&KeyPair::generate().expect("key"), &ca)
            .expect("leaf");
        (ca.der().clone(), leaf.der().clone())
    }

    #[test]
    fn the_certificate_is_checked_for_the_urls_host_not_the_dialled_address() {
        let (ca, leaf) = ca_and_leaf(&["broker.example"]);
        let trust = Trust::new(&[ca]).expect("trust");
        let provider = Arc::new(ring::default_provider());
        let dialled = ServerName::try_from("203.0.113.7").expect("ip");
        let now = UnixTime::now();
        let for_host = |host: &str| {
            trust
                .pinned(host, provider.clone())
                .expect("verifier")
                .verify_server_cert(&leaf, &[], &dialled, &[], now)
        };
        assert!(for_host("broker.example").is_ok());
        assert!(
            for_host("other.example").is_err(),
            "another name is refused"
        );
        let untrusted = Trust::new(&[]).expect("web PKI only");
        let verifier = untrusted.pinned("broker.example", provider.clone());
        let verdict =
            verifier
                .expect("verifier")
                .verify_server_cert(&leaf, &[], &dialled, &[], now);
        assert!(
            verdict.is_err(),
            "a private CA is not trusted unless configured"
        );
    }
}
