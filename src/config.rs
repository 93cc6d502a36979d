//! Configuration: TOML file, then `HOOKLINE_…` environment, then flags (flags win).
//!
//! Every option is declared once, as an `Option` field of [`CommonSettings`] or
//! [`ServeSettings`]: clap reads it from a flag or its environment variable, serde reads it
//! from the file, [`Config::resolve`] merges the two and applies the defaults. The table
//! in `docs/configuration.md` lists them all; a test checks that it stays complete.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, CommandFactory, ValueEnum};
use serde::Deserialize;

use crate::dispatch::ssrf::{Cidr, Guard};
use crate::secret::Secret;
use crate::store::RegistryAccess;
use crate::tls::TlsFiles;

/// Options every command that opens the database understands.
#[derive(Debug, Clone, Default, Args, Deserialize)]
pub struct CommonSettings {
    /// TOML configuration file. Its keys are the long flag names with `_` for `-`.
    #[arg(long, env = "HOOKLINE_CONFIG", global = true)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Database URL: `sqlite://PATH` (default `sqlite://hookline.db`) or `postgres://…`.
    #[arg(long, env = "HOOKLINE_DB", global = true)]
    pub db: Option<String>,
    /// Log format: `text` (default) or `json`.
    #[arg(long, env = "HOOKLINE_LOG_FORMAT", global = true)]
    pub log_format: Option<LogFormat>,
    /// Log filter in `tracing` syntax (default `info`).
    #[arg(long, env = "HOOKLINE_LOG_LEVEL", global = true)]
    pub log_level: Option<String>,
}

/// Options of `hookline serve`.
#[derive(Debug, Clone, Default, Args, Deserialize)]
pub struct ServeSettings {
    /// Roles to run, comma-separated: `api`, `ingest`, `dispatcher` (default: all three).
    #[arg(long, env = "HOOKLINE_ROLES", value_delimiter = ',')]
    pub roles: Option<Vec<Role>>,
    /// Address of the HTTP ingest endpoint (default 127.0.0.1:8080).
    #[arg(long, env = "HOOKLINE_INGEST_ADDR")]
    pub ingest_addr: Option<SocketAddr>,
    /// Address of the gRPC API (default 127.0.0.1:50051).
    #[arg(long, env = "HOOKLINE_API_ADDR")]
    pub api_addr: Option<SocketAddr>,
    /// Address of a listener serving only /healthz, /readyz and /metrics, for any roles
    /// (default: none; the ingest address serves them too). Lets dispatcher-only
    /// processes be probed and scraped. Plain HTTP: keep it on a private network.
    #[arg(long, env = "HOOKLINE_ADMIN_ADDR")]
    pub admin_addr: Option<SocketAddr>,
    /// PEM certificate chain (leaf first): serve HTTPS on the ingest address and gRPC over
    /// TLS on the API address. Needs --tls-key. Re-read on SIGHUP or when the file changes
    /// (default: plaintext).
    #[arg(long, env = "HOOKLINE_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "HOOKLINE_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// A registry token accepted by the notify endpoint without a database entry
    /// (source name `default`). Unset by default: then only `tokens create --registry` tokens work.
    #[arg(long, env = "HOOKLINE_REGISTRY_TOKEN", hide_env_values = true)]
    pub registry_token: Option<Secret>,
    /// Base URL of the registry that sends with `registry_token` (source `default`), such as
    /// `https://registry.example:5000`: hookline reads pushed manifests there to enrich
    /// `image.pushed` (default: none, no enrichment). Never a URL an event names.
    #[arg(long, env = "HOOKLINE_REGISTRY_URL")]
    pub registry_url: Option<String>,
    /// User name for reading `registry_url` (basic auth or its token service); use a
    /// read-only account (default: none, anonymous).
    #[arg(long, env = "HOOKLINE_REGISTRY_USERNAME")]
    pub registry_username: Option<String>,
    /// File holding the password of `registry_username` (one line; default: none).
    #[arg(long, env = "HOOKLINE_REGISTRY_PASSWORD_FILE")]
    pub registry_password_file: Option<PathBuf>,
    /// Longest a delivery waits for the registry to enrich its event before it is sent
    /// without enrichment, saying so (default 1s).
    #[arg(long, env = "HOOKLINE_ENRICHMENT_TIMEOUT")]
    pub enrichment_timeout: Option<HumanDuration>,
    /// Largest notify request body accepted, in bytes (default 1048576).
    #[arg(long, env = "HOOKLINE_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Most events accepted in one envelope (default 1000).
    #[arg(long, env = "HOOKLINE_MAX_EVENTS_PER_ENVELOPE")]
    pub max_events_per_envelope: Option<usize>,
    /// How long the notify handler waits for its commit before answering 503 so the
    /// registry retries; keep it under the registry's endpoint timeout (default 800ms).
    #[arg(long, env = "HOOKLINE_COMMIT_TIMEOUT")]
    pub commit_timeout: Option<HumanDuration>,
    /// Database connection pool size (default 8).
    #[arg(long, env = "HOOKLINE_DB_MAX_CONNECTIONS")]
    pub db_max_connections: Option<u32>,
    /// Fallback poll of the queue when no wake-up arrives (default 1s).
    #[arg(long, env = "HOOKLINE_POLL_INTERVAL")]
    pub poll_interval: Option<HumanDuration>,
    /// Most HTTP requests in flight across all endpoints (default 256).
    #[arg(long, env = "HOOKLINE_MAX_IN_FLIGHT")]
    pub max_in_flight: Option<usize>,
    /// Most HTTP requests in flight to one webhook, whatever its adaptive window (default:
    /// max_in_flight).
    #[arg(long, env = "HOOKLINE_MAX_PER_ENDPOINT")]
    pub max_per_endpoint: Option<usize>,
    /// TCP/TLS connect timeout of a delivery (default 5s).
    #[arg(long, env = "HOOKLINE_CONNECT_TIMEOUT")]
    pub connect_timeout: Option<HumanDuration>,
    /// Whole-request timeout of a delivery (default 15s).
    #[arg(long, env = "HOOKLINE_REQUEST_TIMEOUT")]
    pub request_timeout: Option<HumanDuration>,
    /// Bytes of a receiver's response body kept in the attempt log (default 16384).
    #[arg(long, env = "HOOKLINE_RESPONSE_BODY_LIMIT")]
    pub response_body_limit: Option<usize>,
    /// Delays before each retry, comma-separated; jitter of up to 20% is added
    /// (default 5s,30s,2m,10m,30m,1h,3h,6h,12h).
    #[arg(long, env = "HOOKLINE_RETRY_SCHEDULE", value_delimiter = ',')]
    pub retry_schedule: Option<Vec<HumanDuration>>,
    /// Longest `Retry-After` honoured on 429/503 (default 1h).
    #[arg(long, env = "HOOKLINE_RETRY_AFTER_MAX")]
    pub retry_after_max: Option<HumanDuration>,
    /// Consecutive failures that open a webhook's circuit (default 5).
    #[arg(long, env = "HOOKLINE_CIRCUIT_THRESHOLD")]
    pub circuit_threshold: Option<u32>,
    /// How long an open circuit holds deliveries before one probe (default 30s).
    #[arg(long, env = "HOOKLINE_CIRCUIT_COOLDOWN")]
    pub circuit_cooldown: Option<HumanDuration>,
    /// Disable a webhook that has failed continuously for this long (default 3d).
    #[arg(long, env = "HOOKLINE_DISABLE_AFTER")]
    pub disable_after: Option<HumanDuration>,
    /// Lease on a claimed delivery; renewed while the request runs (default 30s).
    #[arg(long, env = "HOOKLINE_LEASE")]
    pub lease: Option<HumanDuration>,
    /// On SIGTERM, how long in-flight deliveries may finish before their leases are released (default 10s).
    #[arg(long, env = "HOOKLINE_SHUTDOWN_GRACE")]
    pub shutdown_grace: Option<HumanDuration>,
    /// Destination ranges webhooks may reach although they are not public (loopback,
    /// private, …), comma-separated CIDRs such as `127.0.0.0/8,10.1.0.0/16` (default: none).
    #[arg(long, env = "HOOKLINE_ALLOW_CIDRS", value_delimiter = ',')]
    pub allow_cidrs: Option<Vec<Cidr>>,
    /// Most webhooks in one namespace, counting the namespaces below it (default 1000).
    #[arg(long, env = "HOOKLINE_MAX_WEBHOOKS_PER_NAMESPACE")]
    pub max_webhooks_per_namespace: Option<usize>,
    /// Most repository globs, and separately tag globs, per webhook (default 50).
    #[arg(long, env = "HOOKLINE_MAX_FILTERS_PER_WEBHOOK")]
    pub max_filters_per_webhook: Option<usize>,
    /// Most custom headers per webhook (default 20).
    #[arg(long, env = "HOOKLINE_MAX_CUSTOM_HEADERS")]
    pub max_custom_headers: Option<usize>,
    /// Largest page a list call may ask for (default 500).
    #[arg(long, env = "HOOKLINE_MAX_PAGE_SIZE")]
    pub max_page_size: Option<u32>,
    /// Largest gRPC request message, in bytes (default 262144).
    #[arg(long, env = "HOOKLINE_API_MAX_MESSAGE_BYTES")]
    pub api_max_message_bytes: Option<usize>,
    /// API calls per second allowed per API token; 0 turns the limit off (default 50).
    #[arg(long, env = "HOOKLINE_API_RATE_LIMIT")]
    pub api_rate_limit: Option<u32>,
    /// API calls a token may make in a burst above its rate (default 100).
    #[arg(long, env = "HOOKLINE_API_RATE_BURST")]
    pub api_rate_burst: Option<u32>,
    /// Notify requests per second allowed per registry token; 0 turns the limit off (default 1000).
    #[arg(long, env = "HOOKLINE_INGEST_RATE_LIMIT")]
    pub ingest_rate_limit: Option<u32>,
    /// Notify requests a registry may send in a burst above its rate (default 5000).
    #[arg(long, env = "HOOKLINE_INGEST_RATE_BURST")]
    pub ingest_rate_burst: Option<u32>,
    /// Events, deliveries and attempts older than this are deleted (default 30d).
    #[arg(long, env = "HOOKLINE_RETENTION")]
    pub retention: Option<HumanDuration>,
    /// Most events one ReplayWebhook call looks at; it answers where to resume (default 10000).
    #[arg(long, env = "HOOKLINE_MAX_REPLAY")]
    pub max_replay: Option<u32>,
    /// Most live tails (WatchDeliveries) one api process serves at once (default 64).
    #[arg(long, env = "HOOKLINE_MAX_WATCHERS")]
    pub max_watchers: Option<usize>,
}

/// A role `hookline serve` can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The gRPC API.
    Api,
    /// The HTTP notify endpoint.
    Ingest,
    /// The delivery workers.
    Dispatcher,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// A duration written for people: `500ms`, `5s`, `2m`, `3d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl FromStr for HumanDuration {
    type Err = humantime::DurationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        humantime::parse_duration(s).map(HumanDuration)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

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
    /// Merges flags/env (`cli`) over the file named by `--config` (if any), then defaults.
    pub fn resolve(common: CommonSettings, serve: ServeSettings) -> Result<Config, ConfigError> {
        let (file_common, file_serve) = match &common.config {
            Some(path) => read_file(path)?,
            None => Default::default(),
        };
        let c = common.or(file_common);
        let s = serve.or(file_serve);
        let d = |v: Option<HumanDuration>, default: Duration| v.map(|h| h.0).unwrap_or(default);
        let request_timeout = d(s.request_timeout, Duration::from_secs(15));
        let tls = match (s.tls_cert, s.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            (cert, _) => {
                let (set, unset) = if cert.is_some() {
                    ("tls_cert", "tls_key")
                } else {
                    ("tls_key", "tls_cert")
                };
                return Err(ConfigError::Invalid {
                    option: "tls_cert/tls_key",
                    reason: format!(
                        "{set} is set but {unset} is not: give both (PEM files) for TLS, or neither for plaintext"
                    ),
                });
            }
        };
        let default_registry = registry_access(
            s.registry_url,
            s.registry_username,
            s.registry_password_file.as_deref(),
        )?;
        let config = Config {
            db: c.db.unwrap_or_else(|| "sqlite://hookline.db".into()),
            db_max_connections: s.db_max_connections.unwrap_or(8),
            log_format: c.log_format.unwrap_or_default(),
            log_level: c.log_level.unwrap_or_else(|| "info".into()),
            roles: s
                .roles
                .unwrap_or_else(|| vec![Role::Api, Role::Ingest, Role::Dispatcher]),
            ingest: IngestConfig {
                addr: s
                    .ingest_addr
                    .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
                registry_token: s.registry_token.filter(|t| !t.expose().is_empty()),
                max_body_bytes: s.max_body_bytes.unwrap_or(1024 * 1024),
                max_events_per_envelope: s.max_events_per_envelope.unwrap_or(1000),
                commit_timeout: d(s.commit_timeout, Duration::from_millis(800)),
                rate_limit: RateLimit {
                    per_second: s.ingest_rate_limit.unwrap_or(1000),
                    burst: s.ingest_rate_burst.unwrap_or(5000),
                },
            },
            api_addr: s
                .api_addr
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 50051))),
            admin_addr: s.admin_addr,
            tls,
            dispatch: DispatchConfig {
                poll_interval: d(s.poll_interval, Duration::from_secs(1)),
                max_in_flight: s.max_in_flight.unwrap_or(256),
                max_per_endpoint: s
                    .max_per_endpoint
                    .unwrap_or_else(|| s.max_in_flight.unwrap_or(256)),
                connect_timeout: d(s.connect_timeout, Duration::from_secs(5)),
                request_timeout,
                response_body_limit: s.response_body_limit.unwrap_or(16 * 1024),
                retry_schedule: s
                    .retry_schedule
                    .map(|v| v.into_iter().map(|h| h.0).collect())
                    .unwrap_or_else(default_retry_schedule),
                retry_after_max: d(s.retry_after_max, Duration::from_secs(3600)),
                circuit_threshold: s.circuit_threshold.unwrap_or(5),
                circuit_cooldown: d(s.circuit_cooldown, Duration::from_secs(30)),
                disable_after: d(s.disable_after, Duration::from_secs(3 * 24 * 3600)),
                lease: d(s.lease, Duration::from_secs(30)),
                shutdown_grace: d(s.shutdown_grace, Duration::from_secs(10)),
                enrichment_timeout: d(s.enrichment_timeout, Duration::from_secs(1)),
                default_registry,
            },
            api: ApiConfig {
                max_webhooks_per_namespace: s.max_webhooks_per_namespace.unwrap_or(1000),
                max_filters_per_webhook: s.max_filters_per_webhook.unwrap_or(50),
                max_custom_headers: s.max_custom_headers.unwrap_or(20),
                max_page_size: s.max_page_size.unwrap_or(500),
                max_message_bytes: s.api_max_message_bytes.unwrap_or(256 * 1024),
                max_replay: s.max_replay.unwrap_or(10_000),
                max_watchers: s.max_watchers.unwrap_or(64),
                rate_limit: RateLimit {
                    per_second: s.api_rate_limit.unwrap_or(50),
                    burst: s.api_rate_burst.unwrap_or(100),
                },
            },
            ssrf: Guard::new(s.allow_cidrs.unwrap_or_default()),
            retention: d(s.retention, DEFAULT_RETENTION),
        };
        config.validate()?;
        Ok(config)
    }

    /// Configuration for commands that only need the database and logging.
    pub fn common(common: CommonSettings) -> Result<Config, ConfigError> {
        Config::resolve(common, ServeSettings::default())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |option, reason: &str| {
            Err(ConfigError::Invalid {
                option,
                reason: reason.into(),
            })
        };
        if self.roles.is_empty() {
            return invalid("roles", "name at least one of api, ingest, dispatcher");
        }
        if self.ingest.max_body_bytes == 0 {
            return invalid("max_body_bytes", "must be at least 1");
        }
        if self.ingest.max_events_per_envelope == 0 {
            return invalid("max_events_per_envelope", "must be at least 1");
        }
        let d = &self.dispatch;
        if d.max_in_flight == 0 || d.max_per_endpoint == 0 {
            return invalid("max_in_flight/max_per_endpoint", "must be at least 1");
        }
        if self.ingest.commit_timeout.is_zero() {
            return invalid("commit_timeout", "must be positive");
        }
        if d.poll_interval.is_zero() {
            return invalid("poll_interval", "must be positive");
        }
        if d.enrichment_timeout.is_zero() || d.enrichment_timeout > Duration::from_secs(60) {
            return invalid("enrichment_timeout", "must be between 1ms and 60s");
        }
        if d.lease < Duration::from_secs(1) {
            return invalid("lease", "must be at least 1s");
        }
        if d.request_timeout.is_zero() || d.connect_timeout.is_zero() {
            return invalid("request_timeout/connect_timeout", "must be positive");
        }
        if self.db_max_connections == 0 {
            return invalid("db_max_connections", "must be at least 1");
        }
        if self.retention < Duration::from_secs(1) {
            return invalid("retention", "must be at least 1s");
        }
        if self.api.max_replay == 0 || self.api.max_watchers == 0 {
            return invalid("max_replay/max_watchers", "must be at least 1");
        }
        let a = &self.api;
        if a.max_webhooks_per_namespace == 0
            || a.max_filters_per_webhook == 0
            || a.max_custom_headers == 0
            || a.max_page_size == 0
        {
            return invalid(
                "max_webhooks_per_namespace/max_filters_per_webhook/max_custom_headers/max_page_size",
                "must be at least 1",
            );
        }
        if a.max_message_bytes < 1024 {
            return invalid("api_max_message_bytes", "must be at least 1024");
        }
        for (option, rate) in [
            ("api_rate_burst", a.rate_limit),
            ("ingest_rate_burst", self.ingest.rate_limit),
        ] {
            if rate.per_second > 0 && rate.burst == 0 {
                return invalid(option, "must be at least 1 when the rate limit is on");
            }
        }
        Ok(())
    }

    /// True if `serve` runs this role.
    pub fn runs(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

impl CommonSettings {
    fn or(self, file: CommonSettings) -> CommonSettings {
        CommonSettings {
            config: self.config,
            db: self.db.or(file.db),
            log_format: self.log_format.or(file.log_format),
            log_level: self.log_level.or(file.log_level),
        }
    }
}

impl ServeSettings {
    fn or(self, f: ServeSettings) -> ServeSettings {
        ServeSettings {
            roles: self.roles.or(f.roles),
            ingest_addr: self.ingest_addr.or(f.ingest_addr),
            api_addr: self.api_addr.or(f.api_addr),
            admin_addr: self.admin_addr.or(f.admin_addr),
            tls_cert: self.tls_cert.or(f.tls_cert),
            tls_key: self.tls_key.or(f.tls_key),
            registry_token: self.registry_token.or(f.registry_token),
            registry_url: self.registry_url.or(f.registry_url),
            registry_username: self.registry_username.or(f.registry_username),
            registry_password_file: self.registry_password_file.or(f.registry_password_file),
            enrichment_timeout: self.enrichment_timeout.or(f.enrichment_timeout),
            max_body_bytes: self.max_body_bytes.or(f.max_body_bytes),
            max_events_per_envelope: self.max_events_per_envelope.or(f.max_events_per_envelope),
            commit_timeout: self.commit_timeout.or(f.commit_timeout),
            db_max_connections: self.db_max_connections.or(f.db_max_connections),
            poll_interval: self.poll_interval.or(f.poll_interval),
            max_in_flight: self.max_in_flight.or(f.max_in_flight),
            max_per_endpoint: self.max_per_endpoint.or(f.max_per_endpoint),
            connect_timeout: self.connect_timeout.or(f.connect_timeout),
            request_timeout: self.request_timeout.or(f.request_timeout),
            response_body_limit: self.response_body_limit.or(f.response_body_limit),
            retry_schedule: self.retry_schedule.or(f.retry_schedule),
            retry_after_max: self.retry_after_max.or(f.retry_after_max),
            circuit_threshold: self.circuit_threshold.or(f.circuit_threshold),
            circuit_cooldown: self.circuit_cooldown.or(f.circuit_cooldown),
            disable_after: self.disable_after.or(f.disable_after),
            lease: self.lease.or(f.lease),
            shutdown_grace: self.shutdown_grace.or(f.shutdown_grace),
            allow_cidrs: self.allow_cidrs.or(f.allow_cidrs),
            max_webhooks_per_namespace: self
                .max_webhooks_per_namespace
                .or(f.max_webhooks_per_namespace),
            max_filters_per_webhook: self.max_filters_per_webhook.or(f.max_filters_per_webhook),
            max_custom_headers: self.max_custom_headers.or(f.max_custom_headers),
            max_page_size: self.max_page_size.or(f.max_page_size),
            api_max_message_bytes: self.api_max_message_bytes.or(f.api_max_message_bytes),
            api_rate_limit: self.api_rate_limit.or(f.api_rate_limit),
            api_rate_burst: self.api_rate_burst.or(f.api_rate_burst),
            ingest_rate_limit: self.ingest_rate_limit.or(f.ingest_rate_limit),
            ingest_rate_burst: self.ingest_rate_burst.or(f.ingest_rate_burst),
            retention: self.retention.or(f.retention),
            max_replay: self.max_replay.or(f.max_replay),
            max_watchers: self.max_watchers.or(f.max_watchers),
        }
    }
}

/// The environment token's registry access from its three options: a checked URL, and
/// credentials only with it (both or neither). The password file's content never appears
/// in an error.
fn registry_access(
    url: Option<String>,
    username: Option<String>,
    password_file: Option<&Path>,
) -> Result<Option<RegistryAccess>, ConfigError> {
    let invalid = |option, reason: String| ConfigError::Invalid { option, reason };
    let Some(url) = url.filter(|u| !u.is_empty()) else {
        if username.is_some() || password_file.is_some() {
            return Err(invalid(
                "registry_username/registry_password_file",
                "set registry_url too: they are the credentials for reading it".into(),
            ));
        }
        return Ok(None);
    };
    let url = crate::registry::check_base_url(&url).map_err(|e| invalid("registry_url", e))?;
    let password = match password_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                invalid(
                    "registry_password_file",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            Some(Secret::new(text.trim_end_matches(['\r', '\n'])))
        }
        None => None,
    };
    if username.is_some() != password.is_some() {
        return Err(invalid(
            "registry_username/registry_password_file",
            "give both (a read-only account) or neither (anonymous reads)".into(),
        ));
    }
    Ok(Some(RegistryAccess {
        url,
        username,
        password,
    }))
}

/// Every option: (file key, flag, environment variable), for docs and the unknown-key check.
pub fn all_options() -> Vec<(String, String, String)> {
    #[derive(clap::Parser)]
    struct All {
        #[command(flatten)]
        common: CommonSettings,
        #[command(flatten)]
        serve: ServeSettings,
    }
    All::command()
        .get_arguments()
        .filter_map(|arg| {
            let long = arg.get_long()?;
            let env = arg.get_env()?.to_string_lossy().into_owned();
            Some((long.replace('-', "_"), format!("--{long}"), env))
        })
        .collect()
}

fn read_file(path: &Path) -> Result<(CommonSettings, ServeSettings), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let parse_err = |source| ConfigError::Parse {
        path: path.to_owned(),
        source,
    };
    let table: toml::Table = toml::from_str(&text).map_err(parse_err)?;
    let known: Vec<String> = all_options()
        .into_iter()
        .map(|(key, _, _)| key)
        .filter(|k| k != "config")
        .collect();
    if let Some(key) = table.keys().find(|k| !known.contains(k)) {
        return Err(ConfigError::UnknownKey {
            path: path.to_owned(),
            key: key.clone(),
            known: known.join(", "),
        });
    }
    let common = toml::from_str(&text).map_err(parse_err)?;
    let serve = toml::from_str(&text).map_err(parse_err)?;
    Ok((common, serve))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(f.path(), text).expect("write config");
        f
    }

    #[test]
    fn defaults_need_no_configuration() {
        let c = Config::resolve(CommonSettings::default(), ServeSettings::default())
            .expect("defaults are valid");
        assert_eq!(c.db, "sqlite://hookline.db");
        assert_eq!(c.ingest.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(c.api_addr.to_string(), "127.0.0.1:50051");
        assert_eq!(c.dispatch.poll_interval, Duration::from_secs(1));
        assert_eq!(c.dispatch.retry_schedule.len(), 9);
        assert_eq!(c.roles.len(), 3);
    }

    #[test]
    fn flags_win_over_the_file() {
        let f = file(
            "db = \"sqlite://from-file.db\"\npoll_interval = \"250ms\"\nroles = [\"ingest\"]\n",
        );
        let common = CommonSettings {
            config: Some(f.path().to_owned()),
            db: Some("sqlite://from-flag.db".into()),
            ..Default::default()
        };
        let c = Config::resolve(common, ServeSettings::default()).expect("valid");
        assert_eq!(c.db, "sqlite://from-flag.db");
        assert_eq!(c.dispatch.poll_interval, Duration::from_millis(250));
        assert_eq!(c.roles, vec![Role::Ingest]);
    }

    #[test]
    fn tls_needs_both_files_or_neither() {
        let c = Config::resolve(CommonSettings::default(), ServeSettings::default())
            .expect("defaults are valid");
        assert_eq!(c.tls, None, "plaintext by default");
        let f = file("tls_cert = \"/etc/hookline/cert.pem\"\n");
        let common = CommonSettings {
            config: Some(f.path().to_owned()),
            ..Default::default()
        };
        let err = Config::resolve(common.clone(), ServeSettings::default())
            .expect_err("a certificate without its key");
        assert!(
            err.to_string()
                .contains("tls_cert is set but tls_key is not"),
            "{err}"
        );
        let serve = ServeSettings {
            tls_key: Some("/etc/hookline/key.pem".into()),
            ..Default::default()
        };
        let c = Config::resolve(common, serve).expect("file and flag together");
        assert_eq!(
            c.tls,
            Some(TlsFiles {
                cert: "/etc/hookline/cert.pem".into(),
                key: "/etc/hookline/key.pem".into(),
            })
        );
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let f = file("pol_interval = \"1s\"\n");
        let common = CommonSettings {
            config: Some(f.path().to_owned()),
            ..Default::default()
        };
        let err = Config::resolve(common, ServeSettings::default()).expect_err("typo refused");
        assert!(err.to_string().contains("pol_interval"), "{err}");
    }

    #[test]
    fn no_destination_is_allow_listed_unless_configured() {
        let loopback = "127.0.0.1".parse().expect("ip");
        let c = Config::resolve(CommonSettings::default(), ServeSettings::default())
            .expect("defaults are valid");
        assert!(c.ssrf.allowed().is_empty());
        assert!(
            c.ssrf.check(loopback, None).is_err(),
            "loopback refused by default"
        );
        let f = file("allow_cidrs = [\"127.0.0.0/8\", \"10.1.2.3\"]\n");
        let common = CommonSettings {
            config: Some(f.path().to_owned()),
            ..Default::default()
        };
        let c = Config::resolve(common, ServeSettings::default()).expect("valid");
        assert_eq!(c.ssrf.allowed().len(), 2);
        assert!(c.ssrf.check(loopback, None).is_ok());
        assert!(c.ssrf.check("10.1.2.4".parse().expect("ip"), None).is_err());
        let f = file("allow_cidrs = [\"localhost\"]\n");
        let common = CommonSettings {
            config: Some(f.path().to_owned()),
            ..Default::default()
        };
        let err = Config::resolve(common, ServeSettings::default()).expect_err("not a CIDR");
        assert!(
            err.to_string().contains("`localhost` is not an IP address"),
            "{err}"
        );
    }

    #[test]
    fn every_option_is_documented() {
        let docs = include_str!("../docs/configuration.md");
        for (key, flag, env) in all_options() {
            for name in [&key, &flag, &env] {
                assert!(
                    docs.contains(name.as_str()),
                    "docs/configuration.md lacks {name}"
                );
            }
        }
    }
}
