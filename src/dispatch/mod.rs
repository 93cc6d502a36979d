//! Dispatch: takes due work off the queue and delivers it.
//!
//! One loop per process ([`run`]): wait for a wake-up (or the fallback poll), fan new
//! events out into deliveries (`matcher`), claim due deliveries with a lease up to the free
//! concurrency, and spawn one task per delivery (`deliver`). Tasks hand their results to
//! the `recorder`, which writes them in batches. A slow endpoint only ever holds its own
//! slots; retries are rescheduled rows, never sleeping tasks.

pub mod backoff;
mod circuit;
pub mod client;
mod deliver;
mod handoff;
mod lanes;
pub mod matcher;
pub mod payload;
mod recorder;
pub mod sign;
pub mod ssrf;
mod window;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::DispatchConfig;
use crate::event::Event;
use crate::store::{ClaimedDelivery, Lease, NewDelivery, Store, now_ms};
use backoff::RetryPolicy;
use circuit::Circuits;
use lanes::{Job, Lanes};
use matcher::Matcher;

pub use handoff::{Handoff, Ticket};

/// Most events fanned out per transaction.
const FAN_OUT_BATCH: i64 = 500;
/// How often queue depth gauges are refreshed.
const STATS_EVERY: Duration = Duration::from_secs(15);

/// State shared between the loop and the delivery tasks.
struct Shared {
    /// Claimed deliveries per webhook, and the concurrency caps.
    lanes: Lanes,
    /// Leases of deliveries whose result is not yet handed to the recorder: released on shutdown.
    leases: HashMap<String, Lease>,
    /// Start of each webhook's current run of failures, as last written to the store.
    failing_since: HashMap<String, Option<i64>>,
    /// The loop's last claim was held back (a lane skipped, or fewer asked for than a full
    /// chunk), so due rows may wait in the store: a freed slot should claim again.
    /// Otherwise new work announces itself (a wake-up) and retries come due by the poll.
    claim_held_back: bool,
}

/// Everything a delivery task needs.
struct Dispatcher {
    store: Store,
    config: DispatchConfig,
    client: reqwest::Client,
    /// Vets destinations; the client resolves through it too.
    guard: ssrf::Guard,
    policy: RetryPolicy,
    shared: Mutex<Shared>,
    /// Signalled when a lane has room for more, so the loop claims again.
    slot_freed: Notify,
    /// When a timer will pump next, for deliveries held back by a pace or a pause.
    timer_at: Mutex<Option<Instant>>,
    results: mpsc::Sender<recorder::Outcome>,
    /// Delivery tasks; waited for at shutdown.
    sends: TaskTracker,
    /// Cancels delivery tasks still running when the shutdown grace period ends.
    cancel_sends: CancellationToken,
    /// Set at shutdown: start nothing new.
    shutdown: CancellationToken,
    /// Reads registries to enrich events (`crate::registry`).
    enricher: Option<Arc<crate::registry::Enricher>>,
}

/// Runs the dispatcher role until `shutdown` fires, then drains: in-flight requests get
/// `shutdown_grace` to finish, leases of the rest are released.
pub async fn run(
    store: Store,
    config: DispatchConfig,
    guard: ssrf::Guard,
    handoff: Handoff,
    shutdown: CancellationToken,
) {
    let client = match client::build(config.connect_timeout, config.request_timeout, &guard) {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "cannot build the HTTP client; dispatcher not started");
            return;
        }
    };
    let owner = crate::ids::new_id("dispatcher");
    let (results, results_rx) = mpsc::channel(4 * config.max_in_flight.max(64));
    let recorder = tokio::spawn(recorder::run(store.clone(), results_rx));
    let enricher = crate::registry::Enricher::start(&store, &config, shutdown.clone()).await;
    let dispatcher = Arc::new(Dispatcher {
        policy: RetryPolicy {
            schedule: config.retry_schedule.clone(),
            retry_after_max: config.retry_after_max,
        },
        shared: Mutex::new(Shared {
            lanes: Lanes::new(
                config.max_in_flight,
                config.max_per_endpoint,
                Circuits::new(config.circuit_threshold, config.circuit_cooldown),
            ),
            leases: HashMap::new(),
            failing_since: HashMap::new(),
            claim_held_back: false,
        }),
        slot_freed: Notify::new(),
        timer_at: Mutex::new(None),
        store,
        config,
        client,
        guard,
        results,
        sends: TaskTracker::new(),
        cancel_sends: CancellationToken::new(),
        shutdown: shutdown.clone(),
        enricher,
    });
    handoff.attach(dispatcher.clone(), owner.clone());
    tracing::info!(%owner, "dispatcher started");
    let renewer = tokio::spawn(renew_leases(dispatcher.clone(), shutdown.clone()));
    tokio::spawn(report_stats(dispatcher.store.clone(), shutdown.clone()));
    let mut looper = Loop {
        d: dispatcher.clone(),
        owner,
        matcher: Arc::new(Matcher::default()),
        revision: None,
        secrets_expire_at: None,
        handoff: handoff.clone(),
    };
    looper.run(&shutdown).await;
    handoff.detach();

    // Drain: what waits in lanes goes back; in-flight requests get the grace period.
    lock(&dispatcher.shared).lanes.drain_all();
    let sends = dispatcher.sends.clone();
    sends.close();
    if tokio::time::timeout(dispatcher.config.shutdown_grace, sends.wait())
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace period over; abandoning in-flight requests");
        dispatcher.cancel_sends.cancel();
        sends.wait().await;
    }
    let leftover: Vec<Lease> = lock(&dispatcher.shared)
        .leases
        .drain()
        .map(|(_, l)| l)
        .collect();
    let _ = renewer.await;
    // Results already handed over are written by the recorder once every sender is gone.
    drop(looper);
    let store = dispatcher.store.clone();
    drop(dispatcher);
    let _ = recorder.await;
    if !leftover.is_empty() {
        match store.release(&leftover, now_ms()).await {
            Ok(n) => tracing::info!(released = n, "released leases of unfinished deliveries"),
            Err(error) => {
                tracing::warn!(%error, "could not release leases; they expire on their own")
            }
        }
    }
    tracing::info!("dispatcher stopped");
}

/// The claim loop's own state.
struct Loop {
    d: Arc<Dispatcher>,
    owner: String,
    matcher: Arc<Matcher>,
    /// Webhooks revision the matcher was built from.
    revision: Option<i64>,
    /// When the earliest rotated-out secret expires: the matcher must be rebuilt then.
    secrets_expire_at: Option<i64>,
    /// Where ingest in this process takes the matcher from.
    handoff: Handoff,
}

impl Loop {
    async fn run(&mut self, shutdown: &CancellationToken) {
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
    async fn cycle(&mut self) -> Result<bool, crate::store::StoreError> {
        let now = now_ms();
        self.refresh_matcher(now, false).await?;
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
        let (limit, skip) = {
            let mut shared = lock(&self.d.shared);
            let (limit, skip) = shared.lanes.claim_plan(Instant::now());
            shared.claim_held_back = limit < lanes::CLAIM_CHUNK || !skip.is_empty();
            (limit, skip)
        };
        if limit == 0 {
            return Ok(false);
        }
        let claim = crate::store::Claim {
            owner: &self.owner,
            now,
            lease: self.d.config.lease,
            limit: limit as i64,
            skip_webhooks: &skip,
        };
        let claimed = self.d.store.claim_due(&claim).await?;
        let full = claimed.len() == limit;
        self.admit(claimed).await?;
        Ok(full)
    }

    /// Queues claimed deliveries in their lanes and starts what may start.
    async fn admit(
        &mut self,
        claimed: Vec<ClaimedDelivery>,
    ) -> Result<(), crate::store::StoreError> {
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
    async fn refresh_matcher(
        &mut self,
        now: i64,
        force: bool,
    ) -> Result<(), crate::store::StoreError> {
        let revision = self.d.store.webhooks_revision().await?;
        let expired = self.secrets_expire_at.is_some_and(|at| now >= at);
        if !force && !expired && self.revision == Some(revision) {
            return Ok(());
        }
        let webhooks = self.d.store.enabled_webhooks(now).await?;
        self.secrets_expire_at = webhooks
            .iter()
            .flat_map(|w| w.secrets.iter().filter_map(|s| s.expires_at))
            .min();
        self.matcher = Arc::new(Matcher::new(webhooks));
        self.revision = Some(revision);
        self.handoff.publish(revision, self.matcher.clone());
        tracing::debug!(revision, webhooks = self.matcher.len(), "webhooks loaded");
        Ok(())
    }
}

impl Dispatcher {
    /// Queues leased deliveries (claimed, or handed off by ingest) in their lanes and
    /// starts what may start. Once shutdown began, queues nothing and returns the leases
    /// to give back.
    fn queue(self: &Arc<Self>, jobs: Vec<Job>) -> Vec<Lease> {
        {
            let mut shared = lock(&self.shared);
            // Checked under the lock the drain takes: a job queued here is drained.
            if self.shutdown.is_cancelled() {
                return jobs.into_iter().map(|job| job.delivery.lease).collect();
            }
            for job in jobs {
                let lease = job.delivery.lease.clone();
                shared.leases.insert(lease.delivery_id.clone(), lease);
                shared.lanes.admit(job, Instant::now());
            }
        }
        self.pump();
        Vec::new()
    }

    /// Starts every queued delivery that a free slot allows, and gives back what waits
    /// behind an open circuit.
    fn pump(self: &Arc<Self>) {
        if self.shutdown.is_cancelled() {
            return;
        }
        let now = Instant::now();
        let (ready, blocked, next_start) = {
            let mut shared = lock(&self.shared);
            let mut ready = Vec::new();
            while let Some(job) = shared.lanes.next_ready(now) {
                ready.push(job);
            }
            let next_start = shared.lanes.next_start(now);
            let blocked: Vec<Lease> = shared
                .lanes
                .drain_blocked(now)
                .into_iter()
                .filter_map(|job| shared.leases.remove(&job.delivery.lease.delivery_id))
                .collect();
            (ready, blocked, next_start)
        };
        if let Some(at) = next_start {
            self.pump_at(at);
        }
        for job in ready {
            metrics::gauge!("hookline_requests_in_flight").increment(1.0);
            let d = self.clone();
            let cancel = self.cancel_sends.clone();
            self.sends
                .spawn(async move { d.deliver(job.webhook, job.delivery, cancel).await });
        }
        if !blocked.is_empty() {
            let store = self.store.clone();
            tokio::spawn(async move {
                if let Err(error) = store.release(&blocked, now_ms()).await {
                    tracing::warn!(%error, "could not release deliveries held by an open circuit; their leases expire");
                }
            });
        }
    }
}

impl Dispatcher {
    /// Pumps again at `at` (a paced or paused endpoint's next start), unless a timer
    /// already pumps at or before then.
    fn pump_at(self: &Arc<Self>, at: Instant) {
        {
            let mut timer = self
                .timer_at
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if timer.is_some_and(|t| t <= at && t > Instant::now()) {
                return;
            }
            *timer = Some(at);
        }
        let d = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep_until(at.into()) => {}
                _ = d.shutdown.cancelled() => return,
            }
            *d.timer_at
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
            d.pump();
        });
    }
}

/// The deliveries an event needs: one per matching webhook.
fn plan_deliveries(matcher: &Matcher, event: &Event) -> Vec<NewDelivery> {
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

/// Keeps every lease this process holds alive while its deliveries wait or run.
async fn renew_leases(d: Arc<Dispatcher>, shutdown: CancellationToken) {
    let every = d.config.lease / 3;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = tokio::time::sleep(every) => {}
        }
        let held: Vec<Lease> = lock(&d.shared).leases.values().cloned().collect();
        if !held.is_empty() {
            let until = now_ms() + d.config.lease.as_millis() as i64;
            if let Err(error) = d.store.extend_leases(&held, until).await {
                tracing::warn!(%error, "could not extend leases");
            }
        }
        // Keep renewing through the shutdown grace period, until nothing is held.
        if shutdown.is_cancelled() {
            if held.is_empty() {
                return;
            }
            tokio::time::sleep(every.min(Duration::from_millis(200))).await;
        }
    }
}

/// Refreshes the queue gauges now and then, off the claim loop (the counts scan the table).
async fn report_stats(store: Store, shutdown: CancellationToken) {
    loop {
        match store.queue_stats(now_ms()).await {
            Ok(stats) => {
                metrics::gauge!("hookline_queue_pending").set(stats.pending as f64);
                metrics::gauge!("hookline_queue_due").set(stats.due as f64);
                metrics::gauge!("hookline_queue_oldest_due_seconds")
                    .set(stats.oldest_due_age_ms as f64 / 1000.0);
                metrics::gauge!("hookline_events_unfanned").set(stats.unfanned_events as f64);
            }
            Err(error) => tracing::debug!(%error, "queue stats unavailable"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(STATS_EVERY) => {}
        }
    }
}

/// Locks shared state; a panic in another task holding it does not stop the dispatcher.
fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
