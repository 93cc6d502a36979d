//! Per-webhook circuit breakers: stop hammering an endpoint that keeps failing.
//!
//! After `threshold` consecutive failures the circuit opens: the webhook's deliveries
//! stay in the queue, untouched, for `cooldown`. Then one probe goes out (half-open);
//! success closes the circuit, failure opens it again. In memory, per dispatcher
//! process; `now` is passed in so the logic is testable without a clock.

use std::collections::HashMap;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One probe is in flight.
    HalfOpen,
}

/// Circuit breakers for every webhook this dispatcher has tried.
#[derive(Debug)]
pub struct Circuits {
    threshold: u32,
    cooldown: Duration,
    states: HashMap<String, State>,
}

impl Circuits {
    /// Breakers opening after `threshold` failures for `cooldown`.
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Circuits {
            threshold: threshold.max(1),
            cooldown,
            states: HashMap::new(),
        }
    }

    /// How many requests the webhook may have in flight now: 0 while open or while
    /// its probe runs, 1 for the probe once the cool-down is over, else `cap`.
    pub fn allowance(&mut self, webhook_id: &str, cap: usize, now: Instant) -> usize {
        match self.states.get(webhook_id).copied() {
            None | Some(State::Closed { .. }) => cap,
            Some(State::Open { until }) if now >= until => 1,
            Some(State::Open { .. }) | Some(State::HalfOpen) => 0,
        }
    }

    /// A request to the webhook starts. Past an open circuit's cool-down, it is the probe.
    pub fn on_start(&mut self, webhook_id: &str, now: Instant) {
        if let Some(state) = self.states.get_mut(webhook_id)
            && matches!(state, State::Open { until } if now >= *until)
        {
            *state = State::HalfOpen;
        }
    }

    /// The circuit as its owner sees it; `now_ms` is the wall clock at `now`.
    pub fn view(&self, webhook_id: &str, now: Instant, now_ms: i64) -> crate::store::CircuitView {
        use crate::store::CircuitView;
        match self.states.get(webhook_id) {
            None | Some(State::Closed { .. }) => CircuitView::Closed,
            Some(State::Open { until }) => CircuitView::Open {
                until: now_ms + until.saturating_duration_since(now).as_millis() as i64,
            },
            Some(State::HalfOpen) => CircuitView::HalfOpen,
        }
    }

    /// A request succeeded: the circuit closes.
    pub fn on_success(&mut self, webhook_id: &str) {
        self.states.remove(webhook_id);
    }

    /// A request failed. Returns true if this opened the circuit.
    pub fn on_failure(&mut self, webhook_id: &str, now: Instant) -> bool {
        let state = self
            .states
            .entry(webhook_id.to_owned())
            .or_insert(State::Closed { failures: 0 });
        match state {
            State::Closed { failures } => {
                *failures += 1;
                if *failures >= self.threshold {
                    *state = State::Open {
                        until: now + self.cooldown,
                    };
                    return true;
                }
                false
            }
            State::HalfOpen | State::Open { .. } => {
                *state = State::Open {
                    until: now + self.cooldown,
                };
                true
            }
        }
    }

    /// Webhooks that may not start a request now: open and cooling down, or probing.
    pub fn blocked(&self, now: Instant) -> impl Iterator<Item = &str> {
        self.states
            .iter()
            .filter_map(move |(id, state)| match state {
                State::Open { until } if now < *until => Some(id.as_str()),
                State::HalfOpen => Some(id.as_str()),
                _ => None,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_then_probes_once() {
        let t0 = Instant::now();
        let mut c = Circuits::new(3, Duration::from_secs(30));
        assert!(!c.on_failure("w", t0));
        assert!(!c.on_failure("w", t0));
        assert_eq!(c.allowance("w", 4, t0), 4);
        assert!(c.on_failure("w", t0), "third failure opens");
        assert_eq!(c.allowance("w", 4, t0 + Duration::from_secs(29)), 0);
        let later = t0 + Duration::from_secs(30);
        assert_eq!(
            c.allowance("w", 4, later),
            1,
            "one probe after the cool-down"
        );
        c.on_start("w", later);
        assert_eq!(c.allowance("w", 4, later), 0, "only one probe");
        assert!(c.on_failure("w", later), "a failed probe reopens");
        assert_eq!(c.allowance("w", 4, later + Duration::from_secs(1)), 0);
        let again = later + Duration::from_secs(30);
        c.on_start("w", again);
        c.on_success("w");
        assert_eq!(c.allowance("w", 4, again), 4, "a good probe closes");
        assert_eq!(c.blocked(again).count(), 0);
    }

    #[test]
    fn a_success_resets_the_count() {
        let t0 = Instant::now();
        let mut c = Circuits::new(2, Duration::from_secs(1));
        c.on_failure("w", t0);
        c.on_success("w");
        assert!(!c.on_failure("w", t0));
        assert!(c.on_failure("w", t0));
    }
}
