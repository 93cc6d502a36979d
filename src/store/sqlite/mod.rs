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
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};
use tokio_util::sync::CancellationToken;

use super::sql::Reads;
use super::writes::{CLOSE_WITHIN, close_within, lock, watched};
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
    /// When the writer connection was last handed out, while it is: what a slow
    /// `BEGIN IMMEDIATE` waits for is then this process's other transaction.
    writer_taken: Arc<Mutex<Option<Instant>>>,
    /// Seals and opens stored secrets.
    pub(super) keys: Arc<crate::seal::Keyring>,
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
        let writer_taken = Arc::new(Mutex::new(None));
        let writer = pool_options(Some(writer_taken.clone()))
            .max_connections(1)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect.clone())
            .await?;
        let reader = pool_options(None)
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect.read_only(true))
            .await?;
        Ok(SqliteBackend {
            writer,
            reader,
            serve_lock,
            writer_taken,
            keys: options.keys.clone(),
        })
    }

    /// A write transaction holding SQLite's write lock from its first statement.
    async fn write(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        let asked = Instant::now();
        let waiting_for = || match *lock(&self.writer_taken) {
            Some(taken) if taken < asked => format!(
                "the SQLite writer connection, which another transaction of this process has \
                 held for {} ms",
                taken.elapsed().as_millis()
            ),
            _ => "SQLite's write lock (BEGIN IMMEDIATE), held by another process with the file \
                  open: a hookline CLI command (tokens, migrate, backup) or another tool"
                .to_owned(),
        };
        let begin = self.writer.begin_with("BEGIN IMMEDIATE");
        Ok(watched("begin", waiting_for, begin).await?)
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
///
/// `taken` (the writer's) notes when a connection is handed out and clears when it is back.
fn pool_options(taken: Option<Arc<Mutex<Option<Instant>>>>) -> SqlitePoolOptions {
    let released = taken.clone();
    SqlitePoolOptions::new()
        .before_acquire(move |conn, _meta| {
            let taken = taken.clone();
            Box::pin(async move {
                let stuck = sqlx::Connection::is_in_transaction(conn);
                if stuck {
                    tracing::warn!(
                        "a SQLite connection was left inside a failed transaction (a commit that \
                         failed, e.g. on a full disk); opening a fresh one"
                    );
                } else if let Some(taken) = taken {
                    *lock(&taken) = Some(Instant::now());
                }
                Ok(!stuck)
            })
        })
        .after_release(move |_conn, _meta| {
            if let Some(taken) = &released {
                *lock(taken) = None;
            }
            Box::pin(async { Ok(true) })
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
        close_within(&self.writer, "sqlite writer", CLOSE_WITHIN).await;
        close_within(&self.reader, "sqlite readers", CLOSE_WITHIN).await;
    }
}
