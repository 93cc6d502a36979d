//! Webhooks and secrets on SQLite.

use async_trait::async_trait;

use super::SqliteBackend;
use crate::store::{
    StoreError, Webhook, WebhookQuery, WebhookRow, WebhookSecret, WebhookWithSecrets, Webhooks,
};

const WEBHOOK_COLUMNS: &str = "id, namespace, name, url, event_types, repositories, tags, format, \
     headers, signature_header, payload_options, ordered, enabled, disabled_reason, failing_since, \
     created_at, updated_at, max_concurrency, rate_limit_milli";

#[async_trait]
impl Webhooks for SqliteBackend {
    async fn insert_webhook(
        &self,
        webhook: &Webhook,
        secret: &WebhookSecret,
    ) -> Result<(), StoreError> {
        let [event_types, repositories, tags, headers] = webhook.json_columns();
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO webhooks (id, namespace, name, url, event_types, repositories, tags, format, \
             headers, ordered, enabled, disabled_reason, failing_since, created_at, updated_at, \
             signature_header, payload_options, max_concurrency, rate_limit_milli) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
        )
        .bind(&webhook.id)
        .bind(&webhook.namespace)
        .bind(&webhook.name)
        .bind(&webhook.url)
        .bind(event_types)
        .bind(repositories)
        .bind(tags)
        .bind(&webhook.format)
        .bind(headers)
        .bind(webhook.ordered)
        .bind(webhook.enabled)
        .bind(&webhook.disabled_reason)
        .bind(webhook.failing_since)
        .bind(webhook.created_at)
        .bind(webhook.updated_at)
        .bind(&webhook.signature_header)
        .bind(webhook.options_column())
        .bind(webhook.max_concurrency)
        .bind(webhook.rate_limit_milli)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO webhook_secrets (id, webhook_id, secret, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)")
            .bind(&secret.id)
            .bind(&webhook.id)
            .bind(secret.secret.expose())
            .bind(secret.created_at)
            .bind(secret.expires_at)
            .execute(&mut *tx)
            .await?;
        bump_revision(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_webhook(&self, id: &str) -> Result<Option<Webhook>, StoreError> {
        let row: Option<WebhookRow> = sqlx::query_as(&format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = ?1"
        ))
        .bind(id)
        .fetch_optional(&self.reader)
        .await?;
        row.map(WebhookRow::decode).transpose()
    }

    async fn webhooks_revision(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT value FROM store_meta WHERE key = 'webhooks_revision'")
                .fetch_one(&self.reader)
                .await?,
        )
    }

    async fn enabled_webhooks(&self, now: i64) -> Result<Vec<WebhookWithSecrets>, StoreError> {
        // One consistent snapshot for both queries.
        let mut tx = self.reader.begin().await?;
        let rows: Vec<WebhookRow> = sqlx::query_as(&format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE enabled ORDER BY id"
        ))
        .fetch_all(&mut *tx)
        .await?;
        let secrets: Vec<(String, String, String, i64, Option<i64>)> = sqlx::query_as(
            "SELECT s.webhook_id, s.id, s.secret, s.created_at, s.expires_at FROM webhook_secrets s \
             JOIN webhooks w ON w.id = s.webhook_id \
             WHERE w.enabled AND (s.expires_at IS NULL OR s.expires_at > ?1) \
             ORDER BY s.webhook_id, s.expires_at IS NOT NULL, s.created_at DESC",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        crate::store::group_secrets(rows, secrets)
    }

    async fn disable_webhook(&self, id: &str, reason: &str, now: i64) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query("UPDATE webhooks SET enabled = FALSE, disabled_reason = ?2, updated_at = ?3 WHERE id = ?1")
            .bind(id)
            .bind(reason)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        bump_revision(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_failing_since(&self, id: &str, since: Option<i64>) -> Result<(), StoreError> {
        sqlx::query("UPDATE webhooks SET failing_since = ?2 WHERE id = ?1")
            .bind(id)
            .bind(since)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn list_webhooks(&self, query: &WebhookQuery) -> Result<Vec<Webhook>, StoreError> {
        // Namespace visibility compares whole path segments (`acme` holds `acme/x`, not
        // `acmecorp`) with substr, never LIKE, whose `_` and `%` a namespace may contain.
        let rows: Vec<WebhookRow> = sqlx::query_as(&format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks \
             WHERE (?1 IS NULL OR namespace = ?1 OR substr(namespace, 1, length(?1) + 1) = ?1 || '/') \
               AND (?2 IS NULL OR enabled = ?2) \
               AND (?3 IS NULL OR instr(lower(name), lower(?3)) > 0) \
               AND (?4 IS NULL OR instr(url, ?4) > 0) \
               AND (?5 IS NULL OR id > ?5) \
             ORDER BY id LIMIT ?6"
        ))
        .bind(&query.within)
        .bind(query.enabled)
        .bind(&query.name_contains)
        .bind(&query.url_contains)
        .bind(&query.after_id)
        .bind(query.limit)
        .fetch_all(&self.reader)
        .await?;
        rows.into_iter().map(WebhookRow::decode).collect()
    }

    async fn update_webhook(
        &self,
        webhook: &Webhook,
        expected_updated_at: i64,
    ) -> Result<bool, StoreError> {
        let [event_types, repositories, tags, headers] = webhook.json_columns();
        let mut tx = self.write().await?;
        // SET expressions read the old row: re-enabling starts a fresh failure record.
        let done = sqlx::query(
            "UPDATE webhooks SET name = ?3, url = ?4, event_types = ?5, repositories = ?6, tags = ?7, \
             format = ?8, headers = ?9, ordered = ?10, enabled = ?11, disabled_reason = ?12, \
             failing_since = CASE WHEN ?11 AND NOT enabled THEN NULL ELSE failing_since END, \
             updated_at = ?13, signature_header = ?14, payload_options = ?15, \
             max_concurrency = ?16, rate_limit_milli = ?17 \
             WHERE id = ?1 AND updated_at = ?2",
        )
        .bind(&webhook.id)
        .bind(expected_updated_at)
        .bind(&webhook.name)
        .bind(&webhook.url)
        .bind(event_types)
        .bind(repositories)
        .bind(tags)
        .bind(&webhook.format)
        .bind(headers)
        .bind(webhook.ordered)
        .bind(webhook.enabled)
        .bind(&webhook.disabled_reason)
        .bind(webhook.updated_at)
        .bind(&webhook.signature_header)
        .bind(webhook.options_column())
        .bind(webhook.max_concurrency)
        .bind(webhook.rate_limit_milli)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        bump_revision(&mut tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn delete_webhook(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        sqlx::query("DELETE FROM webhook_secrets WHERE webhook_id = ?1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        // Its health and stats go with it; its deliveries and attempts stay in the log
        // until retention.
        for table in ["webhook_health", "webhook_stats"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE webhook_id = ?1"))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        let done = sqlx::query("DELETE FROM webhooks WHERE id = ?1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        bump_revision(&mut tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn rotate_secret(
        &self,
        webhook_id: &str,
        secret: &WebhookSecret,
        previous_expires_at: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        // BEGIN IMMEDIATE already serialises writers: exactly one current secret.
        let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM webhooks WHERE id = ?1")
            .bind(webhook_id)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Ok(false);
        }
        sqlx::query(
            "DELETE FROM webhook_secrets WHERE webhook_id = ?1 AND expires_at IS NOT NULL AND expires_at <= ?2",
        )
        .bind(webhook_id)
        .bind(secret.created_at)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE webhook_secrets SET expires_at = ?2 WHERE webhook_id = ?1 AND expires_at IS NULL",
        )
        .bind(webhook_id)
        .bind(previous_expires_at)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO webhook_secrets (id, webhook_id, secret, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, NULL)")
            .bind(&secret.id)
            .bind(webhook_id)
            .bind(secret.secret.expose())
            .bind(secret.created_at)
            .execute(&mut *tx)
            .await?;
        bump_revision(&mut tx).await?;
        tx.commit().await?;
        Ok(true)
    }
}

/// Marks the webhook set as changed, inside the writing transaction.
async fn bump_revision(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE store_meta SET value = value + 1 WHERE key = 'webhooks_revision'")
        .execute(&mut **tx)
        .await?;
    Ok(())
}
