//! The adaptive concurrency window of one endpoint: how many requests it may have in
//! flight, learned from how it answers.
//!
//! TCP-style: the window starts small ([`INITIAL`]) and doubles every round trip while
//! the receiver answers 2xx within its usual latency (slow start); once latency starts to
//! rise, or after the first sign of overload, it grows by one per round trip (additive
//! increase). It halves at once on
//! an overload signal (429, 503, a timeout, a refused or reset connection), and steps
//! down by a tenth when latency rises well above the receiver's own baseline, which
//! catches a receiver queueing requests before it starts refusing them. One decrease per
//! round trip: answers to requests sent before the last decrease say nothing about the
//! new window. The window never exceeds the owner's `max_concurrency` or the process's
//! caps, never drops below 1, and only grows while it is actually used. Pure: time and
//! latencies are passed in.

use std::time::{Duration, Instant};

/// Where every endpoint starts: small, so a fragile receiver is never hit hard first.
pub const INITIAL: f64 = 4.0;
/// Latency above `baseline × INFLATION + SLACK` counts as a receiver queueing requests.
const INFLATION: f64 = 2.0;
const SLACK: Duration = Duration::from_millis(5);
/// In slow start, latency above `baseline × SLOW_START_EXIT + SLACK` ends the doubling
/// (as TCP's HyStart does): the receiver has started to queue, so grow carefully from here.
const SLOW_START_EXIT: f64 = 1.5;
/// How fast the baseline follows latencies above it (per answer): slow, so a receiver
/// that gets slower under load does not raise its own bar quickly.
const BASELINE_RISE: f64 = 0.01;

/// How an answer bears on the window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Signal {
    /// Answered 2xx, in this long.
    Ok(Duration),
    /// 429, 503, a timeout or a refused/reset connection: the receiver has too much.
    Overload,
    /// Anything else (a 500, a 404): says nothing about load; the circuit breaker and the
    /// retry schedule deal with it.
    Neutral,
}

/// One endpoint's window.
#[derive(Debug, Clone)]
pub struct Window {
    limit: f64,
    /// The lowest latency seen lately (no-load round trip), creeping up slowly.
    baseline: Option<Duration>,
    /// Still doubling: no overload seen yet.
    slow_start: bool,
    /// Requests started before this instant were sent under an older, larger window.
    last_decrease: Option<Instant>,
}

impl Default for Window {
    fn default() -> Self {
        Window {
            limit: INITIAL,
            baseline: None,
            slow_start: true,
            last_decrease: None,
        }
    }
}

impl Window {
    /// Requests allowed in flight now, under `ceiling` (the owner's and the process's caps).
    pub fn allowed(&self, ceiling: usize) -> usize {
        (self.limit.floor() as usize).clamp(1, ceiling.max(1))
    }

    /// Learns from one answer to a request started at `started`, with `in_flight`
    /// requests (this one included) outstanding when it ended.
    pub fn observe(&mut self, signal: Signal, started: Instant, in_flight: usize, ceiling: usize) {
        let ceiling = ceiling.max(1) as f64;
        match signal {
            Signal::Neutral => {}
            Signal::Overload => self.decrease(started, 0.5),
            Signal::Ok(latency) => {
                let baseline = match self.baseline {
                    None => latency,
                    Some(b) if latency < b => latency,
                    Some(b) => b + (latency - b).mul_f64(BASELINE_RISE),
                };
                self.baseline = Some(baseline);
                if latency > baseline.mul_f64(INFLATION) + SLACK {
                    self.decrease(started, 0.9);
                    return;
                }
                if self.slow_start && latency > baseline.mul_f64(SLOW_START_EXIT) + SLACK {
                    self.slow_start = false;
                }
                // Grow only a window in use (at least half of it outstanding, as TCP
                // validates its window): an endpoint that gets one event a minute has
                // shown nothing about how many requests at once it can take.
                if (in_flight as f64) * 2.0 < self.limit.floor() {
                    return;
                }
                self.limit += if self.slow_start {
                    1.0 // one more per answer: doubles per round trip
                } else {
                    1.0 / self.limit // one more per window's worth of answers
                };
                self.limit = self.limit.min(ceiling);
            }
        }
    }

    fn decrease(&mut self, started: Instant, factor: f64) {
        if self.last_decrease.is_some_and(|at| started < at) {
            return; // sent under the old window: already accounted for
        }
        self.slow_start = false;
        self.limit = (self.limit * factor).max(1.0);
        self.last_decrease = Some(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Answers a full window of requests, all started at once, with a backlog behind
    /// them (each answer is replaced at once, so the window stays full).
    fn round(w: &mut Window, signal: Signal, ceiling: usize) {
        let n = w.allowed(ceiling);
        let started = Instant::now();
        for _ in 0..n {
            w.observe(signal, started, n, ceiling);
        }
    }

    #[test]
    fn a_healthy_receiver_doubles_the_window_each_round_trip_up_to_the_ceiling() {
        let mut w = Window::default();
        assert_eq!(w.allowed(1000), 4);
        round(&mut w, Signal::Ok(50 * MS), 1000);
        assert_eq!(w.allowed(1000), 8);
        round(&mut w, Signal::Ok(50 * MS), 1000);
        assert_eq!(w.allowed(1000), 16);
        for _ in 0..10 {
            round(&mut w, Signal::Ok(50 * MS), 64);
        }
        assert_eq!(w.allowed(64), 64, "never above the ceiling");
        assert_eq!(
            w.allowed(10),
            10,
            "a lower ceiling (the owner's) wins at once"
        );
    }

    #[test]
    fn overload_halves_once_per_round_trip_then_growth_is_additive() {
        let mut w = Window::default();
        for _ in 0..3 {
            round(&mut w, Signal::Ok(10 * MS), 1000);
        }
        assert_eq!(w.allowed(1000), 32);
        let sent_before = Instant::now();
        std::thread::sleep(MS);
        w.observe(Signal::Overload, Instant::now(), 32, 1000);
        assert_eq!(w.allowed(1000), 16);
        // The rest of the old window's 429s do not halve it again.
        for _ in 0..20 {
            w.observe(Signal::Overload, sent_before, 16, 1000);
        }
        assert_eq!(w.allowed(1000), 16);
        // Afterwards: about one more per round trip, no longer doubling.
        round(&mut w, Signal::Ok(10 * MS), 1000);
        round(&mut w, Signal::Ok(10 * MS), 1000);
        assert_eq!(w.allowed(1000), 17);
    }

    #[test]
    fn rising_latency_shrinks_the_window_before_any_refusal() {
        let mut w = Window::default();
        for _ in 0..3 {
            round(&mut w, Signal::Ok(10 * MS), 1000);
        }
        assert_eq!(w.allowed(1000), 32);
        std::thread::sleep(MS);
        w.observe(Signal::Ok(200 * MS), Instant::now(), 32, 1000);
        assert_eq!(w.allowed(1000), 28, "a tenth less");
    }

    #[test]
    fn rising_latency_ends_the_doubling() {
        let mut w = Window::default();
        round(&mut w, Signal::Ok(10 * MS), 1000);
        assert_eq!(w.allowed(1000), 8);
        // 1.5x the baseline + 5 ms is 20 ms: 22 ms says the receiver started to queue.
        round(&mut w, Signal::Ok(22 * MS), 1000);
        round(&mut w, Signal::Ok(22 * MS), 1000);
        assert!(
            w.allowed(1000) <= 10,
            "no longer doubling: {}",
            w.allowed(1000)
        );
    }

    #[test]
    fn an_idle_endpoint_does_not_grow_and_never_goes_below_one() {
        let mut w = Window::default();
        for _ in 0..100 {
            w.observe(Signal::Ok(5 * MS), Instant::now(), 1, 1000);
        }
        assert_eq!(
            w.allowed(1000),
            4,
            "one at a time proves nothing about four"
        );
        for _ in 0..10 {
            std::thread::sleep(MS);
            w.observe(Signal::Overload, Instant::now(), 1, 1000);
        }
        assert_eq!(w.allowed(1000), 1);
        w.observe(Signal::Neutral, Instant::now(), 1, 1000);
        assert_eq!(w.allowed(1000), 1);
    }
}
