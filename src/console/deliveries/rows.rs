//! Deliveries and attempts as people see them in a list: the table of deliveries, one
//! delivery's row, one attempt's item. The same markup serves the pages (the delivery
//! list, a webhook's recent deliveries, a delivery's attempts) and the live stream
//! (`live.rs`), so `console.js` only puts a streamed item in place.

use maud::{Markup, html};

use crate::api::proto::{self, DeliveryStatus, webhook_service_server::WebhookService};
use crate::console::views::{self, when};
use crate::console::{BASE, Console, Failure, Session, call};
use crate::present::{code_text, duration_text};

/// Webhook names by id, for the webhook column of namespace-wide tables (None: no such
/// column).
pub(crate) type Names = std::collections::HashMap<String, String>;

/// The names of the webhooks the session sees (the first 500; others show their id).
pub(crate) async fn webhook_names(console: &Console, session: &Session) -> Result<Names, Failure> {
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
