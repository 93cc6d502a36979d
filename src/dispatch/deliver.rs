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
use tracing::Instrument;

use super::backoff::{Decision, RetryPolicy};
use super::lanes::Feedback;
use super::matcher::CompiledWebhook;
use super::recorder::Outcome as Recorded;
use super::transport::{Attempt, Destination, Dialect, Outcome};
use super::window::Signal;
use super::{Dispatcher, lock, payload, sign};
use crate::store::{
    AttemptContext, AttemptRecord, CircuitView, ClaimedDelivery, Finished, NextState, decode_event,
    now_ms,
};
use crate::telemetry::traces;

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
pub(super) struct Decided {
    verdict: Verdict,
    next: NextState,
    /// Why it was retried or why it is final.
    pub(super) reason: Option<String>,
    /// What the outcome says about the endpoint's load, for its window.
    signal: Signal,
    /// Pause the whole endpoint this long: the destination's `Retry-After`, capped.
    pause: Option<Duration>,
    /// Disable the webhook, for this reason (the destination is gone).
    pub(super) disable: Option<String>,
}

impl Decided {
    /// What a final answer decides: the delivery ends at once, for `reason`.
    fn ended(verdict: Verdict, reason: &str) -> Decided {
        Decided {
            verdict,
            next: NextState::Failed,
            reason: Some(reason.to_owned()),
            signal: Signal::Neutral,
            pause: None,
            disable: None,
        }
    }

    pub(super) fn delivered(&self) -> bool {
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
    let failed = Decided::ended;
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
        // The attempt continues the trace of the notify request that stored its event.
        let span = tracing::trace_span!(
            target: traces::TARGET,
            "attempt",
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            hookline.webhook.id = %webhook_id,
            hookline.delivery.id = %delivery.lease.delivery_id,
            hookline.attempt = delivery.attempts + 1,
            hookline.event.id = %event.id,
            hookline.event.type = event.kind.as_str(),
            hookline.repository = %event.repository,
            hookline.tag = event.tag.as_deref(),
            hookline.outcome = tracing::field::Empty,
            hookline.window = tracing::field::Empty,
            http.response.status_code = tracing::field::Empty,
            error.type = tracing::field::Empty,
        );
        traces::continue_from(
            &span,
            event.trace_parent.as_deref(),
            event.trace_state.as_deref(),
        );
        // Enrichment from the registry: stored on the event once, so every attempt renders
        // the same bytes; a no-op for sources without a registry URL.
        let event = match &self.enricher {
            Some(enricher) => {
                let read = enricher.enrich(&self.store, event);
                read.instrument(span.clone()).await
            }
            None => event,
        };
        // A template that cannot render this event sends nothing: no half-made body.
        let rendered = match &webhook.renderer {
            Ok(renderer) => renderer.render(&event).map_err(|e| e.to_string()),
            Err(reason) => Err(reason.clone()),
        };
        let mut message = match rendered {
            Ok(message) => message,
            Err(reason) => {
                self.finish_slot(&webhook_id, Feedback::none());
                return self.give_up_unsent(delivery, &reason).await;
            }
        };
        let delivery_id = delivery.lease.delivery_id.clone();
        // The optional GitHub-style header's name is kept apart from the custom headers' by
        // the API, so no header the owner set is replaced.
        let github = match (&webhook.webhook.signature_header, &webhook.github_secret) {
            (Some(name), Some(secret)) => Some((name.as_str(), secret)),
            _ => None,
        };
        let timestamp = now_ms() / 1000;
        sign::sign_message(&mut message, &webhook.keys, &delivery_id, timestamp, github);
        traces::inject(&span, &mut message.headers);
        let destination = Destination {
            address: &webhook.webhook.url,
            dialect: Dialect::of(webhook.format),
            identity: webhook.identity.as_ref(),
            oauth: webhook.oauth.as_ref(),
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

        // No notice is ever about a notice's own delivery: no loops.
        let may_report = !event.kind.is_notice() && !webhook.asks_for_notices();
        let circuit = self.track_health(&webhook, &decided, now, may_report).await;
        if may_report && decided.next == NextState::Failed && !success {
            let reason = decided.reason.as_deref().unwrap_or("failed");
            self.notices
                .delivery_failed(&webhook.webhook, &delivery_id, reason);
        }
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
        span.record("hookline.outcome", verdict.as_str());
        span.record("hookline.window", window);
        span.record("http.response.status_code", attempt.status_code);
        if let Some(class) = &attempt.error_class {
            span.record("error.type", class.as_str());
            span.record("otel.status_code", "ERROR");
        }
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

#[cfg(test)]
mod tests {
    //! deliver.rs's decisions, driven by a scripted transport: the real HTTP transport has
    //! its own end-to-end tests (tests/it/dispatch.rs, tests/it/safety/).

    use std::collections::{HashMap, VecDeque};
    use std::sync::Mutex;

    use super::*;
    use crate::dispatch::Shared;
    use crate::dispatch::circuit::Circuits;
    use crate::dispatch::health::learn;
    use crate::dispatch::lanes::Lanes;
    use crate::dispatch::transport::{Exchange, Message, RetryClass, Transport};
    use crate::dispatch::window::Window;

    const NOW: i64 = 1_795_569_416_000;
    const TOOK: Duration = Duration::from_millis(20);
    const HOUR: Duration = Duration::from_secs(3600);

    /// A transport that answers from a script, whatever it is asked to send.
    struct Scripted(Mutex<VecDeque<Outcome>>);

    impl Scripted {
        fn new(outcomes: impl IntoIterator<Item = Outcome>) -> Scripted {
            Scripted(Mutex::new(outcomes.into_iter().collect()))
        }
    }

    #[async_trait::async_trait]
    impl Transport for Scripted {
        async fn send(&self, _: Destination<'_>, _: Message) -> Attempt {
            let outcome = self.0.lock().expect("lock").pop_front().expect("scripted");
            Attempt {
                outcome,
                exchange: Exchange {
                    duration: TOOK,
                    ..Exchange::default()
                },
            }
        }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            schedule: vec![Duration::from_secs(10), Duration::from_secs(60)],
            retry_after_max: Duration::from_secs(300),
        }
    }

    /// Sends once through `transport` and decides, `tries` counting this attempt.
    async fn attempt(transport: &dyn Transport, tries: i64) -> Decided {
        let message = Message {
            content_type: payload::JSON.into(),
            body: b"{}".to_vec(),
            headers: Vec::new(),
        };
        let destination = Destination {
            address: "https://receiver.example/hook",
            dialect: Dialect::Http,
            identity: None,
            oauth: None,
        };
        let sent = transport.send(destination, message).await;
        decide(
            &sent.outcome,
            sent.exchange.duration,
            tries,
            &policy(),
            NOW,
            0.0,
        )
    }

    fn retry(class: RetryClass, subject: &str, retry_after: Option<Duration>) -> Outcome {
        Outcome::Retry {
            class,
            subject: subject.to_owned(),
            retry_after,
        }
    }

    fn rejected(reason: &str, disable: Option<&str>) -> Outcome {
        Outcome::Rejected {
            reason: reason.to_owned(),
            disable: disable.map(str::to_owned),
        }
    }

    fn shared() -> Shared {
        Shared {
            lanes: Lanes::new(64, 64, Circuits::new(2, Duration::from_secs(30))),
            leases: HashMap::new(),
            failing_since: HashMap::new(),
            claim_held_back: false,
            served: None,
        }
    }

    #[tokio::test]
    async fn delivered_completes_and_reports_its_latency() {
        let d = attempt(&Scripted::new([Outcome::Delivered]), 1).await;
        assert_eq!(
            d,
            Decided {
                verdict: Verdict::Succeeded,
                next: NextState::Succeeded,
                reason: None,
                signal: Signal::Ok(TOOK),
                pause: None,
                disable: None,
            }
        );
        assert!(d.delivered());
        assert_eq!(d.verdict.as_str(), "succeeded");
    }

    #[tokio::test]
    async fn a_final_rejection_fails_at_once_with_the_transports_reason() {
        let reason = "HTTP 404 is final: the receiver refuses this request as it is";
        let d = attempt(&Scripted::new([rejected(reason, None)]), 1).await;
        assert_eq!(d, Decided::ended(Verdict::Failed, reason));
        assert_eq!(d.verdict.as_str(), "failed");
    }

    #[tokio::test]
    async fn a_retry_follows_the_schedule_until_it_runs_out() {
        let transport = Scripted::new([
            retry(RetryClass::ServerError, "HTTP 500", None),
            retry(RetryClass::ServerError, "HTTP 500", None),
            retry(RetryClass::ServerError, "HTTP 500", None),
        ]);
        let first = attempt(&transport, 1).await;
        assert_eq!(first.verdict, Verdict::Retry);
        assert_eq!(first.next, NextState::RetryAt(NOW + 10_000));
        assert_eq!(
            first.reason.as_deref(),
            Some("HTTP 500 is retried: attempt 2 of 3 in 10s")
        );
        assert_eq!((first.signal, first.pause), (Signal::Neutral, None));
        let second = attempt(&transport, 2).await;
        assert_eq!(second.next, NextState::RetryAt(NOW + 60_000));
        assert_eq!(
            second.reason.as_deref(),
            Some("HTTP 500 is retried: attempt 3 of 3 in 1m")
        );
        let last = attempt(&transport, 3).await;
        assert_eq!(
            (last.verdict, last.next),
            (Verdict::Failed, NextState::Failed)
        );
        assert_eq!(
            last.reason.as_deref(),
            Some(
                "HTTP 500 and no retry left (3 attempts): failed; redeliver or replay once the receiver is fixed"
            )
        );
    }

    #[tokio::test]
    async fn timeouts_and_refused_connections_signal_overload_other_trouble_does_not() {
        for (class, signal) in [
            (RetryClass::Timeout, Signal::Overload),
            (RetryClass::Connect, Signal::Overload),
            (RetryClass::Throttled, Signal::Overload),
            (RetryClass::Request, Signal::Neutral),
            (RetryClass::NotNow, Signal::Neutral),
            (RetryClass::Redirect, Signal::Neutral),
            (RetryClass::InvalidAddress, Signal::Neutral),
            (RetryClass::Other, Signal::Neutral),
        ] {
            let d = attempt(&Scripted::new([retry(class, "timeout", None)]), 1).await;
            assert_eq!(d.signal, signal, "{class:?}");
            assert_eq!(d.verdict, Verdict::Retry, "{class:?}");
        }
        let d = attempt(
            &Scripted::new([retry(RetryClass::Timeout, "timeout", None)]),
            1,
        )
        .await;
        assert_eq!(
            d.reason.as_deref(),
            Some("timeout is retried: attempt 2 of 3 in 10s")
        );
    }

    #[tokio::test]
    async fn retry_after_replaces_the_delay_and_pauses_the_endpoint_capped() {
        let asked = Duration::from_secs(30);
        let transport = Scripted::new([
            retry(RetryClass::Throttled, "HTTP 429", Some(asked)),
            retry(RetryClass::Throttled, "HTTP 503", Some(HOUR)),
            retry(RetryClass::Throttled, "HTTP 429", Some(asked)),
        ]);
        let d = attempt(&transport, 1).await;
        assert_eq!(d.next, NextState::RetryAt(NOW + 30_000));
        assert_eq!(
            d.reason.as_deref(),
            Some("HTTP 429 is retried: attempt 2 of 3 in 30s (as its Retry-After asked)")
        );
        assert_eq!((d.signal, d.pause), (Signal::Overload, Some(asked)));
        let capped = attempt(&transport, 1).await;
        assert_eq!(capped.next, NextState::RetryAt(NOW + 300_000));
        assert_eq!(capped.pause, Some(Duration::from_secs(300)));
        // The hint never adds attempts, but the endpoint still pauses.
        let last = attempt(&transport, 3).await;
        assert_eq!((last.verdict, last.pause), (Verdict::Failed, Some(asked)));
    }

    #[tokio::test]
    async fn a_gone_destination_fails_and_disables_the_webhook() {
        let reason = "HTTP 410 Gone is final: the webhook is disabled; re-enable it to resume";
        let outcome = rejected(reason, Some("the receiver answered 410 Gone"));
        let d = attempt(&Scripted::new([outcome]), 1).await;
        assert_eq!((d.verdict, d.next), (Verdict::Gone, NextState::Failed));
        assert_eq!(d.verdict.as_str(), "disabled");
        assert_eq!(d.reason.as_deref(), Some(reason));
        assert_eq!(
            d.disable,
            Some(format!(
                "the receiver answered 410 Gone at {}",
                payload::rfc3339(NOW)
            ))
        );
        assert_eq!((d.signal, d.pause), (Signal::Neutral, None));
    }

    #[tokio::test]
    async fn not_sent_fails_at_once_as_refused() {
        let reason = "refused destinations are final: change the URL";
        let outcome = Outcome::NotSent {
            reason: reason.to_owned(),
        };
        let d = attempt(&Scripted::new([outcome]), 1).await;
        assert_eq!(d, Decided::ended(Verdict::Refused, reason));
        assert_eq!(d.verdict.as_str(), "refused");
    }

    #[tokio::test]
    async fn outcomes_move_the_circuit_and_the_failing_clock() {
        let transport = Scripted::new([
            retry(RetryClass::Timeout, "timeout", None),
            rejected("HTTP 400 is final", None),
            Outcome::Delivered,
            Outcome::NotSent {
                reason: "refused".into(),
            },
            retry(RetryClass::ServerError, "HTTP 500", None),
        ]);
        let mut shared = shared();
        let mut step = async |now: i64| {
            let d = attempt(&transport, 1).await;
            learn(&mut shared, "wh_1", None, d.delivered(), HOUR, now)
        };
        // The first failure starts the clock; the circuit (threshold 2) stays closed.
        assert_eq!(
            step(NOW).await,
            (Some(Some(NOW)), None, CircuitView::Closed)
        );
        // The second opens the circuit for its cool-down; the clock runs on.
        let open = CircuitView::Open {
            until: NOW + 1_000 + 30_000,
        };
        assert_eq!(step(NOW + 1_000).await, (None, None, open));
        // Delivered: the clock stops, the circuit closes.
        assert_eq!(
            step(NOW + 2_000).await,
            (Some(None), None, CircuitView::Closed)
        );
        // Not sent counts as a failure too.
        let later = NOW + 3_000;
        assert_eq!(
            step(later).await,
            (Some(Some(later)), None, CircuitView::Closed)
        );
        // Failing for longer than disable_after disables the webhook.
        let (transition, disable, _) = step(later + 3_600_000).await;
        assert_eq!(transition, None);
        assert_eq!(
            disable,
            Some(format!(
                "failing continuously since {} (longer than 1h)",
                payload::rfc3339(later)
            ))
        );
    }

    #[tokio::test]
    async fn overload_halves_the_window_and_neutral_leaves_it() {
        let transport = Scripted::new([
            retry(RetryClass::ServerError, "HTTP 500", None),
            retry(RetryClass::Throttled, "HTTP 429", None),
        ]);
        let mut window = Window::default();
        let started = Instant::now();
        let neutral = attempt(&transport, 1).await;
        window.observe(neutral.signal, started, 1, 64);
        assert_eq!(window.allowed(64), 4);
        let overload = attempt(&transport, 1).await;
        window.observe(overload.signal, started, 1, 64);
        assert_eq!(window.allowed(64), 2);
    }
}
