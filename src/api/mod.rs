//! The api role: hookline's public gRPC API (`proto/hookline/v1`), with gRPC server
//! reflection (v1) and `grpc.health.v1` health beside it.
//!
//! `service.rs` implements `WebhookService`; `auth.rs` turns a bearer token into a
//! [`Caller`](auth::Caller) confined to a namespace; `validate.rs` holds every input
//! rule; `convert.rs` maps proto messages to store types; `error.rs` is the one place
//! where errors become `Status`. Everything goes through `store`; the dispatcher notices
//! webhook changes by the store's revision counter, and test pings by its wake signal.

pub(crate) mod auth;
pub(crate) mod convert;
pub(crate) mod deliveries;
pub(crate) mod error;
mod gate;
pub mod proto;
pub(crate) mod service;
mod stats;
mod validate;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_rustls::rustls::ServerConfig;
use tokio_util::sync::CancellationToken;

use crate::config::ApiConfig;
use crate::dispatch::ssrf::Guard;
use crate::store::Store;
use proto::delivery_service_server::DeliveryServiceServer;
use proto::webhook_service_server::WebhookServiceServer;
/// Longest a call may take before it is cancelled with DEADLINE_EXCEEDED; every RPC is a
/// few short database calls, so only a stuck database gets anywhere near it.
const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The service instances gRPC serves, handed to whoever builds the HTTP routes beside it
/// (`server.rs` builds the console on them), so every caller goes through one set of rules.
pub struct Services {
    pub(crate) webhooks: Arc<service::WebhookApi>,
    pub(crate) deliveries: Arc<deliveries::DeliveryApi>,
}

/// Serves the API on `listener` until `shutdown` fires, then stops accepting and lets
/// in-flight calls finish. `limits` bound every input; `guard` vets webhook URLs; `http`
/// builds the HTTP/1.1 routes served beside gRPC (the console) on the API's services.
/// With `tls`, gRPC and those routes are served over TLS only (ALPN h2 and http/1.1).
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    store: Store,
    limits: ApiConfig,
    guard: Guard,
    http: impl FnOnce(Services) -> axum::Router,
    shutdown: CancellationToken,
) -> Result<(), std::io::Error> {
    // A request larger than this is refused by tonic (OUT_OF_RANGE) before it is decoded.
    let max_message_bytes = limits.max_message_bytes;
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<WebhookServiceServer<service::WebhookApi>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(std::io::Error::other)?;
    health
        .set_serving::<DeliveryServiceServer<deliveries::DeliveryApi>>()
        .await;
    let gate = Arc::new(gate::Gate::new(
        store,
        crate::ratelimit::Limiter::new(limits.rate_limit),
    ));
    // One instance of each service, shared by gRPC and the web console: one set of rules.
    let webhook_api = Arc::new(service::WebhookApi::new(
        gate.clone(),
        limits.clone(),
        guard,
    ));
    let delivery_api = Arc::new(deliveries::DeliveryApi::new(gate, limits, shutdown.clone()));
    let webhooks = WebhookServiceServer::from_arc(webhook_api.clone())
        .max_decoding_message_size(max_message_bytes);
    let deliveries = DeliveryServiceServer::from_arc(delivery_api.clone())
        .max_decoding_message_size(max_message_bytes);
    let grpc = tonic::service::Routes::builder()
        .add_service(webhooks)
        .add_service(deliveries)
        .add_service(health_service)
        .add_service(reflection)
        .clone()
        .routes();
    // The console answers HTTP/1.1 (and h2) under /console/ on the same port; every other
    // path is gRPC's.
    let console = http(Services {
        webhooks: webhook_api,
        deliveries: delivery_api,
    });
    // Over our own TLS every request is HTTPS: say so the way a TLS-terminating proxy
    // would, so the console's cookies are `Secure` here too (a client's own value is moot).
    let console = if tls.is_some() {
        console.layer(axum::middleware::map_request(
            |mut request: axum::extract::Request| async move {
                request.headers_mut().insert(
                    "x-forwarded-proto",
                    axum::http::HeaderValue::from_static("https"),
                );
                request
            },
        ))
    } else {
        console
    };
    let routes = tonic::service::Routes::from(grpc.into_axum_router().merge(console));
    let server = tonic::transport::Server::builder()
        .accept_http1(true)
        .timeout(CALL_TIMEOUT)
        .trace_fn(call_span)
        .add_routes(routes);
    match tls {
        None => {
            server
                .serve_with_incoming_shutdown(
                    tonic::transport::server::TcpIncoming::from(listener),
                    shutdown.cancelled_owned(),
                )
                .await
        }
        Some(tls) => {
            let incoming = crate::tls::TlsListener::new(listener, tls, shutdown.clone())?;
            server
                .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
                .await
        }
    }
    .map_err(std::io::Error::other)
}

/// The span of one call (an RPC, or a console page: they share the listener), continuing
/// the caller's trace when it sends a `traceparent`.
fn call_span(request: &http::Request<()>) -> tracing::Span {
    let path = request.uri().path();
    let grpc = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"application/grpc"));
    let span = match path.strip_prefix('/').and_then(|p| p.split_once('/')) {
        Some((service, method)) if grpc => tracing::trace_span!(
            target: crate::telemetry::traces::TARGET,
            "rpc",
            otel.name = %path.trim_start_matches('/'),
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.service = service,
            rpc.method = method,
        ),
        _ => tracing::trace_span!(
            target: crate::telemetry::traces::TARGET,
            "http",
            otel.name = %format_args!("{} {}", request.method(), path),
            otel.kind = "server",
            http.request.method = %request.method(),
            url.path = path,
        ),
    };
    crate::telemetry::traces::continue_from_headers(&span, request.headers());
    span
}
