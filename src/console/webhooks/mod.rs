//! Webhook pages: the list with health at a glance (here), one webhook with its health,
//! chart, settings and recent deliveries live (`detail.rs`), the create/edit form with the
//! API's field errors beside their fields (`form.rs` reads it, `form_page.rs` shows and
//! posts it; `preview.rs` its Preview button), and the actions on one webhook (`actions.rs`: enable/disable, rotate the
//! secret, test ping, delete).

mod actions;
mod detail;
mod form;
mod form_page;
mod preview;

use axum::extract::{Query, State};
use maud::{Markup, html};
use serde::Deserialize;

pub(crate) use actions::{delete, delete_form, rotate, set_enabled, test};
pub(crate) use detail::show;
pub(crate) use form_page::{create, edit_form, new_form, update};
pub(crate) use preview::{of_edit as preview_edit, of_new as preview_new};

use super::views::{self, Section, notice_for, when};
use super::{BASE, Console, Failure, Page, Session, call, shown};
use crate::api::proto::{self, webhook_service_server::WebhookService};

/// Webhooks shown on the list page.
const LIST_PAGE: i32 = 50;

/// `?done=…&n=…` after an action, `?page=…` for lists.
#[derive(Deserialize, Default)]
pub(crate) struct Done {
    #[serde(default)]
    done: String,
    #[serde(default)]
    n: i64,
    #[serde(default)]
    page: String,
}

/// The list: every webhook the session sees, with its health at a glance.
pub(crate) async fn list(
    State(console): State<Console>,
    session: Session,
    Query(query): Query<Done>,
) -> Page {
    let listed = console
        .webhooks
        .list_webhooks(call(
            &session,
            proto::ListWebhooksRequest {
                page_size: LIST_PAGE,
                page_token: query.page.clone(),
                ..Default::default()
            },
        ))
        .await?
        .into_inner();
    let notice = notice_for(&query.done, query.n);
    let content = html! {
        div.heading {
            h1 { "Webhooks" }
            a.button.primary href=(format!("{BASE}/webhooks/new")) { "New webhook" }
        }
        @if listed.webhooks.is_empty() && query.page.is_empty() {
            section.panel.empty {
                p { "No webhooks yet. A webhook tells one of your systems about registry events: "
                    "a deploy hook, a scanner, a chat channel." }
                p { a.button.primary href=(format!("{BASE}/webhooks/new")) { "Create the first one" } }
            }
        } @else {
            ul.cards aria-label="Webhooks" {
                @for w in &listed.webhooks {
                    li { (card(w)) }
                }
            }
            @if !listed.next_page_token.is_empty() {
                p.pager {
                    a href=(format!("{BASE}/webhooks?page={}", views::query_escape(&listed.next_page_token))) { "More webhooks →" }
                }
            }
        }
    };
    shown(
        &session,
        Section::Webhooks,
        "Webhooks",
        notice.as_ref(),
        content,
    )
}

/// One line of health: "healthy", "failing since …", "circuit open", "disabled: why".
fn health_summary(w: &proto::Webhook) -> Markup {
    let health = w.health.clone().unwrap_or_default();
    let enabled = w.enabled.unwrap_or(true);
    html! {
        @if !enabled {
            span.badge.bad { "disabled" }
            @if !w.disabled_reason.is_empty() { " " span.muted { (w.disabled_reason) } }
        } @else if health.circuit == "open" {
            span.badge.bad { "circuit open" } " "
            span.muted { "held until " (views::until(health.circuit_open_until.as_ref())) }
        } @else if health.failing_since.is_some() {
            span.badge.warn { "failing" } " "
            span.muted { "since " (when(health.failing_since.as_ref())) }
        } @else if health.last_attempt_at.is_none() {
            span.badge.info { "no deliveries yet" }
        } @else {
            span.badge.ok { "healthy" }
        }
    }
}

/// A webhook on the list page.
fn card(w: &proto::Webhook) -> Markup {
    let health = w.health.clone().unwrap_or_default();
    html! {
        article.card {
            div.card-head {
                h2 { a href=(format!("{BASE}/webhooks/{}", w.id)) { (views::webhook_title(w)) } }
                (health_summary(w))
            }
            p.url { code { (w.url) } }
            dl.facts {
                div { dt { "Last success" } dd { (when(health.last_success_at.as_ref())) } }
                div { dt { "Last attempt" } dd {
                    (when(health.last_attempt_at.as_ref()))
                    @if health.last_status_code != 0 { " · HTTP " (health.last_status_code) }
                } }
                div { dt { "Waiting" } dd { (health.pending) } }
                div { dt { "Attempts, last 24 h" } dd.counts {
                    span.ok title="attempts answered 2xx" { (health.succeeded_24h) " ok" }
                    " · " span.warn title="failed attempts that are retried" { (health.retried_24h) " retried" }
                    " · " span.bad title="failed attempts that were final" { (health.failed_24h) " failed" }
                } }
            }
        }
    }
}

/// The webhook, through GetWebhook (NOT_FOUND for another tenant's).
async fn get(console: &Console, session: &Session, id: &str) -> Result<proto::Webhook, Failure> {
    console
        .webhooks
        .get_webhook(call(
            session,
            proto::GetWebhookRequest { id: id.to_owned() },
        ))
        .await?
        .into_inner()
        .webhook
        .ok_or(Failure::NotFound)
}
