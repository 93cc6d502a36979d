//! Owner notices: a webhook's owner is told when it starts failing, when its circuit opens,
//! when hookline disables it, when it recovers, and when deliveries give up.
//!
//! A notice is an event (`EventType::NOTICES`) stored like a registry's, whose `repository`
//! is the namespace of the webhook it is about. So the matcher hands it to the webhooks of
//! that namespace and of the namespaces above it (an operator's, at the root) that ask for
//! it, never to another namespace's, and it is delivered like any event: signed, retried,
//! logged, shown in the console, replayable.
//!
//! Bounds: each notice reports one state change, named in its `registry_event_id`, so the
//! events table's unique index stores it once however often it is raised; a webhook's
//! circuit is reported once per run of failures; failed deliveries are summarised per
//! webhook over [`SUMMARY_WINDOW`]; and a namespace gets at most [`PER_NAMESPACE_PER_HOUR`]
//! notices an hour (the rest are counted in `hookline_notices_total{outcome="suppressed"}`).
//! No loops: nothing is raised about a webhook that asks for notices
//! (`CompiledWebhook::asks_for_notices`), nor about the delivery of a notice. A notice no webhook asks for is not stored.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::matcher::Matcher;
use crate::event::{Event, EventType, Notice};
use crate::store::{Store, Webhook, now_ms};

/// Notices one namespace may get in an hour, in this process.
pub const PER_NAMESPACE_PER_HOUR: u32 = 20;

/// How long failed deliveries of one webhook are gathered into one `delivery.failed`.
pub const SUMMARY_WINDOW: Duration = Duration::from_secs(5);

/// Delivery ids a `delivery.failed` notice lists; it counts them all.
const IDS_LISTED: usize = 20;

const HOUR_MS: i64 = 3_600_000;

/// The notices of one dispatcher.
pub(super) struct Notices {
    store: Store,
    state: Mutex<State>,
    /// The enabled webhooks, as the claim loop last loaded them: a notice nobody asks
    /// for is not stored at all.
    destinations: Mutex<Arc<Matcher>>,
}

#[derive(Default)]
struct State {
    /// Namespace → (the hour it counts, notices in it).
    budget: HashMap<String, (i64, u32)>,
    /// Webhook → what was reported of its current run of failures.
    reported: HashMap<String, Reported>,
    /// Webhook → failed deliveries waiting to be summarised.
    failed: HashMap<String, Failed>,
}

/// What was said about one run of failures (the run began at `since`).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Reported {
    since: i64,
    failing: bool,
    circuit: bool,
}

struct Failed {
    webhook: Webhook,
    count: u64,
    ids: Vec<String>,
    reason: String,
}

impl Notices {
    pub(super) fn new(store: Store) -> Arc<Notices> {
        Arc::new(Notices {
            store,
            state: Mutex::new(State::default()),
            destinations: Mutex::new(Arc::new(Matcher::default())),
        })
    }

    /// The webhooks notices may go to, whenever the claim loop reloads them.
    pub(super) fn destinations(&self, matcher: Arc<Matcher>) {
        *self
            .destinations
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = matcher;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Another attempt of `webhook` failed, in the run of failures that began at `since`
    /// (the first failure starts the run; the second makes it worth telling), the latest
    /// for `reason`.
    pub(super) fn failed_again(&self, webhook: &Webhook, since: i64, reason: Option<&str>) {
        if self.first_report(&webhook.id, since, |r| &mut r.failing) {
            self.raise(
                EventType::WebhookFailing,
                webhook,
                since.to_string(),
                Notice {
                    reason: reason.map(str::to_owned),
                    failing_since: Some(crate::dispatch::payload::rfc3339(since)),
                    ..notice(webhook)
                },
            );
        }
    }

    /// `webhook`'s circuit is open, in the run of failures that began at `since`.
    pub(super) fn circuit_opened(&self, webhook: &Webhook, since: i64) {
        if self.first_report(&webhook.id, since, |r| &mut r.circuit) {
            self.raise(
                EventType::WebhookCircuitOpened,
                webhook,
                since.to_string(),
                Notice {
                    failing_since: Some(crate::dispatch::payload::rfc3339(since)),
                    ..notice(webhook)
                },
            );
        }
    }

    /// `webhook` delivered again, ending its run of failures: told only if the run was.
    pub(super) fn delivered(&self, webhook: &Webhook) {
        let Some(run) = self.lock().reported.remove(&webhook.id) else {
            return;
        };
        self.raise(
            EventType::WebhookRecovered,
            webhook,
            run.since.to_string(),
            Notice {
                failing_since: Some(crate::dispatch::payload::rfc3339(run.since)),
                ..notice(webhook)
            },
        );
    }

    /// Whether this is the first report of its kind (`which`) about the run of `webhook`
    /// that began at `since`; records it.
    fn first_report(
        &self,
        webhook: &str,
        since: i64,
        which: impl Fn(&mut Reported) -> &mut bool,
    ) -> bool {
        let mut state = self.lock();
        let run = state
            .reported
            .entry(webhook.to_owned())
            .or_insert(Reported {
                since,
                failing: false,
                circuit: false,
            });
        if run.since != since {
            *run = Reported {
                since,
                failing: false,
                circuit: false,
            };
        }
        !std::mem::replace(which(run), true)
    }

    /// hookline disabled `webhook` at `at`, for `reason`.
    pub(super) fn disabled(&self, webhook: &Webhook, at: i64, reason: &str) {
        self.raise(
            EventType::WebhookDisabled,
            webhook,
            at.to_string(),
            Notice {
                reason: Some(reason.to_owned()),
                ..notice(webhook)
            },
        );
    }

    /// A delivery of `webhook` gave up, for `reason`: gathered with the others of the next
    /// [`SUMMARY_WINDOW`] into one notice.
    pub(super) fn delivery_failed(self: &Arc<Self>, webhook: &Webhook, id: &str, reason: &str) {
        let first = {
            let mut state = self.lock();
            let failed = state.failed.entry(webhook.id.clone());
            let first = matches!(failed, std::collections::hash_map::Entry::Vacant(_));
            let failed = failed.or_insert_with(|| Failed {
                webhook: webhook.clone(),
                count: 0,
                ids: Vec::new(),
                reason: String::new(),
            });
            failed.count += 1;
            if failed.ids.len() < IDS_LISTED {
                failed.ids.push(id.to_owned());
            }
            reason.clone_into(&mut failed.reason);
            first
        };
        if first {
            let notices = self.clone();
            let webhook_id = webhook.id.clone();
            tokio::spawn(async move {
                tokio::time::sleep(SUMMARY_WINDOW).await;
                let Some(failed) = notices.lock().failed.remove(&webhook_id) else {
                    return;
                };
                let key = failed.ids.first().cloned().unwrap_or_default();
                notices.raise(
                    EventType::DeliveryFailed,
                    &failed.webhook,
                    key,
                    Notice {
                        reason: Some(failed.reason),
                        deliveries: failed.count,
                        delivery_ids: failed.ids,
                        ..notice(&failed.webhook)
                    },
                );
            });
        }
    }

    /// Stores one notice, unless its namespace has had its share this hour. `key` names
    /// the state change, so raising it twice stores it once.
    fn raise(&self, kind: EventType, webhook: &Webhook, key: String, notice: Notice) {
        let now = now_ms();
        let mut event = Event::new(
            crate::ids::new_id("evt"),
            "hookline",
            format!("notice:{}:{}:{key}", webhook.id, kind.as_str()),
            kind,
            webhook.namespace.clone(),
            now,
        );
        let destinations = self
            .destinations
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        if destinations.matching(&event).is_empty() {
            return;
        }
        if !self.take_budget(&webhook.namespace, now) {
            metrics::counter!("hookline_notices_total", "outcome" => "suppressed").increment(1);
            tracing::info!(webhook_id = %webhook.id, notice = kind.as_str(), "owner notice suppressed: the namespace had its share this hour");
            return;
        }
        event.original = serde_json::to_value(&notice).unwrap_or_default();
        event.notice = Some(notice);
        let store = self.store.clone();
        tokio::spawn(async move {
            match store.insert_events(std::slice::from_ref(&event)).await {
                Ok(_) => {
                    metrics::counter!("hookline_notices_total", "outcome" => "raised").increment(1)
                }
                Err(error) => {
                    tracing::warn!(notice = event.kind.as_str(), %error, "could not store an owner notice")
                }
            }
        });
    }

    fn take_budget(&self, namespace: &str, now: i64) -> bool {
        let hour = now / HOUR_MS;
        let mut state = self.lock();
        let (counted_hour, count) = state
            .budget
            .entry(namespace.to_owned())
            .or_insert((hour, 0));
        if *counted_hour != hour {
            (*counted_hour, *count) = (hour, 0);
        }
        if *count >= PER_NAMESPACE_PER_HOUR {
            return false;
        }
        *count += 1;
        true
    }
}

fn notice(webhook: &Webhook) -> Notice {
    Notice {
        webhook_id: webhook.id.clone(),
        webhook_name: webhook.name.clone(),
        reason: None,
        failing_since: None,
        deliveries: 0,
        delivery_ids: Vec::new(),
    }
}
