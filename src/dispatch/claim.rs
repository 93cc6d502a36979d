//! The claim loop: what the dispatcher does between deliveries.
//!
//! Each pass ([`Loop::cycle`]) rebuilds the [`Matcher`] when the webhooks revision changed
//! (or a rotated-out secret expired) and publishes it to ingest's hand-off, fans new events
//! out into deliveries ([`plan_deliveries`]: one per matching webhook, with its ordering
//! key), claims due deliveries with a lease up to what the lanes can take, and queues them
//! (`Dispatcher::queue`). It waits for a wake-up, the fallback poll or a freed slot in
//! between, and backs off while the store fails. No delivery runs here.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::handoff::Handoff;
use super::lanes::{self, Job};
use super::matcher::Matcher;
use super::serving::Serving;
use super::{Dispatcher, lock};
use crate::event::Event;
use crate::store::{Claim, ClaimedDelivery, NewDelivery, Only, StoreError, now_ms};

/// How soon the loop looks again while a webhook moving away still has requests in flight.
const DRAIN_CHECK: Duration = Duration::from_millis(100);

/// Most events fanned out per transaction.
const FAN_OUT_BATCH: i64 = 500;

/// The claim loop's own state.
pub(super) struct Loop {
    d: Arc<Dispatcher>,
    owner: String,
    matcher: Arc<Matcher>,
    /// Webhooks revision the matcher was built from.
    revision: Option<i64>,
    /// When the earliest rotated-out secret expires: the matcher must be rebuilt then.
    secrets_expire_at: Option<i64>,
    /// Every enabled webhook's id at `revision` (those the matcher skipped too).
    webhook_ids: Vec<String>,
    /// This dispatcher's share of the webhooks, where several share the database.
    serving: Option<Serving>,
    /// Where ingest in this process takes the matcher from.
    handoff: Handoff,
}

impl Loop {
    /// A loop for `d`, claiming as `owner` the deliveries of the webhooks `serving` gives
    /// it (None: all), publishing its matcher to `handoff`; it loads the webhooks on its
    /// first pass.
    pub(super) fn new(
        d: Arc<Dispatcher>,
        owner: String,
        serving: Option<Serving>,
        handoff: Handoff,
    ) -> Loop {
        Loop {
            d,
            owner,
            matcher: Arc::new(Matcher::default()),
            revision: None,
            secrets_expire_at: None,
            webhook_ids: Vec::new(),
            serving,
            handoff,
        }
    }

    /// Runs passes until `shutdown` fires.
    pub(super) async fn run(&mut self, shutdown: &CancellationToken) {
        let mut waiter = self.d.store.wake().waiter();
        let mut failures = 0u32;
        while !shutdown.is_cancelled() {
            let more = match self.cycle().await {
                Ok(more) => {
                    failures = 0;
                    more
                }
                Err(error) => {
                    failures += 1;
                    tracing::warn!(%error, "dispatcher cycle failed; retrying");
                    false
                }
            };
            if more {
                continue; // a full batch: there is probably more due right now
            }
            let pause = if failures > 0 {
                Duration::from_millis(100 * 2u64.pow(failures.min(6)))
                    .min(self.d.config.poll_interval * 5)
            } else if self.serving.as_ref().is_some_and(|s| s.draining(&self.d)) {
                // A webhook moving away is given up as soon as its last request ends.
                self.d.config.poll_interval.min(DRAIN_CHECK)
            } else {
                self.d.config.poll_interval
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = waiter.wait(pause) => {}
                _ = self.d.slot_freed.notified() => {}
            }
        }
    }

    /// One pass: refresh webhooks, fan out, claim and start deliveries.
    /// Returns true if a full batch was claimed (more work is likely due).
    async fn cycle(&mut self) -> Result<bool, StoreError> {
        let now = now_ms();
        self.refresh_matcher(now, false).await?;
        if let Some(serving) = self.serving.as_mut() {
            let revision = self.revision.unwrap_or_default();
            serving
                .settle_if_due(&self.d, revision, &self.webhook_ids)
                .await?;
        }
        loop {
            let matcher = self.matcher.clone();
            let plan = move |event: &Event| plan_deliveries(&matcher, event);
            let revision = self.revision.unwrap_or_default();
            let report = self
                .d
                .store
                .fan_out(FAN_OUT_BATCH, now, revision, &plan)
                .await?;
            if report.stale {
                self.refresh_matcher(now, false).await?;
                continue;
            }
            if report.events > 0 {
                tracing::debug!(
                    events = report.events,
                    deliveries = report.deliveries,
                    "fanned out"
                );
            }
            if (report.events as i64) < FAN_OUT_BATCH {
                break;
            }
        }
        let (limit, mut skip) = {
            let mut shared = lock(&self.d.shared);
            let (limit, skip) = shared.lanes.claim_plan(Instant::now());
            shared.claim_held_back = limit < lanes::CLAIM_CHUNK || !skip.is_empty();
            (limit, skip)
        };
        if let Some(serving) = &self.serving {
            skip.extend(serving.leaving().cloned());
        }
        if limit == 0 {
            return Ok(false);
        }
        let only = match &self.serving {
            // The row check costs an index probe per candidate row: skipped while this
            // dispatcher serves everything (one dispatcher, the usual case).
            Some(serving) if !serving.serves_all() => Only::Served,
            _ => Only::Any,
        };
        let claim = Claim {
            owner: &self.owner,
            now,
            lease: self.d.config.lease,
            limit: limit as i64,
            skip_webhooks: &skip,
            only,
        };
        let claimed = self.d.store.claim_due(&claim).await?;
        let full = claimed.len() == limit;
        self.admit(claimed).await?;
        Ok(full)
    }

    /// Queues claimed deliveries in their lanes and starts what may start.
    async fn admit(&mut self, claimed: Vec<ClaimedDelivery>) -> Result<(), StoreError> {
        let mut jobs = Vec::with_capacity(claimed.len());
        let mut refreshed = false;
        for delivery in claimed {
            let mut webhook = self.matcher.get(&delivery.webhook_id);
            if webhook.is_none() && !refreshed {
                // Perhaps created after our last refresh (a test ping): look once more,
                // once per batch (a deleted webhook may have many deliveries here).
                self.refresh_matcher(now_ms(), true).await?;
                refreshed = true;
                webhook = self.matcher.get(&delivery.webhook_id);
            }
            match webhook {
                Some(webhook) => jobs.push(Job { webhook, delivery }),
                None => {
                    self.d
                        .give_up_unsent(delivery, "the webhook is disabled or deleted; not sent")
                        .await;
                }
            }
        }
        let refused = self.d.queue(jobs);
        if !refused.is_empty() {
            self.d.store.release(&refused, now_ms()).await?;
        }
        Ok(())
    }

    /// Rebuilds the matcher when webhooks changed or a rotated secret expired.
    async fn refresh_matcher(&mut self, now: i64, force: bool) -> Result<(), StoreError> {
        let revision = self.d.store.webhooks_revision().await?;
        let expired = self.secrets_expire_at.is_some_and(|at| now >= at);
        if !force && !expired && self.revision == Some(revision) {
            return Ok(());
        }
        let webhooks = self.d.store.enabled_webhooks(now).await?;
        self.webhook_ids = webhooks.iter().map(|w| w.webhook.id.clone()).collect();
        self.secrets_expire_at = webhooks
            .iter()
            .flat_map(|w| w.secrets.iter().filter_map(|s| s.expires_at))
            .min();
        self.matcher = Arc::new(Matcher::new(webhooks));
        self.revision = Some(revision);
        self.handoff.publish(revision, self.matcher.clone());
        self.d.notices.destinations(self.matcher.clone());
        tracing::debug!(revision, webhooks = self.matcher.len(), "webhooks loaded");
        Ok(())
    }
}

/// The deliveries an event needs: one per matching webhook.
pub(super) fn plan_deliveries(matcher: &Matcher, event: &Event) -> Vec<NewDelivery> {
    matcher
        .matching(event)
        .into_iter()
        .map(|webhook| NewDelivery {
            id: crate::ids::new_id("dlv"),
            event_id: event.id.clone(),
            webhook_id: webhook.webhook.id.clone(),
            namespace: webhook.webhook.namespace.clone(),
            ordering_key: webhook
                .webhook
                .ordered
                .then(|| ordering_key(&webhook.webhook.id, event)),
        })
        .collect()
}

/// Ordered webhooks deliver one repository:tag's events one at a time, in event order.
pub fn ordering_key(webhook_id: &str, event: &Event) -> String {
    format!(
        "{webhook_id}/{}:{}",
        event.repository,
        event.tag.as_deref().unwrap_or("")
    )
}
