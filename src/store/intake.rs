//! Storing what a registry sent: events, and, when this process dispatches, their
//! deliveries, in the one transaction that answers the registry.
//!
//! Without a fan-out plan ([`FanOutNow`]) the events are stored unfanned and a dispatcher
//! fans them out later (`Events::fan_out`). With one, the transaction also matches the new
//! events against the webhooks, inserts their deliveries and leases those that may start
//! at once to the caller's dispatcher: the registry's 2xx and the first request are then
//! separated by nothing but the commit. The plan is used only if it was built from the
//! webhooks revision this transaction reads (so every webhook committed before the events
//! is matched) and no older event still waits for fan-out (so a delivery's `seq` keeps
//! following event order, which ordered webhooks rely on); otherwise the events are
//! stored unfanned, as without a plan. Written once for both dialects.

use std::borrow::Cow;
use std::collections::HashSet;

use super::sql::{Column, Columns, Dialect, Rows, Sql, Tx};
use super::{ClaimedDelivery, FanOutNow, Lease, NewDelivery, StoreError, Stored, batch, tag_heads};
use crate::event::Event;

/// Stores several envelopes' events in `tx` and commits it; see the module comment.
pub(crate) async fn store(
    mut tx: Tx,
    batches: &[&[Event]],
    fan_out: Option<&FanOutNow<'_>>,
    now: i64,
) -> Result<Stored, StoreError> {
    let (events, moves) = tag_heads::link(&mut tx, batches).await?;
    let fan_out = match fan_out {
        Some(plan) if may_fan_out(&mut tx, plan.webhooks_revision).await? => Some(plan),
        _ => None,
    };
    let bodies = events
        .iter()
        .map(|event| {
            serde_json::to_string(event.as_ref()).map_err(|source| StoreError::Corrupt {
                table: "events",
                source,
            })
        })
        .collect::<Result<Vec<String>, StoreError>>()?;
    let inserted = insert_events(&mut tx, &events, &bodies, fan_out.is_some()).await?;
    tag_heads::advance(&mut tx, moves, &inserted, now).await?;

    let mut leased = Vec::new();
    let mut work_left = fan_out.is_none() && !inserted.is_empty();
    if let Some(plan) = fan_out {
        let new: HashSet<&str> = inserted.iter().map(String::as_str).collect();
        let mut deliveries = Vec::new();
        for (event, body) in events.iter().zip(&bodies) {
            if new.contains(event.id.as_str()) {
                deliveries.extend((plan.plan)(event).into_iter().map(|d| (d, body)));
            }
        }
        let lease_id = crate::ids::new_id("lease");
        let until = now + plan.lease.as_millis() as i64;
        let mut rows = Rows::new(DELIVERY);
        for (delivery, body) in deliveries {
            // Ordered deliveries wait for their predecessors: a claim decides when.
            let lease = leased.len() < plan.limit
                && delivery.ordering_key.is_none()
                && !plan.skip_webhooks.contains(&delivery.webhook_id)
                && plan.served.is_none_or(|s| s.contains(&delivery.webhook_id));
            push_delivery(
                &mut rows,
                &delivery,
                lease.then_some((lease_id.as_str(), plan.owner, until)),
            );
            if lease {
                leased.push(ClaimedDelivery {
                    lease: Lease {
                        delivery_id: delivery.id,
                        lease_id: lease_id.clone(),
                    },
                    event_id: delivery.event_id,
                    webhook_id: delivery.webhook_id,
                    attempts: 0,
                    retry_base: 0,
                    namespace: delivery.namespace,
                    ordering_key: None,
                    created_at: now,
                    event_body: Some(body.clone()),
                });
            } else {
                work_left = true;
            }
        }
        if !rows.is_empty() {
            tx.execute(&deliveries_insert(tx.dialect(), rows, now)?)
                .await?;
        }
    }
    if work_left {
        tx.announce_work().await?;
    }
    tx.commit().await?;
    Ok(Stored {
        counts: batch::count_inserted(batches, &inserted),
        leased,
        work_left,
    })
}

/// Whether a plan built from `revision` may fan this transaction's events out: the
/// revision is current (on PostgreSQL read `FOR SHARE`, so a webhook write waits for this
/// commit rather than slipping in between) and no older event waits for fan-out.
async fn may_fan_out(tx: &mut Tx, revision: i64) -> Result<bool, StoreError> {
    let lock = match tx.dialect() {
        Dialect::Sqlite => "", // the writer is already exclusive
        Dialect::Postgres => " FOR SHARE",
    };
    // `ORDER BY seq LIMIT 1` reads the partial index `events_fanout_pending`; PostgreSQL
    // plans an `EXISTS` here as a sequential scan of every event.
    let sql = Sql::new(format!(
        "SELECT value, (SELECT seq FROM events WHERE NOT fanned_out ORDER BY seq LIMIT 1) \
         FROM store_meta WHERE key = 'webhooks_revision'{lock}"
    ));
    let row: Option<(i64, Option<i64>)> = tx.fetch_optional(&sql).await?;
    Ok(row
        .is_some_and(|(current, oldest_unfanned)| current == revision && oldest_unfanned.is_none()))
}

/// Inserts the events (skipping any already stored) and returns the ids of those that
/// were new. `fanned_out` marks them fanned out by this transaction.
async fn insert_events(
    tx: &mut Tx,
    events: &[Cow<'_, Event>],
    bodies: &[String],
    fanned_out: bool,
) -> Result<Vec<String>, StoreError> {
    const EVENT: Columns = &[
        ("n", Column::Int),
        ("id", Column::Text),
        ("source", Column::Text),
        ("registry_event_id", Column::Text),
        ("type", Column::Text),
        ("repository", Column::Text),
        ("tag", Column::Text),
        ("digest", Column::Text),
        ("body", Column::Text),
        ("received_at", Column::Int),
    ];
    let mut rows = Rows::new(EVENT);
    for (n, (event, body)) in events.iter().zip(bodies).enumerate() {
        rows.push([
            (n as i64).into(),
            event.id.as_str().into(),
            event.source.as_str().into(),
            event.registry_event_id.as_str().into(),
            event.kind.as_str().into(),
            event.repository.as_str().into(),
            event.tag.as_deref().into(),
            event.digest.as_deref().into(),
            body.as_str().into(),
            event.received_at.into(),
        ]);
    }
    let mut sql = Sql::new("");
    let source = sql.rows(tx.dialect(), rows)?;
    // Rows in slice order, so `seq` follows event order; `WHERE true` lets SQLite parse
    // the upsert clause after a SELECT.
    sql.push(&format!(
        "INSERT INTO events (id, source, registry_event_id, type, repository, tag, digest, body, received_at, fanned_out) \
         SELECT r.id, r.source, r.registry_event_id, r.type, r.repository, r.tag, r.digest, r.body, r.received_at, {fanned_out} \
         FROM {source} AS r WHERE true ORDER BY r.n \
         ON CONFLICT (source, registry_event_id) DO NOTHING RETURNING id"
    ));
    let inserted: Vec<(String,)> = tx.fetch_all(&sql).await?;
    Ok(inserted.into_iter().map(|(id,)| id).collect())
}

/// The columns of a delivery row: see [`push_delivery`].
const DELIVERY: Columns = &[
    ("n", Column::Int),
    ("id", Column::Text),
    ("event_id", Column::Text),
    ("webhook_id", Column::Text),
    ("namespace", Column::Text),
    ("ordering_key", Column::Text),
    ("lease_id", Column::Text),
    ("lease_owner", Column::Text),
    ("lease_until", Column::Int),
];

/// Adds the next delivery row for [`deliveries_insert`], leased when `lease` says to whom.
fn push_delivery(rows: &mut Rows, delivery: &NewDelivery, lease: Option<(&str, &str, i64)>) {
    let (lease_id, owner, until) = match lease {
        Some((id, owner, until)) => (Some(id), Some(owner), Some(until)),
        None => (None, None, None),
    };
    rows.push([
        (rows.len() as i64).into(),
        delivery.id.as_str().into(),
        delivery.event_id.as_str().into(),
        delivery.webhook_id.as_str().into(),
        delivery.namespace.as_str().into(),
        delivery.ordering_key.as_deref().into(),
        lease_id.into(),
        owner.into(),
        until.into(),
    ]);
}

/// Unleased delivery rows, due at once: what fan-out and enqueueing insert.
pub(crate) fn unleased_rows(deliveries: &[NewDelivery]) -> Rows {
    let mut rows = Rows::new(DELIVERY);
    for delivery in deliveries {
        push_delivery(&mut rows, delivery, None);
    }
    rows
}

/// The one statement that inserts pending deliveries created at `now` (rows from
/// [`push_delivery`]), in order (so `seq` follows it): due at `now`, or, when leased, at
/// the lease's end, as a claim would leave them.
pub(crate) fn deliveries_insert(dialect: Dialect, rows: Rows, now: i64) -> Result<Sql, StoreError> {
    let mut sql = Sql::new("");
    let source = sql.rows(dialect, rows)?;
    let now = sql.bind(now);
    sql.push(&format!(
        "INSERT INTO deliveries (id, event_id, webhook_id, namespace, status, next_attempt_at, \
           ordering_key, lease_id, lease_owner, lease_until, created_at, updated_at) \
         SELECT r.id, r.event_id, r.webhook_id, r.namespace, 'pending', COALESCE(r.lease_until, {now}), \
           r.ordering_key, r.lease_id, r.lease_owner, r.lease_until, {now}, {now} \
         FROM {source} AS r ORDER BY r.n"
    ));
    Ok(sql)
}
