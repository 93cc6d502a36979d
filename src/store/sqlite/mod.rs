//! SQLite backend: the embedded default.
//!
//! One file, WAL mode, `synchronous = FULL` (a commit is on disk before ingest answers 2xx).
//! SQLite allows one writer at a time, so writes go through a pool of exactly one
//! connection (queued in-process instead of spinning on SQLITE_BUSY) and start with
//! `BEGIN IMMEDIATE`, which takes the write lock up front so a read-then-write transaction
//! cannot fail on a stale snapshot when another process (the CLI) writes too. Reads use a
//! separate pool and never wait for the writer.

mod log;
mod queue;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};
use tokio_util::sync::CancellationToken;

use super::sql::Reads;
use super::{OpenOptions, Schema, StoreError, Tail, Wake};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// The SQLite store.
pub struct SqliteBackend {
    /// Exactly one connection: SQLite's single writer, serialised here rather than by lock retries.
    writer: SqlitePool,
    /// Readers see committed data through WAL without blocking the writer.
    reader: SqlitePool,
}

impl SqliteBackend {
    /// Opens (creating if missing) the database file at `path`.
    pub async fn connect(path: &str, options: &OpenOptions) -> Result<Self, StoreError> {
        let connect = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect.clone())
            .await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect.read_only(true))
            .await?;
        Ok(SqliteBackend { writer, reader })
    }

    /// A write transaction holding SQLite's write lock from its first statement.
    async fn write(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }
}

#[async_trait]
impl Schema for SqliteBackend {
    async fn migrate(&self) -> Result<(), StoreError> {
        Reads::Sqlite(&self.writer).migrate(&MIGRATOR).await
    }

    async fn ready(&self) -> Result<(), StoreError> {
        Reads::Sqlite(&self.reader).check_migrated(&MIGRATOR).await
    }

    async fn forward_remote_wakeups(&self, _wake: Wake, _tail: Tail, _cancel: CancellationToken) {
        // Other processes on the same file are found by the fallback poll.
    }

    async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}
