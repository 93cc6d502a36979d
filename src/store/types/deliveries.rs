//! Deliveries, the queue's rows: one to enqueue, a claim of due work and the lease it
//! takes, a claimed delivery ready to send, where it goes after an attempt, a delivery as
//! stored and the queue's depth. Plain data.

use std::time::Duration;

/// A delivery to enqueue: one event for one webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    /// Public id, sent as `webhook-id`; stable across retries.
    pub id: String,
    /// The event.
    pub event_id: String,
    /// The webhook.
    pub webhook_id: String,
    /// The webhook's namespace: tenants see their deliveries by it.
    pub namespace: String,
    /// Set for ordered webhooks: deliveries with the same key go out one at a time, in order.
    pub ordering_key: Option<String>,
}

/// A request to claim due work.
#[derive(Debug, Clone)]
pub struct Claim<'a> {
    /// Who claims (one id per dispatcher process), for lease extension and visibility.
    pub owner: &'a str,
    /// The claim's "now".
    pub now: i64,
    /// How long the lease lasts unless extended.
    pub lease: Duration,
    /// At most this many deliveries.
    pub limit: i64,
    /// Webhooks whose concurrency slots are full: skip their deliveries.
    pub skip_webhooks: &'a [String],
    /// Which webhooks' deliveries it may take.
    pub only: Only,
}

/// Which webhooks' deliveries a claim may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Only {
    /// Any webhook's: one dispatcher serves the whole database (SQLite).
    Any,
    /// Those of the webhooks the claimer serves, where several dispatchers share the
    /// database and each webhook's deliveries go to one of them (`webhook_dispatchers`),
    /// and those of webhooks disabled or deleted, which nobody serves and whoever claims
    /// them ends unsent.
    Served,
}

/// Proof of holding a delivery's lease. Finishing or releasing needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The delivery.
    pub delivery_id: String,
    /// Unique to this claim; a later claim of the same delivery gets another.
    pub lease_id: String,
}

/// A claimed delivery with its event, ready to send.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    /// Lease held on it.
    pub lease: Lease,
    /// The event.
    pub event_id: String,
    /// The webhook.
    pub webhook_id: String,
    /// Attempts made before this one.
    pub attempts: i64,
    /// Attempts made before the latest redelivery or replay: the retry schedule counts
    /// `attempts - retry_base`.
    pub retry_base: i64,
    /// The webhook's namespace.
    pub namespace: String,
    /// Set for ordered webhooks.
    pub ordering_key: Option<String>,
    /// When it was first enqueued.
    pub created_at: i64,
    /// The normalised event JSON; None if the event is no longer stored (pruned).
    pub event_body: Option<String>,
}

/// Where a delivery goes after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextState {
    /// Delivered (2xx): complete.
    Succeeded,
    /// Try again at this time: reschedule.
    RetryAt(i64),
    /// No more attempts: give up.
    Failed,
}

/// A delivery as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DeliveryRecord {
    /// Queue position (insertion order).
    pub seq: i64,
    /// Public id.
    pub id: String,
    /// The event.
    pub event_id: String,
    /// The webhook.
    pub webhook_id: String,
    /// `pending`, `succeeded`, `failed`.
    pub status: String,
    /// Attempts made.
    pub attempts: i64,
    /// When it is due (while leased: when the lease expires).
    pub next_attempt_at: i64,
    /// Current lease, if any.
    pub lease_id: Option<String>,
    /// Who holds the lease.
    pub lease_owner: Option<String>,
    /// Lease expiry.
    pub lease_until: Option<i64>,
    /// Ordering key for ordered webhooks.
    pub ordering_key: Option<String>,
    /// The last attempt's error or status summary.
    pub last_error: Option<String>,
    /// When enqueued.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
    /// The webhook's namespace when the delivery was created.
    pub namespace: String,
    /// Attempts made before the latest redelivery or replay.
    pub retry_base: i64,
    /// The last attempt's HTTP status, if it got one.
    pub last_status_code: Option<i64>,
    /// How long the last attempt took.
    pub last_duration_ms: Option<i64>,
    /// When the last attempt started.
    pub last_attempt_at: Option<i64>,
}

impl DeliveryRecord {
    /// The status people see: `pending` (not yet tried, or redelivered), `retrying`
    /// (tried, another attempt scheduled), `succeeded` or `failed`.
    pub fn display_status(&self) -> &str {
        if self.status == "pending" && self.attempts > self.retry_base {
            "retrying"
        } else {
            &self.status
        }
    }
}

/// Queue depth figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueStats {
    /// Pending deliveries (due, scheduled or leased).
    pub pending: i64,
    /// Pending and due now, not leased.
    pub due: i64,
    /// Succeeded.
    pub succeeded: i64,
    /// Failed for good.
    pub failed: i64,
    /// Events not yet fanned out.
    pub unfanned_events: i64,
    /// Age in ms of the oldest due delivery, 0 if none.
    pub oldest_due_age_ms: i64,
}
