//! Delivery pages: the list (one webhook's or the whole namespace's) with filters and
//! pages, one delivery with every attempt, and the recovery actions (redeliver, replay).
//! Tables carry a `data-live` URL: `console.js` adds and updates rows from the live tail.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use maud::{Markup, html};
use serde::Deserialize;

use super::session::field;
use super::views::{self, Section, csrf_field, layout, notice_for, when};
use super::{BASE, Console, Failure, Page, Session, call, page};
use crate::api::proto::delivery_service_server::DeliveryService;
use crate::api::proto::{self, DeliveryStatus, redeliver_delivery_response};
use crate::present::{code_text, duration_text, parse_time};

/// Deliveries per page.
const PAGE_SIZE: i32 = 50;
/// Deliveries on a webhook's page.
const RECENT: i32 = 20;

/// The list's filters, as the form sends them.
#[derive(Deserialize, Default, Clone)]
pub(crate) struct Filters {
    #[serde(default)]
    pub webhook: String,
    #[serde(default)]
    pub status: String,
    #[serde(default, rename = "type")]
    pub event_type: String,
    #[serde(default)]
    pub repository: String,
    #[serde(default)]
    pub since: String,
    #[serde(default)]
    pub until: String,
    #[serde(default)]
    pub page: String,
    #[serde(default)]
    pub done: String,
    #[serde(default)]
    pub n: i64,
}

/// Webhook names by id, for the webhook column of namespace-wide tables (None: no such
/// column).
pub(crate) type Names = std::collections::HashMap<String, String>;

/// The names of the webhooks the session sees (the first 500; others show their id).
pub(crate) async fn webhook_names(console: &Console, session: &Session) -> Result<Names, Failure> {
    use crate::api::proto::webhook_service_server::WebhookService;
    Ok(console
        .webhooks
        .list_webhooks(call(
            session,
            proto::ListWebhooksRequest {
                page_size: 500,
                ..Default::default()
            },
        ))
        .await?
        .into_inner()
        .webhooks
        .into_iter()
        .map(|w| (w.id.clone(), views::webhook_title(&w).to_owned()))
        .collect())
}

/// The statuses offered by the filter, by name.
pub(crate) fn status_by_name(name: &str) -> Option<DeliveryStatus> {
    match name {
        "pending" => Some(DeliveryStatus::Pending),
        "retrying" => Some(DeliveryStatus::Retrying),
        "succeeded" => Some(DeliveryStatus::Succeeded),
        "failed" => Some(DeliveryStatus::Failed),
        _ => None,
    }
}

/// An event type by its name (`image.pushed`).
pub(crate) fn event_type_by_name(name: &str) -> Option<i32> {
    (1..=9).find(|v| views::event_type_name(*v) == name)
}

impl Filters {
    /// The ListDeliveries request, or what is wrong with a filter.
    fn request(&self) -> Result<proto::ListDeliveriesRequest, String> {
        let time = |label: &str, text: &str| {
            if text.trim().is_empty() {
                Ok(None)
            } else {
                parse_time(text.trim())
                    .map(Some)
                    .map_err(|e| format!("{label}: {e}"))
            }
        };
        Ok(proto::ListDeliveriesRequest {
            page_size: PAGE_SIZE,
            page_token: self.page.clone(),
            webhook_id: self.webhook.clone(),
            statuses: status_by_name(&self.status)
                .map(|s| vec![s as i32])
                .unwrap_or_default(),
            event_types: event_type_by_name(&self.event_type)
                .map(|t| vec![t])
                .unwrap_or_default(),
            repository: self.repository.trim().to_owned(),
            since: time("Since", &self.since)?,
            until: time("Until", &self.until)?,
        })
    }

    /// These filters as a query string (for links and the live stream), without the page.
    fn query(&self) -> String {
        [
            ("webhook", &self.webhook),
            ("status", &self.status),
            ("type", &self.event_type),
            ("repository", &self.repository),
            ("since", &self.since),
            ("until", &self.until),
        ]
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", views::query_escape(v)))
        .collect::<Vec<_>>()
        .join("&")
    }
}

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
    Ok(page(
        StatusCode::OK,
        layout(
            "Deliveries",
            Some(&session),
            Some(Section::Deliveries),
            notice.as_ref(),
            content,
        ),
    ))
}

fn filter_form(f: &Filters) -> Markup {
    html! {
        form.filters.panel method="get" action=(format!("{BASE}/deliveries")) role="search" aria-label="Filter deliveries" {
            @if !f.webhook.is_empty() {
                input type="hidden" name="webhook" value=(f.webhook);
            }
            div.field {
                label for="f-status" { "Status" }
                select #f-status name="status" {
                    option value="" { "any" }
                    @for s in ["pending", "retrying", "succeeded", "failed"] {
                        option value=(s) selected[f.status == s] { (s) }
                    }
                }
            }
            div.field {
                label for="f-type" { "Event" }
                select #f-type name="type" {
                    option value="" { "any" }
                    @for v in 1..=9 {
                        @let name = views::event_type_name(v);
                        option value=(name) selected[f.event_type == name] { (name) }
                    }
                }
            }
            div.field {
                label for="f-repository" { "Repository" }
                input #f-repository name="repository" value=(f.repository) placeholder="acme/app or acme/*" spellcheck="false";
            }
            div.field {
                label for="f-since" { "Since" }
                input #f-since name="since" value=(f.since) placeholder="1h or 2026-12-01T09:00:00Z" spellcheck="false";
            }
            div.field {
                label for="f-until" { "Until" }
                input #f-until name="until" value=(f.until) placeholder="now" spellcheck="false";
            }
            div.buttons {
                button type="submit" { "Filter" }
                @if !f.query().is_empty() {
                    a.button href=(if f.webhook.is_empty() { format!("{BASE}/deliveries") } else { format!("{BASE}/deliveries?webhook={}", f.webhook) }) { "Clear" }
                }
            }
            @if !f.webhook.is_empty() {
                p.muted.wide { "Showing one webhook's deliveries. " a href=(format!("{BASE}/webhooks/{}", f.webhook)) { "Open the webhook" } }
            }
        }
    }
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

/// A table of deliveries. `live`: where new attempts stream from (a webhook id alone
/// means that webhook's stream).
pub(crate) fn deliveries_table(
    deliveries: &[proto::Delivery],
    names: Option<&Names>,
    live: Option<&str>,
    empty: &str,
) -> Markup {
    let live = live.map(|l| {
        if l.starts_with('/') {
            l.to_owned()
        } else {
            format!("{BASE}/live?webhook={}", views::query_escape(l))
        }
    });
    html! {
        div.table-wrap {
            table.deliveries data-live=[live] {
                caption.visually-hidden { "Deliveries, newest first" }
                thead { tr {
                    th scope="col" { "Status" }
                    th scope="col" { "Event" }
                    @if names.is_some() { th scope="col" { "Webhook" } }
                    th scope="col" { "Attempts" }
                    th scope="col" { "Last answer" }
                    th scope="col" { "Last attempt" }
                } }
                tbody {
                    @for d in deliveries { (delivery_row(d, names)) }
                }
            }
            p.empty-row.muted hidden[!deliveries.is_empty()] { (if empty.is_empty() { "No deliveries yet." } else { empty }) }
            p.live-status.muted aria-live="polite" {}
        }
    }
}

/// One delivery as a table row: the same markup on the page and from the live stream.
pub(crate) fn delivery_row(d: &proto::Delivery, names: Option<&Names>) -> Markup {
    html! {
        tr data-delivery=(d.id) {
            td { (views::status_badge(d.status)) }
            td {
                a href=(format!("{BASE}/deliveries/{}", d.id)) {
                    span.type { (d.event_type) } " " (views::target(&d.repository, &d.tag))
                }
            }
            @if let Some(names) = names {
                td { a href=(format!("{BASE}/webhooks/{}", d.webhook_id)) {
                    @match names.get(&d.webhook_id) {
                        Some(name) => { (name) }
                        None => { code { (d.webhook_id) } }
                    }
                } }
            }
            td.num { (d.attempts) }
            td {
                @if d.last_status_code != 0 { "HTTP " (d.last_status_code) }
                @else if !d.last_error.is_empty() { span.bad { (short(&d.last_error, 60)) } }
                @else { span.muted { "-" } }
                @if d.last_attempt_at.is_some() { span.muted { " · " (duration_text(d.last_duration_ms)) } }
            }
            td {
                (when(d.last_attempt_at.as_ref()))
                @if d.status == DeliveryStatus::Retrying as i32 {
                    br; span.muted { "next " (views::until(d.next_attempt_at.as_ref())) }
                }
            }
        }
    }
}

/// At most `max` characters of `text`, with an ellipsis when cut.
fn short(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let cut: String = text.chars().take(max).collect();
        format!("{cut}…")
    }
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
    Ok(page(
        StatusCode::OK,
        layout(
            "Delivery",
            Some(&session),
            Some(Section::Deliveries),
            notice.as_ref(),
            content,
        ),
    ))
}

/// One attempt: the same markup on the page and from the live stream. `status`: the
/// delivery's status after it, which the live page shows in its heading.
pub(crate) fn attempt_item(a: &proto::Attempt, status: Option<i32>) -> Markup {
    let (status_class, status_text) = status.map(views::status_words).unzip();
    html! {
        li.attempt data-attempt=(a.id) data-status-class=[status_class] data-status-text=[status_text] {
            div.attempt-head {
                strong { "Attempt " (a.number) }
                (views::outcome_badge(&a.outcome))
                span { "HTTP " (code_text(a.status_code)) }
                span.muted { (duration_text(a.duration_ms)) }
                span.muted { (when(a.started_at.as_ref())) }
            }
            @if !a.reason.is_empty() { p.reason { (a.reason) } }
            @if !a.error.is_empty() {
                p.error { @if !a.error_class.is_empty() { span.badge.bad { (a.error_class) } " " } (a.error) }
            }
            @if !a.response_headers.is_empty() || !a.response_body.is_empty() {
                details {
                    summary { "Response" }
                    @if !a.response_headers.is_empty() {
                        table.headers {
                            caption.visually-hidden { "Response headers" }
                            tbody {
                                @for (name, value) in sorted(&a.response_headers) {
                                    tr { th scope="row" { (name) } td { (value) } }
                                }
                            }
                        }
                    }
                    @if !a.response_body.is_empty() {
                        pre.body { (a.response_body) }
                    }
                }
            }
        }
    }
}

fn sorted(map: &std::collections::HashMap<String, String>) -> Vec<(&String, &String)> {
    let mut pairs: Vec<_> = map.iter().collect();
    pairs.sort();
    pairs
}

/// RedeliverDelivery, then back to the delivery saying what happened.
pub(crate) async fn redeliver(
    State(console): State<Console>,
    session: Session,
    Path(id): Path<String>,
    axum::Form(fields): axum::Form<Vec<(String, String)>>,
) -> Page {
    session.check_csrf(&fields)?;
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
    Ok(Redirect::to(&format!("{BASE}/deliveries/{id}?done={done}")).into_response())
}

/// ReplayWebhook from the webhook page's form, then back to it with the count.
pub(crate) async fn replay(
    State(console): State<Console>,
    session: Session,
    Path(id): Path<String>,
    axum::Form(fields): axum::Form<Vec<(String, String)>>,
) -> Page {
    session.check_csrf(&fields)?;
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
    Ok(Redirect::to(&format!(
        "{BASE}/webhooks/{id}?done={done}&n={}",
        answer.queued
    ))
    .into_response())
}
