//! Every option, declared once: a field of [`CommonSettings`] or [`ServeSettings`] that
//! clap reads from its flag or environment variable and serde from the TOML file.
//!
//! Declarations only: each field is optional here (unset is not a default), `settings!`
//! writes the merge of one layer over another once for all of them, and [`all_options`]
//! lists them for the docs check and the file's unknown-key check. Defaults, merging and
//! validation are `resolve.rs`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, CommandFactory, ValueEnum};
use serde::Deserialize;

use crate::secret::Secret;
use crate::ssrf::Cidr;

/// Where `--help` lists the options every command takes (`--config`, `--db`, logging), so
/// a subcommand's own options come first.
const HEADING: &str = "Global options";

/// Declares a settings struct in which every field is an `Option` (the field's type is
/// written without it), and its `or`: each option as set in this layer, else as set in
/// `file`. The merge of flags and environment over the file, written once for all fields.
macro_rules! settings {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $(
                $(#[$field_meta:meta])*
                pub $field:ident: $ty:ty,
            )*
        }
    ) => {
        $(#[$meta])*
        pub struct $name {
            $(
                $(#[$field_meta])*
                pub $field: Option<$ty>,
            )*
        }

        impl $name {
            /// Each option as set here, else as set in `file`.
            pub(crate) fn or(self, file: $name) -> $name {
                $name {
                    $($field: self.$field.or(file.$field),)*
                }
            }
        }
    };
}

settings! {
    /// Options every command that opens the database understands. Each is an `Option`
    /// (`settings!`): unset in one layer, the next one or the default decides.
    #[derive(Debug, Clone, Default, Args, Deserialize)]
    pub struct CommonSettings {
        /// TOML configuration file. Its keys are the long flag names with `_` for `-`.
        #[arg(long, env = "HOOKLINE_CONFIG", global = true, help_heading = HEADING)]
        #[serde(skip)]
        pub config: PathBuf,
        /// Database URL: `sqlite://PATH` (default `sqlite://hookline.db`) or `postgres://…`.
        #[arg(long, env = "HOOKLINE_DB", global = true, help_heading = HEADING)]
        pub db: String,
        /// Log format: `text` (default) or `json`.
        #[arg(long, env = "HOOKLINE_LOG_FORMAT", global = true, help_heading = HEADING)]
        pub log_format: LogFormat,
        /// Log filter in `tracing` syntax (default `info`).
        #[arg(long, env = "HOOKLINE_LOG_LEVEL", global = true, help_heading = HEADING)]
        pub log_level: String,
        /// File of the keys that seal stored secrets: base64 keys of 32 bytes, one per line,
        /// newest first (it seals; the older ones only open). Default on SQLite:
        /// `hookline.key` beside the database, made on first start; PostgreSQL requires it.
        #[arg(long, env = "HOOKLINE_SECRET_KEY_FILE", global = true, help_heading = HEADING)]
        pub secret_key_file: PathBuf,
        /// The keys themselves instead of a file, comma-separated, newest first.
        #[arg(long, env = "HOOKLINE_SECRET_KEY", global = true, help_heading = HEADING, hide_env_values = true)]
        pub secret_key: Secret,
    }
}

settings! {
    /// Options of `hookline serve`, each an `Option` like those of [`CommonSettings`].
    #[derive(Debug, Clone, Default, Args, Deserialize)]
    pub struct ServeSettings {
        /// Roles to run, comma-separated: `api`, `ingest`, `dispatcher` (default: all three).
        #[arg(long, env = "HOOKLINE_ROLES", value_delimiter = ',')]
        pub roles: Vec<Role>,
        /// Address of the HTTP ingest endpoint (default 127.0.0.1:8080).
        #[arg(long, env = "HOOKLINE_INGEST_ADDR")]
        pub ingest_addr: SocketAddr,
        /// Address of the gRPC API (default 127.0.0.1:50051).
        #[arg(long, env = "HOOKLINE_API_ADDR")]
        pub api_addr: SocketAddr,
        /// Address of a listener serving only /healthz, /readyz and /metrics, for any roles
        /// (default: none; the ingest address serves them too). Lets dispatcher-only
        /// processes be probed and scraped. Plain HTTP: keep it on a private network.
        #[arg(long, env = "HOOKLINE_ADMIN_ADDR")]
        pub admin_addr: SocketAddr,
        /// PEM certificate chain (leaf first): serve HTTPS on the ingest address and gRPC over
        /// TLS on the API address. Needs --tls-key. Re-read on SIGHUP or when the file changes
        /// (default: plaintext).
        #[arg(long, env = "HOOKLINE_TLS_CERT")]
        pub tls_cert: PathBuf,
        /// PEM private key of --tls-cert.
        #[arg(long, env = "HOOKLINE_TLS_KEY")]
        pub tls_key: PathBuf,
        /// A registry token accepted by the notify endpoint without a database entry
        /// (source name `default`). Unset by default: then only `tokens create --registry` tokens work.
        #[arg(long, env = "HOOKLINE_REGISTRY_TOKEN", hide_env_values = true)]
        pub registry_token: Secret,
        /// Base URL of the registry that sends with `registry_token` (source `default`), such as
        /// `https://registry.example:5000`: hookline reads pushed manifests there to enrich
        /// `image.pushed` (default: none, no enrichment). Never a URL an event names.
        #[arg(long, env = "HOOKLINE_REGISTRY_URL")]
        pub registry_url: String,
        /// User name for reading `registry_url` (basic auth or its token service); use a
        /// read-only account (default: none, anonymous).
        #[arg(long, env = "HOOKLINE_REGISTRY_USERNAME")]
        pub registry_username: String,
        /// File holding the password of `registry_username` (one line; default: none).
        #[arg(long, env = "HOOKLINE_REGISTRY_PASSWORD_FILE")]
        pub registry_password_file: PathBuf,
        /// Longest a delivery waits for the registry to enrich its event before it is sent
        /// without enrichment, saying so (default 1s).
        #[arg(long, env = "HOOKLINE_ENRICHMENT_TIMEOUT")]
        pub enrichment_timeout: HumanDuration,
        /// Largest notify request body accepted, in bytes (default 1048576).
        #[arg(long, env = "HOOKLINE_MAX_BODY_BYTES")]
        pub max_body_bytes: usize,
        /// Most events accepted in one envelope (default 1000).
        #[arg(long, env = "HOOKLINE_MAX_EVENTS_PER_ENVELOPE")]
        pub max_events_per_envelope: usize,
        /// How long the notify handler waits for its commit before answering 503 so the
        /// registry retries; keep it under the registry's endpoint timeout (default 800ms).
        #[arg(long, env = "HOOKLINE_COMMIT_TIMEOUT")]
        pub commit_timeout: HumanDuration,
        /// Database connection pool size (default 8).
        #[arg(long, env = "HOOKLINE_DB_MAX_CONNECTIONS")]
        pub db_max_connections: u32,
        /// Fallback poll of the queue when no wake-up arrives (default 1s).
        #[arg(long, env = "HOOKLINE_POLL_INTERVAL")]
        pub poll_interval: HumanDuration,
        /// Most HTTP requests in flight across all endpoints (default 256).
        #[arg(long, env = "HOOKLINE_MAX_IN_FLIGHT")]
        pub max_in_flight: usize,
        /// Most HTTP requests in flight to one webhook, whatever its adaptive window (default:
        /// max_in_flight).
        #[arg(long, env = "HOOKLINE_MAX_PER_ENDPOINT")]
        pub max_per_endpoint: usize,
        /// TCP/TLS connect timeout of a delivery (default 5s).
        #[arg(long, env = "HOOKLINE_CONNECT_TIMEOUT")]
        pub connect_timeout: HumanDuration,
        /// Whole-request timeout of a delivery (default 15s).
        #[arg(long, env = "HOOKLINE_REQUEST_TIMEOUT")]
        pub request_timeout: HumanDuration,
        /// PEM file of CA certificates a destination's TLS certificate may chain to, besides
        /// the public web PKI: for HTTPS receivers and TLS brokers on a private CA (default:
        /// none). Read at start.
        #[arg(long, env = "HOOKLINE_DESTINATION_CA_FILE")]
        pub destination_ca_file: PathBuf,
        /// HTTP proxy every HTTP delivery goes through: `http(s)://[user:password@]host:port`
        /// (default: none, deliveries connect directly). hookline still vets each
        /// destination and asks the proxy for the vetted address.
        #[arg(long, env = "HOOKLINE_EGRESS_PROXY", hide_env_values = true)]
        pub egress_proxy: Secret,
        /// Bytes of a receiver's response body kept in the attempt log (default 16384).
        #[arg(long, env = "HOOKLINE_RESPONSE_BODY_LIMIT")]
        pub response_body_limit: usize,
        /// Delays before each retry, comma-separated; jitter of up to 20% is added
        /// (default 5s,30s,2m,10m,30m,1h,3h,6h,12h).
        #[arg(long, env = "HOOKLINE_RETRY_SCHEDULE", value_delimiter = ',')]
        pub retry_schedule: Vec<HumanDuration>,
        /// Longest `Retry-After` honoured on 429/503 (default 1h).
        #[arg(long, env = "HOOKLINE_RETRY_AFTER_MAX")]
        pub retry_after_max: HumanDuration,
        /// Consecutive failures that open a webhook's circuit (default 5).
        #[arg(long, env = "HOOKLINE_CIRCUIT_THRESHOLD")]
        pub circuit_threshold: u32,
        /// How long an open circuit holds deliveries before one probe (default 30s).
        #[arg(long, env = "HOOKLINE_CIRCUIT_COOLDOWN")]
        pub circuit_cooldown: HumanDuration,
        /// Disable a webhook that has failed continuously for this long (default 3d).
        #[arg(long, env = "HOOKLINE_DISABLE_AFTER")]
        pub disable_after: HumanDuration,
        /// Lease on a claimed delivery; renewed while the request runs, and the safety net if a process dies (its leases are normally given back within seconds) (default 30s).
        #[arg(long, env = "HOOKLINE_LEASE")]
        pub lease: HumanDuration,
        /// On SIGTERM, how long in-flight deliveries may finish before their leases are released (default 10s).
        #[arg(long, env = "HOOKLINE_SHUTDOWN_GRACE")]
        pub shutdown_grace: HumanDuration,
        /// Destination ranges webhooks may reach although they are not public (loopback,
        /// private, …), comma-separated CIDRs such as `127.0.0.0/8,10.1.0.0/16` (default: none).
        #[arg(long, env = "HOOKLINE_ALLOW_CIDRS", value_delimiter = ',')]
        pub allow_cidrs: Vec<Cidr>,
        /// Most webhooks in one namespace, counting the namespaces below it (default 1000).
        #[arg(long, env = "HOOKLINE_MAX_WEBHOOKS_PER_NAMESPACE")]
        pub max_webhooks_per_namespace: usize,
        /// Most repository globs, and separately tag globs, per webhook (default 50).
        #[arg(long, env = "HOOKLINE_MAX_FILTERS_PER_WEBHOOK")]
        pub max_filters_per_webhook: usize,
        /// Most custom headers per webhook (default 20).
        #[arg(long, env = "HOOKLINE_MAX_CUSTOM_HEADERS")]
        pub max_custom_headers: usize,
        /// Largest page a list call may ask for (default 500).
        #[arg(long, env = "HOOKLINE_MAX_PAGE_SIZE")]
        pub max_page_size: u32,
        /// Largest gRPC request message, in bytes (default 262144).
        #[arg(long, env = "HOOKLINE_API_MAX_MESSAGE_BYTES")]
        pub api_max_message_bytes: usize,
        /// API calls per second allowed per API token; 0 turns the limit off (default 50).
        #[arg(long, env = "HOOKLINE_API_RATE_LIMIT")]
        pub api_rate_limit: u32,
        /// API calls a token may make in a burst above its rate (default 100).
        #[arg(long, env = "HOOKLINE_API_RATE_BURST")]
        pub api_rate_burst: u32,
        /// Notify requests per second allowed per registry token; 0 turns the limit off (default 1000).
        #[arg(long, env = "HOOKLINE_INGEST_RATE_LIMIT")]
        pub ingest_rate_limit: u32,
        /// Notify requests a registry may send in a burst above its rate (default 5000).
        #[arg(long, env = "HOOKLINE_INGEST_RATE_BURST")]
        pub ingest_rate_burst: u32,
        /// Events, deliveries and attempts older than this are deleted (default 30d).
        #[arg(long, env = "HOOKLINE_RETENTION")]
        pub retention: HumanDuration,
        /// Most events one ReplayWebhook call looks at; it answers where to resume (default 10000).
        #[arg(long, env = "HOOKLINE_MAX_REPLAY")]
        pub max_replay: u32,
        /// Most live tails (WatchDeliveries) one api process serves at once (default 64).
        #[arg(long, env = "HOOKLINE_MAX_WATCHERS")]
        pub max_watchers: usize,
        /// OpenTelemetry collector to export traces to over OTLP/gRPC, such as
        /// `http://otel-collector:4317` (default: none, no traces). The exporter also reads
        /// `OTEL_EXPORTER_OTLP_HEADERS` and `OTEL_EXPORTER_OTLP_TIMEOUT`.
        #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
        pub otlp_endpoint: String,
        /// OTLP protocol: only `grpc` (the default) is spoken.
        #[arg(long, env = "OTEL_EXPORTER_OTLP_PROTOCOL")]
        pub otlp_protocol: String,
        /// `service.name` of hookline's spans (default `hookline`).
        #[arg(long, env = "OTEL_SERVICE_NAME")]
        pub trace_service_name: String,
        /// Which traces are kept: `parentbased_always_on` (default), `always_on`,
        /// `always_off`, `traceidratio`, `parentbased_traceidratio`, `parentbased_always_off`.
        #[arg(long, env = "OTEL_TRACES_SAMPLER")]
        pub trace_sampler: String,
        /// The ratio of the `traceidratio` samplers, 0 to 1 (default 1).
        #[arg(long, env = "OTEL_TRACES_SAMPLER_ARG")]
        pub trace_sampler_arg: String,
        /// More resource attributes of every span, `key=value,key=value` (default: none).
        #[arg(long, env = "OTEL_RESOURCE_ATTRIBUTES")]
        pub trace_resource_attributes: String,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_option_is_documented() {
        let docs = include_str!("../../docs/configuration.md");
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
