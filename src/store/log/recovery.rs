//! Recovery: sending deliveries again. `redeliver` re-queues one delivery; `replay`
//! re-queues a webhook's deliveries of a window of events, once per request id, and gives
//! a first delivery to events the webhook matches but never got. What a replay queues is
//! decided by the pure [`plan_replay`]; every re-queue goes through one statement
//! ([`requeue_sql`]) that leaves a delivery with a live lease alone.

use super::{PruneCursor, json_list};
use crate::event::Event;
use crate::store::sql::{Dialect, Sql, Tx};
use crate::store::{NewDelivery, StoreError};

/// See [`Log::redeliver`](super::Log::redeliver).
pub(super) async fn redeliver(mut tx: Tx, id: &str, now: i64) -> Result<Redelivery, StoreError> {
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

/// See [`Log::replay`](super::Log::replay).
pub(super) async fn replay(
    mut tx: Tx,
    request: &ReplayRequest,
    plan: &ReplayPlanner,
) -> Result<ReplayOutcome, StoreError> {
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

/// Decides, row by row, what a replay queues (pure: no clock, no I/O).
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
                match crate::store::decode_event(&row.body) {
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

/// A cursor from two nullable columns.
pub(crate) fn cursor(received_at: Option<i64>, seq: Option<i64>) -> Option<PruneCursor> {
    Some(PruneCursor {
        received_at: received_at?,
        seq: seq?,
    })
}
