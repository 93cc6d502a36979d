//! `hookline.v1.WebhookService`: one method per RPC, each the same shape: authenticate,
//! validate, load the webhook and check the caller sees its namespace (NOT_FOUND
//! otherwise), then one store call.
//!
//! Secrets leave only through CreateWebhook and RotateWebhookSecret responses. Logs name
//! webhook ids, namespaces and token ids; never secrets, tokens, URLs or header values.

pub(crate) mod mask;
mod preview;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tonic::{Request, Response, Status};

use std::collections::HashMap;
use std::sync::Arc;

use mask::Mask;
pub(crate) use mask::UPDATABLE;

use super::auth::{Caller, within};
use super::convert::{health_to_proto, timestamp, webhook_to_proto};
use super::error::{Violations, webhook_disabled, webhook_not_found};
use super::gate::Gate;
use super::proto::{self, webhook_service_server::WebhookService};
use super::validate;
use crate::config::ApiConfig;
use crate::dispatch::payload::Format;
use crate::dispatch::sign::generate_secret;
use crate::dispatch::ssrf::Guard;
use crate::event::{Event, EventType};
use crate::ids::new_id;
use crate::store::{NewDelivery, Store, Webhook, WebhookQuery, WebhookSecret, now_ms};

/// The window of every webhook's attempt counts (`health.*_24h`).
const DAY_MS: i64 = 24 * 3_600_000;
/// How often an update is retried when a concurrent write changed the webhook first.
const UPDATE_ATTEMPTS: usize = 5;

/// The service implementation: the store, the limits, and the SSRF guard.
pub(crate) struct WebhookApi {
    store: Store,
    gate: Arc<Gate>,
    limits: ApiConfig,
    guard: Guard,
}

impl WebhookApi {
    pub(crate) fn new(gate: Arc<Gate>, limits: ApiConfig, guard: Guard) -> Self {
        WebhookApi {
            store: gate.store.clone(),
            gate,
            limits,
            guard,
        }
    }

    /// Authenticates the call, then counts it against its token's rate.
    async fn caller<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        self.gate.caller(request).await
    }

    /// Webhooks as the API shows them, each with its health and its last 24 hours.
    async fn with_health(&self, webhooks: &[Webhook]) -> Result<Vec<proto::Webhook>, Status> {
        let ids: Vec<String> = webhooks.iter().map(|w| w.id.clone()).collect();
        let health: HashMap<String, crate::store::HealthRecord> = self
            .store
            .webhook_health(&ids)
            .await?
            .into_iter()
            .map(|h| (h.webhook_id.clone(), h))
            .collect();
        let day: HashMap<String, crate::store::StatsTotals> = self
            .store
            .webhook_totals(&ids, now_ms() - DAY_MS)
            .await?
            .into_iter()
            .map(|t| (t.webhook_id.clone(), t))
            .collect();
        Ok(webhooks
            .iter()
            .map(|w| {
                let mut shown = webhook_to_proto(w);
                shown.health = Some(health_to_proto(w, health.get(&w.id), day.get(&w.id)));
                shown
            })
            .collect())
    }

    /// RESOURCE_EXHAUSTED if the tenant already holds `max_webhooks_per_namespace`
    /// webhooks. The tenant is the caller's token namespace with everything below it (an
    /// admin: the new webhook's namespace); admin every-repository webhooks are not counted.
    async fn check_quota(&self, caller: &Caller, namespace: &str) -> Result<(), Status> {
        let tenant = caller.scope().unwrap_or(namespace);
        if tenant.is_empty() {
            return Ok(());
        }
        let max = self.limits.max_webhooks_per_namespace;
        let held = self
            .store
            .list_webhooks(&WebhookQuery {
                within: Some(tenant.to_owned()),
                limit: i64::try_from(max).unwrap_or(i64::MAX),
                ..Default::default()
            })
            .await?
            .len();
        if held >= max {
            return Err(Status::resource_exhausted(format!(
                "namespace `{tenant}` already has {max} webhooks, the most allowed \
                 (max_webhooks_per_namespace, counting the namespaces below it); delete unused \
                 ones or ask the operator to raise the limit"
            )));
        }
        Ok(())
    }

    /// The webhook with this id if the caller sees it; NOT_FOUND alike for "absent"
    /// and "someone else's".
    async fn visible(&self, caller: &Caller, id: &str) -> Result<Webhook, Status> {
        self.gate.webhook(caller, "id", id).await
    }
}

/// An opaque page token: the last id of the previous page, base64url.
fn encode_page_token(last_id: &str) -> String {
    URL_SAFE_NO_PAD.encode(last_id)
}

fn decode_page_token(token: &str, v: &mut Violations) -> Option<String> {
    if token.is_empty() {
        return None;
    }
    let id = URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .filter(|id| id.starts_with("wh_") && id.len() <= 64);
    if id.is_none() {
        v.add(
            "page_token",
            "not a token from a previous ListWebhooks response",
        );
    }
    id
}

/// The namespace a list is confined to: the narrower of the token's and the request's.
/// None: everything (admin, no filter). Err: the two do not overlap (empty result).
fn list_scope(caller: &Caller, requested: &str) -> Result<Option<String>, ()> {
    let requested = (!requested.is_empty()).then_some(requested);
    match (caller.scope(), requested) {
        (None, requested) => Ok(requested.map(Into::into)),
        (Some(scope), None) => Ok(Some(scope.into())),
        (Some(scope), Some(requested)) if within(scope, requested) => Ok(Some(requested.into())),
        (Some(scope), Some(requested)) if within(requested, scope) => Ok(Some(scope.into())),
        _ => Err(()),
    }
}

#[tonic::async_trait]
impl WebhookService for WebhookApi {
    async fn preview_payload(
        &self,
        request: Request<proto::PreviewPayloadRequest>,
    ) -> Result<Response<proto::PreviewPayloadResponse>, Status> {
        self.preview(request).await
    }

    async fn create_webhook(
        &self,
        request: Request<proto::CreateWebhookRequest>,
    ) -> Result<Response<proto::CreateWebhookResponse>, Status> {
        let caller = self.caller(&request).await?;
        let request = request.into_inner();
        let Some(mut input) = request.webhook else {
            return Err(Violations::one("webhook", "required"));
        };
        let mut v = Violations::default();
        validate::expand_preset(&mut input, &mut v);
        let namespace = match (caller.scope(), input.namespace.as_deref()) {
            (Some(scope), None) => scope.to_owned(),
            (Some(scope), Some(ns)) => {
                if validate::namespace("webhook.namespace", ns, &mut v)
                    && !validate::creatable(scope, ns)
                {
                    v.add(
                        "webhook.namespace",
                        format!("must be `{scope}` (your token's namespace) or lie below it"),
                    );
                }
                ns.to_owned()
            }
            (None, None) => {
                v.add(
                    "webhook.namespace",
                    "required with an admin token (\"\" means every repository)",
                );
                String::new()
            }
            (None, Some("")) => String::new(),
            (None, Some(ns)) => {
                validate::namespace("webhook.namespace", ns, &mut v);
                ns.to_owned()
            }
        };
        let fields = validate::fields(&input, &namespace, &self.limits, &mut v);
        let secret = if request.secret.is_empty() {
            Some(generate_secret())
        } else {
            validate::secret("secret", &request.secret, &mut v)
        };
        v.check()?;
        validate::destination(&self.guard, &fields.url).await?;
        if let Some(oauth) = &fields.oauth {
            validate::vetted(&self.guard, "webhook.oauth.token_url", &oauth.token_url).await?;
        }
        self.check_quota(&caller, &namespace).await?;
        let Some(secret) = secret else {
            return Err(Violations::one("secret", "invalid"));
        };
        let now = now_ms();
        let webhook = Webhook {
            id: new_id("wh"),
            namespace,
            name: fields.name,
            url: fields.url,
            event_types: fields.event_types,
            repositories: fields.repositories,
            tags: fields.tags,
            format: fields.format,
            headers: fields.headers,
            plain_headers: fields.plain_headers,
            client_identity: fields.client_identity,
            oauth: fields.oauth,
            signature_header: fields.signature_header,
            payload_options: fields.payload_options,
            ordered: input.ordered,
            max_concurrency: fields.max_concurrency,
            rate_limit_milli: fields.rate_limit_milli,
            enabled: input.enabled.unwrap_or(true),
            disabled_reason: None,
            failing_since: None,
            created_at: now,
            updated_at: now,
        };
        let stored_secret = WebhookSecret {
            id: new_id("whs"),
            secret: secret.clone(),
            created_at: now,
            expires_at: None,
        };
        self.store.insert_webhook(&webhook, &stored_secret).await?;
        tracing::info!(webhook_id = %webhook.id, namespace = %webhook.namespace, token_id = %caller.token_id(), "webhook created");
        let mut shown = self.with_health(std::slice::from_ref(&webhook)).await?;
        // The one answer that shows a chat webhook's URL whole, as it shows the secret.
        for w in &mut shown {
            w.url = webhook.url.clone();
        }
        Ok(Response::new(proto::CreateWebhookResponse {
            webhook: shown.into_iter().next(),
            secret: secret.expose().to_owned(),
        }))
    }

    async fn get_webhook(
        &self,
        request: Request<proto::GetWebhookRequest>,
    ) -> Result<Response<proto::GetWebhookResponse>, Status> {
        let caller = self.caller(&request).await?;
        let webhook = self.visible(&caller, &request.get_ref().id).await?;
        let shown = self.with_health(std::slice::from_ref(&webhook)).await?;
        Ok(Response::new(proto::GetWebhookResponse {
            webhook: shown.into_iter().next(),
        }))
    }

    async fn list_webhooks(
        &self,
        request: Request<proto::ListWebhooksRequest>,
    ) -> Result<Response<proto::ListWebhooksResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let mut v = Violations::default();
        let page_size = validate::page_size(r.page_size, self.limits.max_page_size, &mut v);
        let after_id = decode_page_token(&r.page_token, &mut v);
        if !r.namespace.is_empty() {
            validate::namespace("namespace", &r.namespace, &mut v);
        }
        let name_contains = validate::filter_text("name_contains", &r.name_contains, &mut v);
        let url_contains = validate::filter_text("url_contains", &r.url_contains, &mut v);
        v.check()?;
        let Ok(within) = list_scope(&caller, &r.namespace) else {
            return Ok(Response::new(proto::ListWebhooksResponse::default()));
        };
        let mut page = self
            .store
            .list_webhooks(&WebhookQuery {
                within,
                enabled: r.enabled,
                name_contains,
                url_contains,
                secret_url_formats: Format::ALL
                    .into_iter()
                    .filter(|f| f.is_chat())
                    .map(|f| f.as_str().to_owned())
                    .collect(),
                after_id,
                limit: page_size + 1,
            })
            .await?;
        let more = page.len() as i64 > page_size;
        page.truncate(page_size as usize);
        let next_page_token = match page.last() {
            Some(last) if more => encode_page_token(&last.id),
            _ => String::new(),
        };
        Ok(Response::new(proto::ListWebhooksResponse {
            webhooks: self.with_health(&page).await?,
            next_page_token,
        }))
    }

    async fn update_webhook(
        &self,
        request: Request<proto::UpdateWebhookRequest>,
    ) -> Result<Response<proto::UpdateWebhookResponse>, Status> {
        let caller = self.caller(&request).await?;
        let request = request.into_inner();
        let Some(input) = request.webhook else {
            return Err(Violations::one("webhook", "required"));
        };
        let mut mask = Mask::new(request.update_mask.map(|m| m.paths).unwrap_or_default())?;
        // A preset sets the format too, and adds headers to the webhook's own.
        let preset = mask.has("payload_options")
            && input
                .payload_options
                .as_ref()
                .is_some_and(|o| !o.preset.is_empty());
        if preset {
            mask.include("payload_format");
        }
        for _ in 0..UPDATE_ATTEMPTS {
            let current = self.visible(&caller, &input.id).await?;
            let mut merged = mask.merged(&current, &input);
            let mut v = Violations::default();
            if preset {
                validate::expand_preset(&mut merged, &mut v);
            }
            // Leaving the template format drops its template, unless options are given.
            if mask.has("payload_format")
                && !mask.has("payload_options")
                && merged.payload_format != proto::PayloadFormat::Template as i32
                && let Some(options) = merged.payload_options.as_mut()
            {
                options.template.clear();
                options.template_content_type.clear();
            }
            let fields = validate::fields(&merged, &current.namespace, &self.limits, &mut v);
            v.check()?;
            if mask.has("url") && fields.url != current.url {
                validate::destination(&self.guard, &fields.url).await?;
            }
            if let Some(oauth) = fields.oauth.as_ref().filter(|_| mask.has("oauth")) {
                validate::vetted(&self.guard, "webhook.oauth.token_url", &oauth.token_url).await?;
            }
            let next = mask.apply(&current, fields, &input, now_ms());
            if self.store.update_webhook(&next, current.updated_at).await? {
                tracing::info!(webhook_id = %next.id, fields = ?mask.paths(), token_id = %caller.token_id(), "webhook updated");
                return Ok(Response::new(proto::UpdateWebhookResponse {
                    webhook: self
                        .with_health(std::slice::from_ref(&next))
                        .await?
                        .into_iter()
                        .next(),
                }));
            }
        }
        Err(Status::aborted(
            "the webhook kept changing concurrently; read it again and retry",
        ))
    }

    async fn delete_webhook(
        &self,
        request: Request<proto::DeleteWebhookRequest>,
    ) -> Result<Response<proto::DeleteWebhookResponse>, Status> {
        let caller = self.caller(&request).await?;
        let webhook = self.visible(&caller, &request.get_ref().id).await?;
        if !self.store.delete_webhook(&webhook.id).await? {
            return Err(webhook_not_found());
        }
        tracing::info!(webhook_id = %webhook.id, namespace = %webhook.namespace, token_id = %caller.token_id(), "webhook deleted");
        Ok(Response::new(proto::DeleteWebhookResponse {}))
    }

    async fn rotate_webhook_secret(
        &self,
        request: Request<proto::RotateWebhookSecretRequest>,
    ) -> Result<Response<proto::RotateWebhookSecretResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let webhook = self.visible(&caller, &r.id).await?;
        let mut v = Violations::default();
        let grace = validate::grace(r.grace_period.as_ref(), &mut v);
        let secret = if r.secret.is_empty() {
            Some(generate_secret())
        } else {
            validate::secret("secret", &r.secret, &mut v)
        };
        v.check()?;
        let Some(secret) = secret else {
            return Err(Violations::one("secret", "invalid"));
        };
        let now = now_ms();
        let expires_at = now + i64::try_from(grace.as_millis()).unwrap_or(i64::MAX / 2);
        let stored = WebhookSecret {
            id: new_id("whs"),
            secret: secret.clone(),
            created_at: now,
            expires_at: None,
        };
        if !self
            .store
            .rotate_secret(&webhook.id, &stored, expires_at)
            .await?
        {
            return Err(webhook_not_found());
        }
        tracing::info!(webhook_id = %webhook.id, grace = ?grace, token_id = %caller.token_id(), "webhook secret rotated");
        Ok(Response::new(proto::RotateWebhookSecretResponse {
            secret: secret.expose().to_owned(),
            previous_secret_expires_at: Some(timestamp(expires_at)),
        }))
    }

    async fn test_webhook(
        &self,
        request: Request<proto::TestWebhookRequest>,
    ) -> Result<Response<proto::TestWebhookResponse>, Status> {
        let caller = self.caller(&request).await?;
        let webhook = self.visible(&caller, &request.get_ref().id).await?;
        if !webhook.enabled {
            return Err(webhook_disabled(
                &webhook,
                "enable it before sending a test ping",
            ));
        }
        let now = now_ms();
        let event = ping(&webhook, now);
        let delivery = NewDelivery {
            id: new_id("dlv"),
            event_id: event.id.clone(),
            webhook_id: webhook.id.clone(),
            namespace: webhook.namespace.clone(),
            ordering_key: None,
        };
        self.store
            .insert_fanned_out(&event, std::slice::from_ref(&delivery), now)
            .await?;
        tracing::info!(webhook_id = %webhook.id, delivery_id = %delivery.id, token_id = %caller.token_id(), "test ping queued");
        Ok(Response::new(proto::TestWebhookResponse {
            event_id: event.id,
            delivery_id: delivery.id,
        }))
    }
}

/// The `ping` event for a webhook: addressed to it alone, in its namespace's name.
fn ping(webhook: &Webhook, now: i64) -> Event {
    let repository = if webhook.namespace.is_empty() {
        "ping".to_owned()
    } else {
        webhook.namespace.clone()
    };
    let registry_event_id = new_id("ping");
    let time = crate::dispatch::payload::rfc3339(now);
    let original = serde_json::json!({
        "id": registry_event_id,
        "timestamp": time,
        "action": "ping",
        "target": { "repository": repository },
    });
    Event {
        original,
        timestamp: Some(time),
        ..Event::new(
            new_id("evt"),
            "hookline",
            registry_event_id,
            EventType::Ping,
            repository,
            now,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_reject_garbage() {
        let id = new_id("wh");
        let mut v = Violations::default();
        assert_eq!(decode_page_token(&encode_page_token(&id), &mut v), Some(id));
        assert_eq!(decode_page_token("", &mut v), None);
        assert!(v.check().is_ok());
        for bad in ["%%%", "aGVsbG8", &encode_page_token("evt_1")] {
            let mut v = Violations::default();
            decode_page_token(bad, &mut v);
            assert!(v.check().is_err(), "{bad}");
        }
    }

    #[test]
    fn list_scope_is_the_narrower_namespace() {
        let admin = Caller::Admin {
            token_id: "t".into(),
        };
        let acme = Caller::Namespace {
            token_id: "t".into(),
            namespace: "acme".into(),
        };
        assert_eq!(list_scope(&admin, ""), Ok(None));
        assert_eq!(list_scope(&admin, "x"), Ok(Some("x".into())));
        assert_eq!(list_scope(&acme, ""), Ok(Some("acme".into())));
        assert_eq!(
            list_scope(&acme, "acme/tools"),
            Ok(Some("acme/tools".into()))
        );
        assert_eq!(list_scope(&acme, "acmecorp"), Err(()));
        let tools = Caller::Namespace {
            token_id: "t".into(),
            namespace: "acme/tools".into(),
        };
        assert_eq!(list_scope(&tools, "acme"), Ok(Some("acme/tools".into())));
    }
}
