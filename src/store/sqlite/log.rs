//! The handles SQLite hands the shared store (`LogStore`: the log, and through it tokens,
//! webhooks, events, the queue, sessions and enrichment). Writes take the one writer
//! connection with `BEGIN IMMEDIATE`; reads use the reader pool.

use async_trait::async_trait;

use super::SqliteBackend;
use crate::store::log::LogStore;
use crate::store::sql::{Reads, Tx};
use crate::store::{AttemptView, StoreError};

#[async_trait]
impl LogStore for SqliteBackend {
    fn reads(&self) -> Reads<'_> {
        Reads::Sqlite(&self.reader)
    }

    fn keys(&self) -> &crate::seal::Keyring {
        &self.keys
    }

    async fn write(&self) -> Result<Tx, StoreError> {
        Ok(Tx::Sqlite(SqliteBackend::write(self).await?))
    }

    async fn attempts_by_seq(&self, _seqs: &[i64]) -> Result<Vec<AttemptView>, StoreError> {
        // One process owns a SQLite file's dispatching: its recorder publishes directly.
        Ok(Vec::new())
    }

    async fn analyze(&self) -> Result<(), StoreError> {
        // SQLite's own advice for long-lived connections: analyze what needs it, if anything.
        sqlx::query("PRAGMA optimize").execute(&self.writer).await?;
        Ok(())
    }
}
