//! Lanes: per-webhook queues of claimed deliveries, and how many of each may be in flight.
//!
//! Claimed deliveries wait in their webhook's lane until the endpoint may take one more:
//! its adaptive window allows it (`window.rs`; capped by the owner's `max_concurrency`,
//! `max_per_endpoint` and `max_in_flight`), its circuit is closed (1 while probing, 0
//! while open), its owner's `rate_limit` allows it, and no `Retry-After` pauses it; and
//! `max_in_flight` in all. A claim asks for at most [`CLAIM_CHUNK`] deliveries and skips
//! every lane that could not take that many more within its budget, so a claim can never
//! overfill a lane and nothing claimed has to be given back. What an endpoint taught us
//! (its window, pace, pause) outlives its lane while it is idle. Pure bookkeeping: no
//! I/O, `now` passed in.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::circuit::Circuits;
use super::matcher::CompiledWebhook;
use super::window::{Signal, Window};
use crate::store::ClaimedDelivery;

/// Most deliveries one claim asks for.
pub const CLAIM_CHUNK: usize = 32;
/// A lane holds at least this many deliveries (in flight + waiting), or four windows.
const MIN_LANE_BUDGET: usize = 64;
/// A pause longer than this gives the lane's waiting deliveries back to the queue.
const HOLD_THROUGH_PAUSE: Duration = Duration::from_secs(5);
/// An endpoint not used for this long is forgotten (it starts small again).
const FORGET_AFTER: Duration = Duration::from_secs(600);

/// A claimed delivery and the webhook it goes to.
pub struct Job {
    /// The webhook, compiled.
    pub webhook: Arc<CompiledWebhook>,
    /// The delivery, leased.
    pub delivery: ClaimedDelivery,
}

/// How a finished request bears on its endpoint.
#[derive(Debug, Clone, Copy)]
pub struct Feedback {
    /// When the request started.
    pub started: Instant,
    /// What the answer says about load.
    pub signal: Signal,
    /// How long the receiver asked us to wait (`Retry-After` on a 429 or 503).
    pub pause: Option<Duration>,
}

impl Feedback {
    /// Nothing was learned (nothing was sent).
    pub fn none() -> Feedback {
        Feedback {
            started: Instant::now(),
            signal: Signal::Neutral,
            pause: None,
        }
    }
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

/// What this process knows about one endpoint.
struct Endpoint {
    window: Window,
    /// The owner's ceiling on requests in flight.
    max_concurrency: Option<usize>,
    /// The owner's rate limit: the time between two starts, and the earliest next start.
    pace: Option<(Duration, Instant)>,
    /// No request starts before this (the receiver's `Retry-After`).
    paused_until: Option<Instant>,
    last_used: Instant,
}

impl Endpoint {
    fn new(now: Instant) -> Endpoint {
        Endpoint {
            window: Window::default(),
            max_concurrency: None,
            pace: None,
            paused_until: None,
            last_used: now,
        }
    }

    /// When a request may start, if not now.
    fn not_before(&self, now: Instant) -> Option<Instant> {
        let paused = self.paused_until.filter(|at| *at > now);
        let paced = self.pace.map(|(_, next)| next).filter(|at| *at > now);
        paused.max(paced)
    }
}

/// Every lane, plus the global counts.
pub struct Lanes {
    lanes: HashMap<String, Lane>,
    endpoints: HashMap<String, Endpoint>,
    in_flight: usize,
    queued: usize,
    max_in_flight: usize,
    /// The most requests one endpoint may have in flight, whatever its window.
    max_per_endpoint: usize,
    /// Most deliveries waiting in all lanes together.
    queue_cap: usize,
    /// Per-webhook circuit breakers.
    pub circuits: Circuits,
}

impl Lanes {
    /// Lanes with the given caps.
    pub fn new(max_in_flight: usize, max_per_endpoint: usize, circuits: Circuits) -> Self {
        Lanes {
            lanes: HashMap::new(),
            endpoints: HashMap::new(),
            in_flight: 0,
            queued: 0,
            max_in_flight,
            max_per_endpoint,
            queue_cap: (max_in_flight * 16).max(MIN_LANE_BUDGET * 4),
            circuits,
        }
    }

    /// The most requests this endpoint may have in flight, window aside.
    fn ceiling(&self, id: &str) -> usize {
        let owner = self
            .endpoints
            .get(id)
            .and_then(|e| e.max_concurrency)
            .unwrap_or(usize::MAX);
        self.max_per_endpoint
            .min(self.max_in_flight)
            .min(owner)
            .max(1)
    }

    /// The endpoint's window now (None: not known here).
    pub fn window(&self, id: &str) -> Option<usize> {
        let endpoint = self.endpoints.get(id)?;
        Some(endpoint.window.allowed(self.ceiling(id)))
    }

    /// Most deliveries the lane may hold: enough to keep four windows busy.
    fn budget(&self, id: &str) -> usize {
        let window = self.window(id).unwrap_or(1);
        (window * 4).max(MIN_LANE_BUDGET)
    }

    /// Whether the receiver asked us to wait (`Retry-After`) and the wait is not over.
    pub fn paused(&self, id: &str, now: Instant) -> bool {
        self.endpoints
            .get(id)
            .and_then(|e| e.paused_until)
            .is_some_and(|at| at > now)
    }

    /// How many deliveries to claim now, and which webhooks to leave out of the claim
    /// (lanes that could not take a whole chunk more, open circuits, paused endpoints).
    pub fn claim_plan(&mut self, now: Instant) -> (usize, Vec<String>) {
        self.endpoints.retain(|id, e| {
            self.lanes.contains_key(id) || now.duration_since(e.last_used) < FORGET_AFTER
        });
        let limit = CLAIM_CHUNK.min(self.queue_cap.saturating_sub(self.queued));
        let mut skip: Vec<String> = self
            .lanes
            .iter()
            .filter(|(id, lane)| lane.held() + CLAIM_CHUNK > self.budget(id))
            .map(|(id, _)| id.clone())
            .collect();
        let blocked: Vec<String> = self
            .circuits
            .blocked(now)
            .map(str::to_owned)
            .chain(
                self.endpoints
                    .keys()
                    .filter(|id| self.paused(id, now))
                    .cloned(),
            )
            .filter(|id| !skip.contains(id))
            .collect();
        skip.extend(blocked);
        skip.sort();
        skip.dedup();
        (limit, skip)
    }

    /// Queues a claimed delivery in its webhook's lane, taking the owner's limits from it.
    pub fn admit(&mut self, job: Job, now: Instant) {
        let webhook = &job.webhook.webhook;
        let endpoint = self
            .endpoints
            .entry(webhook.id.clone())
            .or_insert_with(|| Endpoint::new(now));
        endpoint.max_concurrency = webhook
            .max_concurrency
            .and_then(|n| usize::try_from(n).ok());
        let interval = webhook
            .rate_limit_milli
            .filter(|m| *m > 0)
            .map(|m| Duration::from_secs_f64(1000.0 / m as f64));
        endpoint.pace = match (interval, endpoint.pace) {
            (None, _) => None,
            (Some(interval), Some((_, next))) => Some((interval, next)),
            (Some(interval), None) => Some((interval, now)),
        };
        self.queued += 1;
        self.lanes
            .entry(webhook.id.clone())
            .or_default()
            .queue
            .push_back(job);
    }

    /// The next delivery that may start now, counted as in flight; None if every waiting
    /// delivery is held back by a window, a cap, a circuit, a pace or a pause.
    pub fn next_ready(&mut self, now: Instant) -> Option<Job> {
        if self.in_flight >= self.max_in_flight {
            return None;
        }
        let candidates: Vec<(String, usize)> = self
            .lanes
            .iter()
            .filter(|(id, lane)| {
                !lane.queue.is_empty()
                    && self
                        .endpoints
                        .get(*id)
                        .is_none_or(|e| e.not_before(now).is_none())
            })
            .map(|(id, lane)| (id.clone(), lane.in_flight))
            .collect();
        let id = candidates.into_iter().find_map(|(id, in_flight)| {
            let window = self.window(&id).unwrap_or(1);
            (in_flight < self.circuits.allowance(&id, window, now)).then_some(id)
        })?;
        self.circuits.on_start(&id, now);
        if let Some(endpoint) = self.endpoints.get_mut(&id) {
            endpoint.last_used = now;
            if let Some((interval, next)) = endpoint.pace.as_mut() {
                *next = (*next).max(now) + *interval;
            }
        }
        let lane = self.lanes.get_mut(&id)?;
        let job = lane.queue.pop_front()?;
        lane.in_flight += 1;
        self.in_flight += 1;
        self.queued -= 1;
        Some(job)
    }

    /// When a waiting delivery held back only by a pace or a pause may start: the loop
    /// sets a timer for it (nothing else would wake it).
    pub fn next_start(&self, now: Instant) -> Option<Instant> {
        self.lanes
            .iter()
            .filter(|(_, lane)| !lane.queue.is_empty())
            .filter_map(|(id, _)| self.endpoints.get(id)?.not_before(now))
            .min()
    }

    /// A request of this webhook finished: its endpoint learns from the answer. True when
    /// the lane can take a whole claim again (worth claiming); false while well stocked.
    pub fn finished(&mut self, webhook_id: &str, feedback: Feedback) -> bool {
        let ceiling = self.ceiling(webhook_id);
        let Some(lane) = self.lanes.get_mut(webhook_id) else {
            return true;
        };
        let outstanding = lane.in_flight;
        lane.in_flight = lane.in_flight.saturating_sub(1);
        self.in_flight = self.in_flight.saturating_sub(1);
        let held = lane.held();
        if held == 0 {
            self.lanes.remove(webhook_id);
        }
        if let Some(endpoint) = self.endpoints.get_mut(webhook_id) {
            let before = endpoint.window.allowed(ceiling);
            endpoint
                .window
                .observe(feedback.signal, feedback.started, outstanding, ceiling);
            if let Some(pause) = feedback.pause {
                let until = Instant::now() + pause;
                endpoint.paused_until = endpoint.paused_until.max(Some(until));
            }
            let after = endpoint.window.allowed(ceiling);
            if after != before {
                metrics::gauge!("hookline_endpoint_window", "webhook_id" => webhook_id.to_owned())
                    .set(after as f64);
            }
        }
        held + CLAIM_CHUNK <= self.budget(webhook_id)
    }

    /// Takes out what waits behind an open circuit or a long pause: it goes back to the
    /// queue (released) rather than sitting leased here meanwhile.
    pub fn drain_blocked(&mut self, now: Instant) -> Vec<Job> {
        let paused = self.endpoints.iter().filter(|(_, e)| {
            e.paused_until
                .is_some_and(|at| at > now + HOLD_THROUGH_PAUSE)
        });
        let blocked: Vec<String> = self
            .circuits
            .blocked(now)
            .map(str::to_owned)
            .chain(paused.map(|(id, _)| id.clone()))
            .collect();
        self.drain_webhooks(|id| blocked.iter().any(|b| b == id))
    }

    /// Takes out what waits in the lanes of the webhooks `which` picks (blocked ones, or
    /// those moving to another dispatcher); what is in flight stays.
    pub fn drain_webhooks(&mut self, which: impl Fn(&str) -> bool) -> Vec<Job> {
        let mut drained = Vec::new();
        self.lanes.retain(|id, lane| {
            if which(id) {
                drained.extend(lane.queue.drain(..));
            }
            lane.held() > 0
        });
        self.queued -= drained.len();
        drained
    }

    /// Whether anything of this webhook is queued or in flight here, or its receiver's
    /// `Retry-After` still pauses it: what this process knows must not be lost by handing the
    /// webhook to another dispatcher yet.
    pub fn holds(&self, webhook_id: &str, now: Instant) -> bool {
        self.lanes.contains_key(webhook_id) || self.paused(webhook_id, now)
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
            lanes.admit(job(&m, "a", n), now);
            lanes.admit(job(&m, "b", 100 + n), now);
        }
        let mut started = Vec::new();
        while let Some(j) = lanes.next_ready(now) {
            started.push(j.webhook.webhook.id.clone());
        }
        assert_eq!(started.len(), 6, "global cap");
        assert!(started.iter().filter(|id| *id == "a").count() <= 4);
        assert!(started.iter().filter(|id| *id == "b").count() <= 4);
        lanes.finished("a", Feedback::none());
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
        assert_eq!((limit, skip.len()), (CLAIM_CHUNK, 0));
        for n in 0..=limit {
            lanes.admit(job(&m, "a", n), now);
        }
        let (_, skip) = lanes.claim_plan(now);
        assert_eq!(
            skip,
            vec!["a".to_string()],
            "a lane that could not take a whole claim more is left out"
        );
    }

    #[test]
    fn an_open_circuit_holds_its_lane_and_gives_back_the_queue() {
        let m = matcher(&["a"]);
        let now = Instant::now();
        let mut lanes = Lanes::new(256, 4, Circuits::new(1, Duration::from_secs(30)));
        for n in 0..3 {
            lanes.admit(job(&m, "a", n), now);
        }
        let first = lanes.next_ready(now).expect("starts");
        lanes.circuits.on_failure("a", now);
        lanes.finished("a", Feedback::none());
        assert!(lanes.next_ready(now).is_none(), "held while open");
        assert_eq!(lanes.drain_blocked(now).len(), 2);
        assert_eq!(lanes.held(), 0);
        assert!(lanes.claim_plan(now).1.contains(&"a".to_string()));
        drop(first);
    }
}
