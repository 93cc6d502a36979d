//! The form's Preview button: the webhook as the form describes it (not saved) rendered
//! by PreviewPayload for a sample image.pushed event, shown under the form; or the API's
//! problems beside their fields, a template error beside the template.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use maud::{Markup, html};

use super::form::{Errors, WebhookForm};
use super::form_page::form_with_preview;
use super::get;
use crate::api::convert::REDACTED;
use crate::api::proto::{self, webhook_service_server::WebhookService};
use crate::console::session::Posted;
use crate::console::{Console, Page, Session, call, page};

/// A preview of the create form.
pub(crate) async fn of_new(State(console): State<Console>, posted: Posted) -> Page {
    preview(&console, None, None, posted).await
}

/// A preview of the edit form: the draft lies in the webhook's namespace.
pub(crate) async fn of_edit(
    State(console): State<Console>,
    Path(id): Path<String>,
    posted: Posted,
) -> Page {
    let webhook = get(&console, &posted.session, &id).await?;
    preview(&console, Some(&id), webhook.namespace, posted).await
}

async fn preview(
    console: &Console,
    id: Option<&str>,
    namespace: Option<String>,
    Posted { session, fields }: Posted,
) -> Page {
    let form = WebhookForm::from_fields(&fields);
    let mut draft = match form.to_webhook() {
        Ok(draft) => draft,
        Err(errors) => return Ok(shown(&session, id, &form, &errors, None)),
    };
    if namespace.is_some() {
        draft.namespace = namespace;
    }
    // A chat webhook's URL is shown redacted and plays no part in the body.
    if draft.url.contains(REDACTED) {
        draft.url = "https://redacted.invalid/".to_owned();
    }
    let answer = console
        .webhooks
        .preview_payload(call(
            &session,
            proto::PreviewPayloadRequest {
                webhook: Some(draft),
                ..Default::default()
            },
        ))
        .await;
    match answer {
        Ok(rendered) => {
            let pane = pane(&rendered.into_inner());
            Ok(shown(&session, id, &form, &Errors::default(), Some(pane)))
        }
        Err(status) if status.code() == tonic::Code::InvalidArgument => Ok(shown(
            &session,
            id,
            &form,
            &Errors::from_status(&status),
            None,
        )),
        Err(status) => Err(status.into()),
    }
}

fn shown(
    session: &Session,
    id: Option<&str>,
    form: &WebhookForm,
    errors: &Errors,
    preview: Option<Markup>,
) -> axum::response::Response {
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    page(
        status,
        form_with_preview(session, id, form, errors, preview),
    )
}

/// What would be sent for a sample push: content type, custom headers (redacted), body.
fn pane(p: &proto::PreviewPayloadResponse) -> Markup {
    let mut headers: Vec<(&String, &String)> = p.headers.iter().collect();
    headers.sort();
    // JSON is shown indented, for people; the bytes sent are exactly as rendered.
    let body = serde_json::from_str::<serde_json::Value>(&p.body)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| p.body.clone());
    html! {
        section #preview aria-labelledby="preview-title" {
            h2 #preview-title { "Preview: a sample image.pushed event" }
            p.muted { "Nothing was sent and nothing was saved. Signature headers are added when it is sent; JSON is shown indented." }
            pre.preview {
                "Content-Type: " (p.content_type) "\n"
                @for (name, value) in headers { (name) ": " (value) "\n" }
                "\n" (body)
            }
        }
    }
}
