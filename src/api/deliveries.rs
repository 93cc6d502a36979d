//! `hookline.v1.DeliveryService`: the delivery log, redelivery, replay and the live tail.
//!
//! Same shape and rules as `WebhookService`: every call goes through the [`Gate`]
//! (authentication, rate), validates its input into [`Violations`], and answers NOT_FOUND
//! for anything outside the caller's namespace exactly as for an id that does not exist.
//! This file holds the service and the lookups of one event or delivery; the listings
//! are in `listing.rs`, redelivery and replay in `recovery.rs`, the live tail in `tail.rs`
//! (each of those authenticates its own calls through the gate).

mod listing;
mod recovery;
mod tail;

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use super::auth::Caller;
use super::convert::{attempt_to_proto, delivery_to_proto, event_to_proto};
use super::error::Violations;
use super::gate::Gate;
use super::proto::{self, delivery_service_server::DeliveryService};
use super::stats;
use crate::config::ApiConfig;
use crate::store::{DeliveryView, now_ms};

pub(crate) use tail::Watch;

/// Attempts shown with a delivery (the most recent ones).
const MAX_ATTEMPTS_SHOWN: i64 = 100;

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

/// The `id` a call names, or INVALID_ARGUMENT when it is empty.
fn required(id: &str) -> Result<&str, Status> {
    if id.is_empty() {
        return Err(Violations::one("id", "required"));
    }
    Ok(id)
}

#[tonic::async_trait]
impl DeliveryService for DeliveryApi {
    async fn list_events(
        &self,
        request: Request<proto::ListEventsRequest>,
    ) -> Result<Response<proto::ListEventsResponse>, Status> {
        self.events_page(&request).await.map(Response::new)
    }

    async fn get_event(
        &self,
        request: Request<proto::GetEventRequest>,
    ) -> Result<Response<proto::GetEventResponse>, Status> {
        let caller = self.gate.caller(&request).await?;
        let id = required(&request.get_ref().id)?;
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
                delivery_to_proto(&DeliveryView {
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
        self.deliveries_page(&request).await.map(Response::new)
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
        self.redeliver(&request).await.map(Response::new)
    }

    async fn replay_webhook(
        &self,
        request: Request<proto::ReplayWebhookRequest>,
    ) -> Result<Response<proto::ReplayWebhookResponse>, Status> {
        self.replay(&request).await.map(Response::new)
    }

    type WatchDeliveriesStream = Watch;

    async fn watch_deliveries(
        &self,
        request: Request<proto::WatchDeliveriesRequest>,
    ) -> Result<Response<Self::WatchDeliveriesStream>, Status> {
        self.watch(&request).await.map(Response::new)
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
    async fn visible_delivery(&self, caller: &Caller, id: &str) -> Result<DeliveryView, Status> {
        let id = required(id)?;
        match self.gate.store.get_delivery_view(id).await? {
            Some(view) if caller.sees(&view.delivery.namespace) => Ok(view),
            _ => Err(delivery_not_found()),
        }
    }

    /// The id of the webhook a call names in `webhook_id`, if it names one the caller
    /// sees (NOT_FOUND otherwise); `None` when the field is empty (every webhook).
    async fn webhook_filter(&self, caller: &Caller, id: &str) -> Result<Option<String>, Status> {
        if id.is_empty() {
            return Ok(None);
        }
        let webhook = self.gate.webhook(caller, "webhook_id", id).await?;
        Ok(Some(webhook.id))
    }
}
