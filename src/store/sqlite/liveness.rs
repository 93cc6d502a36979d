//! Liveness on SQLite: one `serve` per file.
//!
//! `serve` opens the store `exclusive`ly: it creates `PATH.lock` beside the database and
//! holds an exclusive lock on it (`flock`) for as long as it runs; the kernel drops the lock
//! when the process ends, however it ends. A second `serve` on the same file is refused
//! rather than sharing it, so a `serve` that holds the lock knows that every lease in the
//! file belongs to a process that is gone, and gives them all back at start: a crashed
//! process's deliveries go out again as soon as the next one starts, not when their leases
//! run out. CLI commands (`tokens`, `migrate`, `backup`) take no lock and run beside it.

use std::fs::{File, OpenOptions, TryLockError};

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use super::SqliteBackend;
use crate::store::queue::{release_dead, release_dead_sql};
use crate::store::serving;
use crate::store::{Liveness, StoreError};

/// Takes the serve lock of the database at `path` (a `sqlite://` URL's path, options
/// included), or `None` for an in-memory database, which no other process can open.
pub(super) fn lock(path: &str) -> Result<Option<File>, StoreError> {
    let file = path.split('?').next().unwrap_or(path);
    if file.is_empty() || file == ":memory:" || path.contains("mode=memory") {
        return Ok(None);
    }
    let lock_path = format!("{file}.lock");
    let io_error = |error: std::io::Error| StoreError::Database(sqlx::Error::Io(error));
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io_error)?;
    match lock.try_lock() {
        Ok(()) => Ok(Some(lock)),
        Err(TryLockError::WouldBlock) => Err(StoreError::InUse {
            path: file.to_owned(),
            lock: lock_path,
        }),
        Err(TryLockError::Error(error)) => Err(io_error(error)),
    }
}

#[async_trait]
impl Liveness for SqliteBackend {
    async fn hold_liveness(&self, _cancel: CancellationToken) -> Result<String, StoreError> {
        // The serve lock, held since the store opened, is the mark.
        Ok(crate::ids::new_id("replica"))
    }

    async fn live_owners(&self) -> Result<Option<Vec<i64>>, StoreError> {
        Ok(None)
    }

    async fn release_dead_leases(
        &self,
        me: &str,
        _members: &[i64],
        now: i64,
    ) -> Result<u64, StoreError> {
        if self.serve_lock.is_none() {
            // Not serving the file alone: another process's leases may be alive.
            return Ok(0);
        }
        release_dead(self, &release_dead_sql(me, now, None)).await
    }

    async fn owner_key(&self, _owner: &str) -> Result<i64, StoreError> {
        Ok(0)
    }

    async fn served_webhooks(&self, me: &str) -> Result<Vec<String>, StoreError> {
        serving::served(self, me).await
    }

    async fn take_webhooks(
        &self,
        me: &str,
        ids: &[String],
        _members: &[i64],
        now: i64,
    ) -> Result<Vec<String>, StoreError> {
        // One process serves the file: any other dispatcher named is a dead one.
        serving::take(self, me, ids, now, None).await
    }

    async fn give_up_webhooks(&self, me: &str, ids: &[String]) -> Result<u64, StoreError> {
        serving::give_up(self, me, ids).await
    }
}
