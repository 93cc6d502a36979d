//! Request rates per caller: the API limits each API token, ingest each registry.
//!
//! A [`Limiter`] is a keyed GCRA (the `governor` crate): `per_second` sustained with
//! `burst` at once, per key. Keys are token ids and registry source names, i.e. only
//! callers that already authenticated, so the key set is bounded by the tokens that
//! exist. A limit of 0 per second turns the limiter off. No I/O; callers turn
//! [`Limited`] into RESOURCE_EXHAUSTED or 429.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::config::RateLimit;

/// A request over its caller's rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "rate limit exceeded: at most {per_second} requests per second (bursts of {burst}); retry in {}ms",
    retry_after.as_millis().max(1)
)]
pub struct Limited {
    /// The sustained rate.
    pub per_second: u32,
    /// The burst.
    pub burst: u32,
    /// When the next request would be allowed.
    pub retry_after: Duration,
}

/// A per-key rate limiter; `None` inside when turned off.
pub struct Limiter {
    rate: RateLimit,
    limiter: Option<DefaultKeyedRateLimiter<String>>,
    clock: DefaultClock,
}

impl Limiter {
    /// A limiter for `rate` (off when `rate.per_second` is 0).
    pub fn new(rate: RateLimit) -> Limiter {
        let limiter = NonZeroU32::new(rate.per_second).map(|per_second| {
            let burst = NonZeroU32::new(rate.burst).unwrap_or(per_second);
            DefaultKeyedRateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst))
        });
        Limiter {
            rate,
            limiter,
            clock: DefaultClock::default(),
        }
    }

    /// Counts one request of `key`; Err if it is over the rate.
    pub fn check(&self, key: &str) -> Result<(), Limited> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter
            .check_key(&key.to_owned())
            .map_err(|not_until| Limited {
                per_second: self.rate.per_second,
                burst: self.rate.burst,
                retry_after: not_until.wait_time_from(self.clock.now()),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_key_is_limited_alone() {
        let limiter = Limiter::new(RateLimit {
            per_second: 1,
            burst: 3,
        });
        for _ in 0..3 {
            limiter.check("a").expect("within the burst");
        }
        let limited = limiter.check("a").expect_err("over the burst");
        assert!(
            limited.retry_after > Duration::ZERO && limited.retry_after <= Duration::from_secs(1)
        );
        assert!(limited.to_string().starts_with(
            "rate limit exceeded: at most 1 requests per second (bursts of 3); retry in "
        ));
        limiter.check("b").expect("another key has its own budget");
    }

    #[test]
    fn zero_turns_it_off() {
        let limiter = Limiter::new(RateLimit {
            per_second: 0,
            burst: 0,
        });
        for _ in 0..10_000 {
            limiter.check("a").expect("unlimited");
        }
    }
}
