//! The claim on SQLite: one `UPDATE … WHERE seq IN (SELECT … LIMIT n) RETURNING` statement
//! on the one writer connection, so it is atomic and two claimers can never take the same
//! row; the claimed deliveries' event bodies are then read on the reader pool. The rest of
//! the queue is written once in `store/queue.rs`.

use std::collections::HashMap;

use async_trait::async_trait;

use super::SqliteBackend;
use crate::store::queue::{CLAIMABLE, Claimed, QueueStore, only};
use crate::store::sql::{Dialect, Rows, Sql, Tx};
use crate::store::{Claim, ClaimRow, StoreError, batch};

fn json_list<T: serde::Serialize>(items: &[T], table: &'static str) -> Result<String, StoreError> {
    serde_json::to_string(items).map_err(|source| StoreError::Corrupt { table, source })
}

#[async_trait]
impl QueueStore for SqliteBackend {
    async fn claim(&self, claim: &Claim<'_>, lease_id: &str, until: i64) -> Claimed {
        let only = only(claim);
        let text = format!(
            "UPDATE deliveries SET lease_id = $1, lease_owner = $2, lease_until = $3, next_attempt_at = $3, updated_at = $4 \
             WHERE seq IN ( \
               SELECT d.seq FROM deliveries d \
               WHERE {CLAIMABLE} AND d.webhook_id NOT IN (SELECT value FROM json_each($5)){only} \
               ORDER BY d.next_attempt_at LIMIT $6) \
             RETURNING id, event_id, webhook_id, attempts, retry_base, namespace, ordering_key, created_at"
        );
        let rows: Vec<ClaimRow> = sqlx::query_as(&text)
            .bind(lease_id)
            .bind(claim.owner)
            .bind(until)
            .bind(claim.now)
            .bind(json_list(claim.skip_webhooks, "deliveries")?)
            .bind(claim.limit)
            .fetch_all(&self.writer)
            .await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let event_ids: Vec<&str> = rows.iter().map(|r| r.event_id.as_str()).collect();
        let bodies: HashMap<String, String> = sqlx::query_as(
            "SELECT id, body FROM events WHERE id IN (SELECT value FROM json_each($1))",
        )
        .bind(json_list(&event_ids, "events")?)
        .fetch_all(&self.reader)
        .await?
        .into_iter()
        .collect();
        Ok(rows
            .into_iter()
            .map(|row| {
                let body = bodies.get(&row.event_id).cloned();
                row.into_claimed(lease_id, body)
            })
            .collect())
    }

    async fn insert_attempts(&self, tx: &mut Tx, attempts: Rows) -> Result<(), StoreError> {
        let mut sql = Sql::new("");
        let table = sql.rows(Dialect::Sqlite, attempts)?;
        sql.push(&batch::insert_attempts_sql(&table));
        tx.execute(&sql).await?;
        Ok(())
    }
}
