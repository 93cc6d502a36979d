//! Delivery pages: the list (one webhook's or the whole namespace's) with filters and
//! pages, one delivery with every attempt, and the recovery actions (redeliver, replay).
//! The filters are `filters.rs`; the rows and attempts, shared with a webhook's page and
//! the live stream, are `rows.rs`. Tables carry a `data-live` URL: `console.js` adds and
//! updates rows from the live tail.

mod filters;
mod rows;

use axum::extract::{Path, Query, State};
use maud::html;

use filters::filter_form;
pub(crate) use filters::{Filters, event_type_by_name, status_by_name};
pub(crate) use rows::{Names, attempt_item, deliveries_table, delivery_row, webhook_names};

use super::session::{Posted, field};
use super::views::{self, Section, csrf_field, notice_for, when};
use super::{BASE, Console, Failure, Page, Session, back_to, call, shown};
use crate::api::proto::delivery_service_server::DeliveryService;
use crate::api::proto::{self, DeliveryStatus, redeliver_delivery_response};
use crate::present::parse_time;

/// Deliveries on a webhook's page.
const RECENT: i32 = 20;

/// The list page.
pub(crate) async fn list(
    State(console): State<Console>,
    session: Session,
    Query(filters): Query<Filters>,
) -> Page {
    let (deliveries, next, problem) = match filters.request() {
        Err(problem) => (Vec::new(), String::new(), Some(problem)),
        Ok(request) => match console
            .deliveries
            .list_deliveries(call(&session, request))
            .await
        {
            Ok(r) => {
                let r = r.into_inner();
                (r.deliveries, r.next_page_token, None)
            }
            Err(status) if status.code() == tonic::Code::InvalidArgument => {
                (Vec::new(), String::new(), Some(status.message().to_owned()))
            }
            Err(status) => return Err(status.into()),
        },
    };
    let names = if filters.webhook.is_empty() {
        Some(webhook_names(&console, &session).await?)
    } else {
        None
    };
    let notice = problem
        .map(views::Notice::error)
        .or_else(|| notice_for(&filters.done, filters.n));
    // New attempts stream in on the first page only: later pages are history.
    let live = filters
        .page
        .is_empty()
        .then(|| format!("{BASE}/live?{}", filters.query()));
    let content = html! {
        h1 { "Deliveries" }
        (filter_form(&filters))
        section.panel aria-label="Deliveries" {
            (deliveries_table(&deliveries, names.as_ref(), live.as_deref(), "No deliveries match."))
            @if !next.is_empty() {
                p.pager {
                    a href=(format!("{BASE}/deliveries?{}&page={}", filters.query(), views::query_escape(&next))) { "Older deliveries →" }
                }
            }
        }
    };
    shown(
        &session,
        Section::Deliveries,
        "Deliveries",
        notice.as_ref(),
        content,
    )
}

/// A webhook's latest deliveries, for its page.
pub(crate) async fn recent_deliveries(
    console: &Console,
    session: &Session,
    webhook_id: &str,
) -> Result<Vec<proto::Delivery>, Failure> {
    Ok(console
        .deliveries
        .list_deliveries(call(
            session,
            proto::ListDeliveriesRequest {
                page_size: RECENT,
                webhook_id: webhook_id.to_owned(),
                ..Default::default()
            },
        ))
        .await?
        .into_inner()
        .deliveries)
}

/// One delivery: what it carried, where it went, and every attempt.
pub(crate) async fn show(
    State(console): State<Console>,
    session: Session,
    Path(id): Path<String>,
    Query(filters): Query<Filters>,
) -> Page {
    let got = console
        .deliveries
        .get_delivery(call(&session, proto::GetDeliveryRequest { id: id.clone() }))
        .await?
        .into_inner();
    let d = got.delivery.ok_or(Failure::NotFound)?;
    let notice = notice_for(&filters.done, filters.n);
    let live = format!(
        "{BASE}/live?webhook={}&delivery={}",
        views::query_escape(&d.webhook_id),
        views::query_escape(&d.id)
    );
    let content = html! {
        nav.crumbs aria-label="Breadcrumb" {
            a href=(format!("{BASE}/webhooks/{}", d.webhook_id)) { "Webhook" } " / "
            a href=(format!("{BASE}/deliveries?webhook={}", d.webhook_id)) { "Deliveries" } " / "
        }
        div.heading {
            h1 { span.type { (d.event_type) } " " (views::target(&d.repository, &d.tag)) }
            span data-status-badge { (views::status_badge(d.status)) }
        }
        div.actions {
            form method="post" action=(format!("{BASE}/deliveries/{}/redeliver", d.id)) {
                (csrf_field(&session))
                button.primary type="submit" { "Redeliver" }
            }
        }
        section.panel aria-labelledby="delivery-title" {
            h2 #delivery-title { "Delivery" }
            dl.facts {
                div { dt { "Id (webhook-id header)" } dd { code { (d.id) } } }
                div { dt { "Webhook" } dd { a href=(format!("{BASE}/webhooks/{}", d.webhook_id)) { code { (d.webhook_id) } } } }
                div { dt { "Created" } dd { (when(d.created_at.as_ref())) } }
                div { dt { "Attempts" } dd { (d.attempts) } }
                @if d.status == DeliveryStatus::Retrying as i32 {
                    div { dt { "Next attempt" } dd { (views::until(d.next_attempt_at.as_ref())) } }
                }
                @if !d.digest.is_empty() {
                    div.wide { dt { "Digest" } dd { code { (d.digest) } } }
                }
                @if let Some(event) = &got.event {
                    div { dt { "Event" } dd { code { (event.id) } } }
                    div { dt { "From registry" } dd { (event.source) } }
                    div { dt { "Received" } dd { (when(event.received_at.as_ref())) } }
                }
            }
        }
        section.panel aria-labelledby="attempts-title" {
            h2 #attempts-title { "Attempts" }
            p.muted { "Newest first. New attempts appear here as they happen." }
            ol.attempts reversed data-live=(live) data-delivery=(d.id) {
                @for a in got.attempts.iter().rev() { (attempt_item(a, None)) }
            }
            @if got.attempts.is_empty() { p.muted.empty-row { "No attempt yet: it is queued." } }
            p.live-status.muted aria-live="polite" {}
        }
    };
    shown(
        &session,
        Section::Deliveries,
        "Delivery",
        notice.as_ref(),
        content,
    )
}

/// RedeliverDelivery, then back to the delivery saying what happened.
pub(crate) async fn redeliver(
    State(console): State<Console>,
    Path(id): Path<String>,
    Posted { session, .. }: Posted,
) -> Page {
    let answer = console
        .deliveries
        .redeliver_delivery(call(
            &session,
            proto::RedeliverDeliveryRequest { id: id.clone() },
        ))
        .await?
        .into_inner();
    let done = match redeliver_delivery_response::Result::try_from(answer.result) {
        Ok(redeliver_delivery_response::Result::Expedited) => "expedited",
        Ok(redeliver_delivery_response::Result::InFlight) => "in_flight",
        _ => "redelivered",
    };
    back_to(&format!("/deliveries/{id}?done={done}"))
}

/// ReplayWebhook from the webhook page's form, then back to it with the count.
pub(crate) async fn replay(
    State(console): State<Console>,
    Path(id): Path<String>,
    Posted { session, fields }: Posted,
) -> Page {
    let since = parse_time(field(&fields, "since").trim())
        .map_err(|e| Failure::BadRequest(format!("Since: {e}")))?;
    let answer = console
        .deliveries
        .replay_webhook(call(
            &session,
            proto::ReplayWebhookRequest {
                webhook_id: id.clone(),
                since: Some(since),
                failed_only: field(&fields, "failed_only") == "true",
                request_id: field(&fields, "request_id").to_owned(),
                ..Default::default()
            },
        ))
        .await?
        .into_inner();
    let done = if answer.next_page_token.is_empty() {
        "replayed"
    } else {
        "replayed_more"
    };
    back_to(&format!("/webhooks/{id}?done={done}&n={}", answer.queued))
}
