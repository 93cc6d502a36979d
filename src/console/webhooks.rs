//! Webhook pages: the list with health at a glance, one webhook (health, chart, recent
//! deliveries live, actions), the create/edit form with the API's field errors beside
//! their fields, and the actions (enable/disable, rotate secret, test ping, delete).

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use maud::{Markup, html};
use serde::Deserialize;
use tonic_types::StatusExt;

use super::deliveries::{deliveries_table, recent_deliveries};
use super::session::field;
use super::views::{self, Notice, Section, csrf_field, layout, notice_for, when};
use super::{BASE, Console, Failure, Page, Session, call, chart, page};
use crate::api::proto::delivery_service_server::DeliveryService;
use crate::api::proto::{self, webhook_service_server::WebhookService};
use crate::api::service::UPDATABLE;
use crate::present::{event_names, format_name};

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
    Ok(page(
        StatusCode::OK,
        layout(
            "Webhooks",
            Some(&session),
            Some(Section::Webhooks),
            notice.as_ref(),
            content,
        ),
    ))
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

/// What the create/edit form holds, as typed.
#[derive(Default, Clone)]
struct WebhookForm {
    /// Create only: empty means the session's own namespace.
    namespace: String,
    name: String,
    url: String,
    event_types: Vec<i32>,
    repositories: String,
    tags: String,
    payload_format: i32,
    headers: String,
    ordered: bool,
    enabled: bool,
    signature_header: String,
    include_host: String,
    harbor_deletes: bool,
    max_concurrency: String,
    rate_limit: String,
    secret: String,
}

/// Event types offered in the form, with what they mean.
const EVENT_CHOICES: [(proto::EventType, &str); 10] = [
    (
        proto::EventType::ImagePushed,
        "an image was pushed under a tag",
    ),
    (
        proto::EventType::ImageDeleted,
        "a manifest or tag was deleted",
    ),
    (proto::EventType::ImagePulled, "a manifest was pulled"),
    (
        proto::EventType::ImageMounted,
        "a manifest was mounted from another repository",
    ),
    (
        proto::EventType::RepositoryDeleted,
        "a repository was deleted",
    ),
    (
        proto::EventType::BlobPushed,
        "a layer was pushed (only when asked for)",
    ),
    (
        proto::EventType::BlobPulled,
        "a layer was pulled (only when asked for)",
    ),
    (
        proto::EventType::BlobMounted,
        "a layer was mounted (only when asked for)",
    ),
    (
        proto::EventType::ManifestPushed,
        "a manifest was pushed without a tag: platform manifests, signatures (only when asked for)",
    ),
    (proto::EventType::Ping, "test pings"),
];

const FORMAT_CHOICES: [(proto::PayloadFormat, &str); 5] = [
    (proto::PayloadFormat::Hookline, "hookline (documented JSON)"),
    (proto::PayloadFormat::Cloudevents, "CloudEvents 1.0"),
    (
        proto::PayloadFormat::Dockerhub,
        "Docker Hub (Keel, Kargo, Jenkins)",
    ),
    (
        proto::PayloadFormat::Harbor,
        "Harbor (Argo CD Image Updater)",
    ),
    (
        proto::PayloadFormat::Distribution,
        "distribution envelope, signed",
    ),
];

impl WebhookForm {
    fn blank() -> WebhookForm {
        WebhookForm {
            enabled: true,
            payload_format: proto::PayloadFormat::Hookline as i32,
            ..WebhookForm::default()
        }
    }

    fn from_webhook(w: &proto::Webhook) -> WebhookForm {
        let options = w.payload_options.unwrap_or_default();
        WebhookForm {
            namespace: w.namespace.clone().unwrap_or_default(),
            name: w.name.clone(),
            url: w.url.clone(),
            event_types: w.event_types.clone(),
            repositories: w.repositories.join("\n"),
            tags: w.tags.join("\n"),
            payload_format: w.payload_format,
            headers: w
                .headers
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join("\n"),
            ordered: w.ordered,
            enabled: w.enabled.unwrap_or(true),
            signature_header: w.signature_header.clone(),
            include_host: match options.include_host_in_repo_name {
                None => String::new(),
                Some(true) => "yes".into(),
                Some(false) => "no".into(),
            },
            harbor_deletes: options.harbor_deletes,
            max_concurrency: w.max_concurrency.map(|n| n.to_string()).unwrap_or_default(),
            rate_limit: w.rate_limit.map(|r| r.to_string()).unwrap_or_default(),
            secret: String::new(),
        }
    }

    fn from_fields(form: &[(String, String)]) -> WebhookForm {
        let checked = |name: &str| field(form, name) == "true";
        WebhookForm {
            namespace: field(form, "namespace").trim().to_owned(),
            name: field(form, "name").trim().to_owned(),
            url: field(form, "url").trim().to_owned(),
            event_types: form
                .iter()
                .filter(|(k, _)| k == "event_types")
                .filter_map(|(_, v)| v.parse().ok())
                .collect(),
            repositories: field(form, "repositories").to_owned(),
            tags: field(form, "tags").to_owned(),
            payload_format: field(form, "payload_format").parse().unwrap_or(0),
            headers: field(form, "headers").to_owned(),
            ordered: checked("ordered"),
            enabled: checked("enabled"),
            signature_header: field(form, "signature_header").trim().to_owned(),
            include_host: field(form, "include_host").to_owned(),
            harbor_deletes: checked("harbor_deletes"),
            max_concurrency: field(form, "max_concurrency").trim().to_owned(),
            rate_limit: field(form, "rate_limit").trim().to_owned(),
            secret: field(form, "secret").trim().to_owned(),
        }
    }

    /// The webhook the form describes, or the form's own errors (lines it cannot read).
    fn to_webhook(&self) -> Result<proto::Webhook, Errors> {
        let lines = |text: &str| -> Vec<String> {
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let mut errors = Errors::default();
        let mut headers = std::collections::HashMap::new();
        for line in lines(&self.headers) {
            match line.split_once(':') {
                Some((name, value)) if !name.trim().is_empty() => {
                    headers.insert(name.trim().to_owned(), value.trim().to_owned());
                }
                _ => errors.add(
                    "headers",
                    format!("`{line}`: write one header per line as `Name: value`"),
                ),
            }
        }
        let max_concurrency = match self.max_concurrency.as_str() {
            "" => None,
            text => text.parse::<i32>().ok().or_else(|| {
                errors.add("max_concurrency", "a whole number, or empty for no limit");
                None
            }),
        };
        let rate_limit = match self.rate_limit.as_str() {
            "" => None,
            text => text.parse::<f64>().ok().or_else(|| {
                errors.add("rate_limit", "a number of deliveries per second, or empty");
                None
            }),
        };
        if !errors.0.is_empty() {
            return Err(errors);
        }
        Ok(proto::Webhook {
            max_concurrency,
            rate_limit,
            namespace: (!self.namespace.is_empty()).then(|| self.namespace.clone()),
            name: self.name.clone(),
            url: self.url.clone(),
            event_types: self.event_types.clone(),
            repositories: lines(&self.repositories),
            tags: lines(&self.tags),
            payload_format: self.payload_format,
            headers,
            ordered: self.ordered,
            enabled: Some(self.enabled),
            signature_header: self.signature_header.clone(),
            payload_options: Some(proto::PayloadOptions {
                include_host_in_repo_name: match self.include_host.as_str() {
                    "yes" => Some(true),
                    "no" => Some(false),
                    _ => None,
                },
                harbor_deletes: self.harbor_deletes,
            }),
            ..Default::default()
        })
    }
}

/// Problems per form field, in the API's words.
#[derive(Default)]
struct Errors(BTreeMap<String, Vec<String>>);

impl Errors {
    fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0
            .entry(field.to_owned())
            .or_default()
            .push(message.into());
    }

    /// The API's INVALID_ARGUMENT, one message per field violation, each under the form
    /// field it is about (`webhook.repositories[2]` → repositories).
    fn from_status(status: &tonic::Status) -> Errors {
        let mut errors = Errors::default();
        let violations = status
            .get_details_bad_request()
            .map(|b| b.field_violations)
            .unwrap_or_default();
        if violations.is_empty() {
            errors.add("", status.message());
        }
        for v in violations {
            let path = v.field.strip_prefix("webhook.").unwrap_or(&v.field);
            let name = path.split(['.', '[']).next().unwrap_or_default();
            let field = match name {
                "payload_options" if path.contains("include_host") => "include_host",
                "payload_options" => "harbor_deletes",
                other => other,
            };
            let detail = if path == field {
                v.description.clone()
            } else {
                format!("{path}: {}", v.description)
            };
            errors.add(field, detail);
        }
        errors
    }

    fn on(&self, field: &str) -> Option<&Vec<String>> {
        self.0.get(field)
    }
}

/// The create or edit form. `id`: the webhook being edited.
fn form_page(session: &Session, id: Option<&str>, form: &WebhookForm, errors: &Errors) -> Markup {
    let action = match id {
        Some(id) => format!("{BASE}/webhooks/{id}/edit"),
        None => format!("{BASE}/webhooks"),
    };
    let title = if id.is_some() {
        "Edit webhook"
    } else {
        "New webhook"
    };
    let known = [
        "namespace",
        "name",
        "url",
        "event_types",
        "repositories",
        "tags",
        "payload_format",
        "headers",
        "ordered",
        "enabled",
        "signature_header",
        "include_host",
        "harbor_deletes",
        "max_concurrency",
        "rate_limit",
        "secret",
    ];
    let other: Vec<&String> = errors
        .0
        .iter()
        .filter(|(field, _)| !known.contains(&field.as_str()))
        .flat_map(|(_, messages)| messages)
        .collect();
    let error_for = |name: &str| {
        html! {
            @if let Some(messages) = errors.on(name) {
                ul.field-error id=(format!("{name}-error")) {
                    @for m in messages { li { (m) } }
                }
            }
        }
    };
    let described = |name: &str, help: bool| -> String {
        let mut ids = Vec::new();
        if help {
            ids.push(format!("{name}-help"));
        }
        if errors.on(name).is_some() {
            ids.push(format!("{name}-error"));
        }
        ids.join(" ")
    };
    let invalid = |name: &str| errors.on(name).is_some().then_some("true");
    let content = html! {
        nav.crumbs aria-label="Breadcrumb" {
            a href=(format!("{BASE}/webhooks")) { "Webhooks" } " / "
            @if let Some(id) = id { a href=(format!("{BASE}/webhooks/{id}")) { (form.name) } " / " }
        }
        h1 { (title) }
        @if !errors.0.is_empty() {
            div.notice.error role="alert" {
                "Please fix the fields marked below."
                @for m in &other { br; (m) }
            }
        }
        form.panel.form method="post" action=(action) novalidate {
            (csrf_field(session))
            @if id.is_none() {
                div.field {
                    label for="namespace" { "Namespace" }
                    input #namespace name="namespace" value=(form.namespace) spellcheck="false"
                        placeholder=(session.namespace.clone().unwrap_or_else(|| "acme".into()))
                        required[session.namespace.is_none()]
                        aria-invalid=[invalid("namespace")] aria-describedby=(described("namespace", true));
                    small #namespace-help {
                        @match &session.namespace {
                            Some(ns) => { "Empty: " code { (ns) } ". Or a namespace below it, like " code { (ns) "/tools" } "." }
                            None => { "Whose webhook this is: a repository path prefix like " code { "acme" } "." }
                        }
                    }
                    (error_for("namespace"))
                }
            }
            div.field {
                label for="name" { "Name" }
                input #name name="name" value=(form.name) required maxlength="100"
                    aria-invalid=[invalid("name")] aria-describedby=(described("name", false));
                (error_for("name"))
            }
            div.field {
                label for="url" { "URL" }
                input #url name="url" type="url" value=(form.url) required placeholder="https://deploy.example.com/hooks/registry"
                    aria-invalid=[invalid("url")] aria-describedby=(described("url", true));
                small #url-help { "Where deliveries are POSTed, http or https." }
                (error_for("url"))
            }
            fieldset.field aria-describedby=(described("event_types", true)) {
                legend { "Events" }
                small #event_types-help { "None checked: every image and repository event (not layer events, not untagged manifests)." }
                div.choices {
                    @for (kind, meaning) in EVENT_CHOICES {
                        @let value = kind as i32;
                        @let input_id = format!("event-{value}");
                        div.check {
                            input id=(input_id) type="checkbox" name="event_types" value=(value)
                                checked[form.event_types.contains(&value)];
                            label for=(input_id) { code { (views::event_type_name(value)) } " " span.muted { (meaning) } }
                        }
                    }
                }
                (error_for("event_types"))
            }
            div.field {
                label for="repositories" { "Repositories" }
                textarea #repositories name="repositories" rows="3" spellcheck="false"
                    aria-invalid=[invalid("repositories")] aria-describedby=(described("repositories", true)) { (form.repositories) }
                small #repositories-help { "One glob per line, inside your namespace (" code { "acme/*" } ", " code { "acme/tools/**" } "). Empty: every repository in the namespace." }
                (error_for("repositories"))
            }
            div.field {
                label for="tags" { "Tags" }
                textarea #tags name="tags" rows="2" spellcheck="false"
                    aria-invalid=[invalid("tags")] aria-describedby=(described("tags", true)) { (form.tags) }
                small #tags-help { "One glob per line (" code { "v1.*" } ", " code { "latest" } "). Empty: every event, tagged or not." }
                (error_for("tags"))
            }
            div.field {
                label for="payload_format" { "Payload format" }
                select #payload_format name="payload_format" aria-invalid=[invalid("payload_format")]
                    aria-describedby=(described("payload_format", false)) {
                    @for (format, label) in FORMAT_CHOICES {
                        option value=(format as i32) selected[form.payload_format == format as i32] { (label) }
                    }
                }
                (error_for("payload_format"))
            }
            div.field {
                label for="headers" { "Extra headers" }
                textarea #headers name="headers" rows="2" spellcheck="false"
                    aria-invalid=[invalid("headers")] aria-describedby=(described("headers", true)) { (form.headers) }
                small #headers-help { "One per line: " code { "Name: value" } "." }
                (error_for("headers"))
            }
            div.field {
                label for="signature_header" { "GitHub-style signature header" }
                input #signature_header name="signature_header" value=(form.signature_header) spellcheck="false"
                    placeholder="X-Hub-Signature-256"
                    aria-invalid=[invalid("signature_header")] aria-describedby=(described("signature_header", true));
                small #signature_header-help { "Optional: also sign as " code { "sha256=<hex>" } " in this header (Flux, Argo CD)." }
                (error_for("signature_header"))
            }
            div.field {
                label for="include_host" { "Docker Hub format: registry host in repo_name" }
                select #include_host name="include_host" {
                    option value="" selected[form.include_host.is_empty()] { "automatic (yes unless Docker Hub)" }
                    option value="yes" selected[form.include_host == "yes"] { "yes" }
                    option value="no" selected[form.include_host == "no"] { "no" }
                }
                (error_for("include_host"))
            }
            div.field.check {
                input #harbor_deletes type="checkbox" name="harbor_deletes" value="true" checked[form.harbor_deletes];
                label for="harbor_deletes" { "Harbor format: deliver deletes too" }
                (error_for("harbor_deletes"))
            }
            div.field {
                label for="max_concurrency" { "Most requests at once" }
                input #max_concurrency name="max_concurrency" inputmode="numeric" value=(form.max_concurrency)
                    placeholder="no limit"
                    aria-invalid=[invalid("max_concurrency")] aria-describedby=(described("max_concurrency", true));
                small #max_concurrency-help { "Optional. hookline adapts how many requests it sends at once to how the receiver answers; this caps it." }
                (error_for("max_concurrency"))
            }
            div.field {
                label for="rate_limit" { "Most deliveries per second" }
                input #rate_limit name="rate_limit" inputmode="decimal" value=(form.rate_limit)
                    placeholder="no limit"
                    aria-invalid=[invalid("rate_limit")] aria-describedby=(described("rate_limit", true));
                small #rate_limit-help { "Optional, for receivers that must not be hurried (0.5: one every two seconds)." }
                (error_for("rate_limit"))
            }
            div.field.check {
                input #ordered type="checkbox" name="ordered" value="true" checked[form.ordered];
                label for="ordered" { "Ordered: one delivery at a time per repository:tag, in event order" }
                (error_for("ordered"))
            }
            div.field.check {
                input #enabled type="checkbox" name="enabled" value="true" checked[form.enabled];
                label for="enabled" { "Enabled" }
                (error_for("enabled"))
            }
            @if id.is_none() {
                div.field {
                    label for="secret" { "Signing secret" }
                    input #secret name="secret" type="password" autocomplete="off" spellcheck="false"
                        aria-invalid=[invalid("secret")] aria-describedby=(described("secret", true));
                    small #secret-help { "Optional: " code { "whsec_…" } ". Empty: hookline makes one and shows it once." }
                    (error_for("secret"))
                }
            }
            div.buttons {
                button.primary type="submit" { @if id.is_some() { "Save changes" } @else { "Create webhook" } }
                a.button href=(id.map_or_else(|| format!("{BASE}/webhooks"), |id| format!("{BASE}/webhooks/{id}"))) { "Cancel" }
            }
        }
    };
    layout(title, Some(session), Some(Section::Webhooks), None, content)
}

pub(crate) async fn new_form(session: Session) -> Page {
    Ok(page(
        StatusCode::OK,
        form_page(&session, None, &WebhookForm::blank(), &Errors::default()),
    ))
}

/// CreateWebhook from the form; its field errors go back beside the fields.
pub(crate) async fn create(
    State(console): State<Console>,
    session: Session,
    axum::Form(fields): axum::Form<Vec<(String, String)>>,
) -> Page {
    session.check_csrf(&fields)?;
    let form = WebhookForm::from_fields(&fields);
    let webhook = match form.to_webhook() {
        Ok(webhook) => webhook,
        Err(errors) => return Ok(refused(&session, None, &form, &errors)),
    };
    let created = console
        .webhooks
        .create_webhook(call(
            &session,
            proto::CreateWebhookRequest {
                webhook: Some(webhook),
                secret: form.secret.clone(),
            },
        ))
        .await;
    match created {
        Ok(response) => {
            let response = response.into_inner();
            let webhook = response.webhook.ok_or(Failure::NotFound)?;
            secret_page(
                &console,
                &session,
                &webhook,
                &response.secret,
                "Webhook created.",
            )
            .await
        }
        Err(status) if status.code() == tonic::Code::InvalidArgument => Ok(refused(
            &session,
            None,
            &form,
            &Errors::from_status(&status),
        )),
        Err(status) => Err(status.into()),
    }
}

fn refused(
    session: &Session,
    id: Option<&str>,
    form: &WebhookForm,
    errors: &Errors,
) -> axum::response::Response {
    page(
        StatusCode::UNPROCESSABLE_ENTITY,
        form_page(session, id, form, errors),
    )
}

/// The webhook page with its new signing secret on top, shown this once.
async fn secret_page(
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

pub(crate) async fn edit_form(
    State(console): State<Console>,
    session: Session,
    Path(id): Path<String>,
) -> Page {
    let webhook = get(&console, &session, &id).await?;
    Ok(page(
        StatusCode::OK,
        form_page(
            &session,
            Some(&id),
            &WebhookForm::from_webhook(&webhook),
            &Errors::default(),
        ),
    ))
}

/// UpdateWebhook with every field of the form.
pub(crate) async fn update(
    State(console): State<Console>,
    session: Session,
    Path(id): Path<String>,
    axum::Form(fields): axum::Form<Vec<(String, String)>>,
) -> Page {
    session.check_csrf(&fields)?;
    let form = WebhookForm::from_fields(&fields);
    let mut webhook = match form.to_webhook() {
        Ok(webhook) => webhook,
        Err(errors) => return Ok(refused(&session, Some(&id), &form, &errors)),
    };
    webhook.id = id.clone();
    let updated = console
        .webhooks
        .update_webhook(call(
            &session,
            proto::UpdateWebhookRequest {
                webhook: Some(webhook),
                // The form holds every field UpdateWebhook may change.
                update_mask: Some(prost_types::FieldMask {
                    paths: UPDATABLE.iter().map(|p| (*p).to_owned()).collect(),
                }),
            },
        ))
        .await;
    match updated {
        Ok(_) => Ok(Redirect::to(&format!("{BASE}/webhooks/{id}?done=saved")).into_response()),
        Err(status) if status.code() == tonic::Code::InvalidArgument => Ok(refused(
            &session,
            Some(&id),
            &form,
            &Errors::from_status(&status),
        )),
        Err(status) => Err(status.into()),
    }
}

/// Enables or disables (UpdateWebhook of `enabled` alone).
pub(crate) async fn set_enabled(
    State(console): State<Console>,
    session: Session,
    Path(id): Path<String>,
    axum::Form(fields): axum::Form<Vec<(String, String)>>,
) -> Page {
    session.check_csrf(&fields)?;
    let enabled = field(&fields, "enabled") == "true";
    console
        .webhooks
        .update_webhook(call(
            &session,
            proto::UpdateWebhookRequest {
                webhook: Some(proto::Webhook {
                    id: id.clone(),
                    enabled: Some(enabled),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["enabled".into()],
                }),
            },
        ))
        .await?;
    let done = if enabled { "enabled" } else { "disabled" };
    Ok(Redirect::to(&format!("{BASE}/webhooks/{id}?done={done}")).into_response())
}

/// RotateWebhookSecret (default grace): the new secret is shown this once.
pub(crate) async fn rotate(
    State(console): State<Console>,
    session: Session,
    Path(id): Path<String>,
    axum::Form(fields): axum::Form<Vec<(String, String)>>,
) -> Page {
    session.check_csrf(&fields)?;
    let rotated = console
        .webhooks
        .rotate_webhook_secret(call(
            &session,
            proto::RotateWebhookSecretRequest {
                id: id.clone(),
                ..Default::default()
            },
        ))
        .await?
        .into_inner();
    let webhook = get(&console, &session, &id).await?;
    secret_page(
        &console,
        &session,
        &webhook,
        &rotated.secret,
        "Secret rotated: the previous one stays valid for 24 hours, and deliveries carry both signatures until then.",
    )
    .await
}

/// TestWebhook: a ping through the normal delivery path.
pub(crate) async fn test(
    State(console): State<Console>,
    session: Session,
    Path(id): Path<String>,
    axum::Form(fields): axum::Form<Vec<(String, String)>>,
) -> Page {
    session.check_csrf(&fields)?;
    console
        .webhooks
        .test_webhook(call(&session, proto::TestWebhookRequest { id: id.clone() }))
        .await?;
    Ok(Redirect::to(&format!("{BASE}/webhooks/{id}?done=tested")).into_response())
}

/// Asks before deleting.
pub(crate) async fn delete_form(
    State(console): State<Console>,
    session: Session,
    Path(id): Path<String>,
) -> Page {
    let webhook = get(&console, &session, &id).await?;
    let content = html! {
        section.panel.narrow {
            h1 { "Delete " (views::webhook_title(&webhook)) "?" }
            p { "Deliveries stop at once; those waiting are marked failed. Its delivery log stays "
                "until retention removes it. This cannot be undone." }
            form method="post" action=(format!("{BASE}/webhooks/{id}/delete")) {
                (csrf_field(&session))
                div.buttons {
                    button.danger type="submit" { "Delete webhook" }
                    a.button href=(format!("{BASE}/webhooks/{id}")) { "Keep it" }
                }
            }
        }
    };
    Ok(page(
        StatusCode::OK,
        layout(
            "Delete webhook",
            Some(&session),
            Some(Section::Webhooks),
            None,
            content,
        ),
    ))
}

pub(crate) async fn delete(
    State(console): State<Console>,
    session: Session,
    Path(id): Path<String>,
    axum::Form(fields): axum::Form<Vec<(String, String)>>,
) -> Page {
    session.check_csrf(&fields)?;
    console
        .webhooks
        .delete_webhook(call(&session, proto::DeleteWebhookRequest { id }))
        .await?;
    Ok(Redirect::to(&format!("{BASE}/webhooks?done=deleted")).into_response())
}
