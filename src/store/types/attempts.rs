//! Attempts: one HTTP try as recorded, an attempt's result with the delivery's next state
//! (`Finished`, what the dispatcher hands the store), whose attempt it was, the webhook's
//! circuit as the owner sees it, and the live tail's unit (`AttemptView`). Plain data.

use super::{Lease, NextState};

/// One HTTP try, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AttemptRecord {
    /// Id of the attempt.
    pub id: String,
    /// The delivery.
    pub delivery_id: String,
    /// 1 for the first attempt.
    pub number: i64,
    /// When the request started.
    pub started_at: i64,
    /// How long until the response (or error).
    pub duration_ms: i64,
    /// HTTP status, if a response came.
    pub status_code: Option<i64>,
    /// Response headers, JSON object.
    pub response_headers: Option<String>,
    /// Response body excerpt.
    pub response_body: Option<String>,
    /// Transport error or refusal, if any.
    pub error: Option<String>,
    /// `succeeded`, `retry`, `failed`, `disabled`, `refused`.
    pub outcome: String,
    /// What kind of failure: `http` (a non-2xx answer), `timeout`, `connect`, `tls`,
    /// `request` (another transport error), `refused` (SSRF guard), `not_sent`. None on success.
    pub error_class: Option<String>,
    /// Why hookline decided what it did (`HTTP 422 is final: …`, `retry 2 of 9 in 30s`).
    pub reason: Option<String>,
    /// When the next attempt is due, if one is scheduled.
    pub next_attempt_at: Option<i64>,
}

/// An attempt's result and the delivery's next state.
#[derive(Debug, Clone)]
pub struct Finished {
    /// The lease held while attempting.
    pub lease: Lease,
    /// The attempt to record.
    pub attempt: AttemptRecord,
    /// Where the delivery goes now.
    pub next: NextState,
    /// Whose attempt it was, for the webhook's health and the live tail.
    pub context: AttemptContext,
    /// The webhook's circuit breaker as the dispatcher left it after this attempt.
    pub circuit: CircuitView,
}

/// What an attempt was for: its webhook and event, as the live tail shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct AttemptContext {
    /// The webhook.
    pub webhook_id: String,
    /// The webhook's namespace.
    pub namespace: String,
    /// The event.
    pub event_id: String,
    /// The event's type name; None if the event is no longer stored.
    pub event_type: Option<String>,
    /// The event's repository.
    pub repository: Option<String>,
    /// The event's tag.
    pub tag: Option<String>,
    /// The endpoint's adaptive concurrency window when the attempt ended (for the
    /// webhook's health; None when nothing was sent).
    #[sqlx(default)]
    pub concurrency_window: Option<i64>,
}

/// A webhook's circuit breaker, as shown to its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CircuitView {
    /// Deliveries flow.
    #[default]
    Closed,
    /// Deliveries are held until this time (Unix ms), then one probe goes out.
    Open {
        /// End of the cool-down.
        until: i64,
    },
    /// One probe is in flight.
    HalfOpen,
}

impl CircuitView {
    /// The stored name: `closed`, `open`, `half_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitView::Closed => "closed",
            CircuitView::Open { .. } => "open",
            CircuitView::HalfOpen => "half_open",
        }
    }

    /// End of an open circuit's cool-down.
    pub fn until(self) -> Option<i64> {
        match self {
            CircuitView::Open { until } => Some(until),
            _ => None,
        }
    }
}

/// One finished attempt with its context: the unit of the live tail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptView {
    /// The attempt.
    pub attempt: AttemptRecord,
    /// Its webhook and event.
    pub context: AttemptContext,
    /// The delivery's status after this attempt (`pending`, `succeeded`, `failed`).
    pub delivery_status: String,
}
