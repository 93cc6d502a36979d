//! One webhook's page: its health, the last hour's chart, its settings, the actions and
//! the replay form, and its recent deliveries (live); after creation or rotation, the new
//! signing secret on top, shown this once.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use maud::{Markup, html};

use super::{Done, get, health_summary};
use crate::api::proto::{self, delivery_service_server::DeliveryService};
use crate::console::deliveries::{deliveries_table, recent_deliveries};
use crate::console::views::{self, Notice, Section, csrf_field, layout, notice_for, when};
use crate::console::{BASE, Console, Page, Session, call, chart, page};
use crate::present::{event_names, format_name};

/// One webhook: health, chart, settings, actions, replay, and its recent deliveries live.
pub(crate) async fn show(
    State(console): State<Console>,
    session: Session,
    Path(id): Path<String>,
    Query(query): Query<Done>,
) -> Page {
    let webhook = get(&console, &session, &id).await?;
    let notice = notice_for(&query.done, query.n);
    render_webhook(&console, &session, &webhook, notice.as_ref(), None).await
}

/// Fetches what the webhook page shows beside the webhook (the last hour's stats, its
/// latest deliveries) and renders it.
async fn render_webhook(
    console: &Console,
    session: &Session,
    webhook: &proto::Webhook,
    notice: Option<&Notice>,
    secret: Option<&str>,
) -> Page {
    let stats = console
        .deliveries
        .get_webhook_stats(call(
            session,
            proto::GetWebhookStatsRequest {
                webhook_id: webhook.id.clone(),
                ..Default::default()
            },
        ))
        .await?
        .into_inner();
    let recent = recent_deliveries(console, session, &webhook.id).await?;
    Ok(page(
        StatusCode::OK,
        webhook_page(session, webhook, &stats, &recent, notice, secret),
    ))
}

/// The webhook page itself; `secret`: a new signing secret to show on top, this once
/// (after creation or rotation).
fn webhook_page(
    session: &Session,
    w: &proto::Webhook,
    stats: &proto::GetWebhookStatsResponse,
    recent: &[proto::Delivery],
    notice: Option<&Notice>,
    secret: Option<&str>,
) -> Markup {
    let health = w.health.clone().unwrap_or_default();
    let enabled = w.enabled.unwrap_or(true);
    let action = |path: &str| format!("{BASE}/webhooks/{}/{path}", w.id);
    let content = html! {
        @if let Some(secret) = secret {
            section.panel.secret aria-labelledby="secret-title" {
                h2 #secret-title { "Signing secret" }
                p { "Receivers verify deliveries with it (Standard Webhooks). It will not be shown again." }
                div.copy {
                    input #new-secret readonly value=(secret) aria-label="Signing secret" spellcheck="false";
                    button type="button" data-copy="new-secret" { "Copy" }
                }
            }
        }
        nav.crumbs aria-label="Breadcrumb" { a href=(format!("{BASE}/webhooks")) { "Webhooks" } " / " }
        div.heading {
            h1 { (views::webhook_title(w)) }
            (health_summary(w))
        }
        div.actions {
            a.button href=(action("edit")) { "Edit" }
            form method="post" action=(action("test")) {
                (csrf_field(session))
                button type="submit" disabled[!enabled] { "Send test ping" }
            }
            form method="post" action=(action("enabled")) {
                (csrf_field(session))
                input type="hidden" name="enabled" value=(if enabled { "false" } else { "true" });
                button type="submit" { @if enabled { "Disable" } @else { "Enable" } }
            }
            form method="post" action=(action("rotate")) {
                (csrf_field(session))
                button type="submit" { "Rotate secret" }
            }
            a.button.danger href=(action("delete")) { "Delete" }
        }
        div.grid {
            section.panel aria-labelledby="health-title" {
                h2 #health-title { "Health" }
                dl.facts {
                    div { dt { "Last success" } dd { (when(health.last_success_at.as_ref())) } }
                    div { dt { "Failing since" } dd { (when(health.failing_since.as_ref())) } }
                    div { dt { "Last attempt" } dd {
                        (when(health.last_attempt_at.as_ref()))
                        @if !health.last_outcome.is_empty() { " " (views::outcome_badge(&health.last_outcome)) }
                    } }
                    @if !health.last_error.is_empty() {
                        div.wide { dt { "Last error" } dd { code { (health.last_error) } } }
                    }
                    div { dt { "Circuit" } dd { (health.circuit) } }
                    div { dt { "Requests at once" } dd {
                        @if health.concurrency_window == 0 { span.muted { "-" } }
                        @else { (health.concurrency_window) " " span.muted { "(adaptive)" } }
                    } }
                    div { dt { "Deliveries waiting" } dd { (health.pending) } }
                    div { dt { "Deliveries failed" } dd { (health.failed) } }
                    div { dt { "Attempts, last 24 h" } dd.counts {
                        span.ok { (health.succeeded_24h) " ok" } " · "
                        span.warn { (health.retried_24h) " retried" } " · "
                        span.bad { (health.failed_24h) " failed" }
                    } }
                }
            }
            section.panel aria-labelledby="chart-title" {
                h2 #chart-title { "Last hour" }
                (chart::render(stats))
            }
        }
        section.panel aria-labelledby="settings-title" {
            h2 #settings-title { "Settings" }
            dl.facts.settings {
                div.wide { dt { "URL" } dd { code { (w.url) } } }
                div { dt { "Namespace" } dd { (w.namespace.clone().unwrap_or_default()) } }
                div { dt { "Events" } dd { (list_or(&event_names(&w.event_types), "every image and repository event")) } }
                div { dt { "Repositories" } dd { (list_or(&w.repositories, "every repository in the namespace")) } }
                div { dt { "Tags" } dd { (list_or(&w.tags, "every event, tagged or not")) } }
                div { dt { "Payload format" } dd { (format_name(w.payload_format)) } }
                div { dt { "Ordered" } dd { @if w.ordered { "yes, one at a time per tag" } @else { "no" } } }
                div { dt { "Limits" } dd {
                    @match (w.max_concurrency, w.rate_limit) {
                        (None, None) => { span.muted { "none: adaptive" } }
                        (concurrency, rate) => {
                            @if let Some(n) = concurrency { "at most " (n) " at once" }
                            @if concurrency.is_some() && rate.is_some() { ", " }
                            @if let Some(r) = rate { "at most " (r) "/s" }
                        }
                    }
                } }
                div { dt { "Extra headers" } dd {
                    // Values may be credentials for the receiver: names only here.
                    (list_or(&w.headers.keys().cloned().collect::<Vec<_>>(), "none"))
                } }
                @if !w.signature_header.is_empty() {
                    div { dt { "Signature header" } dd { code { (w.signature_header) } } }
                }
                div { dt { "Id" } dd { code { (w.id) } } }
            }
        }
        section.panel aria-labelledby="replay-title" {
            h2 #replay-title { "Replay" }
            p.muted { "Sends again this webhook's deliveries of the events received since a time: "
                "recovery after the receiver was down. Each event is queued once per replay." }
            form.inline method="post" action=(action("replay")) {
                (csrf_field(session))
                // One id per rendered form: sending it twice (a double click) queues once.
                input type="hidden" name="request_id" value=(crate::ids::new_id("console"));
                div.field {
                    label for="since" { "Since" }
                    input #since name="since" value="1h" required aria-describedby="since-help";
                    small #since-help { "a duration ago (30m, 2h, 1d) or a time (2026-12-01T09:00:00Z)" }
                }
                div.field.check {
                    input #failed_only type="checkbox" name="failed_only" value="true" checked;
                    label for="failed_only" { "Failed deliveries only" }
                }
                button type="submit" disabled[!enabled] { "Replay" }
            }
        }
        section.panel aria-labelledby="recent-title" {
            div.heading {
                h2 #recent-title { "Recent deliveries" }
                a href=(format!("{BASE}/deliveries?webhook={}", w.id)) { "All deliveries →" }
            }
            (deliveries_table(recent, None, Some(&w.id), ""))
        }
    };
    layout(
        views::webhook_title(w),
        Some(session),
        Some(Section::Webhooks),
        notice,
        content,
    )
}

fn list_or(items: &[String], empty: &str) -> Markup {
    html! {
        @if items.is_empty() { span.muted { (empty) } }
        @else { @for (i, item) in items.iter().enumerate() { @if i > 0 { ", " } code { (item) } } }
    }
}

/// The webhook page with its new signing secret on top, shown this once.
pub(super) async fn secret_page(
    console: &Console,
    session: &Session,
    webhook: &proto::Webhook,
    secret: &str,
    what: &str,
) -> Page {
    let notice = Notice::warn(format!(
        "{what} Its signing secret is shown only now: copy it to the receiver."
    ));
    render_webhook(console, session, webhook, Some(&notice), Some(secret)).await
}
