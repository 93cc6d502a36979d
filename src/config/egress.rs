//! The egress proxy's address, read from `egress_proxy` (`dispatch::proxy` sends through
//! it). Its credentials become a `Proxy-Authorization` value kept as a [`Secret`].

use base64::Engine;
use http::Uri;

use crate::secret::Secret;

/// The egress proxy, read from `egress_proxy`.
pub struct EgressProxy {
    /// `http://host:port` or `https://host:port`, without credentials.
    pub uri: Uri,
    /// Its host (a name or an IP, without brackets).
    pub host: String,
    /// Its port.
    pub port: u16,
    /// Whether hookline speaks TLS to it (`https://`).
    pub tls: bool,
    /// `Basic …` for `Proxy-Authorization`, if the URL has credentials.
    pub authorization: Option<Secret>,
}

impl std::fmt::Debug for EgressProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the credentials.
        f.debug_struct("EgressProxy")
            .field("uri", &self.uri)
            .field("authenticated", &self.authorization.is_some())
            .finish()
    }
}

impl EgressProxy {
    /// Reads `http(s)://[user:password@]host:port`; the error never quotes the URL.
    pub fn parse(url: &str) -> Result<EgressProxy, String> {
        let url = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
        let tls = match url.scheme() {
            "http" => false,
            "https" => true,
            other => return Err(format!("scheme `{other}`: use http:// or https://")),
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or("the proxy's host is missing")?
            .trim_matches(['[', ']'])
            .to_owned();
        let port = url
            .port_or_known_default()
            .ok_or("the proxy's port is missing")?;
        if url.path() != "/" || url.query().is_some() {
            return Err("give the proxy as scheme://[user:password@]host:port only".into());
        }
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        let authorization = (!url.username().is_empty()).then(|| {
            let pair = format!(
                "{}:{}",
                decode(url.username()),
                decode(url.password().unwrap_or_default())
            );
            let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
            Secret::new(format!("Basic {encoded}"))
        });
        let authority = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let uri = format!("{}://{authority}", url.scheme())
            .parse()
            .map_err(|e| format!("the proxy's address: {e}"))?;
        Ok(EgressProxy {
            uri,
            host,
            port,
            tls,
            authorization,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls_are_read_and_their_errors_quote_no_credential() {
        let p = EgressProxy::parse("http://u%40x:pa%3Ass@proxy.internal:3128").unwrap();
        assert_eq!(p.uri, "http://proxy.internal:3128/");
        assert_eq!(
            p.authorization.as_ref().map(Secret::expose),
            Some("Basic dUB4OnBhOnNz")
        );
        assert!(!format!("{p:?}").contains("Basic"));
        let p = EgressProxy::parse("https://[::1]").unwrap();
        assert!(p.tls && p.port == 443 && p.host == "::1");
        for bad in ["socks5://h:1", "http://u:secretpw@h:1/path", "nope"] {
            let error = EgressProxy::parse(bad).unwrap_err();
            assert!(!error.contains("secretpw"), "{error}");
        }
    }
}
