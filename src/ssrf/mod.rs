//! The SSRF guard: webhook destinations must be public addresses, unless allow-listed.
//!
//! [`Guard`] resolves a destination host through a pluggable [`Lookup`], vets EVERY
//! address against `ranges::refusal` and the operator's allow-list, and refuses the name
//! as a whole if any address fails. The dispatcher's reqwest client resolves through
//! [`Guard::resolver`], so the connection goes to the vetted addresses themselves, with
//! no second lookup (DNS rebinding fails); IP-literal URLs never reach a resolver, so
//! `dispatch::client::send` vets them with [`Guard::vet_literal`] first. The API vets at
//! registration with [`Guard::vet_url`]. It sits below configuration (which holds the
//! operator's `Guard`) and both of its users; `dispatch::ssrf` re-exports it.

mod ranges;

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

pub use ranges::{Cidr, refusal};
use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// How long a lookup may take before the destination counts as unresolvable.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Name resolution, pluggable so tests can script answers (e.g. DNS rebinding).
#[async_trait::async_trait]
pub trait Lookup: Send + Sync + 'static {
    /// Every address `host` resolves to.
    async fn lookup(&self, host: &str) -> io::Result<Vec<IpAddr>>;
}

/// The operating system's resolver (`getaddrinfo`), as reqwest uses by default.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemLookup;

#[async_trait::async_trait]
impl Lookup for SystemLookup {
    async fn lookup(&self, host: &str) -> io::Result<Vec<IpAddr>> {
        let addrs = tokio::net::lookup_host((host, 0)).await?;
        Ok(addrs.map(|a| a.ip()).collect())
    }
}

/// A destination address that the guard refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The host name that resolved to `ip`, if the URL named one.
    pub host: Option<String>,
    /// The refused address.
    pub ip: IpAddr,
    /// Which special-purpose range it lies in.
    pub why: &'static str,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Some(host) => write!(f, "`{host}` resolves to {}, {}", self.ip, self.why)?,
            None => write!(f, "{} is {}", self.ip, self.why)?,
        }
        f.write_str(
            "; hookline does not send there unless an operator allow-lists it (allow_cidrs)",
        )
    }
}

impl std::error::Error for Refused {}

/// Why a destination cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DestinationError {
    /// An address is not public and not allow-listed.
    #[error("destination refused: {0}")]
    Refused(#[from] Refused),
    /// The name has no address (or the lookup failed).
    #[error("the host `{host}` does not resolve ({reason})")]
    Unresolvable {
        /// The host name.
        host: String,
        /// The resolver's answer.
        reason: String,
    },
    /// The lookup took longer than [`LOOKUP_TIMEOUT`].
    #[error("looking up the host `{host}` took longer than {}s", LOOKUP_TIMEOUT.as_secs())]
    Timeout {
        /// The host name.
        host: String,
    },
    /// The URL has no host.
    #[error("the URL has no host")]
    NoHost,
}

impl DestinationError {
    /// True if the guard refused the destination (a permanent verdict, not a transient
    /// lookup failure).
    pub fn is_refused(&self) -> bool {
        matches!(self, DestinationError::Refused(_))
    }
}

/// Vets destinations. Cheap to clone.
#[derive(Clone)]
pub struct Guard {
    allow: Arc<[Cidr]>,
    lookup: Arc<dyn Lookup>,
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("allow", &self.allow)
            .finish_non_exhaustive()
    }
}

impl Default for Guard {
    fn default() -> Self {
        Guard::new(Vec::new())
    }
}

impl Guard {
    /// A guard allowing the public internet plus `allow`, resolving with the system resolver.
    pub fn new(allow: Vec<Cidr>) -> Guard {
        Guard {
            allow: allow.into(),
            lookup: Arc::new(SystemLookup),
        }
    }

    /// The same guard resolving names with `lookup`.
    pub fn with_lookup(mut self, lookup: Arc<dyn Lookup>) -> Guard {
        self.lookup = lookup;
        self
    }

    /// The allow-list.
    pub fn allowed(&self) -> &[Cidr] {
        &self.allow
    }

    /// Ok if `ip` may be a destination.
    pub fn check(&self, ip: IpAddr, host: Option<&str>) -> Result<(), Refused> {
        if self.allow.iter().any(|cidr| cidr.contains(ip)) {
            return Ok(());
        }
        match refusal(ip) {
            None => Ok(()),
            Some(why) => Err(Refused {
                host: host.map(str::to_owned),
                ip,
                why,
            }),
        }
    }

    /// Resolves `host` (bounded by [`LOOKUP_TIMEOUT`]) and vets every address: all must
    /// pass, or the name is refused as a whole.
    pub async fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, DestinationError> {
        let lookup = tokio::time::timeout(LOOKUP_TIMEOUT, self.lookup.lookup(host))
            .await
            .map_err(|_| DestinationError::Timeout { host: host.into() })?;
        let addrs = lookup.map_err(|error| DestinationError::Unresolvable {
            host: host.into(),
            reason: error.to_string(),
        })?;
        if addrs.is_empty() {
            return Err(DestinationError::Unresolvable {
                host: host.into(),
                reason: "no addresses".into(),
            });
        }
        for ip in &addrs {
            self.check(*ip, Some(host))?;
        }
        Ok(addrs)
    }

    /// Send-time check of a URL whose host is an IP literal (reqwest connects to those
    /// without asking the resolver). Names are left to [`Guard::resolver`].
    pub fn vet_literal(&self, url: &Url) -> Result<(), Refused> {
        match literal(url) {
            Some(ip) => self.check(ip, None),
            None => Ok(()),
        }
    }

    /// Registration-time check of a URL: its IP literal, or every address its name
    /// resolves to now.
    pub async fn vet_url(&self, url: &Url) -> Result<(), DestinationError> {
        if let Some(ip) = literal(url) {
            return Ok(self.check(ip, None)?);
        }
        match url.host_str() {
            Some(host) if !host.is_empty() => self.resolve(host).await.map(|_| ()),
            _ => Err(DestinationError::NoHost),
        }
    }

    /// This guard as reqwest's resolver: connections go only to vetted addresses.
    pub fn resolver(&self) -> Arc<GuardedResolver> {
        Arc::new(GuardedResolver(self.clone()))
    }
}

/// The IP address of a URL whose host is an IP literal.
/// The URL parser has already normalised IPv4 spellings (`0x7f.1`, `2130706433`) to
/// dotted quads and brackets IPv6, so a host that parses as an address is one.
fn literal(url: &Url) -> Option<IpAddr> {
    let host = url.host_str()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host.parse().ok()
}

/// reqwest's DNS resolver that answers only vetted addresses.
pub struct GuardedResolver(Guard);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.0.clone();
        Box::pin(async move {
            let addrs = guard.resolve(name.as_str()).await?;
            // Port 0: reqwest fills in the URL's port.
            let addrs: Addrs = Box::new(addrs.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// The guard's verdict inside a failed request's error chain, if it refused.
pub fn refused_in<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a DestinationError> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<DestinationError>() {
            return found.is_refused().then_some(found);
        }
        current = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Answers scripted lookups in order, repeating the last.
    struct Script(Mutex<Vec<Vec<IpAddr>>>);

    #[async_trait::async_trait]
    impl Lookup for Script {
        async fn lookup(&self, _host: &str) -> io::Result<Vec<IpAddr>> {
            let mut answers = self.0.lock().expect("lock");
            Ok(if answers.len() > 1 {
                answers.remove(0)
            } else {
                answers[0].clone()
            })
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[tokio::test]
    async fn every_address_is_vetted_and_one_bad_refuses_the_name() {
        let script = Script(Mutex::new(vec![vec![ip("93.184.215.14"), ip("10.0.0.1")]]));
        let guard = Guard::new(vec![]).with_lookup(Arc::new(script));
        let error = guard.resolve("mixed.test").await.expect_err("refused");
        assert_eq!(
            error.to_string(),
            "destination refused: `mixed.test` resolves to 10.0.0.1, a private address \
             (RFC 1918, 10.0.0.0/8); hookline does not send there unless an operator \
             allow-lists it (allow_cidrs)"
        );
    }

    #[tokio::test]
    async fn a_rebinding_name_is_refused_when_it_turns_private() {
        let script = Script(Mutex::new(vec![
            vec![ip("93.184.215.14")],
            vec![ip("169.254.169.254")],
        ]));
        let guard = Guard::new(vec![]).with_lookup(Arc::new(script));
        let url: Url = "https://rebind.test/hook".parse().expect("url");
        guard.vet_url(&url).await.expect("public at registration");
        let resolver = guard.resolver();
        let error = match resolver.resolve("rebind.test".parse().expect("name")).await {
            Ok(_) => panic!("the second lookup is private and must be refused"),
            Err(error) => error,
        };
        let found = refused_in(error.as_ref()).expect("the guard's verdict");
        assert!(found.to_string().contains("169.254.169.254"), "{found}");
    }

    #[tokio::test]
    async fn literals_and_allow_lists() {
        let guard = Guard::new(vec!["127.0.0.0/8".parse().expect("cidr")]);
        for ok in [
            "http://127.0.0.1:9/",
            "http://[::ffff:127.0.0.1]/",
            "https://8.8.8.8/",
        ] {
            guard
                .vet_literal(&ok.parse().expect("url"))
                .unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in ["http://[::1]/", "http://10.0.0.1/", "http://0x7f000001.0/"] {
            let url: Url = match bad.parse() {
                Ok(url) => url,
                Err(_) => continue,
            };
            assert!(guard.vet_literal(&url).is_err(), "{bad}");
        }
        let strict = Guard::new(vec![]);
        let url: Url = "http://0x7f000001/".parse().expect("url");
        assert_eq!(
            url.host_str(),
            Some("127.0.0.1"),
            "the URL parser normalises IPv4 forms"
        );
        assert!(strict.vet_literal(&url).is_err());
        assert!(strict.vet_url(&url).await.is_err());
        assert!(
            strict
                .vet_literal(&"https://example.com/".parse().expect("url"))
                .is_ok()
        );
    }
}
