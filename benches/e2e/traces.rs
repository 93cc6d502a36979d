//! (18) What OpenTelemetry tracing costs: one webhook's delivery rate and CPU per delivery
//! with tracing off, on (every trace sampled) to a live OTLP collector, and on with the
//! collector down, rounds alternated in the same run.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hookline::store::{self, Webhook};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};

use super::formats::{Arrivals, Rounds, against, none, round_with};
use super::{Error, Scale, Sink};

/// Rounds of each setting.
const ROUNDS: usize = 3;

/// A collector that counts the spans it is sent: the receiving end a real one would be.
#[derive(Default)]
struct Counter {
    spans: Arc<AtomicUsize>,
}

#[tonic::async_trait]
impl TraceService for Counter {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let spans: usize = request
            .get_ref()
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        self.spans.fetch_add(spans, Ordering::Relaxed);
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// Starts the collector on loopback: its address and its count.
async fn collector() -> Result<(SocketAddr, Arc<AtomicUsize>), Error> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let counter = Counter::default();
    let spans = counter.spans.clone();
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(counter))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await;
    });
    Ok((addr, spans))
}

/// (18): off, on, and on with the collector down, each against off.
pub async fn scenarios(
    backend: &str,
    scale: Scale,
    dir: &std::path::Path,
    sink_url: &str,
    sink: &Sink,
) -> Result<Vec<(String, String)>, Error> {
    let deliveries = scale.deliveries / 2;
    let (addr, spans) = collector().await?;
    let live = format!("http://{addr}");
    // Nothing listens there once the listener is dropped.
    let down = format!(
        "http://{}",
        std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?
    );
    let settings: [(&str, Vec<&str>); 3] = [
        ("off", vec![]),
        (
            "on",
            vec!["--otlp-endpoint", &live, "--trace-sampler", "always_on"],
        ),
        (
            "on, collector down",
            vec!["--otlp-endpoint", &down, "--trace-sampler", "always_on"],
        ),
    ];
    let webhook = Webhook {
        name: "bench traces".into(),
        ..Webhook::new("wh_bench_traces", "acme", "", store::now_ms())
    };
    // Each setting's rounds get databases of their own.
    let labels = ["trace_off", "trace_on", "trace_down"];
    let mut results: Vec<Rounds> = vec![Vec::new(); settings.len()];
    let mut exported = 0;
    for r in 0..ROUNDS {
        for (i, (name, flags)) in settings.iter().enumerate() {
            eprintln!("[{backend}] tracing {name}, round {}", r + 1);
            let before = spans.load(Ordering::Relaxed);
            let sink = Arrivals::Sink(sink_url, sink);
            let labelled = (labels[i], webhook.clone());
            let round =
                round_with(backend, dir, &labelled, &sink, deliveries, r, none, flags).await?;
            results[i].push(round);
            if i == 1 {
                exported += spans.load(Ordering::Relaxed) - before;
            }
        }
    }
    let mut rows = Vec::new();
    for ((name, _), runs) in settings.iter().zip(&results) {
        rows.push((
            format!("(18) tracing {name}, 1 webhook, {deliveries} deliveries, {ROUNDS} rounds"),
            against(runs, &results[0], "off"),
        ));
    }
    rows.push((
        "(18) spans the live collector received during the rounds".into(),
        format!(
            "{exported} ({:.2} per delivery; the last batch of a round may leave after it is measured)",
            exported as f64 / (ROUNDS * deliveries) as f64
        ),
    ));
    Ok(rows)
}
