//! Which dispatcher serves each webhook (`webhook_dispatchers`), written once for both
//! databases. Each backend's `Liveness` says what a dead dispatcher is (a condition on the
//! column naming one) and calls these.
//!
//! A row is the right to claim, or take from ingest, a webhook's deliveries (see
//! `queue::only`). It is taken only when free or when its dispatcher is dead, in one
//! statement, so two live dispatchers never serve one webhook; it is given up by its own
//! dispatcher only (`dispatch/serving.rs` first waits until nothing of the webhook is in
//! flight there).

use super::StoreError;
use super::log::{LogStore, json_list};
use super::sql::Sql;

/// The webhooks `me` serves.
pub(crate) async fn served<B: LogStore>(backend: &B, me: &str) -> Result<Vec<String>, StoreError> {
    let sql = Sql::new("SELECT webhook_id FROM webhook_dispatchers WHERE dispatcher = $1").arg(me);
    let rows: Vec<(String,)> = backend.reads().fetch_all(&sql).await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// Takes, for `me` at `now`, those of `ids` (existing webhooks) that no dispatcher serves
/// or whose dispatcher `dead` (a condition on `webhook_dispatchers.dispatcher`; None: any
/// other) says is dead. Returns those taken now (not those `me` served already).
pub(crate) async fn take<B: LogStore>(
    backend: &B,
    me: &str,
    ids: &[String],
    now: i64,
    dead: Option<&str>,
) -> Result<Vec<String>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut tx = backend.write().await?;
    let mut sql = Sql::new("");
    let list = tx.dialect().text_list(&sql.bind(json_list(ids)?));
    let (me, now) = (sql.bind(me), sql.bind(now));
    let dead = dead.map(|c| format!(" AND {c}")).unwrap_or_default();
    sql.push(&format!(
        "INSERT INTO webhook_dispatchers (webhook_id, dispatcher, since) \
         SELECT w.id, {me}, {now} FROM webhooks w WHERE w.id IN {list} \
         ON CONFLICT (webhook_id) DO UPDATE SET dispatcher = excluded.dispatcher, since = excluded.since \
         WHERE webhook_dispatchers.dispatcher <> excluded.dispatcher{dead} \
         RETURNING webhook_id"
    ));
    let taken: Vec<(String,)> = tx.fetch_all(&sql).await?;
    tx.commit().await?;
    Ok(taken.into_iter().map(|(id,)| id).collect())
}

/// Gives up `me`'s rows of `ids`, and announces work so their next dispatcher takes them
/// at once. Returns how many were given up.
pub(crate) async fn give_up<B: LogStore>(
    backend: &B,
    me: &str,
    ids: &[String],
) -> Result<u64, StoreError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let mut tx = backend.write().await?;
    let mut sql = Sql::new("");
    let list = tx.dialect().text_list(&sql.bind(json_list(ids)?));
    let me = sql.bind(me);
    sql.push(&format!(
        "DELETE FROM webhook_dispatchers WHERE dispatcher = {me} AND webhook_id IN {list}"
    ));
    let given = tx.execute(&sql).await?;
    if given > 0 {
        tx.announce_work().await?;
    }
    tx.commit().await?;
    Ok(given)
}
