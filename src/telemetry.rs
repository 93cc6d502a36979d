//! Logs and metrics set-up.
//!
//! Logs go to stderr as text or JSON lines (`--log-format`). Metrics use the `metrics`
//! facade with a Prometheus recorder installed once per process; the ingest role serves
//! its rendering on `GET /metrics`. Metric names are listed in ARCHITECTURE.md.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global log subscriber. Call once, from `main`.
pub fn init_logging(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a person at a terminal: a file or journald gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    // A second init (tests starting several servers) is harmless, so its error is ignored.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Bucket bounds of every `*_seconds` histogram: webhook latencies, from a local receiver's
/// millisecond to a slow one's 30 s (`request_timeout` is 15 s). Histograms, not summaries,
/// so several replicas' series add up (`sum by (le)`) before a quantile is taken.
pub const SECONDS_BUCKETS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0,
];

/// Bucket bounds of `hookline_ingest_batch_envelopes` (a group commit holds at most 256).
const BATCH_BUCKETS: [f64; 9] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// The process-wide Prometheus recorder, installed on first use.
pub fn metrics() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        builder()
            .install_recorder()
            // Another recorder is installed (an embedding program): keep ours private.
            .unwrap_or_else(|_| builder().build_recorder().handle())
    })
}

/// The recorder's configuration: histogram buckets per metric.
fn builder() -> PrometheusBuilder {
    let configured = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS_BUCKETS)
        .and_then(|builder| {
            builder.set_buckets_for_metric(
                Matcher::Full("hookline_ingest_batch_envelopes".into()),
                &BATCH_BUCKETS,
            )
        });
    // Only an empty bucket list fails, and ours are constants.
    configured.unwrap_or_else(|_| PrometheusBuilder::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_render_as_histograms_with_the_webhook_buckets() {
        let recorder = builder().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            metrics::histogram!("hookline_attempt_seconds").record(0.003);
            metrics::histogram!("hookline_ingest_batch_envelopes").record(3.0);
        });
        let text = handle.render();
        assert!(
            text.contains("# TYPE hookline_attempt_seconds histogram"),
            "{text}"
        );
        assert!(
            text.contains("hookline_attempt_seconds_bucket{le=\"0.001\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("hookline_attempt_seconds_bucket{le=\"0.005\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("hookline_attempt_seconds_bucket{le=\"30\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE hookline_ingest_batch_envelopes histogram"),
            "{text}"
        );
        assert!(!text.contains("quantile"), "{text}");
    }
}
