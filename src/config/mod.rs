//! Configuration: TOML file, then `HOOKLINE_…` environment, then flags (flags win).
//!
//! Every option is declared once, as an `Option` field of [`CommonSettings`] or
//! [`ServeSettings`] (`options.rs`): clap reads it from a flag or its environment variable,
//! serde reads it from the file. [`Config::resolve`] (`resolve.rs`) merges the two, applies
//! the defaults and validates once. This file holds what the roles receive: [`Config`] and
//! its parts. The table in `docs/configuration.md` lists every option; a test checks that
//! it stays complete.

mod egress;
mod keys;
mod options;
mod resolve;
mod traces;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use egress::EgressProxy;
pub use keys::{DEFAULT_KEY_FILE, HOW_TO_MAKE_ONE, SecretKeys, keyring_for};
pub use options::{CommonSettings, HumanDuration, LogFormat, Role, ServeSettings, all_options};
pub use traces::{Sampler, TraceConfig};

use crate::enrichment::RegistryAccess;
use crate::secret::Secret;
use crate::ssrf::Guard;
use crate::tls::TlsFiles;

/// Why configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for our options.
    #[error("invalid config file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML error.
        #[source]
        source: toml::de::Error,
    },
    /// The file has a key we do not know (a typo would otherwise be ignored silently).
    #[error("unknown key `{key}` in config file {path}; known keys: {known}")]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The unknown key.
        key: String,
        /// The keys we know.
        known: String,
    },
    /// A value is out of range.
    #[error("invalid value for {option}: {reason}")]
    Invalid {
        /// The option.
        option: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// Fully resolved configuration with defaults applied. Validated once at start-up.
#[derive(Debug, Clone)]
pub struct Config {
    /// Database URL.
    pub db: String,
    /// Database pool size.
    pub db_max_connections: u32,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter.
    pub log_level: String,
    /// Which roles `serve` runs.
    pub roles: Vec<Role>,
    /// Ingest role settings.
    pub ingest: IngestConfig,
    /// API role settings.
    pub api_addr: SocketAddr,
    /// The admin listener (health, readiness, metrics), if asked for.
    pub admin_addr: Option<SocketAddr>,
    /// Certificate and key for both listeners; `None` serves plaintext (fine on loopback
    /// or behind a TLS-terminating proxy).
    pub tls: Option<TlsFiles>,
    /// Dispatcher role settings.
    pub dispatch: DispatchConfig,
    /// API limits.
    pub api: ApiConfig,
    /// Which destinations webhooks may reach; the API vets at registration, the
    /// dispatcher at every send. Tests swap its resolver with `Guard::with_lookup`.
    pub ssrf: Guard,
    /// How long events, deliveries and attempts are kept (the dispatcher role prunes).
    pub retention: Duration,
    /// The keys that seal stored secrets (`seal.rs`).
    pub secret_keys: SecretKeys,
    /// Where `serve` exports traces; `None`: nowhere, and spans cost nothing.
    pub traces: Option<TraceConfig>,
}

/// A request rate: `per_second` sustained, `burst` at once; `per_second == 0` means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained requests per second; 0 turns the limit off.
    pub per_second: u32,
    /// Requests allowed at once above the sustained rate.
    pub burst: u32,
}

/// Limits of the gRPC API, each answered with its own clear error.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Most webhooks per namespace subtree (RESOURCE_EXHAUSTED past it).
    pub max_webhooks_per_namespace: usize,
    /// Most repository globs, and separately tag globs, per webhook.
    pub max_filters_per_webhook: usize,
    /// Most custom headers per webhook.
    pub max_custom_headers: usize,
    /// Largest list page.
    pub max_page_size: u32,
    /// Largest request message (tonic's decoding limit).
    pub max_message_bytes: usize,
    /// Most events one replay call looks at.
    pub max_replay: u32,
    /// Most live tails served at once.
    pub max_watchers: usize,
    /// Calls per API token (RESOURCE_EXHAUSTED past it).
    pub rate_limit: RateLimit,
}

/// Settings of the notify endpoint.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// Listen address.
    pub addr: SocketAddr,
    /// Registry token from the environment, accepted as source `default`.
    pub registry_token: Option<Secret>,
    /// Largest body accepted.
    pub max_body_bytes: usize,
    /// Most events per envelope.
    pub max_events_per_envelope: usize,
    /// Longest wait for the commit before answering 503.
    pub commit_timeout: Duration,
    /// Notify requests per registry token (429 with `Retry-After` past it).
    pub rate_limit: RateLimit,
}

/// Settings of the dispatcher.
#[derive(Debug, Clone)]
pub struct DispatchConfig {
    /// Fallback poll interval.
    pub poll_interval: Duration,
    /// Global cap on requests in flight.
    pub max_in_flight: usize,
    /// Per-webhook cap on requests in flight.
    pub max_per_endpoint: usize,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Whole-request timeout.
    pub request_timeout: Duration,
    /// The operator's CAs a destination's certificate may chain to, besides the web PKI.
    pub destination_roots: Vec<tokio_rustls::rustls::pki_types::CertificateDer<'static>>,
    /// The proxy every HTTP delivery goes through, if any.
    pub egress_proxy: Option<std::sync::Arc<EgressProxy>>,
    /// Response body bytes kept.
    pub response_body_limit: usize,
    /// Delay before retry n (1-based) is `retry_schedule[n-1]`; past its end, give up.
    pub retry_schedule: Vec<Duration>,
    /// Cap on an honoured `Retry-After`.
    pub retry_after_max: Duration,
    /// Consecutive failures that open a circuit.
    pub circuit_threshold: u32,
    /// How long an open circuit waits before a probe.
    pub circuit_cooldown: Duration,
    /// Continuous failure time after which a webhook is disabled.
    pub disable_after: Duration,
    /// Lease length on claimed deliveries.
    pub lease: Duration,
    /// Shutdown grace period for in-flight deliveries.
    pub shutdown_grace: Duration,
    /// Longest a delivery waits for its event's enrichment.
    pub enrichment_timeout: Duration,
    /// How to read the registry of source `default` (the environment's token), if set.
    pub default_registry: Option<RegistryAccess>,
}

/// How long events, deliveries and attempts are kept by default (SPEC §7).
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// The default retry schedule of SPEC §5.
pub fn default_retry_schedule() -> Vec<Duration> {
    [5, 30, 120, 600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600]
        .into_iter()
        .map(Duration::from_secs)
        .collect()
}

impl Config {
    /// True if `serve` runs this role.
    pub fn runs(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}
