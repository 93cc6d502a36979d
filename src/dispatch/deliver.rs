//! One delivery: render, sign, send through the transport, decide what happens next,
//! hand the result over.
//!
//! The decision ([`decide`], docs/operations.md#which-answers-are-final) reads only the
//! transport's [`Outcome`], never a protocol's codes (the HTTP transport maps those, in
//! `client.rs`): delivered completes; rejected fails the delivery at once, for its owner to
//! fix and redeliver, and a rejection that says the destination is gone also disables the
//! webhook; not sent (the SSRF guard refused the address) fails at once; a retry is
//! rescheduled per the retry policy, honouring the destination's `Retry-After`, until the
//! schedule runs out. Every attempt records why (`reason`). Failures feed the webhook's
//! circuit breaker and its "failing since" clock, which disables it after `disable_after`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::backoff::{Decision, RetryPolicy};
use super::lanes::Feedback;
use super::matcher::CompiledWebhook;
use super::recorder::Outcome as Recorded;
use super::transport::{Attempt, Destination, Outcome};
use super::window::Signal;
use super::{Dispatcher, Shared, lock, payload, sign};
use crate::store::{
    AttemptContext, AttemptRecord, CircuitView, ClaimedDelivery, Finished, NextState, decode_event,
    now_ms,
};

/// How an attempt ended, for the attempt log and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Succeeded,
    Retry,
    Failed,
    /// The destination is gone (HTTP 410): the webhook is disabled.
    Gone,
    /// The SSRF guard refused the destination: nothing was sent; the delivery fails at once.
    Refused,
}

impl Verdict {
    fn as_str(self) -> &'static str {
        match self {
            Verdict::Succeeded => "succeeded",
            Verdict::Retry => "retry",
            Verdict::Failed => "failed",
            Verdict::Gone => "disabled",
            Verdict::Refused => "refused",
        }
    }
}

/// What one outcome means for the delivery, its endpoint and its webhook.
#[derive(Debug, Clone, PartialEq)]
struct Decided {
    verdict: Verdict,
    next: NextState,
    /// Why it was retried or why it is final.
    reason: Option<String>,
    /// What the outcome says about the endpoint's load, for its window.
    signal: Signal,
    /// Pause the whole endpoint this long: the destination's `Retry-After`, capped.
    pause: Option<Duration>,
    /// Disable the webhook, for this reason (the destination is gone).
    disable: Option<String>,
}

impl Decided {
    fn delivered(&self) -> bool {
        self.verdict == Verdict::Succeeded
    }
}

/// Decides from a transport's outcome alone: the attempt's verdict, the delivery's next
/// state and the reason, and what the endpoint's window and the webhook learn. `tries`
/// counts the attempts since the latest redelivery or replay, this one included; `took`
/// is how long the send took, `jitter` a sample in [0, 1) for the retry delay.
fn decide(
    outcome: &Outcome,
    took: Duration,
    tries: i64,
    policy: &RetryPolicy,
    now: i64,
    jitter: f64,
) -> Decided {
    let failed = |verdict, reason: &str| Decided {
        verdict,
        next: NextState::Failed,
        reason: Some(reason.to_owned()),
        signal: Signal::Neutral,
        pause: None,
        disable: None,
    };
    let (class, subject, retry_after) = match outcome {
        Outcome::Delivered => {
            return Decided {
                verdict: Verdict::Succeeded,
                next: NextState::Succeeded,
                reason: None,
                signal: Signal::Ok(took),
                pause: None,
                disable: None,
            };
        }
        Outcome::Rejected {
            reason,
            disable: Some(why),
        } => {
            return Decided {
                disable: Some(format!("{why} at {}", payload::rfc3339(now))),
                ..failed(Verdict::Gone, reason)
            };
        }
        Outcome::Rejected {
            reason,
            disable: None,
        } => return failed(Verdict::Failed, reason),
        Outcome::NotSent { reason } => return failed(Verdict::Refused, reason),
        Outcome::Retry {
            class,
            subject,
            retry_after,
        } => (class, subject, *retry_after),
    };
    let signal = if class.overload() {
        Signal::Overload
    } else {
        Signal::Neutral
    };
    let pause = retry_after.map(|after| after.min(policy.retry_after_max));
    let attempts = policy.schedule.len() + 1;
    match policy.next(
        u32::try_from(tries).unwrap_or(u32::MAX),
        retry_after,
        jitter,
    ) {
        Decision::RetryIn(delay) => {
            let hinted = if retry_after.is_some() {
                " (as its Retry-After asked)"
            } else {
                ""
            };
            let reason = format!(
                "{subject} is retried: attempt {} of {attempts} in {}{hinted}",
                tries + 1,
                humantime::format_duration(Duration::from_secs(delay.as_secs().max(1)))
            );
            Decided {
                verdict: Verdict::Retry,
                next: NextState::RetryAt(now + delay.as_millis() as i64),
                reason: Some(reason),
                signal,
                pause,
                disable: None,
            }
        }
        Decision::GiveUp => {
            let reason = format!(
                "{subject} and no retry left ({attempts} attempts): failed; redeliver or replay once the receiver is fixed"
            );
            Decided {
                signal,
                pause,
                ..failed(Verdict::Failed, &reason)
            }
        }
    }
}

/// The circuit breaker and the "failing since" clock after one attempt, under the lock:
/// how the clock changed (to write to the store), whether the webhook has failed for
/// longer than `disable_after` (why, to disable it), and the circuit as its owner sees it.
fn learn(
    shared: &mut Shared,
    webhook: &CompiledWebhook,
    delivered: bool,
    disable_after: Duration,
    now: i64,
) -> (Option<Option<i64>>, Option<String>, CircuitView) {
    let id = &webhook.webhook.id;
    let known = *shared
        .failing_since
        .entry(id.clone())
        .or_insert(webhook.webhook.failing_since);
    if delivered {
        shared.lanes.circuits.on_success(id);
        shared.failing_since.insert(id.clone(), None);
        return (known.is_some().then_some(None), None, CircuitView::Closed);
    }
    let instant = Instant::now();
    if shared.lanes.circuits.on_failure(id, instant) {
        tracing::warn!(webhook_id = %id, "circuit opened: holding this webhook's deliveries for the cool-down");
    }
    let circuit = shared.lanes.circuits.view(id, instant, now);
    let (transition, disable) = match known {
        None => {
            shared.failing_since.insert(id.clone(), Some(now));
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
    /// Delivers one claimed delivery. Cancelled only at the end of the shutdown grace
    /// period: then nothing is recorded and its lease is released by the caller.
    pub(super) async fn deliver(
        self: Arc<Self>,
        webhook: Arc<CompiledWebhook>,
        delivery: ClaimedDelivery,
        cancel: CancellationToken,
    ) {
        let webhook_id = webhook.webhook.id.clone();
        let ordered = delivery.ordering_key.is_some();
        let event = match delivery.event_body.as_deref().map(decode_event) {
            Some(Ok(event)) => event,
            Some(Err(error)) => {
                tracing::error!(delivery_id = %delivery.lease.delivery_id, %error, "stored event does not decode");
                self.finish_slot(&webhook_id, Feedback::none());
                return self
                    .give_up_unsent(delivery, "the stored event cannot be decoded")
                    .await;
            }
            None => {
                self.finish_slot(&webhook_id, Feedback::none());
                return self
                    .give_up_unsent(delivery, "the event is no longer stored")
                    .await;
            }
        };
        if webhook.keys.is_empty() {
            // Never send unsigned: receivers could not tell us from a forger.
            self.finish_slot(&webhook_id, Feedback::none());
            return self
                .give_up_unsent(delivery, "the webhook has no usable signing secret")
                .await;
        }
        // Enrichment from the registry: stored on the event once, so every attempt renders
        // the same bytes; a no-op for sources without a registry URL.
        let event = match &self.enricher {
            Some(enricher) => enricher.enrich(&self.store, event).await,
            None => event,
        };
        let mut message = payload::render(webhook.format, &webhook.webhook.payload_options, &event);
        let custom = webhook.webhook.headers.iter();
        message
            .headers
            .extend(custom.map(|(name, value)| (name.clone(), value.clone())));
        let delivery_id = delivery.lease.delivery_id.clone();
        // The optional GitHub-style header's name is kept apart from the custom headers' by
        // the API, so no header the owner set is replaced.
        let github = match (&webhook.webhook.signature_header, &webhook.github_secret) {
            (Some(name), Some(secret)) => Some((name.as_str(), secret)),
            _ => None,
        };
        let timestamp = now_ms() / 1000;
        sign::sign_message(&mut message, &webhook.keys, &delivery_id, timestamp, github);
        let destination = Destination {
            address: &webhook.webhook.url,
        };
        let started = Instant::now();
        let Attempt { outcome, exchange } = tokio::select! {
            sent = self.transport.send(destination, message) => sent,
            _ = cancel.cancelled() => {
                self.finish_slot(&webhook_id, Feedback::none());
                return;
            }
        };
        metrics::histogram!("hookline_attempt_seconds").record(exchange.duration.as_secs_f64());

        let attempts_made = delivery.attempts + 1;
        let now = now_ms();
        // The schedule counts the attempts since the latest redelivery or replay.
        let tries = attempts_made - delivery.retry_base;
        let jitter = rand::random::<f64>();
        let decided = decide(
            &outcome,
            exchange.duration,
            tries,
            &self.policy,
            now,
            jitter,
        );
        let verdict = decided.verdict;
        let success = decided.delivered();
        if success && delivery.retry_base == 0 {
            // End to end: from the delivery's creation (its event's fan-out) to the receiver's
            // 2xx, retries included. Not after a redelivery or replay: those restart on request.
            let waited = (now - delivery.created_at).max(0) as f64 / 1000.0;
            metrics::histogram!("hookline_delivery_seconds").record(waited);
        }
        if verdict == Verdict::Refused {
            tracing::warn!(%delivery_id, webhook_id = %webhook_id, "destination refused by the SSRF guard; delivery failed");
        }
        metrics::counter!("hookline_attempts_total", "outcome" => verdict.as_str()).increment(1);
        if matches!(decided.next, NextState::Succeeded | NextState::Failed) {
            let outcome = if success { "succeeded" } else { "failed" };
            metrics::counter!("hookline_deliveries_total", "outcome" => outcome).increment(1);
        }
        tracing::debug!(%delivery_id, webhook_id = %webhook_id, status = ?exchange.status_code, error = ?exchange.error, outcome = verdict.as_str(), "attempt");

        let circuit = self.track_health(&webhook, &decided, now).await;
        let feedback = Feedback {
            started,
            signal: decided.signal,
            pause: decided.pause,
        };
        let attempt = AttemptRecord {
            id: crate::ids::new_id("att"),
            delivery_id: delivery_id.clone(),
            number: attempts_made,
            started_at: exchange.started_at,
            duration_ms: exchange.duration.as_millis() as i64,
            status_code: exchange.status_code.map(i64::from),
            response_headers: exchange.headers,
            response_body: exchange.body,
            error: exchange.error,
            outcome: verdict.as_str().into(),
            error_class: exchange.error_class.filter(|_| !success).map(str::to_owned),
            reason: decided.reason,
            next_attempt_at: match decided.next {
                NextState::RetryAt(at) => Some(at),
                _ => None,
            },
        };
        let window = lock(&self.shared).lanes.window(&webhook_id);
        let context = AttemptContext {
            webhook_id: webhook_id.clone(),
            namespace: webhook.webhook.namespace.clone(),
            event_id: event.id.clone(),
            event_type: Some(event.kind.as_str().to_owned()),
            repository: Some(event.repository.clone()),
            tag: event.tag.clone(),
            concurrency_window: window.and_then(|w| i64::try_from(w).ok()),
        };
        self.hand_over(
            Finished {
                lease: delivery.lease,
                attempt,
                next: decided.next,
                context,
                circuit,
            },
            ordered,
        )
        .await;
        self.finish_slot(&webhook_id, feedback);
    }

    /// Circuit breaker, "failing since" clock, and disabling the webhook when it is gone
    /// or has failed for too long.
    async fn track_health(
        &self,
        webhook: &CompiledWebhook,
        decided: &Decided,
        now: i64,
    ) -> CircuitView {
        let id = &webhook.webhook.id;
        let (transition, failing_too_long, circuit) = learn(
            &mut lock(&self.shared),
            webhook,
            decided.delivered(),
            self.config.disable_after,
            now,
        );
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
                }
                Err(error) => {
                    tracing::warn!(webhook_id = %id, %error, "could not disable the webhook")
                }
            }
        }
        circuit
    }

    /// Fails a delivery that was never sent, recording why as its attempt.
    pub(super) async fn give_up_unsent(&self, delivery: ClaimedDelivery, reason: &str) {
        let ordered = delivery.ordering_key.is_some();
        let attempt = AttemptRecord {
            id: crate::ids::new_id("att"),
            delivery_id: delivery.lease.delivery_id.clone(),
            number: delivery.attempts + 1,
            started_at: now_ms(),
            duration_ms: 0,
            status_code: None,
            response_headers: None,
            response_body: None,
            error: Some(format!("not sent: {reason}")),
            outcome: Verdict::Failed.as_str().into(),
            error_class: Some("not_sent".into()),
            reason: Some(format!("not sent, and final: {reason}")),
            next_attempt_at: None,
        };
        let context = AttemptContext {
            webhook_id: delivery.webhook_id.clone(),
            namespace: delivery.namespace.clone(),
            event_id: delivery.event_id.clone(),
            ..AttemptContext::default()
        };
        metrics::counter!("hookline_deliveries_total", "outcome" => "failed").increment(1);
        tracing::warn!(delivery_id = %delivery.lease.delivery_id, webhook_id = %delivery.webhook_id, reason, "delivery failed without sending");
        self.hand_over(
            Finished {
                lease: delivery.lease,
                attempt,
                next: NextState::Failed,
                context,
                circuit: CircuitView::Closed,
            },
            ordered,
        )
        .await;
    }

    /// Passes a result to the recorder; from then on the recorder owns the lease.
    async fn hand_over(&self, finished: Finished, ordered: bool) {
        let delivery_id = finished.lease.delivery_id.clone();
        if self
            .results
            .send(Recorded { finished, ordered })
            .await
            .is_err()
        {
            tracing::error!(%delivery_id, "recorder is gone; the lease will expire and the delivery go out again");
        }
        lock(&self.shared).leases.remove(&delivery_id);
    }

    /// Frees the request slot (the endpoint learning from the answer), starts the next
    /// waiting delivery, and lets the loop claim more once the lane has room, if its last
    /// claim was held back (otherwise nothing due waits: an idle loop stays idle).
    fn finish_slot(self: &Arc<Self>, webhook_id: &str, feedback: Feedback) {
        let room = {
            let mut shared = lock(&self.shared);
            shared.lanes.finished(webhook_id, feedback) && shared.claim_held_back
        };
        metrics::gauge!("hookline_requests_in_flight").decrement(1.0);
        self.pump();
        if room {
            self.slot_freed.notify_one();
        }
    }
}
