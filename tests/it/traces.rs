//! OpenTelemetry traces, exported by the real binary to a real OTLP collector: one trace
//! from the registry's POST to the receiver, across processes, and dropped (counted) when
//! the collector is down.

use std::net::SocketAddr;
use std::time::Duration;

use crate::harness::db::{Backend, TestDb};
use crate::harness::otlp::{Collector, Span};
use crate::harness::process::{Hookline, free_addr};
use crate::harness::receiver::{Receiver, Reply};
use crate::harness::server::REGISTRY_TOKEN;
use crate::store_contract::webhook;

/// The registry's own trace, which the notify request continues.
const REGISTRY_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const REGISTRY_SPAN: &str = "00f067aa0ba902b7";

/// The notify request's span, named as OpenTelemetry names HTTP server spans.
const NOTIFY: &str = "POST /v1/notify";

/// An RPC's span, named as OpenTelemetry names gRPC spans.
const LIST_WEBHOOKS: &str = "hookline.v1.WebhookService/ListWebhooks";

/// Exports every 100 ms instead of every 5 s, so tests wait less.
const QUICK_EXPORT: [(&str, &str); 1] = [("OTEL_BSP_SCHEDULE_DELAY", "100")];

/// `hookline serve` with `roles`, exporting traces to `endpoint` as `service`.
fn traced(db: &TestDb, roles: &str, addr: SocketAddr, endpoint: &str, service: &str) -> Hookline {
    let addr = addr.to_string();
    Hookline::spawn_env(
        &[
            "serve",
            "--roles",
            roles,
            "--db",
            &db.url,
            "--ingest-addr",
            &addr,
            "--api-addr",
            &free_addr().to_string(),
            "--registry-token",
            REGISTRY_TOKEN,
            "--retry-schedule",
            "200ms",
            "--otlp-endpoint",
            endpoint,
            "--trace-service-name",
            service,
        ],
        &QUICK_EXPORT,
    )
}

/// Registers one webhook to `receiver`.
async fn register(db: &TestDb, receiver: &Receiver) {
    let store = db.store().await;
    let (wh, secret) = webhook("acme", &receiver.url());
    store.insert_webhook(&wh, &secret).await.expect("webhook");
    store.close().await;
}

/// POSTs one push of `acme/app:tag`, with the registry's `traceparent` if given.
async fn push(addr: SocketAddr, tag: &str, traceparent: Option<&str>) {
    let body = serde_json::json!({"events": [{
        "id": hookline::ids::new_id("reg"),
        "action": "push",
        "target": {"repository": "acme/app", "tag": tag, "digest": "sha256:ab",
                   "mediaType": "application/vnd.oci.image.manifest.v1+json"},
        "request": {"host": "127.0.0.1:5000"}
    }]});
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let mut request = client
        .post(format!("http://{addr}/v1/notify"))
        .bearer_auth(REGISTRY_TOKEN)
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(traceparent) = traceparent {
        request = request.header("traceparent", traceparent);
    }
    let status = request.send().await.expect(NOTIFY).status();
    assert_eq!(status, 200, "acknowledged");
}

fn named<'a>(spans: &'a [Span], name: &str) -> Vec<&'a Span> {
    spans.iter().filter(|s| s.name == name).collect()
}

fn one<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    let found = named(spans, name);
    assert_eq!(found.len(), 1, "one {name} span: {spans:#?}");
    found[0]
}

/// `(trace id, parent span id)` of a W3C `traceparent`.
fn parse_traceparent(value: &str) -> (String, String) {
    let parts: Vec<&str> = value.split('-').collect();
    assert_eq!(parts.len(), 4, "traceparent `{value}`");
    assert_eq!(parts[0], "00", "version of `{value}`");
    assert_eq!(parts[3], "01", "sampled flag of `{value}`");
    (parts[1].to_owned(), parts[2].to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_is_one_trace_from_the_registrys_post_to_the_receiver() {
    let db = TestDb::new(Backend::Sqlite).await;
    let collector = Collector::start().await;
    let receiver = Receiver::start().await;
    // The first attempt fails and is retried: both attempts belong to the push's trace.
    receiver.script([Reply::status(503)]);
    register(&db, &receiver).await;
    let addr = free_addr();
    let server = traced(
        &db,
        "ingest,dispatcher",
        addr,
        &collector.endpoint(),
        "hookline-test",
    );
    server.wait_healthy(addr).await;

    let registry = format!("00-{REGISTRY_TRACE}-{REGISTRY_SPAN}-01");
    push(addr, "1.0", Some(&registry)).await;
    let requests = receiver.wait_for(2, Duration::from_secs(20)).await;
    let spans = collector
        .wait_until("notify, commit and two attempts", |spans| {
            named(spans, NOTIFY).len() == 1
                && named(spans, "commit").len() == 1
                && named(spans, "attempt").len() == 2
        })
        .await;

    let notify = one(&spans, NOTIFY);
    assert_eq!(
        notify.trace_id, REGISTRY_TRACE,
        "the registry's trace is continued"
    );
    assert_eq!(notify.parent_span_id, REGISTRY_SPAN);
    assert_eq!(notify.kind, 2, "a server span");
    assert_eq!(notify.service, "hookline-test");
    assert_eq!(notify.attr("hookline.registry"), "default");
    assert_eq!(notify.attr("hookline.events.accepted"), "1");
    assert_eq!(notify.attr("hookline.events.rejected"), "0");
    assert_eq!(notify.attr("http.response.status_code"), "200");

    let commit = one(&spans, "commit");
    assert_eq!(commit.trace_id, REGISTRY_TRACE);
    assert_eq!(
        commit.parent_span_id, notify.span_id,
        "the commit is the notify's"
    );
    assert!(notify.start_ns <= commit.start_ns && commit.end_ns <= notify.end_ns);

    let mut attempts = named(&spans, "attempt");
    attempts.sort_by_key(|a| a.attr("hookline.attempt").to_owned());
    for attempt in &attempts {
        assert_eq!(attempt.trace_id, REGISTRY_TRACE, "{attempt:#?}");
        assert_eq!(attempt.parent_span_id, notify.span_id, "{attempt:#?}");
        assert_eq!(attempt.kind, 3, "a client span");
        // After the commit began; the notify request may still be answering when the
        // dispatcher, handed the delivery at the commit, already sends it.
        assert!(
            commit.start_ns <= attempt.start_ns,
            "sent after the commit began"
        );
        assert_eq!(attempt.attr("hookline.event.type"), "image.pushed");
        assert_eq!(attempt.attr("hookline.repository"), "acme/app");
        assert_eq!(attempt.attr("hookline.tag"), "1.0");
        assert!(attempt.attr("hookline.delivery.id").starts_with("dlv_"));
        assert!(attempt.attr("hookline.webhook.id").starts_with("wh_"));
    }
    let (failed, delivered) = (attempts[0], attempts[1]);
    assert_eq!(failed.attr("hookline.attempt"), "1");
    assert_eq!(failed.attr("hookline.outcome"), "retry");
    assert_eq!(failed.attr("http.response.status_code"), "503");
    assert_eq!(failed.attr("error.type"), "http");
    assert_eq!(delivered.attr("hookline.attempt"), "2");
    assert_eq!(delivered.attr("hookline.outcome"), "succeeded");
    assert_eq!(delivered.attr("http.response.status_code"), "200");
    assert_eq!(delivered.attr("error.type"), "");
    assert!(failed.end_ns <= delivered.start_ns);

    // Each request names the trace and its own attempt span, so the receiver continues it.
    for (request, attempt) in requests.iter().zip([failed, delivered]) {
        let (trace, parent) = parse_traceparent(&request.header("traceparent"));
        assert_eq!(trace, REGISTRY_TRACE);
        assert_eq!(parent, attempt.span_id);
    }
    drop(server);
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trace_joins_across_an_ingest_and_a_dispatcher_process() {
    let db = TestDb::new(Backend::Postgres).await;
    let collector = Collector::start().await;
    let receiver = Receiver::start().await;
    register(&db, &receiver).await;
    let addr = free_addr();
    let ingest = traced(&db, "ingest", addr, &collector.endpoint(), "ingest");
    let dispatcher = traced(
        &db,
        "dispatcher",
        free_addr(),
        &collector.endpoint(),
        "dispatcher",
    );
    ingest.wait_healthy(addr).await;

    // No traceparent from the registry: the notify request starts the trace.
    push(addr, "2.0", None).await;
    let requests = receiver.wait_for(1, Duration::from_secs(20)).await;
    let spans = collector
        .wait_until("the notify and its attempt", |spans| {
            named(spans, NOTIFY).len() == 1 && named(spans, "attempt").len() == 1
        })
        .await;
    let notify = one(&spans, NOTIFY);
    let attempt = one(&spans, "attempt");
    assert_eq!(notify.service, "ingest");
    assert_eq!(notify.parent_span_id, "", "a root span");
    assert_eq!(attempt.service, "dispatcher", "{}", dispatcher.log());
    assert_eq!(
        attempt.trace_id, notify.trace_id,
        "the dispatcher continues the trace"
    );
    assert_eq!(attempt.parent_span_id, notify.span_id);
    let (trace, parent) = parse_traceparent(&requests[0].header("traceparent"));
    assert_eq!(
        (trace.as_str(), parent.as_str()),
        (notify.trace_id.as_str(), attempt.span_id.as_str())
    );
    drop((ingest, dispatcher));
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_traces_its_calls() {
    let db = TestDb::new(Backend::Sqlite).await;
    let collector = Collector::start().await;
    let api = free_addr();
    let server = Hookline::spawn_env(
        &[
            "serve",
            "--roles",
            "api",
            "--db",
            &db.url,
            "--api-addr",
            &api.to_string(),
            "--otlp-endpoint",
            &collector.endpoint(),
        ],
        &QUICK_EXPORT,
    );
    let url = format!("http://{api}");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut client = loop {
        match tonic::transport::Endpoint::from_shared(url.clone())
            .expect("endpoint")
            .connect()
            .await
        {
            Ok(channel) => {
                break hookline::api::proto::webhook_service_client::WebhookServiceClient::new(
                    channel,
                );
            }
            Err(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(error) => panic!("api never came up: {error}\n{}", server.log()),
        }
    };
    // Without a token the call is refused, and still traced.
    let refused = client
        .list_webhooks(hookline::api::proto::ListWebhooksRequest::default())
        .await;
    assert_eq!(
        refused.expect_err("no token").code(),
        tonic::Code::Unauthenticated
    );
    let spans = collector
        .wait_until("the ListWebhooks call", |spans| {
            !named(spans, LIST_WEBHOOKS).is_empty()
        })
        .await;
    let call = named(&spans, LIST_WEBHOOKS)[0];
    assert_eq!(call.attr("rpc.system"), "grpc");
    assert_eq!(call.attr("rpc.service"), "hookline.v1.WebhookService");
    assert_eq!(call.attr("rpc.method"), "ListWebhooks");
    assert_eq!(call.service, "hookline", "the default service name");
    drop(server);
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_collector_down_deliveries_go_on_and_dropped_spans_are_counted() {
    let db = TestDb::new(Backend::Sqlite).await;
    let receiver = Receiver::start().await;
    register(&db, &receiver).await;
    let addr = free_addr();
    // Nothing listens there.
    let down = format!("http://{}", free_addr());
    let server = traced(&db, "ingest,dispatcher", addr, &down, "hookline");
    server.wait_healthy(addr).await;
    for i in 0..20 {
        push(addr, &format!("3.{i}"), None).await;
    }
    let requests = receiver.wait_for(20, Duration::from_secs(20)).await;
    assert!(
        requests.iter().all(|r| !r.header("traceparent").is_empty()),
        "deliveries still carry their trace"
    );
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let metrics = client
            .get(format!("http://{addr}/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics body");
        let dropped: f64 = metrics
            .lines()
            .filter(|l| {
                l.starts_with("hookline_trace_spans_dropped_total{reason=\"export_failed\"}")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        if dropped > 0.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no dropped spans counted\n{metrics}\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        server.log().contains("the collector did not take spans"),
        "{}",
        server.log()
    );
    drop(server);
    db.finish().await;
}
