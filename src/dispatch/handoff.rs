//! Deliveries straight from ingest, when one process runs both roles.
//!
//! Without this, a stored event waits for a wake-up, a fan-out transaction and a claim
//! transaction before its first request. With it, ingest asks for a [`Ticket`] before its
//! transaction: the dispatcher's current matcher (with the webhooks revision it was built
//! from) and what its lanes can take now (as a claim would ask). The transaction that
//! stores the events then fans them out and leases what may start to this dispatcher
//! (`store/intake.rs`), and right after the commit [`Ticket::admit`] queues them in their
//! lanes. The database stays the only source of truth: the deliveries and their leases are
//! committed rows like any claim's, renewed and released the same way, so a crash between
//! the commit and the first request loses nothing (the lease expires, the row is due).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::Dispatcher;
use super::claim::plan_deliveries;
use super::lanes::Job;
use super::matcher::Matcher;
use crate::event::Event;
use crate::store::{ClaimedDelivery, FanOutNow, Lease, Planner, now_ms};

/// Shared by ingest and the dispatcher of one process; empty until the dispatcher has
/// loaded its webhooks, and again once it shuts down.
#[derive(Clone, Default)]
pub struct Handoff(Arc<Mutex<Option<Attached>>>);

/// The running dispatcher, and the matcher it uses now.
struct Attached {
    d: Arc<Dispatcher>,
    owner: String,
    matcher: Option<(i64, Arc<Matcher>)>,
}

/// One ingest transaction's fan-out plan, and where its leased deliveries go.
pub struct Ticket {
    d: Arc<Dispatcher>,
    owner: String,
    revision: i64,
    matcher: Arc<Matcher>,
    plan: Box<Planner>,
    limit: usize,
    skip: Vec<String>,
    served: Option<Arc<HashSet<String>>>,
}

impl Handoff {
    /// A plan for the next ingest transaction, or None when no dispatcher runs here (or it
    /// has not loaded its webhooks yet, or is stopping): then events are stored unfanned.
    pub fn ticket(&self) -> Option<Ticket> {
        let (d, owner, revision, matcher) = {
            let attached = self.lock();
            let a = attached.as_ref()?;
            let (revision, matcher) = a.matcher.clone()?;
            (a.d.clone(), a.owner.clone(), revision, matcher)
        };
        if d.shutdown.is_cancelled() {
            return None;
        }
        let (limit, skip, served) = {
            let mut shared = super::lock(&d.shared);
            let (limit, skip) = shared.lanes.claim_plan(Instant::now());
            (limit, skip, shared.served.clone())
        };
        let planner = matcher.clone();
        Some(Ticket {
            d,
            owner,
            revision,
            matcher,
            plan: Box::new(move |event: &Event| plan_deliveries(&planner, event)),
            limit,
            skip,
            served,
        })
    }

    /// The dispatcher `d`, leasing as `owner`, starts taking hand-offs once it publishes
    /// a matcher.
    pub(super) fn attach(&self, d: Arc<Dispatcher>, owner: String) {
        *self.lock() = Some(Attached {
            d,
            owner,
            matcher: None,
        });
    }

    /// The matcher the dispatcher uses from now on, built from webhooks `revision`.
    pub(super) fn publish(&self, revision: i64, matcher: Arc<Matcher>) {
        if let Some(a) = self.lock().as_mut() {
            a.matcher = Some((revision, matcher));
        }
    }

    /// The dispatcher stops: no more hand-offs.
    pub(super) fn detach(&self) {
        *self.lock() = None;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Attached>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Ticket {
    /// The plan, for `Store::store_events`.
    pub fn fan_out(&self) -> FanOutNow<'_> {
        FanOutNow {
            webhooks_revision: self.revision,
            plan: self.plan.as_ref(),
            owner: &self.owner,
            lease: self.d.config.lease,
            limit: self.limit,
            skip_webhooks: &self.skip,
            served: self.served.as_deref(),
        }
    }

    /// Hands the deliveries the committed transaction leased to the dispatcher.
    pub fn admit(self, leased: Vec<ClaimedDelivery>) {
        if leased.is_empty() {
            return;
        }
        let mut jobs = Vec::with_capacity(leased.len());
        let mut orphans: Vec<Lease> = Vec::new();
        for delivery in leased {
            // Planned from this matcher, so its webhook is there.
            match self.matcher.get(&delivery.webhook_id) {
                Some(webhook) => jobs.push(Job { webhook, delivery }),
                None => orphans.push(delivery.lease),
            }
        }
        orphans.extend(self.d.queue(jobs));
        if !orphans.is_empty() {
            let store = self.d.store.clone();
            tokio::spawn(async move {
                if let Err(error) = store.release(&orphans, now_ms()).await {
                    tracing::warn!(%error, "could not give back handed-off deliveries; their leases expire");
                }
            });
        }
    }
}
