//! `hookline.v1.DeliveryService`: the delivery log, redelivery, replay and the live tail.
//!
//! Same shape and rules as `WebhookService`: every call goes through the [`Gate`]
//! (authentication, rate), validates its input into [`Violations`], and answers NOT_FOUND
//! for anything outside the caller's namespace exactly as for an id that does not exist.
//! Listings page by keyset (the seq of the last row), so a page token stays correct
//! while new rows are written; a repository glob is matched after a bounded scan.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use globset::GlobSet;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::Stream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use super::auth::Caller;
use super::convert::{
    attempt_to_proto, delivery_to_proto, event_to_proto, event_type_from_proto, status_to_proto,
    unix_ms,
};
use super::error::Violations;
use super::gate::Gate;
use super::proto::{self, delivery_service_server::DeliveryService};
use super::stats;
use super::validate;
use crate::config::ApiConfig;
use crate::dispatch::matcher::{CompiledWebhook, repository_glob};
use crate::dispatch::ordering_key;
use crate::ids::new_id;
use crate::store::{
    AttemptView, DeliveryQuery, EventQuery, LogFilter, NewDelivery, PruneCursor, Redelivery,
    ReplayRequest, StatusFilter, StoreError, now_ms,
};

/// Attempts shown with a delivery (the most recent ones).
const MAX_ATTEMPTS_SHOWN: i64 = 100;
/// Rows a listing with a repository glob reads at most per call before answering with
/// what it found and a token to go on.
const SCAN_BUDGET: usize = 5000;
/// Attempts waiting for one live-tail client: past this the client reads too slowly and
/// its tail is ended.
pub(crate) const WATCH_BUFFER: usize = 1024;
/// Longest client request id of a replay.
const MAX_REQUEST_ID: usize = 64;

/// The service implementation.
pub(crate) struct DeliveryApi {
    gate: Arc<Gate>,
    limits: ApiConfig,
    /// Live tails being served, bounded by `limits.max_watchers`.
    watchers: Arc<AtomicUsize>,
    /// Ends every live tail when the server stops (they would hold its shutdown forever).
    shutdown: CancellationToken,
}

impl DeliveryApi {
    pub(crate) fn new(gate: Arc<Gate>, limits: ApiConfig, shutdown: CancellationToken) -> Self {
        DeliveryApi {
            gate,
            limits,
            watchers: Arc::new(AtomicUsize::new(0)),
            shutdown,
        }
    }
}

fn event_not_found() -> Status {
    Status::not_found("event not found")
}

fn delivery_not_found() -> Status {
    Status::not_found("delivery not found")
}

/// An opaque page token: a kind letter and the keyset position, base64url.
fn encode_token(kind: char, parts: &[i64]) -> String {
    let text: Vec<String> = parts.iter().map(i64::to_string).collect();
    URL_SAFE_NO_PAD.encode(format!("{kind}:{}", text.join(":")))
}

fn decode_token(
    field: &str,
    token: &str,
    kind: char,
    parts: usize,
    v: &mut Violations,
) -> Option<Vec<i64>> {
    if token.is_empty() {
        return None;
    }
    let decoded = URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| {
            let rest = text.strip_prefix(kind)?.strip_prefix(':')?;
            let numbers: Option<Vec<i64>> = rest.split(':').map(|p| p.parse().ok()).collect();
            numbers.filter(|n| n.len() == parts)
        });
    if decoded.is_none() {
        v.add(field, "not a token from a previous response of this call");
    }
    decoded
}

/// Event type filters as stored names, each once; only the first unknown value is
/// reported (a request repeating one thousands of times costs no more than naming it once).
fn event_types(field: &str, values: &[i32], v: &mut Violations) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for (i, value) in values.iter().enumerate() {
        match event_type_from_proto(*value) {
            Some(kind) if names.iter().any(|n| n == kind.as_str()) => {}
            Some(kind) => names.push(kind.as_str().to_owned()),
            None => {
                v.add(
                    format!("{field}[{i}]"),
                    format!("unknown event type {value}"),
                );
                break;
            }
        }
    }
    names
}

/// A repository glob filter: the compiled glob and its literal prefix.
fn repository(value: &str, v: &mut Violations) -> Option<(GlobSet, String)> {
    if value.is_empty() {
        return None;
    }
    if value.len() > validate::MAX_GLOB {
        v.add(
            "repository",
            format!("at most {} characters", validate::MAX_GLOB),
        );
        return None;
    }
    match repository_glob(value) {
        Ok(glob) => Some(glob),
        Err(error) => {
            v.add("repository", error.to_string());
            None
        }
    }
}

/// A `[since, until)` window in Unix ms.
fn window(
    since: Option<&prost_types::Timestamp>,
    until: Option<&prost_types::Timestamp>,
    v: &mut Violations,
) -> (Option<i64>, Option<i64>) {
    let since = since.map(unix_ms);
    let until = until.map(unix_ms);
    if let (Some(s), Some(u)) = (since, until)
        && u <= s
    {
        v.add("until", "must be later than `since`");
    }
    (since, until)
}

/// The filters both listings share, from their request fields: the store's filter, and
/// the compiled repository glob, matched after the SQL narrowed by its literal prefix.
fn log_filter(
    types: &[i32],
    repository_glob: &str,
    since: Option<&prost_types::Timestamp>,
    until: Option<&prost_types::Timestamp>,
    v: &mut Violations,
) -> (LogFilter, Option<GlobSet>) {
    let types = event_types("event_types", types, v);
    let glob = repository(repository_glob, v);
    let (since, until) = window(since, until, v);
    let (glob, repository_prefix) = match glob {
        Some((glob, prefix)) => (Some(glob), Some(prefix)),
        None => (None, None),
    };
    let filter = LogFilter {
        types,
        repository_prefix,
        since,
        until,
    };
    (filter, glob)
}

/// Reads rows newest first through `fetch(before, limit)` until a page of `page_size`
/// rows that pass `keep` is full, or [`SCAN_BUDGET`] rows were read. Returns the page and
/// the seq to continue before, if there may be more.
async fn keyset_page<T, F, Fut>(
    page_size: i64,
    mut before: Option<i64>,
    filtered: bool,
    keep: impl Fn(&T) -> bool,
    seq: impl Fn(&T) -> i64,
    mut fetch: F,
) -> Result<(Vec<T>, Option<i64>), StoreError>
where
    F: FnMut(Option<i64>, i64) -> Fut,
    Fut: Future<Output = Result<Vec<T>, StoreError>>,
{
    let want = page_size as usize + 1;
    let chunk = if filtered { (want * 4).max(200) } else { want };
    let mut page = Vec::with_capacity(want);
    let mut scanned = 0;
    loop {
        let rows = fetch(before, chunk as i64).await?;
        let full = rows.len() == chunk;
        scanned += rows.len();
        for row in rows {
            before = Some(seq(&row));
            if keep(&row) {
                page.push(row);
                if page.len() == want {
                    page.pop();
                    let next = page.last().map(&seq);
                    return Ok((page, next));
                }
            }
        }
        if !full {
            return Ok((page, None));
        }
        if scanned >= SCAN_BUDGET {
            return Ok((page, before));
        }
    }
}

#[tonic::async_trait]
impl DeliveryService for DeliveryApi {
    async fn list_events(
        &self,
        request: Request<proto::ListEventsRequest>,
    ) -> Result<Response<proto::ListEventsResponse>, Status> {
        let caller = self.gate.caller(&request).await?;
        let r = request.into_inner();
        let mut v = Violations::default();
        let page_size = validate::page_size(r.page_size, self.limits.max_page_size, &mut v);
        let before = decode_token("page_token", &r.page_token, 'e', 1, &mut v).map(|p| p[0]);
        let (filter, glob) = log_filter(
            &r.event_types,
            &r.repository,
            r.since.as_ref(),
            r.until.as_ref(),
            &mut v,
        );
        v.check()?;
        let base = EventQuery {
            within: caller.scope().map(str::to_owned),
            filter,
            ..EventQuery::default()
        };
        let store = &self.gate.store;
        let (page, next) = keyset_page(
            page_size,
            before,
            glob.is_some(),
            |e: &crate::store::EventRecord| glob.as_ref().is_none_or(|g| g.is_match(&e.repository)),
            |e| e.seq,
            |before_seq, limit| {
                let query = EventQuery {
                    before_seq,
                    limit,
                    ..base.clone()
                };
                async move { store.list_events(&query).await }
            },
        )
        .await?;
        Ok(Response::new(proto::ListEventsResponse {
            events: page.iter().map(event_to_proto).collect(),
            next_page_token: next.map(|s| encode_token('e', &[s])).unwrap_or_default(),
        }))
    }

    async fn get_event(
        &self,
        request: Request<proto::GetEventRequest>,
    ) -> Result<Response<proto::GetEventResponse>, Status> {
        let caller = self.gate.caller(&request).await?;
        let id = &request.get_ref().id;
        if id.is_empty() {
            return Err(Violations::one("id", "required"));
        }
        let store = &self.gate.store;
        let event = match store.get_event(id).await? {
            Some(event) if caller.sees(&event.repository) => event,
            _ => return Err(event_not_found()),
        };
        let deliveries = store
            .deliveries_for_event(id)
            .await?
            .into_iter()
            .filter(|d| caller.sees(&d.namespace))
            .map(|d| {
                delivery_to_proto(&crate::store::DeliveryView {
                    delivery: d,
                    event_type: Some(event.kind.clone()),
                    repository: Some(event.repository.clone()),
                    tag: event.tag.clone(),
                    digest: event.digest.clone(),
                })
            })
            .collect();
        Ok(Response::new(proto::GetEventResponse {
            event: Some(event_to_proto(&event)),
            deliveries,
        }))
    }

    async fn list_deliveries(
        &self,
        request: Request<proto::ListDeliveriesRequest>,
    ) -> Result<Response<proto::ListDeliveriesResponse>, Status> {
        let caller = self.gate.caller(&request).await?;
        let r = request.into_inner();
        let mut v = Violations::default();
        let page_size = validate::page_size(r.page_size, self.limits.max_page_size, &mut v);
        let before = decode_token("page_token", &r.page_token, 'd', 1, &mut v).map(|p| p[0]);
        let (filter, glob) = log_filter(
            &r.event_types,
            &r.repository,
            r.since.as_ref(),
            r.until.as_ref(),
            &mut v,
        );
        let mut statuses = Vec::new();
        for (i, value) in r.statuses.iter().enumerate() {
            use proto::DeliveryStatus as S;
            match S::try_from(*value) {
                Ok(S::Pending) => statuses.push(StatusFilter::Pending),
                Ok(S::Retrying) => statuses.push(StatusFilter::Retrying),
                Ok(S::Succeeded) => statuses.push(StatusFilter::Succeeded),
                Ok(S::Failed) => statuses.push(StatusFilter::Failed),
                _ => {
                    v.add(format!("statuses[{i}]"), format!("unknown status {value}"));
                    break;
                }
            }
        }
        // Each once, whatever the request repeats.
        statuses.sort();
        statuses.dedup();
        v.check()?;
        let webhook_id = if r.webhook_id.is_empty() {
            None
        } else {
            Some(
                self.gate
                    .webhook(&caller, "webhook_id", &r.webhook_id)
                    .await?
                    .id,
            )
        };
        let base = DeliveryQuery {
            within: caller.scope().map(str::to_owned),
            webhook_id,
            statuses,
            filter,
            ..DeliveryQuery::default()
        };
        let store = &self.gate.store;
        let (page, next) = keyset_page(
            page_size,
            before,
            glob.is_some(),
            |d: &crate::store::DeliveryView| {
                glob.as_ref()
                    .is_none_or(|g| d.repository.as_deref().is_some_and(|repo| g.is_match(repo)))
            },
            |d| d.delivery.seq,
            |before_seq, limit| {
                let query = DeliveryQuery {
                    before_seq,
                    limit,
                    ..base.clone()
                };
                async move { store.list_deliveries(&query).await }
            },
        )
        .await?;
        Ok(Response::new(proto::ListDeliveriesResponse {
            deliveries: page.iter().map(delivery_to_proto).collect(),
            next_page_token: next.map(|s| encode_token('d', &[s])).unwrap_or_default(),
        }))
    }

    async fn get_delivery(
        &self,
        request: Request<proto::GetDeliveryRequest>,
    ) -> Result<Response<proto::GetDeliveryResponse>, Status> {
        let caller = self.gate.caller(&request).await?;
        let id = &request.get_ref().id;
        let view = self.visible_delivery(&caller, id).await?;
        let store = &self.gate.store;
        let attempts = store.recent_attempts(id, MAX_ATTEMPTS_SHOWN).await?;
        let event = store.get_event(&view.delivery.event_id).await?;
        Ok(Response::new(proto::GetDeliveryResponse {
            delivery: Some(delivery_to_proto(&view)),
            attempts: attempts.iter().map(attempt_to_proto).collect(),
            event: event.as_ref().map(event_to_proto),
        }))
    }

    async fn redeliver_delivery(
        &self,
        request: Request<proto::RedeliverDeliveryRequest>,
    ) -> Result<Response<proto::RedeliverDeliveryResponse>, Status> {
        let caller = self.gate.caller(&request).await?;
        let id = &request.get_ref().id;
        let view = self.visible_delivery(&caller, id).await?;
        let store = &self.gate.store;
        match store.get_webhook(&view.delivery.webhook_id).await? {
            None => {
                return Err(Status::failed_precondition(
                    "the delivery's webhook was deleted; nothing can be sent",
                ));
            }
            Some(webhook) if !webhook.enabled => return Err(disabled(&webhook)),
            Some(_) => {}
        }
        use proto::redeliver_delivery_response::Result as R;
        let result = match store.redeliver(id, now_ms()).await? {
            Redelivery::Queued => R::Queued,
            Redelivery::Expedited => R::Expedited,
            Redelivery::InFlight => R::InFlight,
            Redelivery::NotFound => return Err(delivery_not_found()),
        };
        tracing::info!(delivery_id = %id, result = ?result, token_id = %caller.token_id(), "delivery redelivered");
        let after = store.get_delivery_view(id).await?.unwrap_or(view);
        // "Due now" is not "sent now" while the webhook's circuit holds its deliveries.
        let now = now_ms();
        let held_until = store
            .webhook_health(std::slice::from_ref(&after.delivery.webhook_id))
            .await?
            .into_iter()
            .find(|h| h.circuit.as_deref() == Some("open"))
            .and_then(|h| h.circuit_until)
            .filter(|until| *until > now && result != R::InFlight);
        Ok(Response::new(proto::RedeliverDeliveryResponse {
            result: result as i32,
            delivery: Some(delivery_to_proto(&after)),
            held_until: held_until.map(super::convert::timestamp),
        }))
    }

    async fn replay_webhook(
        &self,
        request: Request<proto::ReplayWebhookRequest>,
    ) -> Result<Response<proto::ReplayWebhookResponse>, Status> {
        let caller = self.gate.caller(&request).await?;
        let r = request.into_inner();
        let mut v = Violations::default();
        let now = now_ms();
        let since = match r.since.as_ref() {
            Some(t) => unix_ms(t),
            None => {
                v.add("since", "required: the start of the window to replay");
                0
            }
        };
        let until = r.until.as_ref().map(unix_ms).unwrap_or(now);
        match (&r.since, &r.until) {
            (Some(_), None) if since >= now => v.add("since", "must be in the past"),
            (Some(_), Some(_)) if until <= since => v.add("until", "must be later than `since`"),
            _ => {}
        }
        let after =
            decode_token("page_token", &r.page_token, 'r', 2, &mut v).map(|p| PruneCursor {
                received_at: p[0],
                seq: p[1],
            });
        let request_id = if r.request_id.is_empty() {
            new_id("rpl")
        } else {
            if r.request_id.len() > MAX_REQUEST_ID
                || !r
                    .request_id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
            {
                v.add(
                    "request_id",
                    format!("1 to {MAX_REQUEST_ID} of letters, digits, `.`, `_`, `:`, `-`"),
                );
            }
            r.request_id.clone()
        };
        v.check()?;
        let webhook = self
            .gate
            .webhook(&caller, "webhook_id", &r.webhook_id)
            .await?;
        if !webhook.enabled {
            return Err(disabled(&webhook));
        }
        let compiled = CompiledWebhook::for_matching(webhook.clone()).map_err(|error| {
            Status::failed_precondition(format!("the webhook's filters do not compile: {error}"))
        })?;
        let plan = move |event: &crate::event::Event| {
            compiled.wants(event).then(|| NewDelivery {
                id: new_id("dlv"),
                event_id: event.id.clone(),
                webhook_id: compiled.webhook.id.clone(),
                namespace: compiled.webhook.namespace.clone(),
                ordering_key: compiled
                    .webhook
                    .ordered
                    .then(|| ordering_key(&compiled.webhook.id, event)),
            })
        };
        let replay = ReplayRequest {
            webhook_id: webhook.id.clone(),
            namespace: webhook.namespace.clone(),
            webhook_created_at: webhook.created_at,
            request_id: request_id.clone(),
            since,
            until,
            failed_only: r.failed_only,
            after,
            limit: i64::from(self.limits.max_replay),
            now,
        };
        let outcome = self.gate.store.replay(&replay, &plan).await?;
        tracing::info!(webhook_id = %webhook.id, queued = outcome.queued, repeated = outcome.repeated, token_id = %caller.token_id(), "webhook replayed");
        Ok(Response::new(proto::ReplayWebhookResponse {
            queued: outcome.queued,
            next_page_token: outcome
                .next
                .map(|c| encode_token('r', &[c.received_at, c.seq]))
                .unwrap_or_default(),
            repeated: outcome.repeated,
            request_id,
        }))
    }

    type WatchDeliveriesStream = Watch;

    async fn watch_deliveries(
        &self,
        request: Request<proto::WatchDeliveriesRequest>,
    ) -> Result<Response<Self::WatchDeliveriesStream>, Status> {
        let caller = self.gate.caller(&request).await?;
        let webhook_id = &request.get_ref().webhook_id;
        let only = if webhook_id.is_empty() {
            None
        } else {
            Some(
                self.gate
                    .webhook(&caller, "webhook_id", webhook_id)
                    .await?
                    .id,
            )
        };
        let slot = WatchSlot::take(&self.watchers, self.limits.max_watchers).ok_or_else(|| {
            Status::resource_exhausted(format!(
                "this server already serves {} live tails (max_watchers); try again later",
                self.limits.max_watchers
            ))
        })?;
        tracing::info!(webhook_id = ?only, token_id = %caller.token_id(), "live tail started");
        let (sender, receiver) = mpsc::channel(WATCH_BUFFER);
        let overflowed = Arc::new(AtomicBool::new(false));
        tokio::spawn(pump(
            self.gate.store.tail().subscribe(),
            sender,
            Watcher {
                caller,
                only,
                overflowed: overflowed.clone(),
                shutdown: self.shutdown.clone(),
                _slot: slot,
            },
        ));
        Ok(Response::new(Watch {
            receiver,
            overflowed,
            ended: false,
        }))
    }

    async fn get_webhook_stats(
        &self,
        request: Request<proto::GetWebhookStatsRequest>,
    ) -> Result<Response<proto::GetWebhookStatsResponse>, Status> {
        let caller = self.gate.caller(&request).await?;
        let r = request.get_ref();
        let mut v = Violations::default();
        let window = stats::window(r.window.as_ref(), r.buckets, &mut v);
        v.check()?;
        let webhook = self
            .gate
            .webhook(&caller, "webhook_id", &r.webhook_id)
            .await?;
        let start = stats::window_start(now_ms(), window);
        let minutes = self.gate.store.webhook_stats(&webhook.id, start).await?;
        Ok(Response::new(stats::fold(&minutes, start, window)))
    }
}

impl DeliveryApi {
    /// The delivery with this id if the caller sees its webhook's namespace.
    async fn visible_delivery(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<crate::store::DeliveryView, Status> {
        if id.is_empty() {
            return Err(Violations::one("id", "required"));
        }
        match self.gate.store.get_delivery_view(id).await? {
            Some(view) if caller.sees(&view.delivery.namespace) => Ok(view),
            _ => Err(delivery_not_found()),
        }
    }
}

/// FAILED_PRECONDITION for sending through a disabled webhook.
fn disabled(webhook: &crate::store::Webhook) -> Status {
    let then = format!(
        "enable it first (`hookline webhooks update {} --enable`)",
        webhook.id
    );
    super::error::webhook_disabled(webhook, &then)
}

/// One of the `max_watchers` live-tail slots, given back when the tail ends.
struct WatchSlot(Arc<AtomicUsize>);

impl WatchSlot {
    fn take(watchers: &Arc<AtomicUsize>, max: usize) -> Option<WatchSlot> {
        watchers
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| {
                metrics::gauge!("hookline_tail_watchers").increment(1.0);
                WatchSlot(watchers.clone())
            })
    }
}

impl Drop for WatchSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
        metrics::gauge!("hookline_tail_watchers").decrement(1.0);
    }
}

/// Moves the attempts a watcher may see from the tail into its bounded buffer. Ends when
/// the client goes away, or when the buffer is full (the client reads too slowly): then
/// `overflowed` tells the stream to end with RESOURCE_EXHAUSTED once drained.
/// What one live tail watches, and how it ends.
struct Watcher {
    caller: Caller,
    only: Option<String>,
    overflowed: Arc<AtomicBool>,
    shutdown: CancellationToken,
    _slot: WatchSlot,
}

async fn pump(
    mut tail: broadcast::Receiver<Arc<AttemptView>>,
    sender: mpsc::Sender<Result<proto::WatchDeliveriesResponse, Status>>,
    watcher: Watcher,
) {
    let Watcher {
        caller,
        only,
        overflowed,
        shutdown,
        _slot,
    } = watcher;
    loop {
        let view = tokio::select! {
            _ = sender.closed() => return,
            _ = shutdown.cancelled() => return,
            received = tail.recv() => match received {
                Ok(view) => view,
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    overflowed.store(true, Ordering::Release);
                    metrics::counter!("hookline_tail_cut_off_total").increment(1);
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        };
        let context = &view.context;
        if !caller.sees(&context.namespace)
            || only.as_deref().is_some_and(|id| id != context.webhook_id)
        {
            continue;
        }
        match sender.try_send(Ok(watch_message(&view))) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                overflowed.store(true, Ordering::Release);
                metrics::counter!("hookline_tail_cut_off_total").increment(1);
                tracing::info!(token_id = %caller.token_id(), "live tail ended: the client reads too slowly");
                return;
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
}

fn watch_message(view: &AttemptView) -> proto::WatchDeliveriesResponse {
    let status = match (view.delivery_status.as_str(), view.attempt.next_attempt_at) {
        ("pending", Some(_)) => "retrying",
        (status, _) => status,
    };
    proto::WatchDeliveriesResponse {
        attempt: Some(attempt_to_proto(&view.attempt)),
        delivery_id: view.attempt.delivery_id.clone(),
        webhook_id: view.context.webhook_id.clone(),
        event_id: view.context.event_id.clone(),
        event_type: view.context.event_type.clone().unwrap_or_default(),
        repository: view.context.repository.clone().unwrap_or_default(),
        tag: view.context.tag.clone().unwrap_or_default(),
        delivery_status: status_to_proto(status) as i32,
    }
}

/// The live tail's response stream: what the pump buffered, then, if the client fell
/// behind, one RESOURCE_EXHAUSTED.
pub(crate) struct Watch {
    receiver: mpsc::Receiver<Result<proto::WatchDeliveriesResponse, Status>>,
    overflowed: Arc<AtomicBool>,
    ended: bool,
}

impl Stream for Watch {
    type Item = Result<proto::WatchDeliveriesResponse, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match self.receiver.poll_recv(cx) {
            Poll::Ready(Some(item)) => Poll::Ready(Some(item)),
            Poll::Ready(None) => {
                self.ended = true;
                if self.overflowed.load(Ordering::Acquire) {
                    Poll::Ready(Some(Err(Status::resource_exhausted(format!(
                        "the live tail was ended: this client read too slowly (more than {WATCH_BUFFER} attempts waited for it); \
                         reconnect, and list deliveries for what was missed"
                    )))))
                } else {
                    Poll::Ready(None)
                }
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_reject_garbage() {
        let mut v = Violations::default();
        let token = encode_token('r', &[1_700_000_000_000, 42]);
        assert_eq!(
            decode_token("page_token", &token, 'r', 2, &mut v),
            Some(vec![1_700_000_000_000, 42])
        );
        assert!(v.check().is_ok());
        for bad in ["%%%", &encode_token('e', &[1]), &encode_token('r', &[1])] {
            let mut v = Violations::default();
            assert_eq!(decode_token("page_token", bad, 'r', 2, &mut v), None);
            assert!(v.check().is_err(), "{bad}");
        }
    }

    #[test]
    fn watch_slots_are_bounded_and_given_back() {
        let watchers = Arc::new(AtomicUsize::new(0));
        let a = WatchSlot::take(&watchers, 2).expect("first");
        let _b = WatchSlot::take(&watchers, 2).expect("second");
        assert!(WatchSlot::take(&watchers, 2).is_none());
        drop(a);
        assert!(WatchSlot::take(&watchers, 2).is_some());
    }
}
