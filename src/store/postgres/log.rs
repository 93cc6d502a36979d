//! The handles PostgreSQL hands the shared store (`LogStore`: the log, and through it
//! tokens, webhooks, events, the queue, sessions and enrichment), the tail across replicas
//! (attempts read back by seq) and planner statistics.

use async_trait::async_trait;

use super::PgBackend;
use crate::store::log::{self, LogStore};
use crate::store::sql::{Reads, Tx};
use crate::store::writes::watched;
use crate::store::{AttemptView, StoreError};

#[async_trait]
impl LogStore for PgBackend {
    fn reads(&self) -> Reads<'_> {
        Reads::Postgres(&self.pool)
    }

    fn keys(&self) -> &crate::seal::Keyring {
        &self.keys
    }

    async fn write(&self) -> Result<Tx, StoreError> {
        let pool = || {
            format!(
                "a PostgreSQL connection and its BEGIN ({} of {} pooled connections idle)",
                self.pool.num_idle(),
                self.pool.size()
            )
        };
        Ok(Tx::Postgres(
            watched("begin", pool, self.pool.begin()).await?,
        ))
    }

    async fn attempts_by_seq(&self, seqs: &[i64]) -> Result<Vec<AttemptView>, StoreError> {
        let rows: Vec<log::AttemptViewRow> = self
            .reads()
            .fetch_all(&log::attempt_views_sql(log::json_list(seqs)?))
            .await?;
        Ok(rows.into_iter().map(AttemptView::from).collect())
    }

    async fn analyze(&self) -> Result<(), StoreError> {
        // Autovacuum analyzes these tables as they change; where it is off, their
        // statistics are missing and the planner scans whole tables to prune 250 rows.
        let fresh: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_user_tables \
             WHERE relname IN ('events', 'deliveries', 'attempts') \
               AND GREATEST(last_analyze, last_autoanalyze) > now() - interval '1 hour'",
        )
        .fetch_one(&self.pool)
        .await?;
        if fresh < 3 {
            sqlx::query("ANALYZE events, deliveries, attempts")
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }
}
