//! Tokens on PostgreSQL.

use async_trait::async_trait;

use super::PgBackend;
use crate::store::{NewToken, StoreError, TokenRecord, Tokens};

#[async_trait]
impl Tokens for PgBackend {
    async fn insert_token(&self, token: &NewToken) -> Result<(), StoreError> {
        let registry = token.registry.as_ref();
        sqlx::query(
            "INSERT INTO tokens (id, kind, subject, hash, created_at, registry_url, registry_username, registry_password) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&token.id)
        .bind(token.kind.as_str())
        .bind(&token.subject)
        .bind(&token.hash)
        .bind(token.created_at)
        .bind(registry.map(|r| r.url.as_str()))
        .bind(registry.and_then(|r| r.username.as_deref()))
        .bind(registry.and_then(|r| r.password.as_ref()).map(|p| p.expose()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn find_token(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, kind, subject, created_at, revoked_at FROM tokens WHERE hash = $1 AND revoked_at IS NULL",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, kind, subject, created_at, revoked_at, registry_url, \
               (registry_username IS NOT NULL OR registry_password IS NOT NULL) AS registry_credentials \
             FROM tokens ORDER BY created_at DESC, id",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    async fn revoke_token(&self, id: &str, now: i64) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                .bind(id)
                .bind(now)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }
}
