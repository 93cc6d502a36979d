//! The webhook form's data: what it holds as typed (`WebhookForm`), filled from a webhook
//! for editing or from the posted fields, read into the `proto::Webhook` the API gets, and
//! the problems per field (`Errors`): the form's own (lines it cannot read) and the API's
//! field violations, each under the field it is about. No markup here: `form_page.rs`
//! renders the form and handles its posts.

use std::collections::BTreeMap;

use tonic_types::StatusExt;

use crate::api::proto;
use crate::api::service::UPDATABLE;
use crate::console::session::field;

/// Fields the form has besides those UpdateWebhook may change: the create-only namespace
/// and secret, the payload options that `UPDATABLE` names as one, and the client key
/// (`client_certificate` names both).
const FORM_ONLY: [&str; 11] = [
    "namespace",
    "include_host",
    "harbor_deletes",
    "chat_link",
    "chat_mention",
    "template",
    "template_content_type",
    "preset",
    "secret",
    "client_key",
    "plain_headers",
];

/// The names of the form's fields: every field UpdateWebhook may change, and those of
/// [`FORM_ONLY`]. Problems about one of them show beside it, any other's on top.
pub(super) fn field_names() -> impl Iterator<Item = &'static str> {
    UPDATABLE
        .into_iter()
        .filter(|name| *name != "payload_options")
        .chain(FORM_ONLY)
}

/// What the create/edit form holds, as typed.
#[derive(Default, Clone)]
pub(super) struct WebhookForm {
    /// Create only: empty means the session's own namespace.
    pub(super) namespace: String,
    pub(super) name: String,
    pub(super) url: String,
    pub(super) event_types: Vec<i32>,
    pub(super) repositories: String,
    pub(super) tags: String,
    pub(super) payload_format: i32,
    pub(super) headers: String,
    /// Names of the headers whose values are shown (not secret), one per line.
    pub(super) plain_headers: String,
    pub(super) ordered: bool,
    pub(super) enabled: bool,
    pub(super) signature_header: String,
    pub(super) include_host: String,
    pub(super) harbor_deletes: bool,
    pub(super) chat_link: String,
    pub(super) chat_mention: String,
    pub(super) template: String,
    pub(super) template_content_type: String,
    /// Create only: a preset fills the template, its content type and headers.
    pub(super) preset: String,
    pub(super) max_concurrency: String,
    pub(super) rate_limit: String,
    pub(super) secret: String,
    /// The client certificate chain (PEM), shown as stored.
    pub(super) client_certificate: String,
    /// Its private key: write-only, so always empty when the form is shown.
    pub(super) client_key: String,
    /// OAuth client credentials (the `oauth` field): the token endpoint, the client id,
    /// the secret (write-only, always empty when shown) and the scopes, one per line.
    pub(super) oauth_token_url: String,
    pub(super) oauth_client_id: String,
    pub(super) oauth_client_secret: String,
    pub(super) oauth_scopes: String,
}

impl WebhookForm {
    /// Whether a save changes the client certificate: a new key was pasted (a rotation),
    /// or the certificate was cleared. Otherwise the stored one, whose key the form never
    /// holds, stays.
    pub(super) fn changes_client_certificate(&self) -> bool {
        !self.client_key.trim().is_empty() || self.client_certificate.trim().is_empty()
    }

    /// Whether a save changes the OAuth credentials: a secret was typed, or the token
    /// endpoint was cleared (the stored secret is never in the form).
    pub(super) fn changes_oauth(&self) -> bool {
        !self.oauth_client_secret.is_empty() || self.oauth_token_url.is_empty()
    }

    pub(super) fn blank() -> WebhookForm {
        WebhookForm {
            enabled: true,
            payload_format: proto::PayloadFormat::Hookline as i32,
            ..WebhookForm::default()
        }
    }

    pub(super) fn from_webhook(w: &proto::Webhook) -> WebhookForm {
        let options = w.payload_options.clone().unwrap_or_default();
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
            plain_headers: w.plain_headers.join("\n"),
            ordered: w.ordered,
            enabled: w.enabled.unwrap_or(true),
            signature_header: w.signature_header.clone(),
            include_host: match options.include_host_in_repo_name {
                None => String::new(),
                Some(true) => "yes".into(),
                Some(false) => "no".into(),
            },
            harbor_deletes: options.harbor_deletes,
            chat_link: options.chat_link,
            chat_mention: options.chat_mention,
            template: options.template,
            template_content_type: options.template_content_type,
            preset: String::new(),
            max_concurrency: w.max_concurrency.map(|n| n.to_string()).unwrap_or_default(),
            rate_limit: w.rate_limit.map(|r| r.to_string()).unwrap_or_default(),
            secret: String::new(),
            client_certificate: w.client_certificate.clone(),
            client_key: String::new(),
            oauth_token_url: w
                .oauth
                .as_ref()
                .map(|o| o.token_url.clone())
                .unwrap_or_default(),
            oauth_client_id: w
                .oauth
                .as_ref()
                .map(|o| o.client_id.clone())
                .unwrap_or_default(),
            oauth_client_secret: String::new(),
            oauth_scopes: w
                .oauth
                .as_ref()
                .map(|o| o.scopes.join("\n"))
                .unwrap_or_default(),
        }
    }

    pub(super) fn from_fields(form: &[(String, String)]) -> WebhookForm {
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
            plain_headers: field(form, "plain_headers").to_owned(),
            ordered: checked("ordered"),
            enabled: checked("enabled"),
            signature_header: field(form, "signature_header").trim().to_owned(),
            include_host: field(form, "include_host").to_owned(),
            harbor_deletes: checked("harbor_deletes"),
            chat_link: field(form, "chat_link").trim().to_owned(),
            chat_mention: field(form, "chat_mention").trim().to_owned(),
            // Kept as typed: whitespace is part of a body.
            template: field(form, "template").replace("\r\n", "\n"),
            template_content_type: field(form, "template_content_type").trim().to_owned(),
            preset: field(form, "preset").trim().to_owned(),
            max_concurrency: field(form, "max_concurrency").trim().to_owned(),
            rate_limit: field(form, "rate_limit").trim().to_owned(),
            secret: field(form, "secret").trim().to_owned(),
            client_certificate: field(form, "client_certificate").replace("\r\n", "\n"),
            client_key: field(form, "client_key").replace("\r\n", "\n"),
            oauth_token_url: field(form, "oauth_token_url").trim().to_owned(),
            oauth_client_id: field(form, "oauth_client_id").trim().to_owned(),
            oauth_client_secret: field(form, "oauth_client_secret").trim().to_owned(),
            oauth_scopes: field(form, "oauth_scopes").to_owned(),
        }
    }

    /// The webhook the form describes, or the form's own errors (lines it cannot read).
    pub(super) fn to_webhook(&self) -> Result<proto::Webhook, Errors> {
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
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(proto::Webhook {
            max_concurrency,
            rate_limit,
            client_certificate: self.client_certificate.clone(),
            client_key: self.client_key.clone(),
            oauth: (!self.oauth_token_url.is_empty()).then(|| proto::OAuthClientCredentials {
                token_url: self.oauth_token_url.clone(),
                client_id: self.oauth_client_id.clone(),
                client_secret: self.oauth_client_secret.clone(),
                scopes: lines(&self.oauth_scopes),
            }),
            namespace: (!self.namespace.is_empty()).then(|| self.namespace.clone()),
            name: self.name.clone(),
            url: self.url.clone(),
            event_types: self.event_types.clone(),
            repositories: lines(&self.repositories),
            tags: lines(&self.tags),
            payload_format: self.payload_format,
            headers,
            plain_headers: lines(&self.plain_headers),
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
                chat_link: self.chat_link.clone(),
                chat_mention: self.chat_mention.clone(),
                template: self.template.clone(),
                template_content_type: self.template_content_type.clone(),
                preset: self.preset.clone(),
            }),
            ..Default::default()
        })
    }
}

/// Problems per form field, in the API's words.
#[derive(Default)]
pub(super) struct Errors(BTreeMap<String, Vec<String>>);

impl Errors {
    pub(super) fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0
            .entry(field.to_owned())
            .or_default()
            .push(message.into());
    }

    /// The API's INVALID_ARGUMENT, one message per field violation, each under the form
    /// field it is about (`webhook.repositories[2]` → repositories).
    pub(super) fn from_status(status: &tonic::Status) -> Errors {
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
                "payload_options" if path.contains("chat_link") => "chat_link",
                "payload_options" if path.contains("chat_mention") => "chat_mention",
                "payload_options" if path.contains("template_content_type") => {
                    "template_content_type"
                }
                "payload_options" if path.contains("template") => "template",
                "payload_options" if path.contains("preset") => "preset",
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

    /// The problems with one field of the form.
    pub(super) fn on(&self, field: &str) -> Option<&Vec<String>> {
        self.0.get(field)
    }

    /// Whether there is any problem at all.
    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The problems about no field the form has, for the top of the form.
    pub(super) fn elsewhere(&self) -> Vec<&String> {
        self.0
            .iter()
            .filter(|(field, _)| !field_names().any(|name| name == field.as_str()))
            .flat_map(|(_, messages)| messages)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_client_certificate_is_kept_unless_a_new_key_comes_or_it_is_cleared() {
        let stored = proto::Webhook {
            client_certificate: "-----BEGIN CERTIFICATE-----".into(),
            ..Default::default()
        };
        let mut form = WebhookForm::from_webhook(&stored);
        assert!(form.client_key.is_empty(), "the key is never in the form");
        assert!(!form.changes_client_certificate());
        form.client_key = "-----BEGIN PRIVATE KEY-----".into();
        assert!(form.changes_client_certificate(), "a rotation");
        let cleared = WebhookForm::from_fields(&[("client_certificate".into(), " ".into())]);
        assert!(cleared.changes_client_certificate(), "a removal");
    }

    #[test]
    fn problems_about_no_field_of_the_form_go_on_top() {
        let mut errors = Errors::default();
        for field in [
            "name",
            "include_host",
            "secret",
            "",
            "payload_options",
            "webhook",
        ] {
            errors.add(field, format!("bad {field}"));
        }
        assert_eq!(
            errors.elsewhere(),
            ["bad ", "bad payload_options", "bad webhook"]
        );
        assert!(errors.on("include_host").is_some());
    }
}
