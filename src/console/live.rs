//! New attempts as server-sent events, fed by `WatchDeliveries` (the API's live tail, with
//! its tenancy, `max_watchers` bound and slow-client cut-off). Each event carries the same
//! markup the page renders (a delivery row, or an attempt of the delivery being viewed),
//! so `console.js` only puts it in place. When the tail ends (shutdown, a client too slow)
//! the stream ends and the browser's EventSource reconnects by itself.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio_stream::{Stream, StreamExt};

use super::deliveries::{
    Names, attempt_item, delivery_row, event_type_by_name, status_by_name, webhook_names,
};
use super::{Console, Failure, Session, call};
use crate::api::proto::delivery_service_server::DeliveryService;
use crate::api::proto::{self, WatchDeliveriesResponse};
use crate::dispatch::matcher::repository_glob;

/// Which attempts a page wants.
#[derive(Deserialize, Default)]
pub(crate) struct LiveQuery {
    /// One webhook's (empty: every webhook the session sees).
    #[serde(default)]
    webhook: String,
    /// Only this delivery's attempts, as attempt items (the delivery page).
    #[serde(default)]
    delivery: String,
    /// The list's filters: rows are sent only for deliveries that match them.
    #[serde(default)]
    status: String,
    #[serde(default, rename = "type")]
    event_type: String,
    #[serde(default)]
    repository: String,
}

/// The event stream. It subscribes to the tail first, then sends what the page may have
/// missed since it was rendered (the delivery's attempts, or the list's first page), so
/// nothing falls between the page and the stream, nor between a reconnect and the last
/// event. The page puts each item in place by its key, so repeats are harmless.
pub(crate) async fn stream(
    State(console): State<Console>,
    session: Session,
    Query(query): Query<LiveQuery>,
) -> Result<Response, Failure> {
    let tail = console
        .deliveries
        .watch_deliveries(call(
            &session,
            proto::WatchDeliveriesRequest {
                webhook_id: query.webhook.clone(),
            },
        ))
        .await?
        .into_inner();
    let mut filter = Filter::new(&query);
    if query.webhook.is_empty() && query.delivery.is_empty() {
        filter.names = Some(webhook_names(&console, &session).await?);
    }
    let catch_up = catch_up(&console, &session, &query, &filter).await?;
    let events = tokio_stream::iter(catch_up).chain(
        tail.map_while(Result::ok) // an ended tail ends the stream; the browser reconnects
            .filter_map(move |seen| filter.event(&seen)),
    );
    Ok(sse(events.map(Ok::<Event, Infallible>)).into_response())
}

/// The page's current items as events: the delivery's status and attempts (oldest first,
/// so each lands on top in turn), or the list's first page (oldest first, likewise).
async fn catch_up(
    console: &Console,
    session: &Session,
    query: &LiveQuery,
    filter: &Filter,
) -> Result<Vec<Event>, Failure> {
    if !query.delivery.is_empty() {
        let got = console
            .deliveries
            .get_delivery(call(
                session,
                proto::GetDeliveryRequest {
                    id: query.delivery.clone(),
                },
            ))
            .await?
            .into_inner();
        let status = got.delivery.map(|d| d.status);
        let last = got.attempts.len().saturating_sub(1);
        return Ok(got
            .attempts
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let html = attempt_item(a, status.filter(|_| i == last)).into_string();
                Event::default().event("attempt").data(html)
            })
            .collect());
    }
    let listed = console
        .deliveries
        .list_deliveries(call(
            session,
            proto::ListDeliveriesRequest {
                page_size: CATCH_UP,
                webhook_id: query.webhook.clone(),
                statuses: filter.status.into_iter().collect(),
                event_types: event_type_by_name(&query.event_type).into_iter().collect(),
                repository: query.repository.trim().to_owned(),
                ..Default::default()
            },
        ))
        .await;
    // A filter the list refused shows no rows: nothing to catch up on.
    let Ok(listed) = listed else {
        return Ok(Vec::new());
    };
    Ok(listed
        .into_inner()
        .deliveries
        .iter()
        .rev()
        .map(|d| {
            Event::default()
                .event("delivery")
                .data(delivery_row(d, filter.names.as_ref()).into_string())
        })
        .collect())
}

/// Rows sent on connecting: those the page shows at most is less; enough to cover a gap.
const CATCH_UP: i32 = 20;

fn sse(
    events: impl Stream<Item = Result<Event, Infallible>> + Send + 'static,
) -> impl IntoResponse {
    // A comment every 15 s keeps proxies from closing an idle stream.
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// Decides which attempts become events, and renders them.
struct Filter {
    delivery: String,
    status: Option<i32>,
    event_type: Option<String>,
    /// None: any repository. An invalid glob (the page already said so) matches nothing.
    repository: Option<Option<globset::GlobSet>>,
    /// Webhook names for the webhook column (namespace-wide lists only).
    names: Option<Names>,
}

impl Filter {
    fn new(q: &LiveQuery) -> Filter {
        let repository = q.repository.trim();
        Filter {
            delivery: q.delivery.clone(),
            status: status_by_name(&q.status).map(|s| s as i32),
            event_type: event_type_by_name(&q.event_type).map(|_| q.event_type.clone()),
            // The same glob rules as the list's filter.
            repository: (!repository.is_empty())
                .then(|| repository_glob(repository).ok().map(|(set, _)| set)),
            names: None,
        }
    }

    fn event(&self, seen: &WatchDeliveriesResponse) -> Option<Event> {
        let attempt = seen.attempt.as_ref()?;
        if !self.delivery.is_empty() {
            if seen.delivery_id != self.delivery {
                return None;
            }
            // The attempt carries the delivery's new status for the page's heading.
            let html = attempt_item(attempt, Some(seen.delivery_status)).into_string();
            return Some(Event::default().event("attempt").data(html));
        }
        if self.status.is_some_and(|s| s != seen.delivery_status)
            || self
                .event_type
                .as_ref()
                .is_some_and(|t| *t != seen.event_type)
            || self
                .repository
                .as_ref()
                .is_some_and(|glob| !glob.as_ref().is_some_and(|g| g.is_match(&seen.repository)))
        {
            return None;
        }
        let row = proto::Delivery {
            id: seen.delivery_id.clone(),
            webhook_id: seen.webhook_id.clone(),
            event_id: seen.event_id.clone(),
            event_type: seen.event_type.clone(),
            repository: seen.repository.clone(),
            tag: seen.tag.clone(),
            status: seen.delivery_status,
            attempts: attempt.number,
            next_attempt_at: attempt.next_attempt_at,
            last_status_code: attempt.status_code,
            last_error: attempt.error.clone(),
            last_duration_ms: attempt.duration_ms,
            last_attempt_at: attempt.started_at,
            ..Default::default()
        };
        let html = delivery_row(&row, self.names.as_ref()).into_string();
        Some(Event::default().event("delivery").data(html))
    }
}
