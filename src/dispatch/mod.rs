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
pub mod matcher;
pub mod payload;
mod recorder;
pub mod sign;

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
use matcher::Matcher;

/// Most events fanned out per transaction.
const FAN_OUT_BATCH: i64 = 500;
/// Most deliveries claimed per query.
const CLAIM_BATCH: usize = 500;
/// How often queue depth gauges are refreshed.
const STATS_EVERY: Duration = Duration::from_secs(5);

/// State shared between the loop and the delivery tasks.
struct Shared {
    /// Requests in flight per webhook (the per-endpoint cap).
    in_flight: HashMap<String, usize>,
    /// Requests in flight in all (the global cap).
    total: usize,
    circuits: Circuits,
    /// Leases of deliveries whose result is not yet handed to the recorder: released on shutdown.
    leases: HashMap<String, Lease>,
    /// Start of each webhook's current run of failures, as last written to the store.
    failing_since: HashMap<String, Option<i64>>,
}

/// Everything a delivery task needs.
struct Dispatcher {
    store: Store,
    config: DispatchConfig,
    client: reqwest::Client,
    policy: RetryPolicy,
    shared: Mutex<Shared>,
    /// Signalled when a request finishes, so the loop can claim more.
    slot_freed: Notify,
    results: mpsc::Sender<recorder::Outcome>,
}

/// Runs the dispatcher role until `shutdown` fires, then drains: in-flight requests get
/// `shutdown_grace` to finish, leases of the rest are released.
pub async fn run(store: Store, config: DispatchConfig, shutdown: CancellationToken) {
    let client = match client::build(config.connect_timeout, config.request_timeout) {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "cannot build the HTTP client; dispatcher not started");
            return;
        }
    };
    let owner = crate::ids::new_id("dispatcher");
    let (results, results_rx) = mpsc::channel(4 * config.max_in_flight.max(64));
    let recorder = tokio::spawn(recorder::run(store.clone(), results_rx));
    let dispatcher = Arc::new(Dispatcher {
        policy: RetryPolicy {
            schedule: config.retry_schedule.clone(),
            retry_after_max: config.retry_after_max,
        },
        shared: Mutex::new(Shared {
            in_flight: HashMap::new(),
            total: 0,
            circuits: Circuits::new(config.circuit_threshold, config.circuit_cooldown),
            leases: HashMap::new(),
            failing_since: HashMap::new(),
        }),
        slot_freed: Notify::new(),
        store,
        config,
        client,
        results,
    });
    tracing::info!(%owner, "dispatcher started");
    let sends = TaskTracker::new();
    let cancel_sends = CancellationToken::new();
    let renewer = tokio::spawn(renew_leases(
        dispatcher.clone(),
        owner.clone(),
        shutdown.clone(),
    ));
    let mut looper = Loop {
        d: dispatcher.clone(),
        owner,
        matcher: Arc::new(Matcher::default()),
        revision: None,
        secrets_expire_at: None,
        last_stats: None,
    };
    looper.run(&sends, &cancel_sends, &shutdown).await;

    // Drain: let in-flight requests finish within the grace period, then stop the rest.
    sends.close();
    if tokio::time::timeout(dispatcher.config.shutdown_grace, sends.wait())
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace period over; abandoning in-flight requests");
        cancel_sends.cancel();
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
    last_stats: Option<Instant>,
}

impl Loop {
    async fn run(
        &mut self,
        sends: &TaskTracker,
        cancel_sends: &CancellationToken,
        shutdown: &CancellationToken,
    ) {
        let mut waiter = self.d.store.wake().waiter();
        let mut failures = 0u32;
        while !shutdown.is_cancelled() {
            let more = match self.cycle(sends, cancel_sends).await {
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
    async fn cycle(
        &mut self,
        sends: &TaskTracker,
        cancel_sends: &CancellationToken,
    ) -> Result<bool, crate::store::StoreError> {
        let now = now_ms();
        self.refresh_matcher(now, false).await?;
        self.report_stats(now).await;
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
        let (limit, skip) = self.capacity();
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
        self.start(claimed, sends, cancel_sends).await?;
        Ok(full)
    }

    /// How many deliveries to claim, and which webhooks have no free slot.
    fn capacity(&self) -> (usize, Vec<String>) {
        let mut shared = lock(&self.d.shared);
        let free = self
            .d
            .config
            .max_in_flight
            .saturating_sub(shared.total)
            .min(CLAIM_BATCH);
        let now = Instant::now();
        let cap = self.d.config.max_per_endpoint;
        let busy: Vec<(String, usize)> = shared
            .in_flight
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        let mut skip: Vec<String> = busy
            .into_iter()
            .filter(|(id, n)| *n >= shared.circuits.allowance(id, cap, now))
            .map(|(id, _)| id)
            .collect();
        skip.extend(
            shared
                .circuits
                .blocked(now)
                .filter(|id| !shared.in_flight.contains_key(*id))
                .map(str::to_owned),
        );
        (free, skip)
    }

    /// Starts a task per claimed delivery; gives back what exceeds a webhook's slots.
    async fn start(
        &mut self,
        claimed: Vec<ClaimedDelivery>,
        sends: &TaskTracker,
        cancel_sends: &CancellationToken,
    ) -> Result<(), crate::store::StoreError> {
        let mut overflow = Vec::new();
        for delivery in claimed {
            let mut webhook = self.matcher.get(&delivery.webhook_id);
            if webhook.is_none() {
                // Perhaps created after our last refresh (a test ping): look once more.
                self.refresh_matcher(now_ms(), true).await?;
                webhook = self.matcher.get(&delivery.webhook_id);
            }
            let Some(webhook) = webhook else {
                self.d
                    .give_up_unsent(delivery, "the webhook is disabled or deleted; not sent")
                    .await;
                continue;
            };
            {
                let mut shared = lock(&self.d.shared);
                let now = Instant::now();
                let allowed = shared.circuits.allowance(
                    &webhook.webhook.id,
                    self.d.config.max_per_endpoint,
                    now,
                );
                let running = shared
                    .in_flight
                    .get(&webhook.webhook.id)
                    .copied()
                    .unwrap_or(0);
                if running >= allowed {
                    overflow.push(delivery.lease.clone());
                    continue;
                }
                shared.circuits.on_start(&webhook.webhook.id, now);
                *shared
                    .in_flight
                    .entry(webhook.webhook.id.clone())
                    .or_insert(0) += 1;
                shared.total += 1;
                shared
                    .leases
                    .insert(delivery.lease.delivery_id.clone(), delivery.lease.clone());
            }
            metrics::gauge!("hookline_requests_in_flight").increment(1.0);
            let d = self.d.clone();
            let cancel = cancel_sends.clone();
            sends.spawn(async move { d.deliver(webhook, delivery, cancel).await });
        }
        if !overflow.is_empty() {
            self.d.store.release(&overflow, now_ms()).await?;
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
        tracing::debug!(revision, webhooks = self.matcher.len(), "webhooks loaded");
        Ok(())
    }

    async fn report_stats(&mut self, now: i64) {
        if self.last_stats.is_some_and(|at| at.elapsed() < STATS_EVERY) {
            return;
        }
        self.last_stats = Some(Instant::now());
        match self.d.store.queue_stats(now).await {
            Ok(stats) => {
                metrics::gauge!("hookline_queue_pending").set(stats.pending as f64);
                metrics::gauge!("hookline_queue_due").set(stats.due as f64);
                metrics::gauge!("hookline_queue_oldest_due_seconds")
                    .set(stats.oldest_due_age_ms as f64 / 1000.0);
                metrics::gauge!("hookline_events_unfanned").set(stats.unfanned_events as f64);
            }
            Err(error) => tracing::debug!(%error, "queue stats unavailable"),
        }
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

/// Keeps every lease this process holds alive while its requests run.
async fn renew_leases(d: Arc<Dispatcher>, owner: String, shutdown: CancellationToken) {
    let every = d.config.lease / 3;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = tokio::time::sleep(every) => {}
        }
        let held = lock(&d.shared).leases.len();
        if held > 0 {
            let until = now_ms() + d.config.lease.as_millis() as i64;
            if let Err(error) = d.store.extend_leases(&owner, until).await {
                tracing::warn!(%error, "could not extend leases");
            }
        }
        // Keep renewing through the shutdown grace period, until nothing is held.
        if shutdown.is_cancelled() && held == 0 {
            return;
        }
        if shutdown.is_cancelled() {
            tokio::time::sleep(every.min(Duration::from_millis(200))).await;
        }
    }
}

/// Locks shared state; a panic in another task holding it does not stop the dispatcher.
fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
