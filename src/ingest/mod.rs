//! Ingest: the registry's side of hookline, an axum HTTP server.
//!
//! `POST /v1/notify` authenticates the registry, checks the media type and size, parses
//! the envelope (`envelope`), commits every usable event in one transaction, wakes the
//! dispatchers, and only then answers 2xx. Also serves `GET /healthz`, `GET /readyz` and
//! `GET /metrics`. It never matches webhooks or sends anything: that is `dispatch`.

mod auth;
mod committer;
pub mod envelope;
mod error;
mod refusals;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Extension;
use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::serve::IncomingStream;
use tokio::net::TcpListener;
use tokio_rustls::rustls::ServerConfig;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use auth::RegistryAuth;
pub use error::IngestError;

use crate::config::IngestConfig;
use crate::store::{Store, now_ms};
use crate::telemetry::traces;

/// Media types a distribution registry sends envelopes with.
const ENVELOPE_MEDIA_TYPES: &[&str] = &[
    "application/vnd.docker.distribution.events.v1+json",
    "application/vnd.docker.distribution.events.v2+json",
    "application/json",
];

/// Shared state of the ingest handlers.
#[derive(Clone)]
pub struct IngestState {
    store: Store,
    committer: committer::Committer,
    auth: Arc<RegistryAuth>,
    /// Requests per registry source: generous, since a refused registry retries.
    limiter: Arc<crate::ratelimit::Limiter>,
    /// 401s and 429s, counted and logged as summaries (a refused client repeats itself).
    refusals: Arc<refusals::Refusals>,
    max_body_bytes: usize,
    max_events: usize,
    commit_timeout: std::time::Duration,
}

impl IngestState {
    /// State for the handlers from the store and the ingest settings.
    /// `handoff` reaches this process's dispatcher, if it runs one.
    pub fn new(store: Store, config: &IngestConfig, handoff: crate::dispatch::Handoff) -> Self {
        IngestState {
            committer: committer::Committer::start(store.clone(), handoff),
            store,
            auth: Arc::new(RegistryAuth::new(config.registry_token.clone())),
            limiter: Arc::new(crate::ratelimit::Limiter::new(config.rate_limit)),
            refusals: refusals::Refusals::start(),
            max_body_bytes: config.max_body_bytes,
            max_events: config.max_events_per_envelope,
            commit_timeout: config.commit_timeout,
        }
    }
}

/// The ingest HTTP routes.
pub fn router(state: IngestState) -> Router {
    Router::new()
        .route("/v1/notify", post(notify))
        .with_state(state.clone())
        .merge(crate::admin::router(state.store))
}

/// Serves ingest on `listener` until `shutdown` fires; in-flight requests finish first,
/// so nothing is acknowledged that was not committed. With `tls`, HTTPS only.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    state: IngestState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    // The peer address names the source of refused (401) requests in the log.
    let router = router(state).into_make_service_with_connect_info::<PeerAddr>();
    match tls {
        None => {
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await
        }
        Some(tls) => {
            let listener = crate::tls::TlsListener::new(listener, tls, shutdown.clone())?;
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await
        }
    }
}

/// The client's address, for either listener (axum's own impl covers plain TCP only, and
/// the orphan rule wants a local type for the TLS one).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

impl Connected<IncomingStream<'_, TcpListener>> for PeerAddr {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        PeerAddr(*stream.remote_addr())
    }
}

impl Connected<IncomingStream<'_, crate::tls::TlsListener>> for PeerAddr {
    fn connect_info(stream: IncomingStream<'_, crate::tls::TlsListener>) -> Self {
        PeerAddr(*stream.remote_addr())
    }
}

/// The answer to an accepted envelope.
#[derive(serde::Serialize)]
struct NotifyResponse {
    /// Events stored now.
    accepted: usize,
    /// Events already stored earlier (a re-sent envelope).
    duplicates: usize,
    /// Events that could not be used, with reasons.
    rejected: Vec<envelope::Rejected>,
}

/// The notify request, as a span of the trace its events' deliveries join (a registry's
/// own `traceparent` is continued).
async fn notify(
    state: State<IngestState>,
    peer: Option<Extension<ConnectInfo<PeerAddr>>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let span = tracing::trace_span!(
        target: traces::TARGET,
        "notify",
        otel.name = "POST /v1/notify",
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = "POST",
        http.route = "/v1/notify",
        http.response.status_code = tracing::field::Empty,
        hookline.registry = tracing::field::Empty,
        hookline.events.accepted = tracing::field::Empty,
        hookline.events.duplicate = tracing::field::Empty,
        hookline.events.rejected = tracing::field::Empty,
    );
    traces::continue_from_headers(&span, &headers);
    let response = store_envelope(state, peer, headers, body, &span)
        .instrument(span.clone())
        .await
        .unwrap_or_else(IntoResponse::into_response);
    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    response
}

async fn store_envelope(
    State(state): State<IngestState>,
    peer: Option<Extension<ConnectInfo<PeerAddr>>>,
    headers: HeaderMap,
    body: Body,
    span: &tracing::Span,
) -> Result<Response, IngestError> {
    let started = Instant::now();
    // Cheap checks first: an unauthenticated caller cannot make us read a body.
    let source = match state.auth.authenticate(&headers, &state.store).await {
        Ok(source) => source,
        Err(error @ IngestError::Unauthorized(_)) => {
            let peer = peer.map_or_else(|| "unknown".to_owned(), |p| p.0.0.0.ip().to_string());
            state
                .refusals
                .record(refusals::Refusal::Unauthenticated, &peer);
            return Err(error);
        }
        Err(error) => return Err(error),
    };
    state.limiter.check(&source).map_err(|limited| {
        state
            .refusals
            .record(refusals::Refusal::RateLimited, &source);
        IngestError::RateLimited(limited)
    })?;
    check_media_type(&headers)?;
    let body = read_body(body, &headers, state.max_body_bytes).await?;
    span.record("hookline.registry", source.as_str());
    let mut parsed = envelope::parse(&body, &source, now_ms(), state.max_events, || {
        crate::ids::new_id("evt")
    })?;
    span.record("hookline.events.rejected", parsed.rejected.len());
    // Each event carries the trace on to whichever dispatcher delivers it.
    if let Some((parent, trace_state)) = traces::context_of(span) {
        for event in &mut parsed.events {
            event.trace_parent = Some(parent.clone());
            event.trace_state.clone_from(&trace_state);
        }
    }
    for rejected in &parsed.rejected {
        tracing::warn!(
            source = %source,
            index = rejected.index,
            registry_event_id = rejected.id.as_deref().unwrap_or(""),
            reason = %rejected.reason,
            "event rejected"
        );
    }
    metrics::counter!("hookline_events_rejected_total").increment(parsed.rejected.len() as u64);
    let inserted = if parsed.events.is_empty() {
        Default::default()
    } else {
        // A commit that cannot finish in time answers 503 and the registry retries. If it
        // did commit after all, the retry is deduplicated: still stored exactly once.
        let commit = tracing::trace_span!(
            target: traces::TARGET,
            "commit",
            hookline.events = parsed.events.len(),
        );
        let committed = state.committer.commit(parsed.events).instrument(commit);
        tokio::time::timeout(state.commit_timeout, committed)
            .await
            .map_err(|_| {
                tracing::warn!(source = %source, "commit timed out; answering 503 (a slow step logs what the write waits for)");
                IngestError::Unavailable
            })??
    };
    span.record("hookline.events.accepted", inserted.inserted);
    span.record("hookline.events.duplicate", inserted.duplicates);
    metrics::counter!("hookline_events_received_total").increment(inserted.inserted as u64);
    metrics::counter!("hookline_events_duplicate_total").increment(inserted.duplicates as u64);
    metrics::histogram!("hookline_ingest_seconds").record(started.elapsed().as_secs_f64());
    tracing::debug!(source = %source, accepted = inserted.inserted, duplicates = inserted.duplicates, "envelope stored");
    Ok(Json(NotifyResponse {
        accepted: inserted.inserted,
        duplicates: inserted.duplicates,
        rejected: parsed.rejected,
    })
    .into_response())
}

/// Reads the body, refusing (and reading no further) past `limit` bytes.
async fn read_body(body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes, IngestError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(IngestError::TooLarge(limit));
    }
    axum::body::to_bytes(body, limit).await.map_err(|error| {
        let inner = error.into_inner();
        if inner
            .downcast_ref::<http_body_util::LengthLimitError>()
            .is_some()
        {
            IngestError::TooLarge(limit)
        } else {
            IngestError::BodyRead(inner.to_string())
        }
    })
}

fn check_media_type(headers: &HeaderMap) -> Result<(), IngestError> {
    let value = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if ENVELOPE_MEDIA_TYPES.contains(&essence.as_str()) {
        Ok(())
    } else {
        Err(IngestError::UnsupportedMediaType(value.to_owned()))
    }
}
