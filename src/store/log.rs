//! The delivery log: what owners read (events, deliveries, attempts, health) and how they
//! recover (redelivery, replay), plus retention. Written once for both databases: the
//! statements in the SQL both dialects share, run through `sql.rs`'s [`Reads`] and [`Tx`];
//! each backend's `log.rs` only hands out those handles ([`LogStore`]) and implements the
//! two operations that differ by database (the tail across replicas, planner statistics).

use async_trait::async_trait;

use super::sql::{ATTEMPT_COLUMNS, DELIVERY_COLUMNS, Dialect, EVENT_COLUMNS, Reads, Sql, Tx};
use super::{AttemptRecord, AttemptView, DeliveryRecord, NewDelivery, StoreError};
use crate::event::Event;

/// Reading the log, recovering deliveries, and pruning old rows.
#[async_trait]
pub trait Log: Send + Sync {
    /// Events matching `query`, newest first.
    async fn list_events(&self, query: &EventQuery) -> Result<Vec<EventRecord>, StoreError>;
    /// One event by id.
    async fn get_event(&self, id: &str) -> Result<Option<EventRecord>, StoreError>;
    /// Deliveries matching `query`, newest first, with their event's summary.
    async fn list_deliveries(&self, query: &DeliveryQuery)
    -> Result<Vec<DeliveryView>, StoreError>;
    /// One delivery with its event's summary.
    async fn get_delivery_view(&self, id: &str) -> Result<Option<DeliveryView>, StoreError>;
    /// The last `limit` attempts of a delivery, oldest first.
    async fn recent_attempts(
        &self,
        delivery_id: &str,
        limit: i64,
    ) -> Result<Vec<AttemptRecord>, StoreError>;
    /// Sends a delivery again through the queue, whatever its state, never twice at once.
    async fn redeliver(&self, id: &str, now: i64) -> Result<Redelivery, StoreError>;
    /// Re-queues a webhook's deliveries of the events in a window (see [`ReplayRequest`]),
    /// once per request id.
    async fn replay(
        &self,
        request: &ReplayRequest,
        plan: &ReplayPlanner,
    ) -> Result<ReplayOutcome, StoreError>;
    /// Health of these webhooks (those without any attempt yet included).
    async fn webhook_health(&self, ids: &[String]) -> Result<Vec<HealthRecord>, StoreError>;
    /// Per minute since `since`, how a webhook's attempts went, oldest first (minutes
    /// without attempts are absent).
    async fn webhook_stats(
        &self,
        webhook_id: &str,
        since: i64,
    ) -> Result<Vec<StatsMinute>, StoreError>;
    /// Per webhook, its attempts since `since` by outcome (webhooks without any: absent).
    async fn webhook_totals(
        &self,
        ids: &[String],
        since: i64,
    ) -> Result<Vec<StatsTotals>, StoreError>;
    /// Deletes one batch of events received before `cutoff` (after `cursor`, in receive
    /// order) with their finished deliveries and attempts. An event with a pending
    /// delivery is kept, and so is that delivery. Also drops replay records older than
    /// `cutoff` and the health of deleted webhooks.
    async fn prune(
        &self,
        cutoff: i64,
        cursor: PruneCursor,
        limit: i64,
    ) -> Result<PruneBatch, StoreError>;
    /// Attempts by their seq with their context: the live tail of other replicas' attempts.
    async fn attempt_views(&self, seqs: &[i64]) -> Result<Vec<AttemptView>, StoreError>;
    /// Brings the query planner's statistics up to date where the database would not:
    /// PostgreSQL without autovacuum (its pruning plans turn into full scans without
    /// them), SQLite's recommended `PRAGMA optimize`. Cheap when nothing is needed.
    async fn refresh_statistics(&self) -> Result<(), StoreError>;
}

/// What a backend provides for the delivery log: handles to run the shared statements,
/// and the two operations that differ by database. [`Log`] is implemented once on top.
#[async_trait]
pub(crate) trait LogStore: Send + Sync {
    /// Reads that never wait for the writer.
    fn reads(&self) -> Reads<'_>;
    /// A write transaction.
    async fn write(&self) -> Result<Tx, StoreError>;
    /// See [`Log::attempt_views`].
    async fn attempts_by_seq(&self, seqs: &[i64]) -> Result<Vec<AttemptView>, StoreError>;
    /// See [`Log::refresh_statistics`].
    async fn analyze(&self) -> Result<(), StoreError>;
}

#[async_trait]
impl<B: LogStore> Log for B {
    async fn list_events(&self, query: &EventQuery) -> Result<Vec<EventRecord>, StoreError> {
        self.reads().fetch_all(&list_events_sql(query)).await
    }

    async fn get_event(&self, id: &str) -> Result<Option<EventRecord>, StoreError> {
        self.reads().fetch_optional(&get_event_sql(id)).await
    }

    async fn list_deliveries(
        &self,
        query: &DeliveryQuery,
    ) -> Result<Vec<DeliveryView>, StoreError> {
        self.reads().fetch_all(&list_deliveries_sql(query)).await
    }

    async fn get_delivery_view(&self, id: &str) -> Result<Option<DeliveryView>, StoreError> {
        self.reads()
            .fetch_optional(&get_delivery_view_sql(id))
            .await
    }

    async fn recent_attempts(
        &self,
        delivery_id: &str,
        limit: i64,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        let mut attempts: Vec<AttemptRecord> = self
            .reads()
            .fetch_all(&recent_attempts_sql(delivery_id, limit))
            .await?;
        attempts.reverse();
        Ok(attempts)
    }

    async fn redeliver(&self, id: &str, now: i64) -> Result<Redelivery, StoreError> {
        let mut tx = self.write().await?;
        let found: Option<(String, Option<String>, Option<i64>)> =
            tx.fetch_optional(&redelivery_state_sql(id)).await?;
        let Some((status, _, _)) = found else {
            return Ok(Redelivery::NotFound);
        };
        let requeue = requeue_sql(tx.dialect(), json_list(&[id])?, now);
        let changed = tx.execute(&requeue).await?;
        if changed > 0 {
            tx.announce_work().await?;
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
        let mut tx = self.write().await?;
        // The request id first: a repeated one finds its record and queues nothing.
        if tx.execute(&replay_claim_sql(request)).await? == 0 {
            let answer: Option<(i64, Option<i64>, Option<i64>)> =
                tx.fetch_optional(&replay_answer_sql(request)).await?;
            let (queued, at, seq) = answer.unwrap_or_default();
            return Ok(ReplayOutcome {
                queued,
                next: cursor(at, seq),
                repeated: true,
            });
        }
        let rows: Vec<ReplayRow> = tx.fetch_all(&replay_scan_sql(request)).await?;
        let decided = plan_replay(request, &rows, plan);
        let mut queued = 0;
        if !decided.requeue.is_empty() {
            let requeue = requeue_sql(tx.dialect(), json_list(&decided.requeue)?, request.now);
            queued += tx.execute(&requeue).await? as i64;
        }
        tx.insert_deliveries(&decided.create, request.now).await?;
        queued += decided.create.len() as i64;
        tx.execute(&replay_record_sql(request, queued, decided.next))
            .await?;
        if queued > 0 {
            tx.announce_work().await?;
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
        let reads = self.reads();
        reads
            .fetch_all(&webhook_health_sql(reads.dialect(), json_list(ids)?))
            .await
    }

    async fn webhook_stats(
        &self,
        webhook_id: &str,
        since: i64,
    ) -> Result<Vec<StatsMinute>, StoreError> {
        let rows: Vec<StatsRow> = self
            .reads()
            .fetch_all(&webhook_stats_sql(webhook_id, since))
            .await?;
        Ok(rows.into_iter().map(StatsRow::into_minute).collect())
    }

    async fn webhook_totals(
        &self,
        ids: &[String],
        since: i64,
    ) -> Result<Vec<StatsTotals>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let reads = self.reads();
        reads
            .fetch_all(&webhook_totals_sql(reads.dialect(), json_list(ids)?, since))
            .await
    }

    async fn prune(
        &self,
        cutoff: i64,
        cursor: PruneCursor,
        limit: i64,
    ) -> Result<PruneBatch, StoreError> {
        let mut tx = self.write().await?;
        if !tx.take_prune_turn().await? {
            // Another replica prunes; this one skips the round.
            return Ok(PruneBatch {
                cursor,
                ..PruneBatch::default()
            });
        }
        let rows: Vec<PruneRow> = tx.fetch_all(&prune_scan_sql(cutoff, cursor, limit)).await?;
        let (ids, next) = prunable(&rows, cursor);
        let [attempts, deliveries, events] = prune_delete_sql(tx.dialect(), &ids);
        let batch = PruneBatch {
            scanned: rows.len(),
            cursor: next,
            attempts: tx.execute(&attempts).await?,
            deliveries: tx.execute(&deliveries).await?,
            events: tx.execute(&events).await?,
        };
        let stats_cutoff = cutoff.max(super::now_ms() - STATS_KEPT_MS);
        for bookkeeping in prune_bookkeeping_sql(cutoff, stats_cutoff) {
            tx.execute(&bookkeeping).await?;
        }
        tx.commit().await?;
        Ok(batch)
    }

    async fn attempt_views(&self, seqs: &[i64]) -> Result<Vec<AttemptView>, StoreError> {
        if seqs.is_empty() {
            return Ok(Vec::new());
        }
        self.attempts_by_seq(seqs).await
    }

    async fn refresh_statistics(&self) -> Result<(), StoreError> {
        self.analyze().await
    }
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct EventRecord {
    /// Receive order.
    pub seq: i64,
    /// Public id.
    pub id: String,
    /// Which registry sent it.
    pub source: String,
    /// Type name (`image.pushed`).
    pub kind: String,
    /// Repository.
    pub repository: String,
    /// Tag, if any.
    pub tag: Option<String>,
    /// Digest, if any.
    pub digest: Option<String>,
    /// When hookline received it.
    pub received_at: i64,
    /// The normalised event as JSON.
    pub body: String,
}

/// What both listings filter by: the event's type and repository, and a time window
/// (when the event was received, for events; when the delivery was created, for deliveries).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogFilter {
    /// Only these event type names (empty: all).
    pub types: Vec<String>,
    /// Only repositories starting with this text (a glob's literal prefix).
    pub repository_prefix: Option<String>,
    /// At or after.
    pub since: Option<i64>,
    /// Before.
    pub until: Option<i64>,
}

/// Which events [`Log::list_events`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventQuery {
    /// Only events whose repository lies in this namespace (None: all).
    pub within: Option<String>,
    /// Type, repository and receive time.
    pub filter: LogFilter,
    /// Only events before this seq: the keyset cursor of pagination.
    pub before_seq: Option<i64>,
    /// At most this many.
    pub limit: i64,
}

/// A delivery status as people filter by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StatusFilter {
    /// Not yet attempted (or redelivered and not yet attempted again).
    Pending,
    /// Attempted, another attempt scheduled.
    Retrying,
    /// Delivered.
    Succeeded,
    /// Given up.
    Failed,
}

/// Which deliveries [`Log::list_deliveries`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryQuery {
    /// Only deliveries of webhooks in this namespace (None: all).
    pub within: Option<String>,
    /// Only this webhook's.
    pub webhook_id: Option<String>,
    /// Only deliveries in these states (empty: all).
    pub statuses: Vec<StatusFilter>,
    /// The event's type and repository, and the delivery's creation time.
    pub filter: LogFilter,
    /// Only deliveries before this seq: the keyset cursor of pagination.
    pub before_seq: Option<i64>,
    /// At most this many.
    pub limit: i64,
}

/// A delivery with a summary of its event (None where the event is no longer stored).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DeliveryView {
    /// The delivery.
    #[sqlx(flatten)]
    pub delivery: DeliveryRecord,
    /// The event's type name.
    pub event_type: Option<String>,
    /// The event's repository.
    pub repository: Option<String>,
    /// The event's tag.
    pub tag: Option<String>,
    /// The event's digest.
    pub digest: Option<String>,
}

/// What a redelivery did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redelivery {
    /// The delivery had finished; it is queued again, due now.
    Queued,
    /// It was waiting for a retry; that retry is due now (nothing duplicated).
    Expedited,
    /// An attempt is in flight right now; nothing changed.
    InFlight,
    /// No such delivery.
    NotFound,
}

/// Where a replay or a prune pass resumes: after this (received_at, seq).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PruneCursor {
    /// Receive time of the last event handled.
    pub received_at: i64,
    /// Its seq.
    pub seq: i64,
}

/// A replay: re-queue a webhook's deliveries of the events received in `[since, until)`.
///
/// A finished delivery is queued again (with `failed_only`, only a failed one); one
/// waiting for a retry is made due now; one in flight is left alone. An event of the
/// window that the webhook matches but never got (it was disabled) gets a new delivery,
/// if it came after the webhook was created. At most `limit` events are looked at; the
/// outcome says where the next call resumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayRequest {
    /// The webhook.
    pub webhook_id: String,
    /// Its namespace: only events of its repositories are looked at.
    pub namespace: String,
    /// When the webhook was created.
    pub webhook_created_at: i64,
    /// The client's id for this call: a repeated id queues nothing and answers as before.
    pub request_id: String,
    /// Window start (received at or after).
    pub since: i64,
    /// Window end (received before).
    pub until: i64,
    /// Only failed deliveries (and events the webhook never got).
    pub failed_only: bool,
    /// Resume after this event (from a previous outcome).
    pub after: Option<PruneCursor>,
    /// Most events looked at.
    pub limit: i64,
    /// The call's time.
    pub now: i64,
}

/// The delivery an event needs for a replay, if the webhook wants the event.
pub type ReplayPlanner = dyn Fn(&Event) -> Option<NewDelivery> + Send + Sync;

/// What a replay did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayOutcome {
    /// Deliveries queued (re-queued, expedited or created).
    pub queued: i64,
    /// Set when the window holds more: call again from here.
    pub next: Option<PruneCursor>,
    /// The request id was seen before: this is its earlier answer, nothing was queued now.
    pub repeated: bool,
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
    /// [`LATENCY_BOUNDS_MS`](super::batch::LATENCY_BOUNDS_MS), then the slower ones.
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

/// What one prune batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PruneBatch {
    /// Events looked at.
    pub scanned: usize,
    /// Rows deleted.
    pub events: u64,
    /// Rows deleted.
    pub deliveries: u64,
    /// Rows deleted.
    pub attempts: u64,
    /// Where the next batch resumes.
    pub cursor: PruneCursor,
}

/// `SELECT` of events for [`Log::list_events`].
pub(crate) fn list_events_sql(q: &EventQuery) -> Sql {
    let mut sql = Sql::new(format!("SELECT {EVENT_COLUMNS} FROM events e WHERE 1 = 1"));
    if let Some(ns) = &q.within {
        sql.push(" AND ");
        sql.push_within("e.repository", ns);
    }
    push_filter(&mut sql, &q.filter, "e.received_at");
    push_page(&mut sql, "e.seq", q.before_seq, q.limit);
    sql
}

/// `SELECT` of one event.
pub(crate) fn get_event_sql(id: &str) -> Sql {
    let mut sql = Sql::new(format!(
        "SELECT {EVENT_COLUMNS} FROM events e WHERE e.id = "
    ));
    let p = sql.bind(id);
    sql.push(&p);
    sql
}

/// Newest first, before the keyset cursor: a page that stays correct while rows are
/// written (new rows have higher seqs and land on earlier pages).
fn push_page(sql: &mut Sql, seq: &str, before_seq: Option<i64>, limit: i64) {
    if let Some(before) = before_seq {
        let p = sql.bind(before);
        sql.push(&format!(" AND {seq} < {p}"));
    }
    let p = sql.bind(limit);
    sql.push(&format!(" ORDER BY {seq} DESC LIMIT {p}"));
}

fn push_filter(sql: &mut Sql, filter: &LogFilter, time_column: &str) {
    let LogFilter {
        types,
        repository_prefix,
        since,
        until,
    } = filter;
    let prefix = repository_prefix.as_deref();
    if !types.is_empty() {
        let placeholders: Vec<String> = types.iter().map(|t| sql.bind(t.as_str())).collect();
        sql.push(&format!(" AND e.type IN ({})", placeholders.join(", ")));
    }
    if let Some(prefix) = prefix.filter(|p| !p.is_empty()) {
        let p = sql.bind(prefix);
        sql.push(&format!(
            " AND substr(e.repository, 1, length(CAST({p} AS TEXT))) = CAST({p} AS TEXT)"
        ));
    }
    if let Some(since) = *since {
        let p = sql.bind(since);
        sql.push(&format!(" AND {time_column} >= {p}"));
    }
    if let Some(until) = *until {
        let p = sql.bind(until);
        sql.push(&format!(" AND {time_column} < {p}"));
    }
}

fn delivery_view_select() -> String {
    format!(
        "SELECT {DELIVERY_COLUMNS}, e.type AS event_type, e.repository, e.tag, e.digest \
         FROM deliveries d LEFT JOIN events e ON e.id = d.event_id"
    )
}

/// `SELECT` of deliveries for [`Log::list_deliveries`].
pub(crate) fn list_deliveries_sql(q: &DeliveryQuery) -> Sql {
    let mut sql = Sql::new(delivery_view_select());
    sql.push(" WHERE 1 = 1");
    if let Some(ns) = &q.within {
        sql.push(" AND ");
        sql.push_within("d.namespace", ns);
    }
    if let Some(webhook) = &q.webhook_id {
        let p = sql.bind(webhook.as_str());
        sql.push(&format!(" AND d.webhook_id = {p}"));
    }
    if !q.statuses.is_empty() {
        let clauses: Vec<&str> = q
            .statuses
            .iter()
            .map(|s| match s {
                StatusFilter::Pending => "(d.status = 'pending' AND d.attempts <= d.retry_base)",
                StatusFilter::Retrying => "(d.status = 'pending' AND d.attempts > d.retry_base)",
                StatusFilter::Succeeded => "d.status = 'succeeded'",
                StatusFilter::Failed => "d.status = 'failed'",
            })
            .collect();
        sql.push(&format!(" AND ({})", clauses.join(" OR ")));
    }
    push_filter(&mut sql, &q.filter, "d.created_at");
    push_page(&mut sql, "d.seq", q.before_seq, q.limit);
    sql
}

/// `SELECT` of one delivery with its event's summary.
pub(crate) fn get_delivery_view_sql(id: &str) -> Sql {
    let mut sql = Sql::new(delivery_view_select());
    let p = sql.bind(id);
    sql.push(&format!(" WHERE d.id = {p}"));
    sql
}

/// `SELECT` of a delivery's last attempts, newest first (callers reverse).
pub(crate) fn recent_attempts_sql(delivery_id: &str, limit: i64) -> Sql {
    let mut sql = Sql::new(format!(
        "SELECT {ATTEMPT_COLUMNS} FROM attempts a WHERE a.delivery_id = "
    ));
    let p = sql.bind(delivery_id);
    let l = sql.bind(limit);
    sql.push(&format!(
        "{p} ORDER BY a.number DESC, a.started_at DESC LIMIT {l}"
    ));
    sql
}

/// `SELECT` of a delivery's state before a redelivery: (status, lease_id, lease_until).
pub(crate) fn redelivery_state_sql(id: &str) -> Sql {
    let mut sql = Sql::new("SELECT status, lease_id, lease_until FROM deliveries WHERE id = ");
    let p = sql.bind(id);
    sql.push(&p);
    sql
}

/// `UPDATE` that queues deliveries again, due now, unless an attempt holds a live lease.
/// A finished delivery starts the retry schedule afresh; a waiting one keeps its place in it.
pub(crate) fn requeue_sql(dialect: Dialect, ids_json: String, now: i64) -> Sql {
    let mut sql = Sql::new("");
    let ids = sql.bind(ids_json);
    let now = sql.bind(now);
    let list = dialect.text_list(&ids);
    sql.push(&format!(
        "UPDATE deliveries SET \
           retry_base = CASE WHEN status = 'pending' THEN retry_base ELSE attempts END, \
           status = 'pending', next_attempt_at = {now}, lease_id = NULL, lease_owner = NULL, \
           lease_until = NULL, updated_at = {now} \
         WHERE id IN {list} AND (lease_id IS NULL OR lease_until <= {now})"
    ));
    sql
}

/// One row of a replay's scan: an event of the window and this webhook's delivery of it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct ReplayRow {
    pub seq: i64,
    pub received_at: i64,
    pub body: String,
    pub delivery_id: Option<String>,
    pub status: Option<String>,
    pub lease_id: Option<String>,
    pub lease_until: Option<i64>,
}

/// `SELECT` of a replay's window: the events in the webhook's namespace, in receive order,
/// with the webhook's delivery of each. Events not yet fanned out are left to fan-out.
pub(crate) fn replay_scan_sql(r: &ReplayRequest) -> Sql {
    let mut sql = Sql::new(
        "SELECT e.seq, e.received_at, e.body, d.id AS delivery_id, d.status, d.lease_id, d.lease_until \
         FROM events e LEFT JOIN deliveries d ON d.event_id = e.id AND d.webhook_id = ",
    );
    let w = sql.bind(r.webhook_id.as_str());
    let since = sql.bind(r.since);
    let until = sql.bind(r.until);
    sql.push(&format!(
        "{w} WHERE e.received_at >= {since} AND e.received_at < {until} AND e.fanned_out"
    ));
    if !r.namespace.is_empty() {
        sql.push(" AND ");
        sql.push_within("e.repository", &r.namespace);
    }
    if let Some(after) = r.after {
        let at = sql.bind(after.received_at);
        let seq = sql.bind(after.seq);
        sql.push(&format!(
            " AND (e.received_at > {at} OR (e.received_at = {at} AND e.seq > {seq}))"
        ));
    }
    let limit = sql.bind(r.limit);
    sql.push(&format!(" ORDER BY e.received_at, e.seq LIMIT {limit}"));
    sql
}

/// What a replay does with the rows it scanned: deliveries to queue again, events to
/// give a first delivery, how many that is, and where the next call resumes.
#[derive(Debug, Default)]
pub(crate) struct ReplayPlan {
    pub requeue: Vec<String>,
    pub create: Vec<NewDelivery>,
    pub next: Option<PruneCursor>,
}

/// Decides, row by row, what a replay queues (pure: the tests call it directly).
pub(crate) fn plan_replay(
    r: &ReplayRequest,
    rows: &[ReplayRow],
    plan: &ReplayPlanner,
) -> ReplayPlan {
    let mut out = ReplayPlan::default();
    for row in rows {
        match (&row.delivery_id, row.status.as_deref()) {
            (Some(id), Some(status)) => {
                let in_flight = row.lease_id.is_some() && row.lease_until.unwrap_or(0) > r.now;
                let wanted = match status {
                    "failed" => true,
                    "succeeded" => !r.failed_only,
                    _ => true, // waiting for a retry: due now
                };
                if wanted && !in_flight {
                    out.requeue.push(id.clone());
                }
            }
            _ => {
                if row.received_at < r.webhook_created_at {
                    continue;
                }
                match super::decode_event(&row.body) {
                    Ok(event) => out.create.extend(plan(&event)),
                    Err(error) => {
                        tracing::warn!(seq = row.seq, %error, "replay: event body does not decode; skipped")
                    }
                }
            }
        }
    }
    if rows.len() as i64 >= r.limit
        && let Some(last) = rows.last()
    {
        out.next = Some(PruneCursor {
            received_at: last.received_at,
            seq: last.seq,
        });
    }
    out
}

/// `INSERT` of a replay's idempotency record; affects no row if the request id is known.
pub(crate) fn replay_claim_sql(r: &ReplayRequest) -> Sql {
    let mut sql =
        Sql::new("INSERT INTO replays (webhook_id, request_id, queued, created_at) VALUES (");
    let w = sql.bind(r.webhook_id.as_str());
    let id = sql.bind(r.request_id.as_str());
    let now = sql.bind(r.now);
    sql.push(&format!(
        "{w}, {id}, 0, {now}) ON CONFLICT (webhook_id, request_id) DO NOTHING"
    ));
    sql
}

/// `SELECT` of an earlier replay's answer: (queued, resume_received_at, resume_seq).
pub(crate) fn replay_answer_sql(r: &ReplayRequest) -> Sql {
    let mut sql =
        Sql::new("SELECT queued, resume_received_at, resume_seq FROM replays WHERE webhook_id = ");
    let w = sql.bind(r.webhook_id.as_str());
    let id = sql.bind(r.request_id.as_str());
    sql.push(&format!("{w} AND request_id = {id}"));
    sql
}

/// `UPDATE` of a replay's record with its answer.
pub(crate) fn replay_record_sql(r: &ReplayRequest, queued: i64, next: Option<PruneCursor>) -> Sql {
    let mut sql = Sql::new("UPDATE replays SET queued = ");
    let q = sql.bind(queued);
    sql.push(&q);
    match next {
        Some(c) => {
            let at = sql.bind(c.received_at);
            let seq = sql.bind(c.seq);
            sql.push(&format!(", resume_received_at = {at}, resume_seq = {seq}"));
        }
        None => {
            sql.push(", resume_received_at = NULL, resume_seq = NULL");
        }
    }
    let w = sql.bind(r.webhook_id.as_str());
    let id = sql.bind(r.request_id.as_str());
    sql.push(&format!(" WHERE webhook_id = {w} AND request_id = {id}"));
    sql
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
    sql.push(&super::batch::latency_columns().join(", "));
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

/// One candidate of a prune batch: an old event, and whether a delivery of it is pending.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct PruneRow {
    pub seq: i64,
    pub id: String,
    pub received_at: i64,
    pub busy: bool,
}

/// `SELECT` of a prune batch's candidates, in receive order after the cursor.
pub(crate) fn prune_scan_sql(cutoff: i64, cursor: PruneCursor, limit: i64) -> Sql {
    let mut sql = Sql::new(
        "SELECT e.seq, e.id, e.received_at, \
           EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id AND d.status = 'pending') AS busy \
         FROM events e WHERE e.fanned_out AND e.received_at < ",
    );
    let c = sql.bind(cutoff);
    let at = sql.bind(cursor.received_at);
    let seq = sql.bind(cursor.seq);
    let l = sql.bind(limit);
    sql.push(&format!(
        "{c} AND (e.received_at > {at} OR (e.received_at = {at} AND e.seq > {seq})) \
         ORDER BY e.received_at, e.seq LIMIT {l}"
    ));
    sql
}

/// The three `DELETE`s of a prune batch, for events given as a JSON array of ids:
/// attempts, then deliveries (finished ones only), then events left without deliveries.
/// The conditions are re-checked on the rows, so a delivery made pending meanwhile (a
/// redelivery) stays, and keeps its event.
pub(crate) fn prune_delete_sql(dialect: Dialect, ids_json: &str) -> [Sql; 3] {
    let statement = |text: &dyn Fn(&str) -> String| {
        let mut sql = Sql::new("");
        let p = sql.bind(ids_json);
        let list = dialect.text_list(&p);
        sql.push(&text(&list));
        sql
    };
    [
        statement(&|list| {
            format!(
                "DELETE FROM attempts WHERE delivery_id IN \
                 (SELECT id FROM deliveries WHERE event_id IN {list} AND status <> 'pending')"
            )
        }),
        statement(&|list| {
            format!("DELETE FROM deliveries WHERE event_id IN {list} AND status <> 'pending'")
        }),
        statement(&|list| {
            format!(
                "DELETE FROM events WHERE id IN {list} \
                 AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = events.id)"
            )
        }),
    ]
}

/// The `DELETE`s of bookkeeping rows: replay records older than `cutoff`, stats minutes
/// older than `stats_cutoff` (those of a webhook deleted while an attempt of its was being
/// recorded go with them), and the health of such webhooks.
pub(crate) fn prune_bookkeeping_sql(cutoff: i64, stats_cutoff: i64) -> [Sql; 3] {
    let mut replays = Sql::new("DELETE FROM replays WHERE created_at < ");
    let p = replays.bind(cutoff);
    replays.push(&p);
    let mut stats = Sql::new("DELETE FROM webhook_stats WHERE minute < ");
    let p = stats.bind(stats_cutoff);
    stats.push(&p);
    let health = Sql::new(
        "DELETE FROM webhook_health WHERE NOT EXISTS \
         (SELECT 1 FROM webhooks w WHERE w.id = webhook_health.webhook_id)",
    );
    [replays, stats, health]
}

/// The ids of a prune batch that can go (no pending delivery), as a JSON array, and
/// where the next batch resumes.
pub(crate) fn prunable(rows: &[PruneRow], cursor: PruneCursor) -> (String, PruneCursor) {
    let ids: Vec<&str> = rows
        .iter()
        .filter(|r| !r.busy)
        .map(|r| r.id.as_str())
        .collect();
    let next = rows.last().map_or(cursor, |r| PruneCursor {
        received_at: r.received_at,
        seq: r.seq,
    });
    (
        serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into()),
        next,
    )
}

/// Columns of an attempt with its context, by attempt seq (PostgreSQL's tail).
pub(crate) fn attempt_views_sql(seqs_json: String) -> Sql {
    let mut sql = Sql::new(format!(
        "SELECT {ATTEMPT_COLUMNS}, d.webhook_id, d.namespace, d.event_id, d.status AS delivery_status, \
           e.type AS event_type, e.repository, e.tag \
         FROM attempts a JOIN deliveries d ON d.id = a.delivery_id LEFT JOIN events e ON e.id = d.event_id \
         WHERE a.seq IN (SELECT CAST(value AS BIGINT) FROM jsonb_array_elements_text("
    ));
    let p = sql.bind(seqs_json);
    sql.push(&format!("{p}::jsonb)) ORDER BY a.seq"));
    sql
}

/// A row of [`attempt_views_sql`].
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct AttemptViewRow {
    #[sqlx(flatten)]
    pub attempt: AttemptRecord,
    #[sqlx(flatten)]
    pub context: super::AttemptContext,
    pub delivery_status: String,
}

impl From<AttemptViewRow> for AttemptView {
    fn from(row: AttemptViewRow) -> Self {
        AttemptView {
            attempt: row.attempt,
            context: row.context,
            delivery_status: row.delivery_status,
        }
    }
}

/// A cursor from two nullable columns.
pub(crate) fn cursor(received_at: Option<i64>, seq: Option<i64>) -> Option<PruneCursor> {
    Some(PruneCursor {
        received_at: received_at?,
        seq: seq?,
    })
}

/// Strings as a JSON array parameter.
pub(crate) fn json_list<T: serde::Serialize>(items: &[T]) -> Result<String, StoreError> {
    serde_json::to_string(items).map_err(|source| StoreError::Corrupt {
        table: "deliveries",
        source,
    })
}
