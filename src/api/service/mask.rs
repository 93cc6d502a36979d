//! UpdateWebhook's field mask: which fields a request may change, and how the masked
//! fields of the request merge into the stored webhook.
//!
//! Pure: the service loads the webhook, validates what [`Mask::merged`] gives, and writes
//! what [`Mask::apply`] gives with a compare-and-set on `updated_at`. This file only
//! decides what changes; it reads nothing and validates no value.

use tonic::Status;

use crate::api::convert::webhook_to_proto;
use crate::api::error::Violations;
use crate::api::proto;
use crate::api::validate::Fields;
use crate::store::Webhook;

/// The fields UpdateWebhook may change.
pub(crate) const UPDATABLE: [&str; 15] = [
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
    "payload_options",
    "max_concurrency",
    "rate_limit",
    "client_certificate",
    "oauth",
];

/// Whether `name` is a field of the webhook a CreateWebhook or UpdateWebhook violation
/// can be about (its path after `webhook.`, up to the first `.` or `[`): the updatable
/// fields, the namespace (set at creation only) and the secret. The console's webhook
/// form files the API's violations under its inputs by this.
#[allow(
    dead_code,
    reason = "the console's form is to call it instead of its own list"
)]
pub(crate) fn is_webhook_field(name: &str) -> bool {
    matches!(name, "namespace" | "secret" | "client_key") || UPDATABLE.contains(&name)
}

/// Copies each named field of `$from` the mask names into `$to`; `copy` fields are `Copy`.
macro_rules! take_masked {
    ($mask:ident, $to:ident, $from:ident, [$($field:ident),*], copy [$($copied:ident),*]) => {
        $(if $mask.has(stringify!($field)) {
            $to.$field = $from.$field.clone();
        })*
        $(if $mask.has(stringify!($copied)) {
            $to.$copied = $from.$copied;
        })*
    };
}

/// The paths of one UpdateWebhook's `update_mask`, each a field in [`UPDATABLE`].
pub(super) struct Mask(Vec<String>);

impl Mask {
    /// INVALID_ARGUMENT if the mask is empty or names a field that cannot be changed.
    pub(super) fn new(paths: Vec<String>) -> Result<Mask, Status> {
        let mut v = Violations::default();
        if paths.is_empty() {
            v.add(
                "update_mask",
                format!("name the fields to change: {}", UPDATABLE.join(", ")),
            );
        }
        for path in &paths {
            if !UPDATABLE.contains(&path.as_str()) {
                v.add(
                    "update_mask",
                    format!(
                        "`{path}` cannot be changed; changeable fields: {}",
                        UPDATABLE.join(", ")
                    ),
                );
            }
        }
        v.check()?;
        Ok(Mask(paths))
    }

    /// The paths as the request gave them (for the log).
    pub(super) fn paths(&self) -> &[String] {
        &self.0
    }

    /// Names `field` too.
    pub(super) fn include(&mut self, field: &str) {
        if !self.has(field) {
            self.0.push(field.to_owned());
        }
    }

    /// Whether the mask names `field`.
    pub(super) fn has(&self, field: &str) -> bool {
        self.0.iter().any(|p| p == field)
    }

    /// What to validate: the stored webhook as the API shows it, with the masked fields
    /// taken from the request.
    pub(super) fn merged(&self, current: &Webhook, input: &proto::Webhook) -> proto::Webhook {
        let mut merged = webhook_to_proto(current);
        // The API shows a chat webhook's URL redacted; what is kept is the stored one.
        merged.url = current.url.clone();
        // Likewise secret header values.
        merged.headers = current.headers.clone().into_iter().collect();
        // The stored key is never shown, so the stored identity is not validated again:
        // only one the request sets (`client_certificate` names the key too).
        merged.client_certificate.clear();
        merged.oauth = None;
        take_masked!(
            self,
            merged,
            input,
            [name, url, event_types, repositories, tags, headers, signature_header, payload_options, client_certificate, oauth],
            copy [payload_format, max_concurrency, rate_limit]
        );
        if self.has("client_certificate") {
            merged.client_key = input.client_key.clone();
        }
        if self.has("headers") {
            merged.plain_headers = input.plain_headers.clone();
            // A value sent back as shown (redacted) keeps the stored one.
            for (name, value) in merged.headers.iter_mut() {
                if value == crate::api::convert::REDACTED
                    && let Some(stored) = current.headers.get(name)
                {
                    value.clone_from(stored);
                }
            }
        }
        merged
    }

    /// What to store: `current` with the validated `fields` of [`Mask::merged`] and the
    /// masked flags of the request, updated at `now` (later than its last update).
    pub(super) fn apply(
        &self,
        current: &Webhook,
        fields: Fields,
        input: &proto::Webhook,
        now: i64,
    ) -> Webhook {
        let mut next = current.clone();
        next.name = fields.name;
        next.url = fields.url;
        // Stored event type names that the proto cannot show are kept as they are.
        if self.has("event_types") {
            next.event_types = fields.event_types;
        }
        next.repositories = fields.repositories;
        next.tags = fields.tags;
        if self.has("payload_format") {
            next.format = fields.format;
        }
        next.headers = fields.headers;
        next.plain_headers = fields.plain_headers;
        next.signature_header = fields.signature_header;
        next.payload_options = fields.payload_options;
        next.max_concurrency = fields.max_concurrency;
        next.rate_limit_milli = fields.rate_limit_milli;
        if self.has("client_certificate") {
            next.client_identity = fields.client_identity;
        }
        if self.has("oauth") {
            next.oauth = fields.oauth;
        }
        if self.has("ordered") {
            next.ordered = input.ordered;
        }
        if self.has("enabled") {
            let enabled = input.enabled.unwrap_or(true);
            if enabled != current.enabled {
                next.enabled = enabled;
                next.disabled_reason = None;
            }
        }
        next.updated_at = now.max(current.updated_at + 1);
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_fields_are_the_updatable_ones_with_namespace_and_secret() {
        for field in UPDATABLE.iter().chain(&["namespace", "secret"]) {
            assert!(is_webhook_field(field), "{field}");
        }
        assert!(!is_webhook_field("id"));
        assert!(!is_webhook_field("update_mask"));
    }
}
