//! The actions on one webhook, each a POST from its page through the API and back to the
//! page saying what happened: enable or disable, rotate the secret (the new one shown this
//! once), send a test ping, and delete (after a page that asks).

use axum::extract::{Path, State};
use maud::html;

use super::detail::secret_page;
use super::get;
use crate::api::proto::{self, webhook_service_server::WebhookService};
use crate::console::session::{Posted, field};
use crate::console::views::{self, Section, csrf_field};
use crate::console::{BASE, Console, Page, Session, back_to, call, shown};

/// Enables or disables (UpdateWebhook of `enabled` alone).
pub(crate) async fn set_enabled(
    State(console): State<Console>,
    Path(id): Path<String>,
    Posted { session, fields }: Posted,
) -> Page {
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
    back_to(&format!("/webhooks/{id}?done={done}"))
}

/// RotateWebhookSecret (default grace): the new secret is shown this once.
pub(crate) async fn rotate(
    State(console): State<Console>,
    Path(id): Path<String>,
    Posted { session, .. }: Posted,
) -> Page {
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
    Path(id): Path<String>,
    Posted { session, .. }: Posted,
) -> Page {
    console
        .webhooks
        .test_webhook(call(&session, proto::TestWebhookRequest { id: id.clone() }))
        .await?;
    back_to(&format!("/webhooks/{id}?done=tested"))
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
    shown(&session, Section::Webhooks, "Delete webhook", None, content)
}

/// DeleteWebhook, then back to the list.
pub(crate) async fn delete(
    State(console): State<Console>,
    Path(id): Path<String>,
    Posted { session, .. }: Posted,
) -> Page {
    console
        .webhooks
        .delete_webhook(call(&session, proto::DeleteWebhookRequest { id }))
        .await?;
    back_to("/webhooks?done=deleted")
}
