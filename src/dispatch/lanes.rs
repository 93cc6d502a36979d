//! Lanes: per-webhook queues of claimed deliveries, and the concurrency caps.
//!
//! Claimed deliveries wait in their webhook's lane until a request slot is free: at most
//! `max_per_endpoint` in flight per webhook (1 while its circuit probes, 0 while open) and
//! `max_in_flight` in all. A lane never holds more than `lane_budget` deliveries, and a
//! claim never asks for more than half a budget, so a claim can never overfill a lane and
//! nothing claimed has to be given back. Pure bookkeeping: no I/O, `now` passed in.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use super::circuit::Circuits;
use super::matcher::CompiledWebhook;
use crate::store::ClaimedDelivery;

/// A claimed delivery and the webhook it goes to.
pub struct Job {
    /// The webhook, compiled.
    pub webhook: Arc<CompiledWebhook>,
    /// The delivery, leased.
    pub delivery: ClaimedDelivery,
}

#[derive(Default)]
struct Lane {
    in_flight: usize,
    queue: VecDeque<Job>,
}

impl Lane {
    fn held(&self) -> usize {
        self.in_flight + self.queue.len()
    }
}

/// Every lane, plus the global counts.
pub struct Lanes {
    lanes: HashMap<String, Lane>,
    in_flight: usize,
    queued: usize,
    max_in_flight: usize,
    max_per_endpoint: usize,
    /// Most deliveries one lane holds (in flight + waiting).
    lane_budget: usize,
    /// Most deliveries waiting in all lanes together.
    queue_cap: usize,
    /// Per-webhook circuit breakers.
    pub circuits: Circuits,
}

impl Lanes {
    /// Lanes with the given caps.
    pub fn new(max_in_flight: usize, max_per_endpoint: usize, circuits: Circuits) -> Self {
        let lane_budget = (max_per_endpoint * 16).max(64);
        Lanes {
            lanes: HashMap::new(),
            in_flight: 0,
            queued: 0,
            max_in_flight,
            max_per_endpoint,
            lane_budget,
            queue_cap: (max_in_flight * 16).max(lane_budget * 4),
            circuits,
        }
    }

    /// How many deliveries to claim now, and which webhooks to leave out of the claim
    /// (lanes at least half full, open circuits).
    pub fn claim_plan(&self, now: Instant) -> (usize, Vec<String>) {
        let half = self.lane_budget / 2;
        let limit = half.min(self.queue_cap.saturating_sub(self.queued));
        let mut skip: Vec<String> = self
            .lanes
            .iter()
            .filter(|(_, lane)| lane.held() >= half)
            .map(|(id, _)| id.clone())
            .collect();
        skip.extend(
            self.circuits
                .blocked(now)
                .filter(|id| self.lanes.get(*id).is_none_or(|l| l.held() < half))
                .map(str::to_owned),
        );
        (limit, skip)
    }

    /// Queues a claimed delivery in its webhook's lane.
    pub fn admit(&mut self, job: Job) {
        self.queued += 1;
        self.lanes
            .entry(job.webhook.webhook.id.clone())
            .or_default()
            .queue
            .push_back(job);
    }

    /// The next delivery that may start now, counted as in flight; None if every waiting
    /// delivery is held back by a cap or a circuit.
    pub fn next_ready(&mut self, now: Instant) -> Option<Job> {
        if self.in_flight >= self.max_in_flight {
            return None;
        }
        let cap = self.max_per_endpoint;
        let id = self
            .lanes
            .iter()
            .find(|(id, lane)| {
                !lane.queue.is_empty() && lane.in_flight < self.circuits.allowance(id, cap, now)
            })
            .map(|(id, _)| id.clone())?;
        self.circuits.on_start(&id, now);
        let lane = self.lanes.get_mut(&id)?;
        let job = lane.queue.pop_front()?;
        lane.in_flight += 1;
        self.in_flight += 1;
        self.queued -= 1;
        Some(job)
    }

    /// A request of this webhook finished. True when its lane just dropped below the
    /// claim threshold (worth claiming again); false while it is still well stocked.
    pub fn finished(&mut self, webhook_id: &str) -> bool {
        let half = self.lane_budget / 2;
        let Some(lane) = self.lanes.get_mut(webhook_id) else {
            return true;
        };
        lane.in_flight = lane.in_flight.saturating_sub(1);
        self.in_flight = self.in_flight.saturating_sub(1);
        let held = lane.held();
        if held == 0 {
            self.lanes.remove(webhook_id);
        }
        held < half
    }

    /// Takes out what waits behind an open circuit: it goes back to the queue (released)
    /// rather than sitting leased here through the cool-down.
    pub fn drain_blocked(&mut self, now: Instant) -> Vec<Job> {
        let blocked: Vec<String> = self.circuits.blocked(now).map(str::to_owned).collect();
        let mut drained = Vec::new();
        for id in blocked {
            if let Some(lane) = self.lanes.get_mut(&id) {
                drained.extend(lane.queue.drain(..));
                if lane.held() == 0 {
                    self.lanes.remove(&id);
                }
            }
        }
        self.queued -= drained.len();
        drained
    }

    /// Everything still waiting (shutdown).
    pub fn drain_all(&mut self) -> Vec<Job> {
        let drained: Vec<Job> = self
            .lanes
            .values_mut()
            .flat_map(|l| l.queue.drain(..))
            .collect();
        self.queued = 0;
        self.lanes.retain(|_, lane| lane.in_flight > 0);
        drained
    }

    /// Deliveries held (in flight or waiting).
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.in_flight + self.queued
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::dispatch::matcher::Matcher;
    use crate::secret::Secret;
    use crate::store::{Lease, Webhook, WebhookSecret, WebhookWithSecrets};

    fn matcher(ids: &[&str]) -> Matcher {
        Matcher::new(
            ids.iter()
                .map(|id| WebhookWithSecrets {
                    webhook: Webhook::new(*id, "acme", "http://127.0.0.1:9/", 0),
                    secrets: vec![WebhookSecret {
                        id: "s".into(),
                        secret: Secret::new("whsec_dGVzdHNlY3JldHRlc3RzZWNyZXQ="),
                        created_at: 0,
                        expires_at: None,
                    }],
                })
                .collect(),
        )
    }

    fn job(m: &Matcher, webhook: &str, n: usize) -> Job {
        Job {
            webhook: m.get(webhook).expect("webhook"),
            delivery: ClaimedDelivery {
                lease: Lease {
                    delivery_id: format!("d{n}"),
                    lease_id: "l".into(),
                },
                event_id: "e".into(),
                webhook_id: webhook.into(),
                attempts: 0,
                retry_base: 0,
                namespace: String::new(),
                ordering_key: None,
                created_at: 0,
                event_body: None,
            },
        }
    }

    #[test]
    fn per_endpoint_and_global_caps() {
        let m = matcher(&["a", "b"]);
        let now = Instant::now();
        let mut lanes = Lanes::new(6, 4, Circuits::new(5, Duration::from_secs(30)));
        for n in 0..10 {
            lanes.admit(job(&m, "a", n));
            lanes.admit(job(&m, "b", 100 + n));
        }
        let mut started = Vec::new();
        while let Some(j) = lanes.next_ready(now) {
            started.push(j.webhook.webhook.id.clone());
        }
        assert_eq!(started.len(), 6, "global cap");
        assert!(started.iter().filter(|id| *id == "a").count() <= 4);
        assert!(started.iter().filter(|id| *id == "b").count() <= 4);
        lanes.finished("a");
        assert!(
            lanes.next_ready(now).is_some(),
            "a freed slot starts the next one"
        );
        assert!(lanes.next_ready(now).is_none());
    }

    #[test]
    fn claims_never_overfill_a_lane() {
        let m = matcher(&["a"]);
        let now = Instant::now();
        let mut lanes = Lanes::new(256, 4, Circuits::new(5, Duration::from_secs(30)));
        let (limit, skip) = lanes.claim_plan(now);
        assert_eq!((limit, skip.len()), (32, 0));
        for n in 0..limit {
            lanes.admit(job(&m, "a", n));
        }
        let (_, skip) = lanes.claim_plan(now);
        assert_eq!(
            skip,
            vec!["a".to_string()],
            "a half-full lane is left out of claims"
        );
    }

    #[test]
    fn an_open_circuit_holds_its_lane_and_gives_back_the_queue() {
        let m = matcher(&["a"]);
        let now = Instant::now();
        let mut lanes = Lanes::new(256, 4, Circuits::new(1, Duration::from_secs(30)));
        for n in 0..3 {
            lanes.admit(job(&m, "a", n));
        }
        let first = lanes.next_ready(now).expect("starts");
        lanes.circuits.on_failure("a", now);
        lanes.finished("a");
        assert!(lanes.next_ready(now).is_none(), "held while open");
        assert_eq!(lanes.drain_blocked(now).len(), 2);
        assert_eq!(lanes.held(), 0);
        assert!(lanes.claim_plan(now).1.contains(&"a".to_string()));
        drop(first);
    }
}
