//! Retry timing for failed deliveries.
//!
//! Pure functions: given how many attempts failed, an optional `Retry-After` hint and a
//! jitter sample, say how long to wait before the next attempt, or that we should give up.
//! No clock reads, no randomness and no I/O: the dispatcher passes `now` and `jitter` in,
//! then turns the answer into `NextState::RetryAt` or `NextState::Failed`.

use std::time::{Duration, SystemTime};

/// At most this share of the scheduled delay is added as jitter, so endpoints that failed
/// together do not all retry in the same instant.
const JITTER_SHARE: f64 = 0.2;

/// The shortest wait a `Retry-After` hint can ask for: `Retry-After: 0` must not turn into
/// a tight loop against an endpoint that is already overloaded.
const RETRY_AFTER_FLOOR: Duration = Duration::from_secs(1);

/// When to try a failed delivery again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Wait before attempt n+1 after n failures; its length is the number of retries, so a
    /// delivery gets `schedule.len() + 1` attempts in all.
    pub schedule: Vec<Duration>,
    /// Upper bound on a receiver's `Retry-After`, so one endpoint cannot park a delivery
    /// for days (or overflow the timestamp) by answering with a huge value.
    pub retry_after_max: Duration,
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Try again after this long.
    RetryIn(Duration),
    /// The schedule is exhausted: the delivery fails for good.
    GiveUp,
}

impl RetryPolicy {
    /// After `attempts_made` failed attempts (>= 1; 0 is treated as 1): wait
    /// `schedule[attempts_made - 1]` plus jitter, or give up past the end of the schedule.
    ///
    /// `jitter` is a sample in [0, 1) supplied by the caller and adds up to 20% of the
    /// delay; values outside that range (or NaN) are clamped. A `retry_after` hint (from a
    /// 429 or 503) replaces the scheduled delay, capped at `retry_after_max` and never
    /// shorter than 1 s; it gets no jitter (the receiver named the time) and it does not
    /// extend the number of attempts.
    pub fn next(&self, attempts_made: u32, retry_after: Option<Duration>, jitter: f64) -> Decision {
        let index = usize::try_from(attempts_made.max(1) - 1).unwrap_or(usize::MAX);
        let Some(&scheduled) = self.schedule.get(index) else {
            return Decision::GiveUp;
        };
        if let Some(hint) = retry_after {
            return Decision::RetryIn(hint.min(self.retry_after_max).max(RETRY_AFTER_FLOOR));
        }
        Decision::RetryIn(scheduled.saturating_add(jitter_for(scheduled, jitter)))
    }
}

/// The extra wait for one jitter sample: `delay * 20% * jitter`, with jitter clamped into
/// [0, 1]. Never panics, whatever the inputs.
fn jitter_for(delay: Duration, jitter: f64) -> Duration {
    let jitter = if jitter.is_nan() {
        0.0
    } else {
        jitter.clamp(0.0, 1.0)
    };
    Duration::try_from_secs_f64(delay.as_secs_f64() * JITTER_SHARE * jitter)
        .unwrap_or(Duration::ZERO)
}

/// Parses a `Retry-After` header value: delta-seconds (`120`) or an HTTP-date
/// (`Wed, 21 Oct 2015 07:28:00 GMT`, and the obsolete RFC 850 and asctime forms), the latter
/// relative to `now`. `None` if the value is unparseable or names a time before `now`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits for u64 is garbage, not "forever".
        return value.parse::<u64>().ok().map(Duration::from_secs);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    at.duration_since(now).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            schedule: vec![secs(5), secs(30), secs(120)],
            retry_after_max: secs(600),
        }
    }

    #[test]
    fn walks_the_schedule_then_gives_up() {
        let p = policy();
        assert_eq!(p.next(1, None, 0.0), Decision::RetryIn(secs(5)));
        assert_eq!(p.next(2, None, 0.0), Decision::RetryIn(secs(30)));
        assert_eq!(p.next(3, None, 0.0), Decision::RetryIn(secs(120)));
        assert_eq!(p.next(4, None, 0.0), Decision::GiveUp);
        assert_eq!(p.next(u32::MAX, None, 0.0), Decision::GiveUp);
    }

    #[test]
    fn zero_attempts_is_treated_as_one() {
        assert_eq!(policy().next(0, None, 0.0), Decision::RetryIn(secs(5)));
    }

    #[test]
    fn empty_schedule_never_retries() {
        let p = RetryPolicy {
            schedule: vec![],
            retry_after_max: secs(600),
        };
        assert_eq!(p.next(1, None, 0.0), Decision::GiveUp);
        assert_eq!(p.next(1, Some(secs(10)), 0.0), Decision::GiveUp);
    }

    #[test]
    fn jitter_adds_at_most_twenty_percent() {
        let p = policy();
        assert_eq!(p.next(2, None, 0.5), Decision::RetryIn(secs(33)));
        for i in 0..100 {
            let j = f64::from(i) / 100.0;
            let Decision::RetryIn(d) = p.next(2, None, j) else {
                panic!("should retry");
            };
            assert!(d >= secs(30) && d < secs(36), "jitter {j} gave {d:?}");
        }
    }

    #[test]
    fn out_of_range_jitter_is_clamped() {
        let p = policy();
        assert_eq!(p.next(1, None, -3.0), Decision::RetryIn(secs(5)));
        assert_eq!(p.next(1, None, f64::NAN), Decision::RetryIn(secs(5)));
        assert_eq!(p.next(1, None, 7.0), Decision::RetryIn(secs(6)));
        assert_eq!(p.next(1, None, f64::INFINITY), Decision::RetryIn(secs(6)));
    }

    #[test]
    fn huge_delays_saturate_instead_of_panicking() {
        let p = RetryPolicy {
            schedule: vec![Duration::MAX],
            retry_after_max: Duration::MAX,
        };
        assert_eq!(p.next(1, None, 0.99), Decision::RetryIn(Duration::MAX));
    }

    #[test]
    fn retry_after_replaces_the_schedule_without_jitter() {
        let p = policy();
        assert_eq!(p.next(1, Some(secs(90)), 0.9), Decision::RetryIn(secs(90)));
        assert_eq!(p.next(3, Some(secs(2)), 0.9), Decision::RetryIn(secs(2)));
    }

    #[test]
    fn retry_after_is_capped_and_floored() {
        let p = policy();
        assert_eq!(
            p.next(1, Some(secs(86_400)), 0.0),
            Decision::RetryIn(secs(600))
        );
        assert_eq!(
            p.next(1, Some(Duration::ZERO), 0.0),
            Decision::RetryIn(secs(1))
        );
        assert_eq!(
            p.next(1, Some(Duration::from_millis(300)), 0.0),
            Decision::RetryIn(secs(1))
        );
    }

    #[test]
    fn floor_wins_over_a_tiny_cap() {
        let p = RetryPolicy {
            schedule: vec![secs(5)],
            retry_after_max: Duration::from_millis(10),
        };
        assert_eq!(p.next(1, Some(secs(30)), 0.0), Decision::RetryIn(secs(1)));
    }

    #[test]
    fn retry_after_does_not_extend_attempts() {
        assert_eq!(policy().next(4, Some(secs(10)), 0.0), Decision::GiveUp);
    }

    #[test]
    fn parses_delta_seconds() {
        let now = SystemTime::UNIX_EPOCH;
        assert_eq!(parse_retry_after("120", now), Some(secs(120)));
        assert_eq!(parse_retry_after("  0 ", now), Some(secs(0)));
        assert_eq!(parse_retry_after("007", now), Some(secs(7)));
    }

    #[test]
    fn parses_http_dates_relative_to_now() {
        // Wed, 21 Oct 2015 07:28:00 GMT is 1445412480 s after the epoch.
        let at = SystemTime::UNIX_EPOCH + secs(1_445_412_480);
        let now = at - secs(90);
        for form in [
            "Wed, 21 Oct 2015 07:28:00 GMT",
            "Wednesday, 21-Oct-15 07:28:00 GMT",
            "Wed Oct 21 07:28:00 2015",
        ] {
            assert_eq!(parse_retry_after(form, now), Some(secs(90)), "{form}");
        }
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", at),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn past_dates_and_negative_values_are_none() {
        let now = SystemTime::UNIX_EPOCH + secs(1_445_412_480 + 1);
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            None
        );
        assert_eq!(parse_retry_after("-5", now), None);
    }

    #[test]
    fn garbage_is_none() {
        let now = SystemTime::UNIX_EPOCH;
        for value in [
            "",
            "   ",
            "soon",
            "1.5",
            "+5",
            "5s",
            "1e3",
            "99999999999999999999999",
            "Wed, 32 Oct 2015 07:28:00 GMT",
            "2015-10-21T07:28:00Z",
        ] {
            assert_eq!(parse_retry_after(value, now), None, "{value:?}");
        }
    }
}
