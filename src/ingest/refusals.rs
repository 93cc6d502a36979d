//! Refused notify requests (401, 429), logged so that a flood cannot flood the log.
//!
//! A misconfigured or hostile client repeats its refused request as fast as it can (an
//! 8-second burst above the rate limit once wrote 5 MB of warnings). So each refusal is
//! counted in `hookline_notify_refused_total{reason}`, the first one from a source in a
//! quiet period is logged at once (someone is probably looking at a new set-up), and the
//! ones after it are logged as one summary line per source and reason every
//! [`SUMMARY_EVERY`]. A source that stayed quiet for a whole period is forgotten, so its
//! next refusal is logged at once again. Memory is bounded: past [`MAX_SOURCES`] sources
//! in one period, further ones share the key `other sources`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// How often repeated refusals are summarised.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(60);
/// Sources tracked at once; the rest are summed under one key.
const MAX_SOURCES: usize = 1024;
/// The key of sources past `MAX_SOURCES`.
const OTHER_SOURCES: &str = "other sources";

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// 401: no token, or one that is neither the env token nor a live registry token.
    Unauthenticated,
    /// 429: the source is over `ingest.rate_limit`.
    RateLimited,
}

impl Refusal {
    /// The metric label and log field.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Unauthenticated => "unauthenticated",
            Refusal::RateLimited => "rate_limited",
        }
    }
}

/// Repeats of one (reason, source) in the current period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Why.
    pub refusal: Refusal,
    /// Who: the registry source (429) or the peer address (401).
    pub source: String,
    /// Refusals after the first one logged, in this period.
    pub repeats: u64,
}

/// The refusal counter of one ingest server.
#[derive(Default)]
pub struct Refusals {
    /// (reason, source) → repeats not yet logged. Present = logged recently.
    seen: Mutex<HashMap<(Refusal, String), u64>>,
}

impl Refusals {
    /// A counter whose summaries are logged every [`SUMMARY_EVERY`] by a task that ends
    /// when the counter is dropped. Call from within the runtime.
    pub fn start() -> Arc<Refusals> {
        let refusals = Arc::new(Refusals::default());
        tokio::spawn(summarise(Arc::downgrade(&refusals)));
        refusals
    }

    /// Counts one refusal; logs it if it is the first from `source` in a while.
    pub fn record(&self, refusal: Refusal, source: &str) {
        metrics::counter!("hookline_notify_refused_total", "reason" => refusal.label())
            .increment(1);
        let first = {
            let mut seen = self
                .seen
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            let full = seen.len() >= MAX_SOURCES;
            let key = if full && !seen.contains_key(&(refusal, source.to_owned())) {
                (refusal, OTHER_SOURCES.to_owned())
            } else {
                (refusal, source.to_owned())
            };
            match seen.get_mut(&key) {
                Some(repeats) => {
                    *repeats += 1;
                    false
                }
                None => {
                    seen.insert(key, 0);
                    true
                }
            }
        };
        if first {
            tracing::warn!(
                reason = refusal.label(),
                source,
                "notify refused; repeats from this source are summarised every {}s",
                SUMMARY_EVERY.as_secs()
            );
        }
    }

    /// Ends the period: returns the repeats to log, forgets sources that were quiet.
    pub fn take_summaries(&self) -> Vec<Summary> {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let mut summaries = Vec::new();
        seen.retain(|(refusal, source), repeats| {
            if *repeats == 0 {
                return false;
            }
            summaries.push(Summary {
                refusal: *refusal,
                source: source.clone(),
                repeats: std::mem::take(repeats),
            });
            true
        });
        summaries.sort_by_key(|summary| std::cmp::Reverse(summary.repeats));
        summaries
    }
}

/// Logs the summaries every period while the counter lives.
async fn summarise(refusals: Weak<Refusals>) {
    let mut every = tokio::time::interval(SUMMARY_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await; // the first tick is immediate
    loop {
        every.tick().await;
        let Some(refusals) = refusals.upgrade() else {
            return;
        };
        for summary in refusals.take_summaries() {
            tracing::warn!(
                reason = summary.refusal.label(),
                source = %summary.source,
                repeats = summary.repeats,
                "notify refused {} more times in the last {}s",
                summary.repeats,
                SUMMARY_EVERY.as_secs()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_one_line_then_one_summary_per_period_and_quiet_sources_are_forgotten() {
        let refusals = Refusals::default();
        for _ in 0..500 {
            refusals.record(Refusal::RateLimited, "acme");
        }
        refusals.record(Refusal::Unauthenticated, "10.0.0.7");
        // 499 repeats of acme; the peer's single refusal was logged when it happened.
        assert_eq!(
            refusals.take_summaries(),
            vec![Summary {
                refusal: Refusal::RateLimited,
                source: "acme".into(),
                repeats: 499
            }]
        );
        // Next period: acme is still known (its next refusal is summarised, not logged),
        // the quiet peer is forgotten.
        refusals.record(Refusal::RateLimited, "acme");
        let seen = refusals.seen.lock().expect("lock").len();
        assert_eq!(seen, 1);
        assert_eq!(refusals.take_summaries()[0].repeats, 1);
        assert!(refusals.take_summaries().is_empty());
        assert!(refusals.seen.lock().expect("lock").is_empty());
    }

    #[test]
    fn sources_past_the_bound_share_one_key() {
        let refusals = Refusals::default();
        for i in 0..MAX_SOURCES + 10 {
            refusals.record(Refusal::Unauthenticated, &format!("peer-{i}"));
            refusals.record(Refusal::Unauthenticated, &format!("peer-{i}"));
        }
        let summaries = refusals.take_summaries();
        assert_eq!(summaries.len(), MAX_SOURCES + 1);
        // The first of the ten extra peers opened the shared key; the other 19 refusals repeat it.
        assert_eq!(summaries[0].source, OTHER_SOURCES);
        assert_eq!(summaries[0].repeats, 19);
    }
}
