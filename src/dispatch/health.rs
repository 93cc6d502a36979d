//! A webhook's health after each attempt: its circuit breaker and "failing since" clock,
//! disabling it when it is gone or has failed for too long, and telling its owner
//! (`notices.rs`) what changed. `deliver.rs` calls [`Dispatcher::track_health`] once per
//! attempt.

use std::time::{Duration, Instant};

use super::deliver::Decided;
use super::matcher::CompiledWebhook;
use super::{Dispatcher, Shared, lock, payload};
use crate::store::CircuitView;

/// The circuit breaker and the "failing since" clock after one attempt, under the lock:
/// how the clock changed (to write to the store), whether the webhook has failed for
/// longer than `disable_after` (why, to disable it), and the circuit as its owner sees it.
/// `stored_since` is the clock as the webhook was loaded, for its first attempt here.
pub(super) fn learn(
    shared: &mut Shared,
    id: &str,
    stored_since: Option<i64>,
    delivered: bool,
    disable_after: Duration,
    now: i64,
) -> (Option<Option<i64>>, Option<String>, CircuitView) {
    let known = *shared
        .failing_since
        .entry(id.to_owned())
        .or_insert(stored_since);
    if delivered {
        shared.lanes.circuits.on_success(id);
        shared.failing_since.insert(id.to_owned(), None);
        return (known.is_some().then_some(None), None, CircuitView::Closed);
    }
    let instant = Instant::now();
    if shared.lanes.circuits.on_failure(id, instant) {
        tracing::warn!(webhook_id = %id, "circuit opened: holding this webhook's deliveries for the cool-down");
    }
    let circuit = shared.lanes.circuits.view(id, instant, now);
    let (transition, disable) = match known {
        None => {
            shared.failing_since.insert(id.to_owned(), Some(now));
            (Some(Some(now)), None)
        }
        Some(since) if now - since >= disable_after.as_millis() as i64 => {
            let reason = format!(
                "failing continuously since {} (longer than {})",
                payload::rfc3339(since),
                humantime::format_duration(disable_after)
            );
            (None, Some(reason))
        }
        Some(_) => (None, None),
    };
    (transition, disable, circuit)
}

impl Dispatcher {
    /// Circuit breaker, "failing since" clock, and disabling the webhook when it is gone
    /// or has failed for too long.
    pub(super) async fn track_health(
        &self,
        webhook: &CompiledWebhook,
        decided: &Decided,
        now: i64,
        may_report: bool,
    ) -> CircuitView {
        let id = &webhook.webhook.id;
        let (transition, failing_too_long, circuit, since) = {
            let mut shared = lock(&self.shared);
            let (transition, failing_too_long, circuit) = learn(
                &mut shared,
                id,
                webhook.webhook.failing_since,
                decided.delivered(),
                self.config.disable_after,
                now,
            );
            let since = shared.failing_since.get(id).copied().flatten();
            (transition, failing_too_long, circuit, since)
        };
        if may_report {
            let notices = &self.notices;
            match since {
                // Only a stopped clock can end a run that was reported.
                None if transition == Some(None) => notices.delivered(&webhook.webhook),
                None => {}
                Some(since) => {
                    // The first failure starts the run; a second is worth telling.
                    if transition.is_none() {
                        notices.failed_again(&webhook.webhook, since, decided.reason.as_deref());
                    }
                    if matches!(circuit, CircuitView::Open { .. }) {
                        notices.circuit_opened(&webhook.webhook, since);
                    }
                }
            }
        }
        let disable = decided.disable.clone().or(failing_too_long);
        if let Some(since) = transition
            && let Err(error) = self.store.set_failing_since(id, since).await
        {
            tracing::warn!(webhook_id = %id, %error, "could not record the webhook's failure clock");
        }
        if let Some(reason) = disable {
            match self.store.disable_webhook(id, &reason, now).await {
                Ok(()) => {
                    metrics::counter!("hookline_webhooks_disabled_total").increment(1);
                    tracing::warn!(webhook_id = %id, %reason, "webhook disabled");
                    if may_report {
                        self.notices.disabled(&webhook.webhook, now, &reason);
                    }
                }
                Err(error) => {
                    tracing::warn!(webhook_id = %id, %error, "could not disable the webhook")
                }
            }
        }
        circuit
    }
}
