//! A webhook's client certificate and key (mutual TLS): both or neither, PEM that parses,
//! a key rustls can sign with for that certificate, and only for an `https` receiver.

use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::Violations;
use crate::secret::Secret;
use crate::store::ClientIdentity;

/// Longest PEM accepted for either: a chain of a few certificates, or a key.
const MAX_PEM: usize = 32 * 1024;

/// The identity `certificate` and `key` give, or None for neither; each problem names its
/// field and never quotes the key.
pub(super) fn client_identity(
    certificate: &str,
    key: &str,
    url: &str,
    v: &mut Violations,
) -> Option<ClientIdentity> {
    const CERT: &str = "webhook.client_certificate";
    const KEY: &str = "webhook.client_key";
    match (certificate.trim().is_empty(), key.trim().is_empty()) {
        (true, true) => return None,
        (false, true) => {
            v.add(KEY, "the certificate's private key (PEM) is missing");
            return None;
        }
        (true, false) => {
            v.add(
                CERT,
                "a private key was given without its certificate (PEM)",
            );
            return None;
        }
        (false, false) => {}
    }
    if !url.starts_with("https://") {
        v.add(
            CERT,
            "a client certificate is presented over TLS: use an https:// URL",
        );
    }
    if certificate.len() > MAX_PEM || key.len() > MAX_PEM {
        v.add(CERT, format!("PEM over {} KiB", MAX_PEM / 1024));
        return None;
    }
    let chain: Result<Vec<CertificateDer<'static>>, _> =
        CertificateDer::pem_slice_iter(certificate.as_bytes()).collect();
    let chain = match chain {
        Ok(chain) if !chain.is_empty() => chain,
        Ok(_) => {
            v.add(
                CERT,
                "no `BEGIN CERTIFICATE` block: give the certificate chain in PEM",
            );
            return None;
        }
        Err(e) => {
            v.add(CERT, format!("not a PEM certificate chain: {e}"));
            return None;
        }
    };
    let Ok(private) = PrivateKeyDer::from_pem_slice(key.as_bytes()) else {
        v.add(KEY, "not a PEM private key (PKCS#8, PKCS#1 or SEC1)");
        return None;
    };
    // What the dispatcher will build: the key must be usable and fit the certificate.
    let built = ClientConfig::builder_with_provider(ring::default_provider().into())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())
        .and_then(|b| {
            b.with_root_certificates(tokio_rustls::rustls::RootCertStore::empty())
                .with_client_auth_cert(chain, private)
                .map_err(|e| e.to_string())
        });
    if let Err(reason) = built {
        v.add(
            KEY,
            format!("cannot be used with the certificate: {reason}"),
        );
        return None;
    }
    Some(ClientIdentity {
        certificate: certificate.to_owned(),
        key: Secret::new(key),
    })
}
