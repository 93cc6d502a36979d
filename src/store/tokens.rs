//! API and registry tokens, written once for both databases over `sql.rs`'s handles (see
//! `log.rs`'s `LogStore`): lookups read the read pool, writes take a write transaction.
//!
//! Only a token's hash is stored, never the token; a registry token may carry how to read
//! that registry (`registry_*` columns), which `enrichment.rs` reads back.

use async_trait::async_trait;

use super::log::LogStore;
use super::sql::Sql;
use super::{NewToken, StoreError, TokenRecord, Tokens};
use crate::seal::place;

#[async_trait]
impl<B: LogStore> Tokens for B {
    async fn insert_token(&self, token: &NewToken) -> Result<(), StoreError> {
        let registry = token.registry.as_ref();
        let password = registry
            .and_then(|r| r.password.as_ref())
            .map(|p| {
                self.keys()
                    .seal(&place("tokens.registry_password", &token.id), p.expose())
            })
            .transpose()?;
        let sql = Sql::new(
            "INSERT INTO tokens (id, kind, subject, hash, created_at, registry_url, registry_username, registry_password) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .arg(token.id.as_str())
        .arg(token.kind.as_str())
        .arg(token.subject.as_str())
        .arg(token.hash.as_str())
        .arg(token.created_at)
        .arg(registry.map(|r| r.url.as_str()))
        .arg(registry.and_then(|r| r.username.as_deref()))
        .arg(password.as_deref());
        self.write().await?.execute_alone(&sql).await?;
        Ok(())
    }

    async fn find_token(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        let sql = Sql::new(
            "SELECT id, kind, subject, created_at, revoked_at FROM tokens WHERE hash = $1 AND revoked_at IS NULL",
        )
        .arg(hash);
        self.reads().fetch_optional(&sql).await
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let sql = Sql::new(
            "SELECT id, kind, subject, created_at, revoked_at, registry_url, \
               (registry_username IS NOT NULL OR registry_password IS NOT NULL) AS registry_credentials \
             FROM tokens ORDER BY created_at DESC, id",
        );
        self.reads().fetch_all(&sql).await
    }

    async fn revoke_token(&self, id: &str, now: i64) -> Result<bool, StoreError> {
        let sql =
            Sql::new("UPDATE tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                .arg(id)
                .arg(now);
        Ok(self.write().await?.execute_alone(&sql).await? == 1)
    }
}
