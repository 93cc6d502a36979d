//! Dispatch: takes due work off the queue and delivers it.
//!
//! One dispatcher per process ([`run`]): its claim loop (`claim`) fans new events out into
//! deliveries (`matcher`) and claims due ones with a lease; this file queues them in their
//! lanes, starts one task per delivery (`deliver`) as slots free up, keeps the leases alive
//! and drains at shutdown. Tasks send through the `transport` seam (HTTP: `client`) and
//! hand their results to the `recorder`, which writes them in batches. Where several
//! dispatchers share the database, each serves its share of the webhooks (`serving`), so a
//! webhook's limits hold across replicas. A slow endpoint
//! only ever holds its own slots; retries are rescheduled rows, never sleeping tasks.

pub mod backoff;
pub mod bus;
mod circuit;
mod claim;
pub mod client;
mod deliver;
pub mod dialect;
mod handoff;
mod health;
mod lanes;
pub mod matcher;
mod notices;
mod oauth;
pub mod payload;
mod proxy;
mod recorder;
mod serving;
pub mod sign;
pub mod ssrf;
mod takeover;
pub mod transport;
pub mod trust;
mod window;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::DispatchConfig;
use crate::store::{Lease, Store, now_ms};
use backoff::RetryPolicy;
use circuit::Circuits;
use claim::Loop;
use lanes::{Job, Lanes};
use transport::Transport;

pub use claim::ordering_key;
pub use handoff::{Handoff, Ticket};
pub use notices::PER_NAMESPACE_PER_HOUR as NOTICES_PER_NAMESPACE_PER_HOUR;

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
    /// Where several dispatchers share the database, the webhooks this one serves
    /// (`serving.rs`): nothing of another is queued here. None: every webhook.
    served: Option<Arc<HashSet<String>>>,
}

impl Shared {
    /// Stops tracking the leases of jobs taken out of the lanes unstarted, and returns them
    /// to give back.
    fn unlease(&mut self, jobs: Vec<Job>) -> Vec<Lease> {
        jobs.iter()
            .filter_map(|job| self.leases.remove(&job.delivery.lease.delivery_id))
            .collect()
    }
}

/// Everything a delivery task needs.
struct Dispatcher {
    store: Store,
    config: DispatchConfig,
    /// The way out: every delivery is sent through it, by its destination's scheme
    /// (`bus::Router`: HTTP, Redis Streams).
    transport: Box<dyn Transport>,
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
    /// Tells webhooks' owners what happens to them (`notices.rs`).
    notices: Arc<notices::Notices>,
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
    let trust = match trust::Trust::new(&config.destination_roots) {
        Ok(trust) => trust,
        Err(error) => {
            tracing::error!(%error, "cannot use destination_ca_file; dispatcher not started");
            return;
        }
    };
    let http = client::Http::new(
        config.connect_timeout,
        config.request_timeout,
        guard.clone(),
        &trust,
        config.response_body_limit,
        config.egress_proxy.clone(),
    );
    let transport: Box<dyn Transport> = match http {
        Ok(http) => Box::new(bus::Router::new(
            http,
            guard,
            trust,
            config.connect_timeout,
            config.request_timeout,
        )),
        Err(error) => {
            tracing::error!(%error, "cannot build the HTTP client; dispatcher not started");
            return;
        }
    };
    // Alive before anything is leased under this owner, so no replica takes it for dead,
    // and until the drain below is over: in-flight requests still hold their leases.
    let alive = CancellationToken::new();
    let _alive_until_return = alive.clone().drop_guard();
    let Some(owner) = takeover::hold_liveness(&store, alive, &shutdown).await else {
        return;
    };
    let (serving, members) = match serving::start(&store, &owner, &shutdown).await {
        Some((serving, members)) => (Some(serving), Some(members)),
        None if shutdown.is_cancelled() => return,
        None => (None, None),
    };
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
            // Nothing is served before the first settle.
            served: serving.as_ref().map(|_| Arc::new(HashSet::new())),
        }),
        slot_freed: Notify::new(),
        timer_at: Mutex::new(None),
        notices: notices::Notices::new(store.clone()),
        store,
        config,
        transport,
        results,
        sends: TaskTracker::new(),
        cancel_sends: CancellationToken::new(),
        shutdown: shutdown.clone(),
        enricher,
    });
    handoff.attach(dispatcher.clone(), owner.clone());
    tracing::info!(%owner, "dispatcher started");
    let renewer = tokio::spawn(renew_leases(dispatcher.clone(), shutdown.clone()));
    tokio::spawn(takeover::run(
        dispatcher.store.clone(),
        owner.clone(),
        members,
        shutdown.clone(),
    ));
    tokio::spawn(report_stats(dispatcher.store.clone(), shutdown.clone()));
    let mut looper = Loop::new(dispatcher.clone(), owner, serving, handoff.clone());
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

impl Dispatcher {
    /// Queues leased deliveries (claimed, or handed off by ingest) in their lanes and
    /// starts what may start. Returns the leases to give back: all of them once shutdown
    /// began, and those of webhooks another dispatcher serves now.
    fn queue(self: &Arc<Self>, jobs: Vec<Job>) -> Vec<Lease> {
        let elsewhere = {
            let mut shared = lock(&self.shared);
            // Checked under the lock the drain takes: a job queued here is drained.
            if self.shutdown.is_cancelled() {
                return jobs.into_iter().map(|job| job.delivery.lease).collect();
            }
            // And under the lock `serving.rs` takes to find a moving webhook idle.
            let (jobs, elsewhere): (Vec<Job>, Vec<Job>) = jobs.into_iter().partition(|job| {
                let served = shared.served.as_ref();
                served.is_none_or(|s| s.contains(&job.delivery.webhook_id))
            });
            for job in jobs {
                let lease = job.delivery.lease.clone();
                shared.leases.insert(lease.delivery_id.clone(), lease);
                shared.lanes.admit(job, Instant::now());
            }
            elsewhere
        };
        self.pump();
        elsewhere
            .into_iter()
            .map(|job| job.delivery.lease)
            .collect()
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
            let blocked = shared.lanes.drain_blocked(now);
            let blocked = shared.unlease(blocked);
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
