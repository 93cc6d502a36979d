//! The claim on PostgreSQL, and attempts announced across replicas. The rest of the queue
//! is written once in `store/queue.rs`.
//!
//! Claiming is one `UPDATE … FROM (SELECT … FOR UPDATE SKIP LOCKED) RETURNING` statement:
//! replicas skip each other's rows instead of waiting on them, and two claimers can never
//! take the same row; the event bodies come back in the same statement. A batch's attempts
//! are inserted with a `pg_notify` of their seqs on the tail channel, so other replicas'
//! live tails read them once the batch commits.

use async_trait::async_trait;

use super::{PgBackend, TAIL_CHANNEL};
use crate::store::queue::{CLAIMABLE, Claimed, QueueStore, only};
use crate::store::sql::{Dialect, Rows, Sql, Tx};
use crate::store::{Claim, ClaimRow, StoreError, batch};

#[async_trait]
impl QueueStore for PgBackend {
    async fn claim(&self, claim: &Claim<'_>, lease_id: &str, until: i64) -> Claimed {
        let only = only(claim);
        let text = format!(
            "WITH due AS ( \
               SELECT d.seq FROM deliveries d \
               WHERE {CLAIMABLE} AND d.webhook_id <> ALL($5){only} \
               ORDER BY d.next_attempt_at LIMIT $6 \
               FOR UPDATE SKIP LOCKED) \
             UPDATE deliveries d SET lease_id = $1, lease_owner = $2, lease_until = $3, next_attempt_at = $3, updated_at = $4 \
             FROM due WHERE d.seq = due.seq \
             RETURNING d.id, d.event_id, d.webhook_id, d.attempts, d.retry_base, d.namespace, \
               d.ordering_key, d.created_at, (SELECT e.body FROM events e WHERE e.id = d.event_id) AS event_body"
        );
        let rows: Vec<ClaimRow> = sqlx::query_as(&text)
            .bind(lease_id)
            .bind(claim.owner)
            .bind(until)
            .bind(claim.now)
            .bind(claim.skip_webhooks)
            .bind(claim.limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| row.into_claimed(lease_id, None))
            .collect())
    }

    async fn insert_attempts(&self, tx: &mut Tx, attempts: Rows) -> Result<(), StoreError> {
        // The live tail of other replicas learns which attempts to read, once this commits.
        let mut sql = Sql::new("");
        let table = sql.rows(Dialect::Postgres, attempts)?;
        let instance = sql.bind(self.instance.as_str());
        sql.push(&format!(
            "WITH inserted AS ({} RETURNING seq) \
             SELECT pg_notify('{TAIL_CHANNEL}', CAST({instance} AS TEXT) || ':' || string_agg(CAST(seq AS TEXT), ',')) FROM inserted",
            batch::insert_attempts_sql(&table)
        ));
        tx.execute(&sql).await?;
        Ok(())
    }
}
