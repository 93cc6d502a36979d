//! Webhook health and per-minute stats as owners read them: each webhook's last attempt,
//! circuit and counts of waiting and failed deliveries (`webhook_health`), and its
//! `webhook_stats` minutes (counts by outcome and a latency histogram, added to with every
//! result batch by `batch.rs`, kept [`STATS_KEPT_MS`]) one by one or summed per webhook.

use super::json_list;
use crate::store::StoreError;
use crate::store::sql::{Dialect, Reads, Sql};

/// See [`Log::webhook_health`](super::Log::webhook_health).
pub(super) async fn webhook_health(
    reads: Reads<'_>,
    ids: &[String],
) -> Result<Vec<HealthRecord>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    reads
        .fetch_all(&webhook_health_sql(reads.dialect(), json_list(ids)?))
        .await
}

/// See [`Log::webhook_stats`](super::Log::webhook_stats).
pub(super) async fn webhook_stats(
    reads: Reads<'_>,
    webhook_id: &str,
    since: i64,
) -> Result<Vec<StatsMinute>, StoreError> {
    let rows: Vec<StatsRow> = reads
        .fetch_all(&webhook_stats_sql(webhook_id, since))
        .await?;
    Ok(rows.into_iter().map(StatsRow::into_minute).collect())
}

/// See [`Log::webhook_totals`](super::Log::webhook_totals).
pub(super) async fn webhook_totals(
    reads: Reads<'_>,
    ids: &[String],
    since: i64,
) -> Result<Vec<StatsTotals>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    reads
        .fetch_all(&webhook_totals_sql(reads.dialect(), json_list(ids)?, since))
        .await
}

/// How long per-minute webhook stats are kept (at most the retention): the console shows
/// the last hour and counts the last 24 hours.
pub const STATS_KEPT_MS: i64 = 2 * 24 * 3_600_000;

/// One webhook's attempts in one minute.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatsMinute {
    /// Start of the minute, Unix ms.
    pub minute: i64,
    /// Attempts answered 2xx.
    pub succeeded: i64,
    /// Failed attempts that will be retried.
    pub retried: i64,
    /// Failed attempts that were final.
    pub failed: i64,
    /// Attempt durations: counts per bucket of
    /// [`LATENCY_BOUNDS_MS`](crate::store::batch::LATENCY_BOUNDS_MS), then the slower ones.
    pub latency: Vec<i64>,
}

/// A `webhook_stats` row as read.
#[derive(sqlx::FromRow)]
struct StatsRow {
    minute: i64,
    succeeded: i64,
    retried: i64,
    failed: i64,
    le_10: i64,
    le_25: i64,
    le_50: i64,
    le_100: i64,
    le_250: i64,
    le_500: i64,
    le_1000: i64,
    le_2500: i64,
    le_5000: i64,
    le_10000: i64,
    le_inf: i64,
}

impl StatsRow {
    fn into_minute(self) -> StatsMinute {
        StatsMinute {
            minute: self.minute,
            succeeded: self.succeeded,
            retried: self.retried,
            failed: self.failed,
            latency: vec![
                self.le_10,
                self.le_25,
                self.le_50,
                self.le_100,
                self.le_250,
                self.le_500,
                self.le_1000,
                self.le_2500,
                self.le_5000,
                self.le_10000,
                self.le_inf,
            ],
        }
    }
}

/// One webhook's attempts over a window, by outcome.
#[derive(Debug, Clone, PartialEq, Eq, Default, sqlx::FromRow)]
pub struct StatsTotals {
    /// The webhook.
    pub webhook_id: String,
    /// Attempts answered 2xx.
    pub succeeded: i64,
    /// Failed attempts that will be retried.
    pub retried: i64,
    /// Failed attempts that were final.
    pub failed: i64,
}

/// A webhook's health, as stored and counted.
#[derive(Debug, Clone, PartialEq, Eq, Default, sqlx::FromRow)]
pub struct HealthRecord {
    /// The webhook.
    pub webhook_id: String,
    /// When its last attempt started.
    pub last_attempt_at: Option<i64>,
    /// That attempt's HTTP status.
    pub last_status_code: Option<i64>,
    /// That attempt's error, if any.
    pub last_error: Option<String>,
    /// That attempt's outcome.
    pub last_outcome: Option<String>,
    /// When an attempt last succeeded.
    pub last_success_at: Option<i64>,
    /// `closed`, `open`, `half_open` (None: never attempted).
    pub circuit: Option<String>,
    /// End of an open circuit's cool-down.
    pub circuit_until: Option<i64>,
    /// The adaptive concurrency window its dispatcher last used.
    pub concurrency_window: Option<i64>,
    /// Deliveries waiting (pending or retrying).
    pub pending: i64,
    /// Deliveries given up (within retention).
    pub failed: i64,
}

/// `SELECT` of the health of webhooks given as a JSON array of ids.
pub(crate) fn webhook_health_sql(dialect: Dialect, ids_json: String) -> Sql {
    let mut sql = Sql::new("");
    let p = sql.bind(ids_json);
    let list = dialect.text_list(&p);
    sql.push(&format!(
        "SELECT i.value AS webhook_id, h.last_attempt_at, h.last_status_code, h.last_error, \
           h.last_outcome, h.last_success_at, h.circuit, h.circuit_until, h.concurrency_window, \
           (SELECT COUNT(*) FROM deliveries d WHERE d.webhook_id = i.value AND d.status = 'pending') AS pending, \
           (SELECT COUNT(*) FROM deliveries d WHERE d.webhook_id = i.value AND d.status = 'failed') AS failed \
         FROM {list} AS i LEFT JOIN webhook_health h ON h.webhook_id = i.value"
    ));
    sql
}

/// `SELECT` of a webhook's stats minutes since `since`, oldest first.
fn webhook_stats_sql(webhook_id: &str, since: i64) -> Sql {
    let mut sql = Sql::new("SELECT minute, succeeded, retried, failed, ");
    sql.push(&crate::store::batch::latency_columns().join(", "));
    sql.push(" FROM webhook_stats WHERE webhook_id = ");
    let w = sql.bind(webhook_id);
    let at = sql.bind(since);
    sql.push(&format!("{w} AND minute >= {at} ORDER BY minute"));
    sql
}

/// `SELECT` of per-webhook attempt counts since `since`, for webhooks given as a JSON array.
fn webhook_totals_sql(dialect: Dialect, ids_json: String, since: i64) -> Sql {
    let mut sql = Sql::new("");
    let p = sql.bind(ids_json);
    let at = sql.bind(since);
    let list = dialect.text_list(&p);
    // CAST: PostgreSQL's SUM of BIGINT is NUMERIC.
    sql.push(&format!(
        "SELECT s.webhook_id, CAST(SUM(s.succeeded) AS BIGINT) AS succeeded, \
           CAST(SUM(s.retried) AS BIGINT) AS retried, CAST(SUM(s.failed) AS BIGINT) AS failed \
         FROM webhook_stats s WHERE s.webhook_id IN {list} \
           AND s.minute >= {at} GROUP BY s.webhook_id"
    ));
    sql
}
