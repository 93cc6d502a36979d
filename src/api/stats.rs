//! GetWebhookStats: a webhook's per-minute stats (`webhook_stats`) folded into the equal
//! buckets a client asked for, with latency percentiles read off the histogram.

use super::convert::timestamp;
use super::error::Violations;
use super::proto;
use crate::store::StatsMinute;
use crate::store::batch::LATENCY_BOUNDS_MS;

const MINUTE_MS: i64 = 60_000;
/// The longest window: the console's 24-hour counts (stats are kept two days).
const MAX_WINDOW_MINUTES: i64 = 24 * 60;
/// Buckets when the client names none: one per minute, at most this many.
const DEFAULT_MAX_BUCKETS: i64 = 60;

/// A validated request: `minutes` of window in `buckets` equal buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub minutes: i64,
    pub buckets: i64,
}

/// Validates GetWebhookStats' `window` and `buckets`.
pub(crate) fn window(
    window: Option<&prost_types::Duration>,
    buckets: i32,
    v: &mut Violations,
) -> Window {
    let minutes = match window {
        None => 60,
        Some(d) if d.seconds <= 0 || d.nanos != 0 || d.seconds % 60 != 0 => {
            v.add("window", "must be a positive whole number of minutes");
            60
        }
        Some(d) if d.seconds / 60 > MAX_WINDOW_MINUTES => {
            v.add("window", "at most 24 hours");
            60
        }
        Some(d) => d.seconds / 60,
    };
    let buckets = match i64::from(buckets) {
        0 => (1..=minutes.min(DEFAULT_MAX_BUCKETS))
            .rev()
            .find(|b| minutes % b == 0)
            .unwrap_or(1),
        b if !(1..=MAX_WINDOW_MINUTES).contains(&b) => {
            v.add("buckets", "must be between 1 and 1440");
            1
        }
        b if minutes % b != 0 => {
            v.add(
                "buckets",
                format!("the window's {minutes} minutes must divide into {b} equal buckets"),
            );
            1
        }
        b => b,
    };
    Window { minutes, buckets }
}

/// Start of the window ending with the current minute (included), Unix ms.
pub(crate) fn window_start(now: i64, window: Window) -> i64 {
    let end = now - now.rem_euclid(MINUTE_MS) + MINUTE_MS;
    end - window.minutes * MINUTE_MS
}

/// Folds `minutes` (oldest first, any order works) into the window's buckets and a total.
pub(crate) fn fold(
    minutes: &[StatsMinute],
    start: i64,
    window: Window,
) -> proto::GetWebhookStatsResponse {
    let width = window.minutes / window.buckets * MINUTE_MS;
    let mut buckets: Vec<StatsMinute> = (0..window.buckets)
        .map(|i| StatsMinute {
            minute: start + i * width,
            latency: vec![0; LATENCY_BOUNDS_MS.len() + 1],
            ..StatsMinute::default()
        })
        .collect();
    let mut total = StatsMinute {
        minute: start,
        latency: vec![0; LATENCY_BOUNDS_MS.len() + 1],
        ..StatsMinute::default()
    };
    for m in minutes {
        let Ok(index) = usize::try_from((m.minute - start).div_euclid(width)) else {
            continue;
        };
        let Some(bucket) = buckets.get_mut(index) else {
            continue;
        };
        add(bucket, m);
        add(&mut total, m);
    }
    let shown = |b: &StatsMinute, width_ms: i64| proto::StatsBucket {
        start: Some(timestamp(b.minute)),
        width: Some(prost_types::Duration {
            seconds: width_ms / 1000,
            nanos: 0,
        }),
        succeeded: b.succeeded,
        retried: b.retried,
        failed: b.failed,
        p50_ms: percentile(&b.latency, 0.50),
        p99_ms: percentile(&b.latency, 0.99),
    };
    proto::GetWebhookStatsResponse {
        buckets: buckets.iter().map(|b| shown(b, width)).collect(),
        total: Some(shown(&total, window.minutes * MINUTE_MS)),
    }
}

fn add(into: &mut StatsMinute, m: &StatsMinute) {
    into.succeeded += m.succeeded;
    into.retried += m.retried;
    into.failed += m.failed;
    for (sum, count) in into.latency.iter_mut().zip(&m.latency) {
        *sum += count;
    }
}

/// The `q` quantile (0..=1) of a latency histogram, interpolated linearly within its
/// bucket as Prometheus' `histogram_quantile` does; beyond the last bound, the last bound.
pub(crate) fn percentile(counts: &[i64], q: f64) -> f64 {
    let total: i64 = counts.iter().sum();
    if total == 0 {
        return 0.0;
    }
    let rank = q * total as f64;
    let mut below = 0i64;
    for (i, &count) in counts.iter().enumerate() {
        if count > 0 && (below + count) as f64 >= rank {
            let Some(&upper) = LATENCY_BOUNDS_MS.get(i) else {
                break; // the open-ended bucket
            };
            let lower = if i == 0 { 0 } else { LATENCY_BOUNDS_MS[i - 1] };
            let within = (rank - below as f64) / count as f64;
            return lower as f64 + (upper - lower) as f64 * within;
        }
        below += count;
    }
    LATENCY_BOUNDS_MS[LATENCY_BOUNDS_MS.len() - 1] as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn duration(seconds: i64) -> prost_types::Duration {
        prost_types::Duration { seconds, nanos: 0 }
    }

    #[test]
    fn windows_default_to_an_hour_by_the_minute() {
        let mut v = Violations::default();
        assert_eq!(
            window(None, 0, &mut v),
            Window {
                minutes: 60,
                buckets: 60
            }
        );
        let day = window(Some(&duration(86_400)), 0, &mut v);
        assert_eq!(
            day,
            Window {
                minutes: 1440,
                buckets: 60
            }
        );
        assert_eq!(window(Some(&duration(420)), 0, &mut v).buckets, 7);
        assert!(v.check().is_ok());
    }

    #[test]
    fn bad_windows_name_the_field() {
        for (w, b, field) in [
            (Some(duration(90)), 0, "window"),
            (Some(duration(-60)), 0, "window"),
            (Some(duration(2 * 86_400)), 0, "window"),
            (None, 7, "buckets"),
            (None, -1, "buckets"),
        ] {
            let mut v = Violations::default();
            window(w.as_ref(), b, &mut v);
            let status = v.check().expect_err("refused");
            assert!(status.message().starts_with(field), "{}", status.message());
        }
    }

    #[test]
    fn percentiles_interpolate_within_buckets() {
        let mut counts = vec![0; LATENCY_BOUNDS_MS.len() + 1];
        assert_eq!(percentile(&counts, 0.5), 0.0);
        counts[0] = 100; // all within 0..=10 ms
        assert_eq!(percentile(&counts, 0.5), 5.0);
        assert_eq!(percentile(&counts, 0.99), 9.9);
        counts[3] = 100; // half within 50..=100 ms
        assert_eq!(percentile(&counts, 0.5), 10.0);
        assert_eq!(percentile(&counts, 0.99), 99.0);
        counts[LATENCY_BOUNDS_MS.len()] = 1000; // mostly beyond 10 s
        assert_eq!(percentile(&counts, 0.99), 10_000.0);
    }

    #[test]
    fn minutes_fold_into_buckets_and_a_total() {
        let start = 1_800_000_000_000 - 1_800_000_000_000 % MINUTE_MS;
        let w = Window {
            minutes: 60,
            buckets: 6,
        };
        let minute = |offset: i64, succeeded: i64| StatsMinute {
            minute: start + offset * MINUTE_MS,
            succeeded,
            latency: vec![succeeded, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            ..StatsMinute::default()
        };
        let folded = fold(
            &[minute(0, 1), minute(9, 2), minute(10, 4), minute(60, 100)],
            start,
            w,
        );
        let counts: Vec<i64> = folded.buckets.iter().map(|b| b.succeeded).collect();
        assert_eq!(counts, vec![3, 4, 0, 0, 0, 0], "minute 60 is outside");
        assert_eq!(folded.total.expect("total").succeeded, 7);
        assert_eq!(folded.buckets[1].width, Some(duration(600)));
    }
}
