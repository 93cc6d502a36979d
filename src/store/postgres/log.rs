//! The delivery log on PostgreSQL: the shared statements of `store/log.rs`, bound and run.
//! Whatever queues work announces it with `NOTIFY`; one replica prunes at a time.

use async_trait::async_trait;
use sqlx::Postgres;

use super::queue::insert_deliveries;
use super::{PgBackend, notify_on_commit};
use crate::store::log::{self, PruneRow, ReplayRow};
use crate::store::sql::{Dialect, Sql};
use crate::store::{
    AttemptRecord, AttemptView, DeliveryQuery, DeliveryView, EventQuery, EventRecord, HealthRecord,
    Log, PruneBatch, PruneCursor, Redelivery, ReplayOutcome, ReplayPlanner, ReplayRequest,
    StoreError,
};

/// The advisory lock key of pruning ("hookline prune").
const PRUNE_LOCK: i64 = 0x686f_6f6b_7072_756e;

fn args(sql: &Sql) -> Result<sqlx::postgres::PgArguments, StoreError> {
    sql.arguments::<Postgres>()
}

#[async_trait]
impl Log for PgBackend {
    async fn list_events(&self, query: &EventQuery) -> Result<Vec<EventRecord>, StoreError> {
        let sql = log::list_events_sql(query);
        Ok(sqlx::query_as_with(&sql.text, args(&sql)?)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn get_event(&self, id: &str) -> Result<Option<EventRecord>, StoreError> {
        let sql = log::get_event_sql(id);
        Ok(sqlx::query_as_with(&sql.text, args(&sql)?)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn list_deliveries(
        &self,
        query: &DeliveryQuery,
    ) -> Result<Vec<DeliveryView>, StoreError> {
        let sql = log::list_deliveries_sql(query);
        Ok(sqlx::query_as_with(&sql.text, args(&sql)?)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn get_delivery_view(&self, id: &str) -> Result<Option<DeliveryView>, StoreError> {
        let sql = log::get_delivery_view_sql(id);
        Ok(sqlx::query_as_with(&sql.text, args(&sql)?)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn recent_attempts(
        &self,
        delivery_id: &str,
        limit: i64,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        let sql = log::recent_attempts_sql(delivery_id, limit);
        let mut attempts: Vec<AttemptRecord> = sqlx::query_as_with(&sql.text, args(&sql)?)
            .fetch_all(&self.pool)
            .await?;
        attempts.reverse();
        Ok(attempts)
    }

    async fn redeliver(&self, id: &str, now: i64) -> Result<Redelivery, StoreError> {
        let mut tx = self.pool.begin().await?;
        let state = log::redelivery_state_sql(id);
        let found: Option<(String, Option<String>, Option<i64>)> =
            sqlx::query_as_with(&state.text, args(&state)?)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((status, _, _)) = found else {
            return Ok(Redelivery::NotFound);
        };
        let ids = serde_json::to_string(&[id]).map_err(|source| StoreError::Corrupt {
            table: "deliveries",
            source,
        })?;
        let requeue = log::requeue_sql(Dialect::Postgres, ids, now);
        let changed = sqlx::query_with(&requeue.text, args(&requeue)?)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if changed > 0 {
            notify_on_commit(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(match (changed, status.as_str()) {
            (0, _) => Redelivery::InFlight,
            (_, "pending") => Redelivery::Expedited,
            _ => Redelivery::Queued,
        })
    }

    async fn replay(
        &self,
        request: &ReplayRequest,
        plan: &ReplayPlanner,
    ) -> Result<ReplayOutcome, StoreError> {
        let mut tx = self.pool.begin().await?;
        let claim = log::replay_claim_sql(request);
        let fresh = sqlx::query_with(&claim.text, args(&claim)?)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        if !fresh {
            let answer = log::replay_answer_sql(request);
            let (queued, at, seq): (i64, Option<i64>, Option<i64>) =
                sqlx::query_as_with(&answer.text, args(&answer)?)
                    .fetch_one(&mut *tx)
                    .await?;
            return Ok(ReplayOutcome {
                queued,
                next: log::cursor(at, seq),
                repeated: true,
            });
        }
        let scan = log::replay_scan_sql(request);
        let rows: Vec<ReplayRow> = sqlx::query_as_with(&scan.text, args(&scan)?)
            .fetch_all(&mut *tx)
            .await?;
        let decided = log::plan_replay(request, &rows, plan);
        let mut queued = 0;
        if !decided.requeue.is_empty() {
            let requeue = log::requeue_sql(
                Dialect::Postgres,
                log::json_list(&decided.requeue)?,
                request.now,
            );
            queued += sqlx::query_with(&requeue.text, args(&requeue)?)
                .execute(&mut *tx)
                .await?
                .rows_affected() as i64;
        }
        insert_deliveries(&mut tx, &decided.create, request.now).await?;
        queued += decided.create.len() as i64;
        let record = log::replay_record_sql(request, queued, decided.next);
        sqlx::query_with(&record.text, args(&record)?)
            .execute(&mut *tx)
            .await?;
        if queued > 0 {
            notify_on_commit(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(ReplayOutcome {
            queued,
            next: decided.next,
            repeated: false,
        })
    }

    async fn webhook_health(&self, ids: &[String]) -> Result<Vec<HealthRecord>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = log::webhook_health_sql(Dialect::Postgres, log::json_list(ids)?);
        Ok(sqlx::query_as_with(&sql.text, args(&sql)?)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn prune(
        &self,
        cutoff: i64,
        cursor: PruneCursor,
        limit: i64,
    ) -> Result<PruneBatch, StoreError> {
        let mut tx = self.pool.begin().await?;
        // One replica prunes at a time; the others find the lock taken and skip this round.
        let ours: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(PRUNE_LOCK)
            .fetch_one(&mut *tx)
            .await?;
        if !ours {
            return Ok(PruneBatch {
                cursor,
                ..PruneBatch::default()
            });
        }
        // The deletes re-check every condition on the rows they touch.
        let scan = log::prune_scan_sql(cutoff, cursor, limit);
        let rows: Vec<PruneRow> = sqlx::query_as_with(&scan.text, args(&scan)?)
            .fetch_all(&mut *tx)
            .await?;
        let (ids, next) = log::prunable(&rows, cursor);
        let mut batch = PruneBatch {
            scanned: rows.len(),
            cursor: next,
            ..PruneBatch::default()
        };
        let [attempts, deliveries, events] = log::prune_delete_sql(Dialect::Postgres, &ids);
        batch.attempts = sqlx::query_with(&attempts.text, args(&attempts)?)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        batch.deliveries = sqlx::query_with(&deliveries.text, args(&deliveries)?)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        batch.events = sqlx::query_with(&events.text, args(&events)?)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        for bookkeeping in log::prune_bookkeeping_sql(cutoff) {
            sqlx::query_with(&bookkeeping.text, args(&bookkeeping)?)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(batch)
    }

    async fn refresh_statistics(&self) -> Result<(), StoreError> {
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

    async fn attempt_views(&self, seqs: &[i64]) -> Result<Vec<AttemptView>, StoreError> {
        if seqs.is_empty() {
            return Ok(Vec::new());
        }
        let sql = log::attempt_views_sql(log::json_list(seqs)?);
        let rows: Vec<log::AttemptViewRow> = sqlx::query_as_with(&sql.text, args(&sql)?)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(AttemptView::from).collect())
    }
}
