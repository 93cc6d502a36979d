//! Liveness on PostgreSQL: each dispatcher holds a session advisory lock.
//!
//! A dispatcher takes `pg_advisory_lock(CLASS, hashtext(owner))` on a connection of its
//! own and keeps that session open for its lifetime; when the process dies, its socket
//! closes and PostgreSQL ends the session and drops the lock within moments. Any replica
//! can then see, in `pg_locks`, which lease owners are alive, and give a dead one's leases
//! back at once. Only owners named `replica_…` (this scheme's) are ever taken for dead:
//! leases of a hookline from before it wait for their expiry, as they always did.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::PgConnection;
use sqlx::{Connection, Row};
use tokio_util::sync::CancellationToken;

use super::PgBackend;
use crate::store::queue::{release_dead, release_dead_sql};
use crate::store::serving;
use crate::store::{Liveness, StoreError};

/// The advisory lock class of dispatcher liveness (`hkl\0`), apart from sqlx's migration lock.
const CLASS: i64 = 0x686b_6c00;

/// How often the liveness session is checked.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// How soon a lost session is tried again: well inside the 2 s others wait before taking
/// an owner for dead (`dispatch/takeover.rs`).
const REOPEN_EVERY: Duration = Duration::from_millis(200);

/// `pg_locks` shows the whole cluster; advisory locks are per database, and so is hookline.
const THIS_DATABASE: &str =
    "database = (SELECT oid FROM pg_database WHERE datname = current_database())";

/// The owners a release may take for dead: those that hold liveness locks.
const TRACKED: &str = "substr(lease_owner, 1, 8) = 'replica_'";

/// Opens a session and takes `owner`'s lock in it; false if the key is taken (a hash
/// collision with a live replica: the caller picks another id).
async fn lock(backend: &PgBackend, owner: &str) -> Result<Option<PgConnection>, StoreError> {
    let mut conn = PgConnection::connect_with(&backend.pool.connect_options()).await?;
    let held: bool = sqlx::query("SELECT pg_try_advisory_lock(CAST($1 AS INT4), hashtext($2))")
        .bind(CLASS)
        .bind(owner)
        .fetch_one(&mut conn)
        .await?
        .try_get(0)?;
    Ok(held.then_some(conn))
}

/// Keeps `owner`'s session open until `cancel`; reopens it (and retakes the lock) if lost.
async fn keep(
    backend: PgBackend,
    owner: String,
    mut conn: PgConnection,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(CHECK_EVERY) => {}
        }
        if conn.ping().await.is_ok() {
            continue;
        }
        tracing::warn!(
            %owner,
            "the dispatcher's liveness session was lost; other replicas may take over its \
             leases; reopening it"
        );
        loop {
            match lock(&backend, &owner).await {
                Ok(Some(new)) => {
                    conn = new;
                    tracing::info!(%owner, "liveness session reopened");
                    break;
                }
                Ok(None) => tracing::warn!(%owner, "liveness lock still held; retrying"),
                Err(error) => {
                    tracing::warn!(%error, "cannot reopen the liveness session; retrying")
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(REOPEN_EVERY) => {}
            }
        }
    }
    let _ = conn.close().await;
}

#[async_trait]
impl Liveness for PgBackend {
    async fn hold_liveness(&self, cancel: CancellationToken) -> Result<String, StoreError> {
        loop {
            let owner = crate::ids::new_id("replica");
            if let Some(conn) = lock(self, &owner).await? {
                let backend = self.clone();
                tokio::spawn(keep(backend, owner.clone(), conn, cancel));
                return Ok(owner);
            }
        }
    }

    async fn live_owners(&self) -> Result<Option<Vec<i64>>, StoreError> {
        let keys: Vec<(i64,)> = sqlx::query_as(&format!(
            "SELECT CAST(objid AS BIGINT) FROM pg_locks \
             WHERE locktype = 'advisory' AND classid = CAST(CAST($1 AS BIGINT) AS OID) AND objsubid = 2 \
               AND {THIS_DATABASE}"
        ))
        .bind(CLASS)
        .fetch_all(&self.pool)
        .await?;
        Ok(Some(keys.into_iter().map(|(k,)| k).collect()))
    }

    async fn release_dead_leases(
        &self,
        me: &str,
        members: &[i64],
        now: i64,
    ) -> Result<u64, StoreError> {
        // pg_locks is read as the statement runs, after its snapshot: a lease it sees was
        // taken under a lock already held, so a live owner's lease is never taken.
        let dead = format!("{TRACKED} AND {}", dead("lease_owner", members));
        release_dead(self, &release_dead_sql(me, now, Some(&dead))).await
    }

    async fn owner_key(&self, owner: &str) -> Result<i64, StoreError> {
        let key: i64 = sqlx::query("SELECT CAST(hashtext($1) AS BIGINT) & 4294967295")
            .bind(owner)
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        Ok(key)
    }

    async fn served_webhooks(&self, me: &str) -> Result<Vec<String>, StoreError> {
        serving::served(self, me).await
    }

    async fn take_webhooks(
        &self,
        me: &str,
        ids: &[String],
        members: &[i64],
        now: i64,
    ) -> Result<Vec<String>, StoreError> {
        // As for leases: pg_locks is read after the statement's snapshot.
        let dead = dead("webhook_dispatchers.dispatcher", members);
        serving::take(self, me, ids, now, Some(&dead)).await
    }

    async fn give_up_webhooks(&self, me: &str, ids: &[String]) -> Result<u64, StoreError> {
        serving::give_up(self, me, ids).await
    }
}

/// The condition that the dispatcher named in `column` is dead: it holds no liveness lock
/// now, and is not among `members`, whom the caller still counts alive (one whose session
/// dropped a moment ago may be reopening it, `dispatch/takeover.rs`'s grace).
fn dead(column: &str, members: &[i64]) -> String {
    let mut dead = not_alive(column);
    if !members.is_empty() {
        let keys: Vec<String> = members.iter().map(i64::to_string).collect();
        dead.push_str(&format!(
            " AND CAST(hashtext({column}) AS BIGINT) & 4294967295 NOT IN ({})",
            keys.join(", ")
        ));
    }
    dead
}

/// The condition that the dispatcher named in `column` holds no liveness lock now.
fn not_alive(column: &str) -> String {
    format!(
        "CAST(CAST(hashtext({column}) AS BIGINT) & 4294967295 AS OID) NOT IN ( \
           SELECT objid FROM pg_locks \
           WHERE locktype = 'advisory' AND classid = CAST({CLASS} AS OID) AND objsubid = 2 \
             AND {THIS_DATABASE})"
    )
}
