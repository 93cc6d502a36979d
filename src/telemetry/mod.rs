//! Logs, metrics and traces set-up.
//!
//! Logs go to stderr as text or JSON lines (`--log-format`). Metrics use the `metrics`
//! facade with a Prometheus recorder installed once per process; the ingest role serves
//! its rendering on `GET /metrics`. Metric names are listed in ARCHITECTURE.md. Traces
//! (`traces.rs`) are exported over OTLP when an endpoint is configured.

pub mod traces;

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogFormat, TraceConfig};

/// Installs the global log subscriber and, given `traces`, the layer that exports
/// hookline's spans (inside the runtime: its gRPC channel lives there). Call once, from
/// `main`; the returned exporter is shut down there before the runtime ends.
pub fn init(
    format: LogFormat,
    filter: &str,
    traces: Option<&TraceConfig>,
) -> Result<Option<traces::Traces>, String> {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let (exporter, tracer) = match traces {
        Some(config) => {
            let (exporter, tracer) = traces::Traces::start(config)?;
            (Some(exporter), Some(tracer))
        }
        None => (None, None),
    };
    // Only hookline's own spans are exported, whatever the log filter; with no exporter
    // there is no such layer, and those spans' callsites stay disabled.
    let spans = tracer.map(|tracer| {
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_target(false)
            .with_level(false)
            // Nothing reads OpenTelemetry's current context: entering a span need not set it.
            .with_context_activation(false)
            .with_filter(Targets::new().with_target(traces::TARGET, tracing::Level::TRACE))
    });
    // Colours only for a person at a terminal: a file or journald gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let logs = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let logs = match format {
        LogFormat::Text => logs.boxed(),
        LogFormat::Json => logs.json().boxed(),
    };
    // A second init (tests starting several servers) is harmless, so its error is ignored.
    let _ = tracing_subscriber::registry()
        .with(spans)
        .with(logs.with_filter(filter))
        .try_init();
    Ok(exporter)
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
