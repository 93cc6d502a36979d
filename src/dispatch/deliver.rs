//! One delivery: render, sign, send, decide what happens next, hand the result over.
//!
//! The decision (docs/operations.md#which-answers-are-final): 2xx completes; 410 Gone fails
//! the delivery and disables the webhook; a 4xx that says "these bytes will never be
//! accepted" ([`is_final`]) fails the delivery at once, for its owner to fix and redeliver;
//! anything else (5xx, 408/409/423/425/429, transport errors, timeouts, 3xx: redirects
//! are not followed) is rescheduled per the retry policy, honouring `Retry-After` on
//! 429/503, until the schedule runs out. Every attempt records why (`reason`). Failures
//! feed the webhook's circuit breaker and its "failing since" clock, which disables it
//! after `disable_after`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::backoff::Decision;
use super::client::{self, Outgoing};
use super::lanes::Feedback;
use super::matcher::CompiledWebhook;
use super::recorder::Outcome;
use super::window::Signal;
use super::{Dispatcher, lock, payload, sign};
use crate::store::{
    AttemptContext, AttemptRecord, CircuitView, ClaimedDelivery, Finished, NextState, decode_event,
    now_ms,
};

/// Whether an HTTP answer is final: the receiver says it will never accept this request
/// as it is (400 Bad Request, 401/403 refused credentials, 404 no such route, 413 too
/// large, 422 unprocessable, …), so retrying the same bytes only hammers it. The owner
/// fixes the receiver or the webhook, then redelivers or replays. 4xx answers that speak
/// of time (408 timeout, 409 conflict, 423 locked, 425 too early, 429 too many) are
/// retried, like 3xx, 5xx and transport errors. 410 Gone is final and disables the webhook.
pub fn is_final(status: u16) -> bool {
    (400..500).contains(&status) && !matches!(status, 408 | 409 | 423 | 425 | 429)
}

/// How an attempt ended, for the attempt log and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Succeeded,
    Retry,
    Failed,
    /// 410 Gone: the webhook is disabled.
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
        let body = payload::render(webhook.format, &webhook.webhook.payload_options, &event);
        let timestamp = now_ms() / 1000;
        let delivery_id = delivery.lease.delivery_id.clone();
        let signature = sign::signature_header(&webhook.keys, &delivery_id, timestamp, &body.body);
        // The optional GitHub-style header travels with the custom headers (the API keeps
        // their names apart), so the client needs no per-webhook header names.
        let with_github;
        let custom_headers = match (&webhook.webhook.signature_header, &webhook.github_secret) {
            (Some(name), Some(secret)) => {
                let mut headers = webhook.webhook.headers.clone();
                headers.insert(name.clone(), sign::github_signature(secret, &body.body));
                with_github = headers;
                &with_github
            }
            _ => &webhook.webhook.headers,
        };
        let out = Outgoing {
            url: &webhook.webhook.url,
            content_type: body.content_type,
            custom_headers,
            signature_headers: vec![
                ("webhook-id", delivery_id.clone()),
                ("webhook-timestamp", timestamp.to_string()),
                ("webhook-signature", signature),
            ],
            body: body.body,
        };
        let started = Instant::now();
        let response = tokio::select! {
            response = client::send(&self.client, &self.guard, out, self.config.response_body_limit) => response,
            _ = cancel.cancelled() => {
                self.finish_slot(&webhook_id, Feedback::none());
                return;
            }
        };
        let feedback = self.feedback(&response, started);
        metrics::histogram!("hookline_attempt_seconds").record(response.duration.as_secs_f64());

        let attempts_made = delivery.attempts + 1;
        let now = now_ms();
        let success = response.status.is_some_and(|s| (200..300).contains(&s));
        let (verdict, next, reason) = if success {
            // End to end: from the delivery's creation (its event's fan-out) to the receiver's
            // 2xx, retries included. Not after a redelivery or replay: those restart on request.
            if delivery.retry_base == 0 {
                let waited = (now - delivery.created_at).max(0) as f64 / 1000.0;
                metrics::histogram!("hookline_delivery_seconds").record(waited);
            }
            (Verdict::Succeeded, NextState::Succeeded, None)
        } else if response.status == Some(410) {
            let reason = "HTTP 410 Gone is final: the webhook is disabled; re-enable it to resume";
            (Verdict::Gone, NextState::Failed, Some(reason.to_owned()))
        } else if response.refused {
            // Retrying cannot change the verdict until the URL or the allow-list changes.
            tracing::warn!(%delivery_id, webhook_id = %webhook_id, "destination refused by the SSRF guard; delivery failed");
            let reason = "refused destinations are final: change the URL, or ask the operator to allow it, then redeliver";
            (Verdict::Refused, NextState::Failed, Some(reason.to_owned()))
        } else if let Some(code) = response.status.filter(|c| is_final(*c)) {
            let reason = format!(
                "HTTP {code} is final: the receiver refuses this request as it is; fix the receiver (or the webhook) and redeliver"
            );
            (Verdict::Failed, NextState::Failed, Some(reason))
        } else {
            // The schedule counts the attempts since the latest redelivery or replay.
            let tries = attempts_made - delivery.retry_base;
            // What went wrong, as the reason's subject (built only on this failure path).
            let what = match (response.status, response.error_class) {
                (Some(code), _) => format!("HTTP {code}"),
                (None, Some(class)) => class.replace('_', " "),
                (None, None) => "no answer".to_owned(),
            };
            let decision = self.policy.next(
                u32::try_from(tries).unwrap_or(u32::MAX),
                response.retry_after,
                rand::random::<f64>(),
            );
            match decision {
                Decision::RetryIn(delay) => {
                    let hinted = if response.retry_after.is_some() {
                        " (as its Retry-After asked)"
                    } else {
                        ""
                    };
                    let reason = format!(
                        "{what} is retried: attempt {} of {} in {}{hinted}",
                        tries + 1,
                        self.policy.schedule.len() + 1,
                        humantime::format_duration(Duration::from_secs(delay.as_secs().max(1)))
                    );
                    (
                        Verdict::Retry,
                        NextState::RetryAt(now + delay.as_millis() as i64),
                        Some(reason),
                    )
                }
                Decision::GiveUp => {
                    let reason = format!(
                        "{what} and no retry left ({} attempts): failed; redeliver or replay once the receiver is fixed",
                        self.policy.schedule.len() + 1
                    );
                    (Verdict::Failed, NextState::Failed, Some(reason))
                }
            }
        };
        metrics::counter!("hookline_attempts_total", "outcome" => verdict.as_str()).increment(1);
        if matches!(next, NextState::Succeeded | NextState::Failed) {
            let outcome = if success { "succeeded" } else { "failed" };
            metrics::counter!("hookline_deliveries_total", "outcome" => outcome).increment(1);
        }
        tracing::debug!(%delivery_id, webhook_id = %webhook_id, status = ?response.status, error = ?response.error, outcome = verdict.as_str(), "attempt");

        let circuit = self.track_health(&webhook, success, verdict, now).await;
        let error_class = match (success, response.status) {
            (true, _) => None,
            (false, Some(_)) => Some("http".to_owned()),
            (false, None) => response.error_class.map(str::to_owned),
        };
        let attempt = AttemptRecord {
            id: crate::ids::new_id("att"),
            delivery_id: delivery_id.clone(),
            number: attempts_made,
            started_at: response.started_at,
            duration_ms: response.duration.as_millis() as i64,
            status_code: response.status.map(i64::from),
            response_headers: response.headers,
            response_body: response.body,
            error: response.error,
            outcome: verdict.as_str().into(),
            error_class,
            reason,
            next_attempt_at: match next {
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
                next,
                context,
                circuit,
            },
            ordered,
        )
        .await;
        self.finish_slot(&webhook_id, feedback);
    }

    /// What an answer says about the endpoint's load, for its concurrency window: 2xx
    /// with its latency; 429, 503, a timeout or a failed connection as overload (with the
    /// receiver's `Retry-After` as a pause of the whole endpoint); anything else nothing.
    fn feedback(&self, response: &client::Response, started: Instant) -> Feedback {
        let signal = match (response.status, response.error_class) {
            (Some(code), _) if (200..300).contains(&code) => Signal::Ok(response.duration),
            (Some(429 | 503), _) => Signal::Overload,
            (None, Some("timeout" | "connect")) => Signal::Overload,
            _ => Signal::Neutral,
        };
        let pause = match response.status {
            Some(429 | 503) => response
                .retry_after
                .map(|after| after.min(self.config.retry_after_max)),
            _ => None,
        };
        Feedback {
            started,
            signal,
            pause,
        }
    }

    /// Circuit breaker, "failing since" clock, and disabling the webhook when it is gone
    /// or has failed for too long.
    async fn track_health(
        &self,
        webhook: &CompiledWebhook,
        success: bool,
        verdict: Verdict,
        now: i64,
    ) -> CircuitView {
        let id = &webhook.webhook.id;
        let (transition, disable, circuit) = {
            let mut shared = lock(&self.shared);
            let known = *shared
                .failing_since
                .entry(id.clone())
                .or_insert(webhook.webhook.failing_since);
            if success {
                shared.lanes.circuits.on_success(id);
                shared.failing_since.insert(id.clone(), None);
                (known.is_some().then_some(None), None, CircuitView::Closed)
            } else {
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
                    Some(since) if now - since >= self.config.disable_after.as_millis() as i64 => {
                        let reason = format!(
                            "failing continuously since {} (longer than {})",
                            payload::rfc3339(since),
                            humantime::format_duration(self.config.disable_after)
                        );
                        (None, Some(reason))
                    }
                    Some(_) => (None, None),
                };
                (transition, disable, circuit)
            }
        };
        let disable = if verdict == Verdict::Gone {
            Some(format!(
                "the receiver answered 410 Gone at {}",
                payload::rfc3339(now)
            ))
        } else {
            disable
        };
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
            .send(Outcome { finished, ordered })
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
