//! PreviewPayload: what a webhook would send for an event, rendered exactly as the
//! dispatcher would (`payload::Renderer`), and sent nowhere. The webhook is a stored one
//! the caller sees, or a draft checked by CreateWebhook's rules; the event a stored one
//! of the caller's namespace (NOT_FOUND otherwise, as for GetEvent), or a sample.

use std::collections::HashMap;

use tonic::{Request, Response, Status};

use super::super::convert::event_type_from_proto;
use super::super::error::Violations;
use super::super::proto;
use super::super::validate;
use super::WebhookApi;
use crate::dispatch::payload::{self, Format, Renderer, TemplateError};
use crate::event::{Event, EventType};
use crate::store::{PayloadOptions, decode_event, now_ms};

/// What stands for a header's value in a preview.
const HIDDEN: &str = "…redacted";

/// What is previewed: a webhook's format, options, headers and namespace.
struct Draft {
    format: Format,
    options: PayloadOptions,
    headers: std::collections::BTreeMap<String, String>,
    namespace: String,
    /// Where it goes: a bus may be sent CloudEvents in binary mode.
    url: String,
}

impl WebhookApi {
    pub(super) async fn preview(
        &self,
        request: Request<proto::PreviewPayloadRequest>,
    ) -> Result<Response<proto::PreviewPayloadResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let draft = if r.id.is_empty() {
            let Some(mut input) = r.webhook else {
                return Err(Violations::one(
                    "id",
                    "name a stored webhook, or send a draft in `webhook`",
                ));
            };
            let mut v = Violations::default();
            validate::expand_preset(&mut input, &mut v);
            let namespace = input
                .namespace
                .clone()
                .filter(|ns| caller.scope().is_none_or(|s| validate::creatable(s, ns)))
                .or_else(|| caller.scope().map(str::to_owned))
                .unwrap_or_default();
            let fields = validate::fields(&input, &namespace, &self.limits, &mut v);
            v.check()?;
            Draft {
                format: Format::parse(&fields.format),
                options: fields.payload_options,
                headers: fields.headers,
                namespace,
                url: fields.url,
            }
        } else {
            let stored = self.visible(&caller, &r.id).await?;
            Draft {
                format: Format::parse(&stored.format),
                options: stored.payload_options,
                headers: stored.headers,
                namespace: stored.namespace,
                url: stored.url,
            }
        };
        let event = if r.event_id.is_empty() {
            let kind = match r.event_type {
                0 => EventType::ImagePushed,
                value => event_type_from_proto(value).ok_or_else(|| {
                    Violations::one("event_type", format!("unknown event type {value}"))
                })?,
            };
            payload::sample(kind, &draft.namespace, now_ms())
        } else {
            self.stored_event(&caller, &r.event_id).await?
        };
        let renderer = Renderer::new(draft.format, &draft.options, &draft.headers)
            .map_err(|e| refused(&e, None))?
            .for_destination(&draft.url);
        let message = renderer
            .render(&event)
            .map_err(|e| refused(&e, Some(&event)))?;
        let headers: HashMap<String, String> = message
            .headers
            .into_iter()
            .map(|(name, _)| (name, HIDDEN.to_owned()))
            .collect();
        Ok(Response::new(proto::PreviewPayloadResponse {
            content_type: message.content_type.into_owned(),
            headers,
            body: String::from_utf8_lossy(&message.body).into_owned(),
            event_id: event.id,
        }))
    }

    /// A stored event the caller sees, with its enrichment if it has one.
    async fn stored_event(
        &self,
        caller: &crate::api::auth::Caller,
        id: &str,
    ) -> Result<Event, Status> {
        let not_found = || Status::not_found(format!("event {id} not found"));
        let record = match self.store.get_event(id).await? {
            Some(record) if caller.sees(&record.repository) => record,
            _ => return Err(not_found()),
        };
        let mut event = decode_event(&record.body).map_err(|_| not_found())?;
        if event.enrichment.is_none()
            && let Some(text) = self.store.event_enrichment(id).await?
        {
            event.enrichment = serde_json::from_str(&text).ok();
        }
        Ok(event)
    }
}

/// A template that cannot be used or cannot render this event: INVALID_ARGUMENT on the
/// template's field, so a form shows it beside that field.
fn refused(error: &TemplateError, event: Option<&Event>) -> Status {
    let message = match event {
        Some(e) => format!("for event {} ({}): {}", e.id, e.kind, error.message),
        None => error.message.clone(),
    };
    Violations::one(validate::template_field(&error.part), message)
}
