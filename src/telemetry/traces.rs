//! OpenTelemetry traces: hookline's spans, exported over OTLP/gRPC when configured.
//!
//! Spans are ordinary `tracing` spans with the target [`TARGET`]; `tracing-opentelemetry`
//! turns them into OpenTelemetry spans, and only when an endpoint is configured is that
//! layer installed. Without it their callsites are disabled, so a span costs one check.
//!
//! A trace crosses processes through the store: ingest writes the notify span's W3C
//! context into each event it commits ([`context_of`]), and whichever dispatcher sends a
//! delivery continues that trace ([`continue_from`]) and hands the attempt's context on to
//! the receiver as `traceparent` ([`inject`]).
//!
//! The exporter never slows delivery: finished spans wait in a bounded queue for a
//! background thread to send them, and what does not fit, or what the collector does not
//! take, is dropped and counted in `hookline_trace_spans_dropped_total{reason}`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider, SpanData, SpanExporter,
    SpanProcessor,
};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::config::{Sampler, TraceConfig};

/// The target of every span hookline exports; spans of other targets never are.
pub const TARGET: &str = "hookline::traces";

/// Finished spans waiting for export; more are dropped and counted.
const QUEUE: usize = 4096;

/// How long shutdown waits for the last spans to leave.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

/// The running exporter. Shut it down before the runtime ends, so the last spans leave.
pub struct Traces {
    provider: SdkTracerProvider,
}

impl Traces {
    /// Builds the exporter and the tracer the `tracing` layer records with. Call inside
    /// the runtime: the gRPC channel lives on it.
    pub fn start(config: &TraceConfig) -> Result<(Traces, SdkTracer), String> {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(config.endpoint.clone())
            // One retry for a blip: each try converts the whole batch again, and while
            // the collector is down that is work for nothing.
            .with_retry_policy(opentelemetry_otlp::RetryPolicy::recommended().with_max_retries(1))
            .build()
            .map_err(|error| format!("cannot export traces to {}: {error}", config.endpoint))?;
        let resource = Resource::builder_empty()
            .with_service_name(config.service_name.clone())
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .with_attributes(
                config
                    .resource
                    .iter()
                    .map(|(key, value)| KeyValue::new(key.clone(), value.clone())),
            )
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(Bounded::new(exporter, BatchConfigBuilder::default()))
            .with_sampler(sampler(&config.sampler))
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("hookline");
        Ok((Traces { provider }, tracer))
    }

    /// Sends what is queued (waiting at most a few seconds) and stops the exporter.
    pub fn shutdown(self) {
        if let Err(error) = self.provider.shutdown_with_timeout(SHUTDOWN_WAIT) {
            tracing::warn!(%error, "traces: the last spans may not have been exported");
        }
    }
}

fn sampler(sampler: &Sampler) -> opentelemetry_sdk::trace::Sampler {
    use opentelemetry_sdk::trace::Sampler as Sdk;
    match sampler {
        Sampler::AlwaysOn => Sdk::AlwaysOn,
        Sampler::AlwaysOff => Sdk::AlwaysOff,
        Sampler::Ratio(ratio) => Sdk::TraceIdRatioBased(*ratio),
        Sampler::ParentBased(root) => Sdk::ParentBased(Box::new(self::sampler(root))),
    }
}

/// The batch processor behind a bound of our own, so that a span it would drop is counted:
/// `queued` counts spans handed to it and not yet taken by the exporter, which is at least
/// what its queue holds, so it never drops one itself.
#[derive(Debug)]
struct Bounded {
    inner: BatchSpanProcessor,
    queued: Arc<AtomicUsize>,
}

impl Bounded {
    /// A batch processor of `exporter`, configured by `config` (which reads the standard
    /// `OTEL_BSP_…` variables) but for its queue, which is [`QUEUE`] long.
    fn new<E: SpanExporter + 'static>(exporter: E, config: BatchConfigBuilder) -> Bounded {
        let queued = Arc::new(AtomicUsize::new(0));
        let exporter = Counted {
            inner: exporter,
            queued: queued.clone(),
            failing: AtomicBool::new(false),
        };
        let inner = BatchSpanProcessor::builder(exporter)
            .with_batch_config(config.with_max_queue_size(QUEUE).build())
            .build();
        Bounded { inner, queued }
    }
}

impl SpanProcessor for Bounded {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        if self.queued.fetch_add(1, Ordering::AcqRel) >= QUEUE {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            dropped("queue_full", 1);
            return;
        }
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The OTLP exporter, counting what leaves the queue and what the collector did not take.
#[derive(Debug)]
struct Counted<E> {
    inner: E,
    queued: Arc<AtomicUsize>,
    /// Whether the last export failed: the log says so once per run of failures.
    failing: AtomicBool,
}

impl<E: SpanExporter> SpanExporter for Counted<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len();
        self.queued.fetch_sub(spans, Ordering::AcqRel);
        let result = self.inner.export(batch).await;
        match &result {
            Ok(()) => {
                if self.failing.swap(false, Ordering::AcqRel) {
                    tracing::info!("traces: the collector takes spans again");
                }
            }
            Err(error) => {
                dropped("export_failed", spans);
                if !self.failing.swap(true, Ordering::AcqRel) {
                    tracing::warn!(%error, "traces: the collector did not take spans; they are dropped and counted until it does (hookline_trace_spans_dropped_total)");
                }
            }
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

fn dropped(reason: &'static str, spans: usize) {
    metrics::counter!("hookline_trace_spans_dropped_total", "reason" => reason)
        .increment(spans as u64);
}

/// A span's W3C trace context: `traceparent` and, if any, `tracestate`. `None` when
/// traces are off (the span is not recorded).
pub fn context_of(span: &tracing::Span) -> Option<(String, Option<String>)> {
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    let parent = carrier.remove("traceparent")?;
    let state = carrier.remove("tracestate").filter(|s| !s.is_empty());
    Some((parent, state))
}

/// Makes `span` continue the trace a stored or received W3C context names. Call before
/// the span is first entered; a missing or malformed context leaves it a new trace.
pub fn continue_from(span: &tracing::Span, parent: Option<&str>, state: Option<&str>) {
    let Some(parent) = parent else { return };
    let mut carrier = HashMap::with_capacity(2);
    carrier.insert("traceparent".to_owned(), parent.to_owned());
    if let Some(state) = state {
        carrier.insert("tracestate".to_owned(), state.to_owned());
    }
    let cx = TraceContextPropagator::new().extract(&carrier);
    if cx.span().span_context().is_valid() {
        // Only fails when traces are off or the span already started: nothing to continue.
        let _ = span.set_parent(cx);
    }
}

/// Continues the trace an incoming request's `traceparent`/`tracestate` headers name.
pub fn continue_from_headers(span: &tracing::Span, headers: &http::HeaderMap) {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    continue_from(span, text("traceparent"), text("tracestate"));
}

/// Adds `span`'s context to outgoing headers (`traceparent`, and `tracestate` if any), so
/// the receiver continues the trace.
pub fn inject(span: &tracing::Span, headers: &mut Vec<(String, String)>) {
    if let Some((parent, state)) = context_of(span) {
        headers.push(("traceparent".to_owned(), parent));
        if let Some(state) = state {
            headers.push(("tracestate".to_owned(), state));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use opentelemetry::trace::{Span as _, Tracer as _};

    use super::*;

    /// An exporter that takes its time, as a slow collector does, counting what it got.
    #[derive(Debug)]
    struct Slow(Arc<AtomicU64>);

    impl SpanExporter for Slow {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            std::thread::sleep(Duration::from_millis(200));
            self.0.fetch_add(batch.len() as u64, Ordering::Relaxed);
            Ok(())
        }
    }

    #[test]
    fn spans_past_the_queue_are_dropped_and_counted_and_none_is_lost_uncounted() {
        let exported = Arc::new(AtomicU64::new(0));
        let config = BatchConfigBuilder::default()
            .with_max_export_batch_size(QUEUE)
            .with_scheduled_delay(Duration::from_millis(50));
        let provider = SdkTracerProvider::builder()
            .with_span_processor(Bounded::new(Slow(exported.clone()), config))
            .build();
        let tracer = provider.tracer("test");
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let sent = 3 * QUEUE as u64;
        metrics::with_local_recorder(&recorder, || {
            for _ in 0..sent {
                tracer.start("span").end();
            }
        });
        provider.shutdown().expect("shutdown");
        let text = handle.render();
        let dropped: u64 = text
            .lines()
            .find(|l| l.starts_with("hookline_trace_spans_dropped_total{reason=\"queue_full\"}"))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0);
        let exported = exported.load(Ordering::Relaxed);
        assert!(dropped > 0, "a slow collector drops spans: {text}");
        assert!(exported >= QUEUE as u64, "a full queue is still exported");
        assert_eq!(exported + dropped, sent, "every span exported or counted");
    }
}
