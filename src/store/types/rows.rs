//! Rows as stored, and how they become domain types and back: a `webhooks` row
//! (`WebhookRow`, its JSON columns decoded only by `decode`) and its secrets, a claim's
//! row, an event body, and the columns a webhook or a finished attempt writes. The one
//! file of `types/` that names [`StoreError`]: a column that does not decode is a corrupt
//! row (`StoreError::Corrupt`). No I/O: callers run the statements and hand the rows in.

use std::collections::HashMap;

use super::super::StoreError;
use super::{
    AttemptRecord, ClaimedDelivery, ClientIdentity, Lease, NextState, OAuthClient, Webhook,
    WebhookSecret, WebhookWithSecrets,
};
use crate::seal::{Keyring, place};
use crate::secret::Secret;

/// A `webhooks` row as read: the webhook with its plain columns, and its list, map and
/// options columns still as stored (JSON), so that one that does not decode fails
/// [`decode`](WebhookRow::decode) as a corrupt row rather than the read.
#[derive(Debug)]
pub(crate) struct WebhookRow {
    /// The webhook; `event_types`, `repositories`, `tags`, `headers` and
    /// `payload_options` are left empty until [`decode`](WebhookRow::decode).
    pub webhook: Webhook,
    pub event_types: String,
    pub repositories: String,
    pub tags: String,
    pub headers: String,
    pub payload_options: String,
    pub client_certificate: Option<String>,
    pub client_key: Option<String>,
    pub oauth: Option<String>,
    pub oauth_client_secret: Option<String>,
    pub plain_headers: Option<String>,
}

impl<'r, R: sqlx::Row> sqlx::FromRow<'r, R> for WebhookRow
where
    &'r str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        let mut webhook = Webhook::new(
            row.try_get::<String, _>("id")?,
            row.try_get::<String, _>("namespace")?,
            row.try_get::<String, _>("url")?,
            row.try_get("created_at")?,
        );
        webhook.name = row.try_get("name")?;
        webhook.format = row.try_get("format")?;
        webhook.signature_header = row.try_get("signature_header")?;
        webhook.ordered = row.try_get("ordered")?;
        webhook.max_concurrency = row.try_get("max_concurrency")?;
        webhook.rate_limit_milli = row.try_get("rate_limit_milli")?;
        webhook.enabled = row.try_get("enabled")?;
        webhook.disabled_reason = row.try_get("disabled_reason")?;
        webhook.failing_since = row.try_get("failing_since")?;
        webhook.updated_at = row.try_get("updated_at")?;
        Ok(WebhookRow {
            webhook,
            event_types: row.try_get("event_types")?,
            repositories: row.try_get("repositories")?,
            tags: row.try_get("tags")?,
            headers: row.try_get("headers")?,
            payload_options: row.try_get("payload_options")?,
            client_certificate: row.try_get("client_certificate")?,
            client_key: row.try_get("client_key")?,
            oauth: row.try_get("oauth")?,
            oauth_client_secret: row.try_get("oauth_client_secret")?,
            plain_headers: row.try_get("plain_headers")?,
        })
    }
}

impl WebhookRow {
    /// The webhook, its sealed columns opened and its JSON columns decoded.
    pub(crate) fn decode(self, keys: &Keyring) -> Result<Webhook, StoreError> {
        let corrupt = |source| StoreError::Corrupt {
            table: "webhooks",
            source,
        };
        let mut webhook = self.webhook;
        webhook.url = keys.open(&place("webhooks.url", &webhook.id), &webhook.url)?;
        let headers = keys.open(&place("webhooks.headers", &webhook.id), &self.headers)?;
        webhook.event_types = serde_json::from_str(&self.event_types).map_err(corrupt)?;
        webhook.repositories = serde_json::from_str(&self.repositories).map_err(corrupt)?;
        webhook.tags = serde_json::from_str(&self.tags).map_err(corrupt)?;
        webhook.headers = serde_json::from_str(&headers).map_err(corrupt)?;
        webhook.payload_options = serde_json::from_str(&self.payload_options).map_err(corrupt)?;
        if let (Some(certificate), Some(key)) = (self.client_certificate, self.client_key) {
            let key = keys.open(&place("webhooks.client_key", &webhook.id), &key)?;
            webhook.client_identity = Some(ClientIdentity {
                certificate,
                key: Secret::new(key),
            });
        }
        if let Some(plain) = self.plain_headers {
            webhook.plain_headers = serde_json::from_str(&plain).map_err(corrupt)?;
        }
        if let (Some(oauth), Some(secret)) = (self.oauth, self.oauth_client_secret) {
            let mut client: OAuthClient = serde_json::from_str(&oauth).map_err(corrupt)?;
            let place = place("webhooks.oauth_client_secret", &webhook.id);
            client.client_secret = Secret::new(keys.open(&place, &secret)?);
            webhook.oauth = Some(client);
        }
        Ok(webhook)
    }
}

impl Webhook {
    /// JSON encodings of the list and map columns, in column order.
    pub(crate) fn json_columns(&self) -> [String; 4] {
        let list = |v: &Vec<String>| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
        [
            list(&self.event_types),
            list(&self.repositories),
            list(&self.tags),
            serde_json::to_string(&self.headers).unwrap_or_else(|_| "{}".into()),
        ]
    }

    /// JSON encoding of the `payload_options` column.
    pub(crate) fn options_column(&self) -> String {
        serde_json::to_string(&self.payload_options).unwrap_or_else(|_| "{}".into())
    }
}

/// Joins webhook rows with their secret rows (sorted by webhook id, current secret first).
pub(crate) fn group_secrets(
    keys: &Keyring,
    rows: Vec<WebhookRow>,
    secrets: Vec<(String, String, String, i64, Option<i64>)>,
) -> Result<Vec<WebhookWithSecrets>, StoreError> {
    let mut by_webhook: HashMap<String, Vec<WebhookSecret>> = HashMap::new();
    for (webhook_id, id, sealed, created_at, expires_at) in secrets {
        let secret = keys.open(&place("webhook_secrets.secret", &id), &sealed)?;
        by_webhook
            .entry(webhook_id)
            .or_default()
            .push(WebhookSecret {
                id,
                secret: Secret::new(secret),
                created_at,
                expires_at,
            });
    }
    rows.into_iter()
        .map(|row| {
            let secrets = by_webhook.remove(&row.webhook.id).unwrap_or_default();
            Ok(WebhookWithSecrets {
                webhook: row.decode(keys)?,
                secrets,
            })
        })
        .collect()
}

/// Decodes an `events.body` column (also a claimed delivery's event body).
pub fn decode_event(body: &str) -> Result<crate::event::Event, StoreError> {
    serde_json::from_str(body).map_err(|source| StoreError::Corrupt {
        table: "events",
        source,
    })
}

/// The `status` and `next_attempt_at` a delivery gets for its next state.
pub(crate) fn next_state_columns(next: NextState, now: i64) -> (&'static str, i64) {
    match next {
        NextState::Succeeded => ("succeeded", now),
        NextState::RetryAt(at) => ("pending", at),
        NextState::Failed => ("failed", now),
    }
}

/// A one-line summary of what went wrong in an attempt, kept on the delivery.
pub(crate) fn last_error(attempt: &AttemptRecord) -> Option<String> {
    match (&attempt.error, attempt.status_code) {
        (Some(error), _) => Some(error.clone()),
        (None, Some(code)) if !(200..300).contains(&code) => Some(format!("HTTP {code}")),
        _ => None,
    }
}

/// A row a claim returns (PostgreSQL also returns the event body in it).
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ClaimRow {
    pub id: String,
    pub event_id: String,
    pub webhook_id: String,
    pub attempts: i64,
    pub retry_base: i64,
    pub namespace: String,
    pub ordering_key: Option<String>,
    pub created_at: i64,
    #[sqlx(default)]
    pub event_body: Option<String>,
}

impl ClaimRow {
    /// The claimed delivery under `lease_id`, with its event body if found.
    pub(crate) fn into_claimed(
        self,
        lease_id: &str,
        event_body: Option<String>,
    ) -> ClaimedDelivery {
        ClaimedDelivery {
            event_body: event_body.or(self.event_body),
            lease: Lease {
                delivery_id: self.id,
                lease_id: lease_id.to_owned(),
            },
            event_id: self.event_id,
            webhook_id: self.webhook_id,
            attempts: self.attempts,
            retry_base: self.retry_base,
            namespace: self.namespace,
            ordering_key: self.ordering_key,
            created_at: self.created_at,
        }
    }
}
