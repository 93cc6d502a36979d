//! A webhook's credentials towards its receiver: a client certificate and key (mutual
//! TLS: both or neither, PEM that parses, a key rustls can sign with for that certificate,
//! only for an `https` receiver), and OAuth 2.0 client credentials (a token endpoint URL,
//! a client id and secret, scopes that are RFC 6749 scope tokens).

use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::Violations;
use crate::api::proto;
use crate::secret::Secret;
use crate::store::{ClientIdentity, OAuthClient};

/// Most scopes one webhook may ask for.
const MAX_SCOPES: usize = 20;
/// Longest client id, and longest scope.
const MAX_ID: usize = 255;
/// Longest client secret.
const MAX_SECRET: usize = 1024;

/// The client credentials `oauth` gives, or None for none; each problem names its field
/// (under `webhook.oauth.`) and never quotes the secret. The token URL's guard check is
/// the service's (`validate::destination`).
pub(super) fn oauth(
    oauth: Option<&proto::OAuthClientCredentials>,
    url: &str,
    v: &mut Violations,
) -> Option<OAuthClient> {
    let o = oauth?;
    let field = |name: &str| format!("webhook.oauth.{name}");
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        v.add(
            field("token_url"),
            "a bearer token is sent to an http(s) receiver only",
        );
    }
    match reqwest::Url::parse(&o.token_url) {
        Ok(token_url) if matches!(token_url.scheme(), "http" | "https") => {}
        Ok(_) => v.add(
            field("token_url"),
            "the token endpoint must be http:// or https://",
        ),
        Err(e) => v.add(field("token_url"), format!("not a URL: {e}")),
    }
    if o.client_id.is_empty() || o.client_id.len() > MAX_ID {
        v.add(field("client_id"), format!("1 to {MAX_ID} bytes"));
    }
    if o.client_secret.is_empty() || o.client_secret.len() > MAX_SECRET {
        v.add(
            field("client_secret"),
            format!("1 to {MAX_SECRET} bytes; give it anew with every change of oauth"),
        );
    }
    if o.scopes.len() > MAX_SCOPES {
        v.add(field("scopes"), format!("at most {MAX_SCOPES}"));
    }
    for (i, scope) in o.scopes.iter().enumerate() {
        // RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
        let token = !scope.is_empty()
            && scope.len() <= MAX_ID
            && scope
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
        if !token {
            v.add(
                format!("webhook.oauth.scopes[{i}]"),
                "a scope token: printable ASCII without spaces, quotes or backslashes",
            );
        }
    }
    Some(OAuthClient {
        token_url: o.token_url.clone(),
        client_id: o.client_id.clone(),
        client_secret: Secret::new(o.client_secret.clone()),
        scopes: o.scopes.clone(),
    })
}

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
