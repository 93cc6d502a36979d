//! Logs and metrics set-up.
//!
//! Logs go to stderr as text or JSON lines (`--log-format`). Metrics use the `metrics`
//! facade with a Prometheus recorder installed once per process; the ingest role serves
//! its rendering on `GET /metrics`. Metric names are listed in ARCHITECTURE.md.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global log subscriber. Call once, from `main`.
pub fn init_logging(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests starting several servers) is harmless, so its error is ignored.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// The process-wide Prometheus recorder, installed on first use.
pub fn metrics() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .install_recorder()
            // Another recorder is installed (an embedding program): keep ours private.
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder().handle())
    })
}
