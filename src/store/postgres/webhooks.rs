//! Webhooks and secrets on PostgreSQL.

use async_trait::async_trait;

use super::PgBackend;
use crate::store::{StoreError, Webhook, WebhookRow, WebhookSecret, WebhookWithSecrets, Webhooks};

const WEBHOOK_COLUMNS: &str = "id, namespace, name, url, event_types, repositories, tags, format, \
     headers, ordered, enabled, disabled_reason, failing_since, created_at, updated_at";

#[async_trait]
impl Webhooks for PgBackend {
    async fn insert_webhook(
        &self,
        webhook: &Webhook,
        secret: &WebhookSecret,
    ) -> Result<(), StoreError> {
        let [event_types, repositories, tags, headers] = webhook.json_columns();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO webhooks (id, namespace, name, url, event_types, repositories, tags, format, \
             headers, ordered, enabled, disabled_reason, failing_since, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
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
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO webhook_secrets (id, webhook_id, secret, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
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
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(WebhookRow::decode).transpose()
    }

    async fn webhooks_revision(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT value FROM store_meta WHERE key = 'webhooks_revision'")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn enabled_webhooks(&self, now: i64) -> Result<Vec<WebhookWithSecrets>, StoreError> {
        // One consistent snapshot for both queries.
        let mut tx = self.pool.begin().await?;
        let rows: Vec<WebhookRow> = sqlx::query_as(&format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE enabled ORDER BY id"
        ))
        .fetch_all(&mut *tx)
        .await?;
        let secrets: Vec<(String, String, String, i64, Option<i64>)> = sqlx::query_as(
            "SELECT s.webhook_id, s.id, s.secret, s.created_at, s.expires_at FROM webhook_secrets s \
             JOIN webhooks w ON w.id = s.webhook_id \
             WHERE w.enabled AND (s.expires_at IS NULL OR s.expires_at > $1) \
             ORDER BY s.webhook_id, s.expires_at IS NOT NULL, s.created_at DESC",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        crate::store::group_secrets(rows, secrets)
    }

    async fn disable_webhook(&self, id: &str, reason: &str, now: i64) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE webhooks SET enabled = FALSE, disabled_reason = $2, updated_at = $3 WHERE id = $1")
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
        sqlx::query("UPDATE webhooks SET failing_since = $2 WHERE id = $1")
            .bind(id)
            .bind(since)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// Marks the webhook set as changed, inside the writing transaction.
async fn bump_revision(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE store_meta SET value = value + 1 WHERE key = 'webhooks_revision'")
        .execute(&mut **tx)
        .await?;
    Ok(())
}
