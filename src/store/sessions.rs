//! Web console sessions: a signed-in browser, written once for both databases (see
//! `sql.rs`). The session id itself never reaches the database, only its hash.

use async_trait::async_trait;

use super::StoreError;
use super::log::LogStore;
use super::sql::Sql;

/// A console sign-in as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SessionRecord {
    /// SHA-256 of the API token the session signed in with.
    pub token_hash: String,
    /// The token forms must carry.
    pub csrf: String,
    /// When it ends, Unix ms.
    pub expires_at: i64,
}

/// Storing console sessions.
#[async_trait]
pub trait Sessions: Send + Sync {
    /// Records a session under the hash of its id.
    async fn create_session(
        &self,
        id_hash: &str,
        session: &SessionRecord,
        now: i64,
    ) -> Result<(), StoreError>;
    /// The session with this id hash, if it has not expired at `now`.
    async fn session(&self, id_hash: &str, now: i64) -> Result<Option<SessionRecord>, StoreError>;
    /// Ends a session (signing out); false if there was none.
    async fn delete_session(&self, id_hash: &str) -> Result<bool, StoreError>;
    /// Deletes sessions that expired before `now`; returns how many.
    async fn prune_sessions(&self, now: i64) -> Result<u64, StoreError>;
}

#[async_trait]
impl<B: LogStore> Sessions for B {
    async fn create_session(
        &self,
        id_hash: &str,
        session: &SessionRecord,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut sql = Sql::new(
            "INSERT INTO console_sessions (id_hash, token_hash, csrf, created_at, expires_at) VALUES (",
        );
        let values = [
            sql.bind(id_hash),
            sql.bind(session.token_hash.as_str()),
            sql.bind(session.csrf.as_str()),
            sql.bind(now),
            sql.bind(session.expires_at),
        ];
        sql.push(&values.join(", ")).push(")");
        let mut tx = self.write().await?;
        tx.execute(&sql).await?;
        tx.commit().await
    }

    async fn session(&self, id_hash: &str, now: i64) -> Result<Option<SessionRecord>, StoreError> {
        let mut sql =
            Sql::new("SELECT token_hash, csrf, expires_at FROM console_sessions WHERE id_hash = ");
        let id = sql.bind(id_hash);
        let at = sql.bind(now);
        sql.push(&format!("{id} AND expires_at > {at}"));
        self.reads().fetch_optional(&sql).await
    }

    async fn delete_session(&self, id_hash: &str) -> Result<bool, StoreError> {
        let mut sql = Sql::new("DELETE FROM console_sessions WHERE id_hash = ");
        let id = sql.bind(id_hash);
        sql.push(&id);
        let mut tx = self.write().await?;
        let deleted = tx.execute(&sql).await?;
        tx.commit().await?;
        Ok(deleted > 0)
    }

    async fn prune_sessions(&self, now: i64) -> Result<u64, StoreError> {
        let mut sql = Sql::new("DELETE FROM console_sessions WHERE expires_at <= ");
        let at = sql.bind(now);
        sql.push(&at);
        let mut tx = self.write().await?;
        let deleted = tx.execute(&sql).await?;
        tx.commit().await?;
        Ok(deleted)
    }
}
