//! Storing events: the plan for fanning them out in the same transaction (`FanOutNow`),
//! what storing a batch did, and what a dispatcher's fan-out pass did. Plain data.

use std::time::Duration;

use super::{ClaimedDelivery, NewDelivery};
use crate::event::Event;

/// Result of storing a batch of events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InsertedEvents {
    /// Events that were new.
    pub inserted: usize,
    /// Events already stored (a registry re-sent them).
    pub duplicates: usize,
}

/// A fan-out plan for the transaction that stores events (see `store/intake.rs`): the
/// dispatcher of the storing process matches the new events and leases what may start.
pub struct FanOutNow<'a> {
    /// The webhooks revision `plan` was built from; checked inside the transaction.
    pub webhooks_revision: i64,
    /// The deliveries an event needs (a [`Planner`](crate::store::Planner)).
    pub plan: &'a (dyn Fn(&Event) -> Vec<NewDelivery> + Send + Sync),
    /// Who leases (the dispatcher's id, as in a claim).
    pub owner: &'a str,
    /// How long the lease lasts unless extended.
    pub lease: Duration,
    /// At most this many deliveries leased.
    pub limit: usize,
    /// Webhooks whose deliveries must not be leased now (full lane, open circuit, pause).
    pub skip_webhooks: &'a [String],
    /// Where several dispatchers share the database, the webhooks this one serves (see
    /// [`Only::Served`](crate::store::Only)): only their deliveries are leased.
    pub served: Option<&'a std::collections::HashSet<String>>,
}

/// What storing a batch of events did.
#[derive(Debug, Default)]
pub struct Stored {
    /// Per envelope, how many events were new.
    pub counts: Vec<InsertedEvents>,
    /// Deliveries fanned out and leased to the caller's dispatcher, to hand it after the
    /// commit.
    pub leased: Vec<ClaimedDelivery>,
    /// Whether a dispatcher has anything to do: events left unfanned, or deliveries that
    /// were not leased.
    pub work_left: bool,
}

/// What one fan-out pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FanOutReport {
    /// Events fanned out.
    pub events: usize,
    /// Deliveries created.
    pub deliveries: usize,
    /// Webhooks changed since the plan was built: nothing was done.
    pub stale: bool,
}
