//! Recovery: RedeliverDelivery (one delivery again) and ReplayWebhook (a window of a
//! webhook's events again, after its receiver's outage).
//!
//! Both refuse a disabled webhook, and neither sends anything itself: they re-queue rows
//! in the store (which never re-queues a delivery whose lease is live) and the dispatcher
//! sends them. A replay is idempotent by its request id and resumes by page token.

use tonic::{Request, Status};

use super::listing::{decode_token, encode_token};
use super::{DeliveryApi, delivery_not_found};
use crate::api::convert::{delivery_to_proto, timestamp, unix_ms};
use crate::api::error::{Violations, webhook_disabled};
use crate::api::proto;
use crate::dispatch::matcher::CompiledWebhook;
use crate::dispatch::ordering_key;
use crate::ids::new_id;
use crate::store::{NewDelivery, PruneCursor, Redelivery, ReplayRequest, Webhook, now_ms};

/// Longest client request id of a replay.
const MAX_REQUEST_ID: usize = 64;

/// FAILED_PRECONDITION for sending through a disabled webhook.
fn disabled(webhook: &Webhook) -> Status {
    let then = format!(
        "enable it first (`hookline webhooks update {} --enable`)",
        webhook.id
    );
    webhook_disabled(webhook, &then)
}

/// The replay window `[since, until)` in Unix ms; `until` defaults to `now`.
fn replay_window(r: &proto::ReplayWebhookRequest, now: i64, v: &mut Violations) -> (i64, i64) {
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
    (since, until)
}

/// The client's request id, or a new one when it sent none.
fn request_id(given: &str, v: &mut Violations) -> String {
    if given.is_empty() {
        return new_id("rpl");
    }
    if given.len() > MAX_REQUEST_ID
        || !given
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
    {
        v.add(
            "request_id",
            format!("1 to {MAX_REQUEST_ID} of letters, digits, `.`, `_`, `:`, `-`"),
        );
    }
    given.to_owned()
}

impl DeliveryApi {
    /// RedeliverDelivery: the delivery due now with a fresh retry schedule, and when its
    /// webhook's open circuit lets it out, if that is later.
    pub(super) async fn redeliver(
        &self,
        request: &Request<proto::RedeliverDeliveryRequest>,
    ) -> Result<proto::RedeliverDeliveryResponse, Status> {
        let caller = &self.gate.caller(request).await?;
        let id = &request.get_ref().id;
        let view = self.visible_delivery(caller, id).await?;
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
        Ok(proto::RedeliverDeliveryResponse {
            result: result as i32,
            delivery: Some(delivery_to_proto(&after)),
            held_until: held_until.map(timestamp),
        })
    }

    /// ReplayWebhook: queues the webhook's events of the window again, at most
    /// `max_replay` per call, with a token to resume from.
    pub(super) async fn replay(
        &self,
        request: &Request<proto::ReplayWebhookRequest>,
    ) -> Result<proto::ReplayWebhookResponse, Status> {
        let caller = &self.gate.caller(request).await?;
        let r = request.get_ref();
        let mut v = Violations::default();
        let now = now_ms();
        let (since, until) = replay_window(r, now, &mut v);
        let after =
            decode_token("page_token", &r.page_token, 'r', 2, &mut v).map(|p| PruneCursor {
                received_at: p[0],
                seq: p[1],
            });
        let request_id = request_id(&r.request_id, &mut v);
        v.check()?;
        let webhook = self
            .gate
            .webhook(caller, "webhook_id", &r.webhook_id)
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
        Ok(proto::ReplayWebhookResponse {
            queued: outcome.queued,
            next_page_token: outcome
                .next
                .map(|c| encode_token('r', &[c.received_at, c.seq]))
                .unwrap_or_default(),
            repeated: outcome.repeated,
            request_id,
        })
    }
}
