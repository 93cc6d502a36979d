//! The delivery log's listings and lookups: events and deliveries newest first by keyset
//! page, one event or delivery, a delivery's recent attempts, and attempts by seq with
//! their context (the statement PostgreSQL's tail reads other replicas' attempts with).
//! Read-only: every statement here runs on [`Reads`], never in a write transaction.

use crate::store::sql::{ATTEMPT_COLUMNS, DELIVERY_COLUMNS, EVENT_COLUMNS, Reads, Sql};
use crate::store::{AttemptContext, AttemptRecord, AttemptView, DeliveryRecord, StoreError};

/// See [`Log::list_events`](super::Log::list_events).
pub(super) async fn list_events(
    reads: Reads<'_>,
    query: &EventQuery,
) -> Result<Vec<EventRecord>, StoreError> {
    reads.fetch_all(&list_events_sql(query)).await
}

/// See [`Log::get_event`](super::Log::get_event).
pub(super) async fn get_event(
    reads: Reads<'_>,
    id: &str,
) -> Result<Option<EventRecord>, StoreError> {
    reads.fetch_optional(&get_event_sql(id)).await
}

/// See [`Log::list_deliveries`](super::Log::list_deliveries).
pub(super) async fn list_deliveries(
    reads: Reads<'_>,
    query: &DeliveryQuery,
) -> Result<Vec<DeliveryView>, StoreError> {
    reads.fetch_all(&list_deliveries_sql(query)).await
}

/// See [`Log::get_delivery_view`](super::Log::get_delivery_view).
pub(super) async fn get_delivery_view(
    reads: Reads<'_>,
    id: &str,
) -> Result<Option<DeliveryView>, StoreError> {
    reads.fetch_optional(&get_delivery_view_sql(id)).await
}

/// See [`Log::recent_attempts`](super::Log::recent_attempts).
pub(super) async fn recent_attempts(
    reads: Reads<'_>,
    delivery_id: &str,
    limit: i64,
) -> Result<Vec<AttemptRecord>, StoreError> {
    let mut attempts: Vec<AttemptRecord> = reads
        .fetch_all(&recent_attempts_sql(delivery_id, limit))
        .await?;
    attempts.reverse();
    Ok(attempts)
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

/// Which events [`Log::list_events`](super::Log::list_events) returns.
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

/// Which deliveries [`Log::list_deliveries`](super::Log::list_deliveries) returns.
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

/// `SELECT` of events for [`Log::list_events`](super::Log::list_events).
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

/// `SELECT` of deliveries for [`Log::list_deliveries`](super::Log::list_deliveries).
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
    pub context: AttemptContext,
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
