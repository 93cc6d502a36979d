//! Tokens on SQLite.

use async_trait::async_trait;

use super::SqliteBackend;
use crate::store::{NewToken, StoreError, TokenRecord, Tokens};

#[async_trait]
impl Tokens for SqliteBackend {
    async fn insert_token(&self, token: &NewToken) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO tokens (id, kind, subject, hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .bind(&token.id)
        .bind(token.kind.as_str())
        .bind(&token.subject)
        .bind(&token.hash)
        .bind(token.created_at)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn find_token(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, kind, subject, created_at, revoked_at FROM tokens WHERE hash = ?1 AND revoked_at IS NULL",
        )
        .bind(hash)
        .fetch_optional(&self.reader)
        .await?)
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, kind, subject, created_at, revoked_at FROM tokens ORDER BY created_at DESC, id",
        )
        .fetch_all(&self.reader)
        .await?)
    }

    async fn revoke_token(&self, id: &str, now: i64) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL")
                .bind(id)
                .bind(now)
                .execute(&self.writer)
                .await?;
        Ok(done.rows_affected() == 1)
    }
}
