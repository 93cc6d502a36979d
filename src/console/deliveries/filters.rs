//! The delivery list's filters: what the filter form sends (`Filters`), read into the
//! ListDeliveries request or written back as a query string for links and the live
//! stream, the form itself, and the names the filters use for statuses and event types
//! (the live stream filters its rows by the same names).

use maud::{Markup, html};
use serde::Deserialize;

use crate::api::proto::{self, DeliveryStatus};
use crate::console::{BASE, views};
use crate::present::parse_time;

/// Deliveries per page.
const PAGE_SIZE: i32 = 50;

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
    pub(super) fn request(&self) -> Result<proto::ListDeliveriesRequest, String> {
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
    pub(super) fn query(&self) -> String {
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

pub(super) fn filter_form(f: &Filters) -> Markup {
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
