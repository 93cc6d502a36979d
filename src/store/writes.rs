//! Whether this process's writes succeed, for `/readyz`.
//!
//! A database can answer reads while refusing every write (a full disk, a read-only
//! remount, a PostgreSQL standby after a failover). Ingest then answers 503 to every
//! notify, so a load balancer should send the registry elsewhere: the writes that matter
//! (ingest's commits and the dispatcher's result batches) report here, and while the last
//! of them failed, readiness tries one small write of its own ([`Probe`]) and says not
//! ready until one succeeds. The probe is what ends it: a process taken out of its load
//! balancer gets no more notifies to try with.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::StoreError;
use super::log::LogStore;
use super::sql::Sql;

/// The last write's failure, if it failed.
#[derive(Clone, Default)]
pub struct WriteHealth(Arc<Mutex<Option<Failing>>>);

struct Failing {
    since: Instant,
    reason: String,
}

impl WriteHealth {
    /// Notes a write's result: an unavailable database marks writes failing (from the
    /// first failure on), a success clears it; other errors say nothing about the database.
    pub fn record<T>(&self, result: &Result<T, StoreError>) {
        let mut failing = self.lock();
        match result {
            Ok(_) => *failing = None,
            Err(error) if error.is_unavailable() => {
                let since = failing.as_ref().map_or_else(Instant::now, |f| f.since);
                *failing = Some(Failing {
                    since,
                    reason: error.to_string(),
                });
            }
            Err(_) => {}
        }
    }

    /// How long writes have failed, and the last reason; None while they succeed.
    pub fn failing(&self) -> Option<(Duration, String)> {
        self.lock()
            .as_ref()
            .map(|f| (f.since.elapsed(), f.reason.clone()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Failing>> {
        lock(&self.0)
    }
}

/// Locks `mutex`, going on with its data if a panicking holder poisoned it: what these
/// mutexes guard (an instant, a reason) stays meaningful whatever panicked.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One small write that changes nothing anybody reads.
#[async_trait]
pub trait Probe: Send + Sync {
    /// Writes `now` under `store_meta`'s `write_probe` key, in a transaction of its own.
    async fn probe_write(&self, now: i64) -> Result<(), StoreError>;
}

#[async_trait]
impl<B: LogStore> Probe for B {
    async fn probe_write(&self, now: i64) -> Result<(), StoreError> {
        let sql = Sql::new(
            "INSERT INTO store_meta (key, value) VALUES ('write_probe', $1) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .arg(now);
        self.write().await?.execute_alone(&sql).await?;
        Ok(())
    }
}

/// How long a step of a write may take before the log says what it waits for: well under
/// ingest's `commit_timeout` (800 ms by default), a hundred times a healthy step.
const SLOW: Duration = Duration::from_millis(250);

/// Awaits `step`; once it has taken [`SLOW`], logs what it waits for (`waiting_for` is
/// asked then, so it describes that moment), and when it ends, how long it took. A write
/// that stalls (the ingest commit's bound is a few seconds) is never silent.
pub(crate) async fn watched<T>(
    step: &str,
    waiting_for: impl FnOnce() -> String,
    work: impl Future<Output = T>,
) -> T {
    let started = Instant::now();
    let mut work = std::pin::pin!(work);
    match tokio::time::timeout(SLOW, &mut work).await {
        Ok(done) => done,
        Err(_) => {
            tracing::warn!(
                step,
                waiting_for = %waiting_for(),
                "a database write has waited more than {SLOW:?}"
            );
            let done = work.await;
            tracing::warn!(
                step,
                took_ms = started.elapsed().as_millis() as u64,
                "the slow database write step ended"
            );
            done
        }
    }
}

/// How long closing a pool may wait for its connections to come back.
pub(crate) const CLOSE_WITHIN: Duration = Duration::from_secs(5);

/// Closes a pool, waiting at most `within` (e.g. [`CLOSE_WITHIN`]) for connections still
/// checked out; then says so and goes on. sqlx's `close` waits for every connection to be
/// returned, so one that never is (a task stuck on it) would otherwise hang shutdown
/// silently.
pub(crate) async fn close_within<DB: sqlx::Database>(
    pool: &sqlx::Pool<DB>,
    name: &str,
    within: Duration,
) {
    if tokio::time::timeout(within, pool.close()).await.is_err() {
        tracing::warn!(
            pool = name,
            checked_out = pool.size().saturating_sub(pool.num_idle() as u32),
            "a database pool did not close within {within:?}: a connection was never \
             returned; going on without it"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn closing_a_pool_whose_connection_never_comes_back_does_not_hang() {
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .expect("pool");
        let held = pool.acquire().await.expect("connection");
        close_within(&pool, "test", Duration::from_millis(100)).await;
        assert!(pool.is_closed());
        drop(held);
    }

    #[test]
    fn a_write_failure_is_remembered_from_its_first_occurrence_until_a_success() {
        let health = WriteHealth::default();
        assert!(health.failing().is_none());
        let unavailable: Result<(), StoreError> =
            Err(StoreError::Database(sqlx::Error::PoolTimedOut));
        health.record(&unavailable);
        let (_, reason) = health.failing().expect("failing");
        assert!(reason.contains("pool timed out"), "{reason}");
        health.record(&Ok::<(), StoreError>(()));
        assert!(health.failing().is_none());
        // An error that says nothing of the database leaves it as it was.
        health.record(&Err::<(), _>(StoreError::NotMigrated));
        assert!(health.failing().is_none());
    }
}
