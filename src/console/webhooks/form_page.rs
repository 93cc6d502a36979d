//! The webhook form as a page: create and edit, with every problem beside its field
//! (`aria-invalid`, `aria-describedby`, a list under the field) and the others on top;
//! and its posts, which go through the API (CreateWebhook, UpdateWebhook) and come back
//! here while the API refuses them. What the form holds and how it is read is `form.rs`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};

use super::detail::secret_page;
use super::form::{Errors, WebhookForm};
use super::get;
use crate::api::convert::REDACTED;
use crate::api::proto::{self, webhook_service_server::WebhookService};
use crate::api::service::UPDATABLE;
use crate::console::session::Posted;
use crate::console::views::{self, Section, csrf_field, layout};
use crate::console::{BASE, Console, Failure, Page, Session, back_to, call, page};
use crate::dispatch::payload::template::presets;

/// Event types offered in the form, with what they mean.
const EVENT_CHOICES: [(proto::EventType, &str); 15] = [
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
    (
        proto::EventType::WebhookFailing,
        "owner notice: a webhook of this namespace started failing",
    ),
    (
        proto::EventType::WebhookCircuitOpened,
        "owner notice: a webhook's circuit opened",
    ),
    (
        proto::EventType::WebhookDisabled,
        "owner notice: hookline disabled a webhook, and why",
    ),
    (
        proto::EventType::WebhookRecovered,
        "owner notice: a failing webhook delivers again",
    ),
    (
        proto::EventType::DeliveryFailed,
        "owner notice: deliveries gave up (summarised)",
    ),
];

const FORMAT_CHOICES: [(proto::PayloadFormat, &str); 11] = [
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
    (proto::PayloadFormat::Slack, "Slack channel"),
    (
        proto::PayloadFormat::Msteams,
        "Microsoft Teams channel (Workflows)",
    ),
    (proto::PayloadFormat::Discord, "Discord channel"),
    (proto::PayloadFormat::Googlechat, "Google Chat space"),
    (proto::PayloadFormat::Mattermost, "Mattermost channel"),
    (
        proto::PayloadFormat::Template,
        "your template (request of your own shape)",
    ),
];

/// How a field shows its problems: `aria-invalid`, `aria-describedby` (its help, its
/// problems) and the list of problems under it (`{name}-error`).
struct Marks<'a>(&'a Errors);

impl Marks<'_> {
    fn invalid(&self, name: &str) -> Option<&'static str> {
        self.0.on(name).is_some().then_some("true")
    }

    /// The ids that describe a field: its help (when it has one) and its problems.
    fn described(&self, name: &str, help: bool) -> String {
        let mut ids = Vec::new();
        if help {
            ids.push(format!("{name}-help"));
        }
        if self.0.on(name).is_some() {
            ids.push(format!("{name}-error"));
        }
        ids.join(" ")
    }

    fn problems(&self, name: &str) -> Markup {
        html! {
            @if let Some(messages) = self.0.on(name) {
                ul.field-error id=(format!("{name}-error")) {
                    @for m in messages { li { (m) } }
                }
            }
        }
    }

    /// A field: its label, the control, its help (`{name}-help`) and its problems.
    fn field(&self, name: &str, label: &str, control: Markup, help: Option<Markup>) -> Markup {
        html! {
            div.field {
                label for=(name) { (label) }
                (control)
                @if let Some(help) = help { small id=(format!("{name}-help")) { (help) } }
                (self.problems(name))
            }
        }
    }

    /// A checkbox field: the box, its label and its problems.
    fn check(&self, name: &str, label: &str, checked: bool) -> Markup {
        html! {
            div.field.check {
                input id=(name) type="checkbox" name=(name) value="true" checked[checked];
                label for=(name) { (label) }
                (self.problems(name))
            }
        }
    }
}

/// The create or edit form. `id`: the webhook being edited.
fn form_page(session: &Session, id: Option<&str>, form: &WebhookForm, errors: &Errors) -> Markup {
    form_with_preview(session, id, form, errors, None)
}

/// The form, and under it what a preview rendered (`preview.rs`).
pub(super) fn form_with_preview(
    session: &Session,
    id: Option<&str>,
    form: &WebhookForm,
    errors: &Errors,
    preview: Option<Markup>,
) -> Markup {
    let action = match id {
        Some(id) => format!("{BASE}/webhooks/{id}/edit"),
        None => format!("{BASE}/webhooks"),
    };
    let title = if id.is_some() {
        "Edit webhook"
    } else {
        "New webhook"
    };
    let m = Marks(errors);
    let content = html! {
        nav.crumbs aria-label="Breadcrumb" {
            a href=(format!("{BASE}/webhooks")) { "Webhooks" } " / "
            @if let Some(id) = id { a href=(format!("{BASE}/webhooks/{id}")) { (form.name) } " / " }
        }
        h1 { (title) }
        @if !errors.is_empty() {
            div.notice.error role="alert" {
                "Please fix the fields marked below."
                @for message in &errors.elsewhere() { br; (message) }
            }
        }
        form.panel.form method="post" action=(action) novalidate {
            (csrf_field(session))
            @if id.is_none() {
                (m.field("namespace", "Namespace", html! {
                    input #namespace name="namespace" value=(form.namespace) spellcheck="false"
                        placeholder=(session.namespace.clone().unwrap_or_else(|| "acme".into()))
                        required[session.namespace.is_none()]
                        aria-invalid=[m.invalid("namespace")] aria-describedby=(m.described("namespace", true));
                }, Some(html! {
                    @match &session.namespace {
                        Some(ns) => { "Empty: " code { (ns) } ". Or a namespace below it, like " code { (ns) "/tools" } "." }
                        None => { "Whose webhook this is: a repository path prefix like " code { "acme" } "." }
                    }
                })))
            }
            (m.field("name", "Name", html! {
                input #name name="name" value=(form.name) required maxlength="100"
                    aria-invalid=[m.invalid("name")] aria-describedby=(m.described("name", false));
            }, None))
            (m.field("url", "URL", html! {
                input #url name="url" type="url" value=(form.url) required placeholder="https://deploy.example.com/hooks/registry"
                    aria-invalid=[m.invalid("url")] aria-describedby=(m.described("url", true));
            }, Some(html! {
                "Where deliveries are POSTed, http or https; or a bus: " code { "nats://host/SUBJECT" } ", " code { "redis://host/0?stream=KEY" } ". For a chat channel, its incoming-webhook URL: "
                "a credential, shown redacted once saved (leave it as shown to keep it)."
            })))
            fieldset.field aria-describedby=(m.described("event_types", true)) {
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
                (m.problems("event_types"))
            }
            (m.field("repositories", "Repositories", html! {
                textarea #repositories name="repositories" rows="3" spellcheck="false"
                    aria-invalid=[m.invalid("repositories")] aria-describedby=(m.described("repositories", true)) { (form.repositories) }
            }, Some(html! {
                "One glob per line, inside your namespace (" code { "acme/*" } ", " code { "acme/tools/**" } "). Empty: every repository in the namespace."
            })))
            (m.field("tags", "Tags", html! {
                textarea #tags name="tags" rows="2" spellcheck="false"
                    aria-invalid=[m.invalid("tags")] aria-describedby=(m.described("tags", true)) { (form.tags) }
            }, Some(html! {
                "One glob per line (" code { "v1.*" } ", " code { "latest" } "). Empty: every event, tagged or not."
            })))
            (m.field("payload_format", "Payload format", html! {
                select #payload_format name="payload_format" aria-invalid=[m.invalid("payload_format")]
                    aria-describedby=(m.described("payload_format", false)) {
                    @for (format, label) in FORMAT_CHOICES {
                        option value=(format as i32) selected[form.payload_format == format as i32] { (label) }
                    }
                }
            }, None))
            (m.field("headers", "Extra headers", html! {
                textarea #headers name="headers" rows="2" spellcheck="false"
                    aria-invalid=[m.invalid("headers")] aria-describedby=(m.described("headers", true)) { (form.headers) }
            }, Some(html! { "One per line: " code { "Name: value" } ". Values are secret: sealed, and shown as " code { "…redacted" } ", which keeps the stored value when saved." })))
            (m.field("plain_headers", "Headers that are not secret", html! {
                textarea #plain_headers name="plain_headers" rows="1" spellcheck="false"
                    aria-invalid=[m.invalid("plain_headers")] aria-describedby=(m.described("plain_headers", true)) { (form.plain_headers) }
            }, Some(html! { "Optional: names of extra headers whose values are shown, one per line." })))
            (m.field("signature_header", "GitHub-style signature header", html! {
                input #signature_header name="signature_header" value=(form.signature_header) spellcheck="false"
                    placeholder="X-Hub-Signature-256"
                    aria-invalid=[m.invalid("signature_header")] aria-describedby=(m.described("signature_header", true));
            }, Some(html! {
                "Optional: also sign as " code { "sha256=<hex>" } " in this header (Flux, Argo CD)."
            })))
            (m.field("include_host", "Docker Hub format: registry host in repo_name", html! {
                select #include_host name="include_host" {
                    option value="" selected[form.include_host.is_empty()] { "automatic (yes unless Docker Hub)" }
                    option value="yes" selected[form.include_host == "yes"] { "yes" }
                    option value="no" selected[form.include_host == "no"] { "no" }
                }
            }, None))
            (m.check("harbor_deletes", "Harbor format: deliver deletes too", form.harbor_deletes))
            (m.field("chat_link", "Chat formats: link", html! {
                input #chat_link name="chat_link" value=(form.chat_link) spellcheck="false"
                    placeholder="https://registry.example/ui/{repository}/tags/{tag}"
                    aria-invalid=[m.invalid("chat_link")] aria-describedby=(m.described("chat_link", true));
            }, Some(html! {
                "Optional: a link in each message. " code { "{registry}" } ", " code { "{repository}" } ", "
                code { "{namespace}" } ", " code { "{name}" } ", " code { "{tag}" } " and " code { "{digest}" }
                " are filled in."
            })))
            (m.field("chat_mention", "Chat formats: mention", html! {
                input #chat_mention name="chat_mention" value=(form.chat_mention) spellcheck="false"
                    placeholder="<!here>"
                    aria-invalid=[m.invalid("chat_mention")] aria-describedby=(m.described("chat_mention", true));
            }, Some(html! {
                "Optional text leading each message: " code { "<!here>" } " (Slack), " code { "@channel" }
                " (Mattermost), " code { "<@&ROLE_ID>" } " (Discord), " code { "<users/all>" } " (Google Chat)."
            })))
            (m.field("preset", "Template format: preset", html! {
                select #preset name="preset" aria-describedby=(m.described("preset", true)) {
                    option value="" selected[form.preset.is_empty()] { "none: write the template below" }
                    @for preset in presets::PRESETS {
                        option value=(preset.name) selected[form.preset == preset.name] { (preset.name) " — " (preset.summary) }
                    }
                }
            }, Some(html! {
                "A ready template for a CI system; it replaces the template below and adds the headers it needs."
            })))
            (m.field("template", "Template format: body", html! {
                textarea #template name="template" rows="10" spellcheck="false" class="code"
                    aria-invalid=[m.invalid("template")] aria-describedby=(m.described("template", true)) { (form.template) }
            }, Some(html! {
                "Jinja syntax: " code { "{\"image\": {{ image|tojson }}}" } ". The fields are the hookline payload's; header values may be templates too."
            })))
            (m.field("template_content_type", "Template format: content type", html! {
                input #template_content_type name="template_content_type" value=(form.template_content_type) spellcheck="false"
                    placeholder="application/json"
                    aria-invalid=[m.invalid("template_content_type")] aria-describedby=(m.described("template_content_type", true));
            }, None))
            (m.field("max_concurrency", "Most requests at once", html! {
                input #max_concurrency name="max_concurrency" inputmode="numeric" value=(form.max_concurrency)
                    placeholder="no limit"
                    aria-invalid=[m.invalid("max_concurrency")] aria-describedby=(m.described("max_concurrency", true));
            }, Some(html! {
                "Optional. hookline adapts how many requests it sends at once to how the receiver answers; this caps it."
            })))
            (m.field("rate_limit", "Most deliveries per second", html! {
                input #rate_limit name="rate_limit" inputmode="decimal" value=(form.rate_limit)
                    placeholder="no limit"
                    aria-invalid=[m.invalid("rate_limit")] aria-describedby=(m.described("rate_limit", true));
            }, Some(html! {
                "Optional, for receivers that must not be hurried (0.5: one every two seconds)."
            })))
            (m.field("client_certificate", "Client certificate (mutual TLS)", html! {
                textarea #client_certificate name="client_certificate" rows="4" spellcheck="false"
                    placeholder="-----BEGIN CERTIFICATE-----"
                    aria-invalid=[m.invalid("client_certificate")] aria-describedby=(m.described("client_certificate", true)) { (form.client_certificate) }
            }, Some(html! {
                "Optional, for an https receiver that demands one: the chain in PEM, presented on every connection. Empty it to stop presenting one."
            })))
            (m.field("client_key", "Client certificate's private key", html! {
                textarea #client_key name="client_key" rows="3" spellcheck="false" autocomplete="off"
                    placeholder=(if id.is_some() && !form.client_certificate.is_empty() { "sealed and never shown: paste a new key only with a new certificate" } else { "-----BEGIN PRIVATE KEY-----" })
                    aria-invalid=[m.invalid("client_key")] aria-describedby=(m.described("client_key", true)) {}
            }, Some(html! {
                "PEM. Sealed when saved and never shown again."
            })))
            (m.field("oauth", "OAuth 2.0 client credentials", html! {
                input #oauth name="oauth_token_url" value=(form.oauth_token_url) spellcheck="false"
                    placeholder="token endpoint: https://idp.example/oauth/token"
                    aria-invalid=[m.invalid("oauth")] aria-describedby=(m.described("oauth", true));
                input name="oauth_client_id" value=(form.oauth_client_id) spellcheck="false" placeholder="client id" aria-label="OAuth client id";
                input name="oauth_client_secret" type="password" autocomplete="off" spellcheck="false" aria-label="OAuth client secret"
                    placeholder=(if id.is_some() && !form.oauth_token_url.is_empty() { "client secret: sealed, never shown; type it again to change these" } else { "client secret" });
                textarea name="oauth_scopes" rows="2" spellcheck="false" placeholder="scopes, one per line" aria-label="OAuth scopes" { (form.oauth_scopes) }
            }, Some(html! {
                "Optional, for a receiver that wants a bearer token: hookline gets one from the token endpoint (client credentials) and renews it before it expires. Empty the endpoint to stop."
            })))
            (m.check("ordered", "Ordered: one delivery at a time per repository:tag, in event order", form.ordered))
            (m.check("enabled", "Enabled", form.enabled))
            @if id.is_none() {
                (m.field("secret", "Signing secret", html! {
                    input #secret name="secret" type="password" autocomplete="off" spellcheck="false"
                        aria-invalid=[m.invalid("secret")] aria-describedby=(m.described("secret", true));
                }, Some(html! {
                    "Optional: " code { "whsec_…" } ". Empty: hookline makes one and shows it once."
                })))
            }
            div.buttons {
                button.primary type="submit" { @if id.is_some() { "Save changes" } @else { "Create webhook" } }
                button type="submit" formaction=(id.map_or_else(|| format!("{BASE}/webhooks/preview#preview"), |id| format!("{BASE}/webhooks/{id}/preview#preview"))) {
                    "Preview"
                }
                a.button href=(id.map_or_else(|| format!("{BASE}/webhooks"), |id| format!("{BASE}/webhooks/{id}"))) { "Cancel" }
            }
        }
        @if let Some(preview) = preview { (preview) }
    };
    layout(title, Some(session), Some(Section::Webhooks), None, content)
}

/// The form again, answered 422, with what is wrong.
fn refused(session: &Session, id: Option<&str>, form: &WebhookForm, errors: &Errors) -> Response {
    page(
        StatusCode::UNPROCESSABLE_ENTITY,
        form_page(session, id, form, errors),
    )
}

/// A status the API answered the form with: INVALID_ARGUMENT is the form again, with the
/// field violations beside their fields; any other is the failure page.
fn refused_by_api(
    session: &Session,
    id: Option<&str>,
    form: &WebhookForm,
    status: tonic::Status,
) -> Page {
    if status.code() == tonic::Code::InvalidArgument {
        Ok(refused(session, id, form, &Errors::from_status(&status)))
    } else {
        Err(status.into())
    }
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
    Posted { session, fields }: Posted,
) -> Page {
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
    let response = match created {
        Ok(response) => response.into_inner(),
        Err(status) => return refused_by_api(&session, None, &form, status),
    };
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
    Path(id): Path<String>,
    Posted { session, fields }: Posted,
) -> Page {
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
                // The form holds every field UpdateWebhook may change; a chat webhook's
                // URL left as shown (redacted) is kept as stored.
                update_mask: Some(prost_types::FieldMask {
                    paths: UPDATABLE
                        .iter()
                        .filter(|p| **p != "url" || !form.url.contains(REDACTED))
                        .filter(|p| {
                            **p != "client_certificate" || form.changes_client_certificate()
                        })
                        .filter(|p| **p != "oauth" || form.changes_oauth())
                        .map(|p| (*p).to_owned())
                        .collect(),
                }),
            },
        ))
        .await;
    match updated {
        Ok(_) => back_to(&format!("/webhooks/{id}?done=saved")),
        Err(status) => refused_by_api(&session, Some(&id), &form, status),
    }
}

#[cfg(test)]
mod tests {
    use super::super::form::field_names;
    use super::*;

    #[test]
    fn every_problem_stands_beside_its_field() {
        let fields: Vec<&str> = field_names().collect();
        assert_eq!(fields.len(), 25);
        let mut errors = Errors::default();
        for &field in &fields {
            errors.add(field, format!("bad {field}"));
        }
        let session = Session::for_test(Some("acme"));
        let html = form_page(&session, None, &WebhookForm::blank(), &errors).into_string();
        for &field in &fields {
            let list =
                format!("<ul class=\"field-error\" id=\"{field}-error\"><li>bad {field}</li></ul>");
            assert!(html.contains(&list), "{field}: {html}");
        }
        assert!(html.contains("aria-describedby=\"url-help url-error\""));
        assert!(html.contains("aria-describedby=\"name-error\""));
        assert!(
            html.contains("Please fix the fields marked below.</div>"),
            "nothing on top"
        );
    }
}
