//! SQLite backend: the embedded default.
//!
//! One file, WAL mode, `synchronous = FULL` (a commit is on disk before ingest answers 2xx).
//! SQLite allows one writer at a time, so writes go through a pool of exactly one
//! connection (queued in-process instead of spinning on SQLITE_BUSY) and start with
//! `BEGIN IMMEDIATE`, which takes the write lock up front so a read-then-write transaction
//! cannot fail on a stale snapshot when another process (the CLI) writes too. Reads use a
//! separate pool and never wait for the writer.

mod liveness;
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
    /// `serve`'s lock on `PATH.lock` (`liveness.rs`), held while the store lives.
    serve_lock: Option<std::fs::File>,
}

impl SqliteBackend {
    /// Opens (creating if missing) the database file at `path`.
    pub async fn connect(path: &str, options: &OpenOptions) -> Result<Self, StoreError> {
        // Before anything touches the file: a second `serve` is refused, not let in.
        let serve_lock = match options.exclusive {
            true => liveness::lock(path)?,
            false => None,
        };
        let connect = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let writer = pool_options()
            .max_connections(1)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect.clone())
            .await?;
        let reader = pool_options()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect.read_only(true))
            .await?;
        Ok(SqliteBackend {
            writer,
            reader,
            serve_lock,
        })
    }

    /// A write transaction holding SQLite's write lock from its first statement.
    async fn write(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }
}

/// Pool options shared by the writer and the readers: a connection that sqlx still believes
/// to be inside a transaction is closed instead of handed out (the pool opens a fresh one).
///
/// *Why:* when a `COMMIT` fails with `SQLITE_FULL` or `SQLITE_IOERR`, SQLite may already have
/// rolled the transaction back itself; the `ROLLBACK` sqlx then sends fails ("no transaction is
/// active") and sqlx keeps its transaction depth at 1, so every later `BEGIN IMMEDIATE` on that
/// connection fails with "attempted to call begin_with at non-zero transaction depth": the
/// one writer would be dead until a restart. The pool pings a connection before this check, so
/// the drop's queued `ROLLBACK` has run by then and a healthy connection is never closed here.
fn pool_options() -> SqlitePoolOptions {
    SqlitePoolOptions::new().before_acquire(|conn, _meta| {
        Box::pin(async move {
            let stuck = sqlx::Connection::is_in_transaction(conn);
            if stuck {
                tracing::warn!(
                    "a SQLite connection was left inside a failed transaction (a commit that \
                     failed, e.g. on a full disk); opening a fresh one"
                );
            }
            Ok(!stuck)
        })
    })
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
