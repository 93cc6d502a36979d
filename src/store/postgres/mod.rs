//! PostgreSQL backend: for several hookline replicas sharing one database.
//!
//! Claims use `FOR UPDATE SKIP LOCKED`, so replicas never wait on each other's rows.
//! Every transaction that creates due work also runs `pg_notify('hookline_work', '')`;
//! PostgreSQL delivers it on commit, and each replica's listener turns it into a local
//! wake-up. The fallback poll covers a listener that was reconnecting.

mod liveness;
mod log;
mod queue;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};
use tokio_util::sync::CancellationToken;

use super::log::LogStore;
use super::writes::{CLOSE_WITHIN, close_within};
use super::{Log, OpenOptions, Schema, StoreError, Tail, Wake};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// The channel on which commits announce new due work.
const WAKE_CHANNEL: &str = "hookline_work";

/// The channel on which a replica announces the attempts it recorded, as
/// `<instance>:<seq>,<seq>,…` (at most 256 seqs: well under NOTIFY's 8000 bytes).
const TAIL_CHANNEL: &str = "hookline_attempts";

/// The PostgreSQL store.
#[derive(Clone)]
pub struct PgBackend {
    pool: PgPool,
    /// This process, in tail announcements: its own attempts reach its tail directly.
    instance: String,
    /// Seals and opens stored secrets.
    pub(super) keys: std::sync::Arc<crate::seal::Keyring>,
}

impl PgBackend {
    /// Connects a pool to the database at `options.url`.
    pub async fn connect(options: &OpenOptions) -> Result<Self, StoreError> {
        let connect = PgConnectOptions::from_str(&options.url)?;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(2))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await?;
        Ok(PgBackend {
            pool,
            instance: crate::ids::new_id("replica"),
            keys: options.keys.clone(),
        })
    }
}

/// Announces new due work to every replica once `tx` commits.
pub(in crate::store) async fn notify_on_commit(
    tx: &mut Transaction<'static, Postgres>,
) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(WAKE_CHANNEL)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[async_trait]
impl Schema for PgBackend {
    async fn migrate(&self) -> Result<(), StoreError> {
        // sqlx takes an advisory lock, so replicas starting together migrate once.
        self.reads().migrate(&MIGRATOR).await
    }

    async fn ready(&self) -> Result<(), StoreError> {
        self.reads().check_migrated(&MIGRATOR).await
    }

    async fn forward_remote_wakeups(&self, wake: Wake, tail: Tail, cancel: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        while !cancel.is_cancelled() {
            let mut listener = match PgListener::connect_with(&self.pool).await {
                Ok(listener) => listener,
                Err(error) => {
                    tracing::warn!(%error, "cannot open LISTEN connection; relying on the fallback poll");
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    continue;
                }
            };
            if let Err(error) = listener.listen_all([WAKE_CHANNEL, TAIL_CHANNEL]).await {
                tracing::warn!(%error, "LISTEN failed; retrying");
                continue;
            }
            backoff = Duration::from_millis(100);
            // Anything committed while we were not listening is found now.
            wake.notify();
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    received = listener.recv() => match received {
                        Ok(n) if n.channel() == TAIL_CHANNEL => {
                            if tail.is_watched() {
                                self.forward_attempts(n.payload(), &tail).await;
                            }
                        }
                        Ok(_) => wake.notify(),
                        Err(error) => {
                            tracing::warn!(%error, "LISTEN connection lost; reconnecting");
                            break;
                        }
                    }
                }
            }
        }
    }

    async fn close(&self) {
        close_within(&self.pool, "postgres", CLOSE_WITHIN).await;
    }
}

impl PgBackend {
    /// Publishes on the local tail the attempts another replica announced.
    async fn forward_attempts(&self, payload: &str, tail: &Tail) {
        let Some((instance, seqs)) = payload.split_once(':') else {
            return;
        };
        if instance == self.instance {
            return; // our own recorder has published them
        }
        let seqs: Vec<i64> = seqs.split(',').filter_map(|s| s.parse().ok()).collect();
        match self.attempt_views(&seqs).await {
            Ok(views) => views.into_iter().for_each(|v| tail.publish(v)),
            Err(error) => {
                tracing::debug!(%error, "could not read other replicas' attempts for the tail")
            }
        }
    }
}
