//! Webhooks and their secrets, written once for both databases over `sql.rs`'s handles
//! (see `log.rs`'s `LogStore`).
//!
//! Every write bumps `webhooks_revision` in its own transaction, which is how dispatchers
//! learn that their matcher is stale (`Events::fan_out` refuses a plan built from an older
//! revision). Reads use the read pool; `enabled_webhooks` reads webhooks and secrets from
//! one snapshot. Listings filter by namespace with `Sql::push_within`, never `LIKE`.

use async_trait::async_trait;

use super::log::LogStore;
use super::sql::{Dialect, Param, Sql, Tx};
use super::{
    StoreError, Webhook, WebhookQuery, WebhookRow, WebhookSecret, WebhookWithSecrets, Webhooks,
    group_secrets,
};
use crate::seal::{Keyring, place};

const WEBHOOK_COLUMNS: &str = "id, namespace, name, url, event_types, repositories, tags, format, \
     headers, signature_header, payload_options, ordered, enabled, disabled_reason, failing_since, \
     created_at, updated_at, max_concurrency, rate_limit_milli, client_certificate, client_key, \
     oauth, oauth_client_secret, plain_headers";

/// The columns an update may change, with the webhook's values, in one place for the
/// insert and the compare-and-set update; the custom headers and a credential URL sealed.
fn changeable(
    keys: &Keyring,
    webhook: &Webhook,
) -> Result<[(&'static str, Param); 20], StoreError> {
    let [event_types, repositories, tags, headers] = webhook.json_columns();
    let url = if webhook.url_is_credential() {
        keys.seal(&place("webhooks.url", &webhook.id), &webhook.url)?
    } else {
        webhook.url.clone()
    };
    let headers = keys.seal(&place("webhooks.headers", &webhook.id), &headers)?;
    let identity = webhook.client_identity.as_ref();
    let client_key = identity
        .map(|i| keys.seal(&place("webhooks.client_key", &webhook.id), i.key.expose()))
        .transpose()?;
    let oauth = webhook.oauth.as_ref();
    let oauth_secret = oauth
        .map(|o| {
            keys.seal(
                &place("webhooks.oauth_client_secret", &webhook.id),
                o.client_secret.expose(),
            )
        })
        .transpose()?;
    let oauth = oauth.map(|o| serde_json::to_string(o).unwrap_or_else(|_| "{}".into()));
    let plain_headers = (!webhook.plain_headers.is_empty())
        .then(|| serde_json::to_string(&webhook.plain_headers).unwrap_or_else(|_| "[]".into()));
    Ok([
        ("name", webhook.name.as_str().into()),
        ("url", url.into()),
        ("event_types", event_types.into()),
        ("repositories", repositories.into()),
        ("tags", tags.into()),
        ("format", webhook.format.as_str().into()),
        ("headers", headers.into()),
        ("ordered", webhook.ordered.into()),
        ("enabled", webhook.enabled.into()),
        ("disabled_reason", webhook.disabled_reason.as_deref().into()),
        ("updated_at", webhook.updated_at.into()),
        (
            "signature_header",
            webhook.signature_header.as_deref().into(),
        ),
        ("payload_options", webhook.options_column().into()),
        ("max_concurrency", webhook.max_concurrency.into()),
        ("rate_limit_milli", webhook.rate_limit_milli.into()),
        (
            "client_certificate",
            identity.map(|i| i.certificate.as_str()).into(),
        ),
        ("client_key", client_key.as_deref().into()),
        ("oauth", oauth.as_deref().into()),
        ("oauth_client_secret", oauth_secret.as_deref().into()),
        ("plain_headers", plain_headers.as_deref().into()),
    ])
}

/// A secret row for `webhook_id`, the secret sealed.
fn insert_secret(
    keys: &Keyring,
    webhook_id: &str,
    secret: &WebhookSecret,
) -> Result<Sql, StoreError> {
    let sealed = keys.seal(
        &place("webhook_secrets.secret", &secret.id),
        secret.secret.expose(),
    )?;
    Ok(Sql::new(
        "INSERT INTO webhook_secrets (id, webhook_id, secret, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .arg(secret.id.as_str())
    .arg(webhook_id)
    .arg(sealed)
    .arg(secret.created_at)
    .arg(secret.expires_at))
}

/// Marks the webhook set as changed, inside the writing transaction, and commits.
async fn bump_revision_and_commit(mut tx: Tx) -> Result<(), StoreError> {
    tx.execute(&Sql::new(
        "UPDATE store_meta SET value = value + 1 WHERE key = 'webhooks_revision'",
    ))
    .await?;
    tx.commit().await
}

#[async_trait]
impl<B: LogStore> Webhooks for B {
    async fn insert_webhook(
        &self,
        webhook: &Webhook,
        secret: &WebhookSecret,
    ) -> Result<(), StoreError> {
        let mut sql = Sql::new("");
        let mut columns = vec!["id", "namespace", "failing_since", "created_at"];
        let mut values = vec![
            sql.bind(webhook.id.as_str()),
            sql.bind(webhook.namespace.as_str()),
            sql.bind(webhook.failing_since),
            sql.bind(webhook.created_at),
        ];
        for (column, value) in changeable(self.keys(), webhook)? {
            columns.push(column);
            values.push(sql.bind(value));
        }
        sql.push(&format!(
            "INSERT INTO webhooks ({}) VALUES ({})",
            columns.join(", "),
            values.join(", ")
        ));
        let mut tx = self.write().await?;
        tx.execute(&sql).await?;
        tx.execute(&insert_secret(self.keys(), &webhook.id, secret)?)
            .await?;
        bump_revision_and_commit(tx).await
    }

    async fn get_webhook(&self, id: &str) -> Result<Option<Webhook>, StoreError> {
        let sql = Sql::new(format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = $1"
        ))
        .arg(id);
        let row: Option<WebhookRow> = self.reads().fetch_optional(&sql).await?;
        row.map(|row| row.decode(self.keys())).transpose()
    }

    async fn webhooks_revision(&self) -> Result<i64, StoreError> {
        let sql = Sql::new("SELECT value FROM store_meta WHERE key = 'webhooks_revision'");
        let (value,): (i64,) = self.reads().fetch_one(&sql).await?;
        Ok(value)
    }

    async fn enabled_webhooks(&self, now: i64) -> Result<Vec<WebhookWithSecrets>, StoreError> {
        // One consistent snapshot for both queries.
        let mut tx = self.reads().snapshot().await?;
        let rows: Vec<WebhookRow> = tx
            .fetch_all(&Sql::new(format!(
                "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE enabled ORDER BY id"
            )))
            .await?;
        let secrets = Sql::new(
            "SELECT s.webhook_id, s.id, s.secret, s.created_at, s.expires_at FROM webhook_secrets s \
             JOIN webhooks w ON w.id = s.webhook_id \
             WHERE w.enabled AND (s.expires_at IS NULL OR s.expires_at > $1) \
             ORDER BY s.webhook_id, s.expires_at IS NOT NULL, s.created_at DESC",
        )
        .arg(now);
        let secrets = tx.fetch_all(&secrets).await?;
        tx.commit().await?;
        group_secrets(self.keys(), rows, secrets)
    }

    async fn disable_webhook(&self, id: &str, reason: &str, now: i64) -> Result<(), StoreError> {
        let sql = Sql::new(
            "UPDATE webhooks SET enabled = FALSE, disabled_reason = $2, updated_at = $3 WHERE id = $1",
        )
        .arg(id)
        .arg(reason)
        .arg(now);
        let mut tx = self.write().await?;
        tx.execute(&sql).await?;
        bump_revision_and_commit(tx).await
    }

    async fn set_failing_since(&self, id: &str, since: Option<i64>) -> Result<(), StoreError> {
        let sql = Sql::new("UPDATE webhooks SET failing_since = $2 WHERE id = $1")
            .arg(id)
            .arg(since);
        self.write().await?.execute_alone(&sql).await?;
        Ok(())
    }

    async fn list_webhooks(&self, query: &WebhookQuery) -> Result<Vec<Webhook>, StoreError> {
        let dialect = self.reads().dialect();
        let mut sql = Sql::new(format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE true"));
        if let Some(namespace) = &query.within {
            sql.push(" AND ").push_within("namespace", namespace);
        }
        if let Some(enabled) = query.enabled {
            let p = sql.bind(enabled);
            sql.push(&format!(" AND enabled = {p}"));
        }
        let contains = [
            ("name", &query.name_contains, true),
            ("url", &query.url_contains, false),
        ];
        for (column, text, fold_case) in contains {
            if let Some(text) = text {
                let p = sql.bind(text.as_str());
                let test = dialect.contains(column, &p, fold_case);
                sql.push(&format!(" AND {test}"));
            }
        }
        if query.url_contains.is_some() && !query.secret_url_formats.is_empty() {
            let formats: Vec<String> = query
                .secret_url_formats
                .iter()
                .map(|f| sql.bind(f.as_str()))
                .collect();
            sql.push(&format!(" AND format NOT IN ({})", formats.join(", ")));
            // Nor a URL with credentials in it (`user:password@`), sealed or not yet.
            for mark in ["@", crate::seal::PREFIX] {
                let p = sql.bind(mark);
                let has = dialect.contains("url", &p, false);
                sql.push(&format!(" AND NOT {has}"));
            }
        }
        if let Some(after_id) = &query.after_id {
            let p = sql.bind(after_id.as_str());
            sql.push(&format!(" AND id > {p}"));
        }
        let limit = sql.bind(query.limit);
        sql.push(&format!(" ORDER BY id LIMIT {limit}"));
        let rows: Vec<WebhookRow> = self.reads().fetch_all(&sql).await?;
        rows.into_iter()
            .map(|row| row.decode(self.keys()))
            .collect()
    }

    async fn update_webhook(
        &self,
        webhook: &Webhook,
        expected_updated_at: i64,
    ) -> Result<bool, StoreError> {
        let mut sql = Sql::new("UPDATE webhooks SET ");
        let id = sql.bind(webhook.id.as_str());
        let expected = sql.bind(expected_updated_at);
        let mut assignments = Vec::new();
        for (column, value) in changeable(self.keys(), webhook)? {
            let p = sql.bind(value);
            if column == "enabled" {
                // SET expressions read the old row: re-enabling starts a fresh failure record.
                assignments.push(format!(
                    "failing_since = CASE WHEN {p} AND NOT enabled THEN NULL ELSE failing_since END"
                ));
            }
            assignments.push(format!("{column} = {p}"));
        }
        sql.push(&assignments.join(", "))
            .push(&format!(" WHERE id = {id} AND updated_at = {expected}"));
        let mut tx = self.write().await?;
        if tx.execute(&sql).await? == 0 {
            return Ok(false);
        }
        bump_revision_and_commit(tx).await?;
        Ok(true)
    }

    async fn delete_webhook(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        // Its secrets, health and stats go with it; its deliveries and attempts stay in the
        // log until retention.
        for table in ["webhook_secrets", "webhook_health", "webhook_stats"] {
            let sql = Sql::new(format!("DELETE FROM {table} WHERE webhook_id = $1")).arg(id);
            tx.execute(&sql).await?;
        }
        let sql = Sql::new("DELETE FROM webhooks WHERE id = $1").arg(id);
        if tx.execute(&sql).await? == 0 {
            return Ok(false);
        }
        bump_revision_and_commit(tx).await?;
        Ok(true)
    }

    async fn rotate_secret(
        &self,
        webhook_id: &str,
        secret: &WebhookSecret,
        previous_expires_at: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        // Concurrent rotations of one webhook are serialised, so there is exactly one
        // current secret: on PostgreSQL by this row lock, on SQLite by `BEGIN IMMEDIATE`.
        let lock = match tx.dialect() {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE",
        };
        let exists =
            Sql::new(format!("SELECT id FROM webhooks WHERE id = $1{lock}")).arg(webhook_id);
        let exists: Option<(String,)> = tx.fetch_optional(&exists).await?;
        if exists.is_none() {
            return Ok(false);
        }
        let expired = Sql::new(
            "DELETE FROM webhook_secrets WHERE webhook_id = $1 AND expires_at IS NOT NULL AND expires_at <= $2",
        )
        .arg(webhook_id)
        .arg(secret.created_at);
        tx.execute(&expired).await?;
        let previous = Sql::new(
            "UPDATE webhook_secrets SET expires_at = $2 WHERE webhook_id = $1 AND expires_at IS NULL",
        )
        .arg(webhook_id)
        .arg(previous_expires_at);
        tx.execute(&previous).await?;
        let current = WebhookSecret {
            expires_at: None,
            ..secret.clone()
        };
        tx.execute(&insert_secret(self.keys(), webhook_id, &current)?)
            .await?;
        bump_revision_and_commit(tx).await?;
        Ok(true)
    }
}
