//! The generated `hookline.v1` messages, client and server (see `build.rs`), plus the
//! encoded file descriptor set the reflection service serves.
//!
//! Messages that carry a webhook secret get a hand-written `Debug` here that prints
//! `[redacted]` instead, so a request or response can be logged or asserted on safely.
#![allow(missing_docs, clippy::all, clippy::pedantic)]

tonic::include_proto!("hookline.v1");

/// `FileDescriptorSet` of `proto/hookline/v1`, with its imports, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("hookline_descriptor");

/// Shows whether a secret is set, never the secret.
fn redacted(secret: &str) -> &'static str {
    if secret.is_empty() { "" } else { "[redacted]" }
}

impl std::fmt::Debug for CreateWebhookRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateWebhookRequest")
            .field("webhook", &self.webhook)
            .field("secret", &redacted(&self.secret))
            .finish()
    }
}

impl std::fmt::Debug for CreateWebhookResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateWebhookResponse")
            .field("webhook", &self.webhook)
            .field("secret", &redacted(&self.secret))
            .finish()
    }
}

impl std::fmt::Debug for RotateWebhookSecretRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotateWebhookSecretRequest")
            .field("id", &self.id)
            .field("grace_period", &self.grace_period)
            .field("secret", &redacted(&self.secret))
            .finish()
    }
}

impl std::fmt::Debug for RotateWebhookSecretResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotateWebhookSecretResponse")
            .field("secret", &redacted(&self.secret))
            .field(
                "previous_secret_expires_at",
                &self.previous_secret_expires_at,
            )
            .finish()
    }
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("id", &self.id)
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("url", &self.url)
            .field("event_types", &self.event_types)
            .field("repositories", &self.repositories)
            .field("tags", &self.tags)
            .field("payload_format", &self.payload_format)
            .field("headers", &self.headers)
            .field("plain_headers", &self.plain_headers)
            .field("ordered", &self.ordered)
            .field("enabled", &self.enabled)
            .field("disabled_reason", &self.disabled_reason)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .field("signature_header", &self.signature_header)
            .field("payload_options", &self.payload_options)
            .field("health", &self.health)
            .field("max_concurrency", &self.max_concurrency)
            .field("rate_limit", &self.rate_limit)
            .field("client_certificate", &self.client_certificate)
            .field("client_key", &redacted(&self.client_key))
            .field("oauth", &self.oauth)
            .finish()
    }
}

impl std::fmt::Debug for OAuthClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthClientCredentials")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &redacted(&self.client_secret))
            .field("scopes", &self.scopes)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_a_secret() {
        let secret = "whsec_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0";
        let shown = [
            format!(
                "{:?}",
                CreateWebhookRequest {
                    webhook: None,
                    secret: secret.into()
                }
            ),
            format!(
                "{:?}",
                CreateWebhookResponse {
                    webhook: None,
                    secret: secret.into()
                }
            ),
            format!(
                "{:?}",
                RotateWebhookSecretRequest {
                    id: "wh_1".into(),
                    grace_period: None,
                    secret: secret.into()
                }
            ),
            format!(
                "{:?}",
                RotateWebhookSecretResponse {
                    secret: secret.into(),
                    previous_secret_expires_at: None
                }
            ),
            format!(
                "{:?}",
                Webhook {
                    client_key: format!("-----BEGIN PRIVATE KEY-----\n{secret}"),
                    oauth: Some(OAuthClientCredentials {
                        client_secret: secret.into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }
            ),
        ];
        for text in shown {
            assert!(!text.contains("c2VjcmV0"), "{text}");
            assert!(text.contains("[redacted]"), "{text}");
        }
    }
}
