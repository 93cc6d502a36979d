//! Where each tag points: the `previous_digest` and `changed` of a tagged push.
//!
//! `tag_heads` keeps, per (source, repository, tag), the digest of the latest push hookline
//! stored. Storing a batch of events ([`Events::store_events`](super::Events)) reads
//! the heads its tagged pushes name, writes each push's previous digest into the event
//! before it is stored (a push replacing another push of the same batch sees that one),
//! and, once the insert says which events were new, advances the heads to them: a
//! re-sent event (a duplicate) changes nothing. A tag deletion removes its head, so the
//! next push of that tag has no previous digest. Everything runs in the caller's
//! transaction, so the event and the head it moved commit together. Statements are
//! written once for both dialects.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use super::StoreError;
use super::sql::{Column, Columns, Rows, Sql, Tx};
use crate::event::{Event, EventType};

/// (source, repository, tag).
type TagKey = (String, String, String);

/// A head move one stored event asks for: `Some(digest)` points the tag there, `None`
/// (a tag deletion) forgets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeadMove {
    key: TagKey,
    digest: Option<String>,
    event_id: String,
}

/// The tag an event moves, and where to: tagged pushes with a digest, tag deletions.
fn head_move(event: &Event) -> Option<(TagKey, Option<&str>)> {
    let tag = event.tag.as_deref().filter(|tag| !tag.is_empty())?;
    let key = (
        event.source.clone(),
        event.repository.clone(),
        tag.to_owned(),
    );
    match event.kind {
        EventType::ImagePushed => Some((key, Some(event.digest.as_deref()?))),
        EventType::ImageDeleted => Some((key, None)),
        _ => None,
    }
}

/// The batch's events with `previous_digest` and `changed` set on tagged pushes (only
/// those are copied), and the head moves to apply (with [`advance`]) once the insert has
/// said which events were new. A batch naming no tag costs no statement.
pub(crate) async fn link<'a>(
    tx: &mut Tx,
    batches: &[&'a [Event]],
) -> Result<(Vec<Cow<'a, Event>>, Vec<HeadMove>), StoreError> {
    let events: Vec<&Event> = batches.iter().flat_map(|batch| batch.iter()).collect();
    let named: HashSet<TagKey> = events
        .iter()
        .filter_map(|event| head_move(event).map(|(key, _)| key))
        .collect();
    if named.is_empty() {
        return Ok((events.into_iter().map(Cow::Borrowed).collect(), Vec::new()));
    }
    let mut heads = current_heads(tx, &named).await?;
    let mut moves = Vec::new();
    let mut linked = Vec::with_capacity(events.len());
    for event in events {
        let Some((key, digest)) = head_move(event) else {
            linked.push(Cow::Borrowed(event));
            continue;
        };
        let digest = digest.map(str::to_owned);
        let mut event = Cow::Borrowed(event);
        if event.kind == EventType::ImagePushed {
            let previous = heads.get(&key).cloned();
            let pushed = event.to_mut();
            pushed.changed = Some(previous != digest);
            pushed.previous_digest = previous;
        }
        match &digest {
            Some(digest) => heads.insert(key.clone(), digest.clone()),
            None => heads.remove(&key),
        };
        moves.push(HeadMove {
            key,
            digest,
            event_id: event.id.clone(),
        });
        linked.push(event);
    }
    Ok((linked, moves))
}

/// The stored heads of these tags.
async fn current_heads(
    tx: &mut Tx,
    keys: &HashSet<TagKey>,
) -> Result<HashMap<TagKey, String>, StoreError> {
    const KEY: Columns = &[
        ("source", Column::Text),
        ("repository", Column::Text),
        ("tag", Column::Text),
    ];
    let mut rows = Rows::new(KEY);
    for (source, repository, tag) in keys {
        rows.push([
            source.as_str().into(),
            repository.as_str().into(),
            tag.as_str().into(),
        ]);
    }
    let mut sql = Sql::new("");
    let wanted = sql.rows(tx.dialect(), rows)?;
    // A correlated lookup per wanted tag reads the primary key; PostgreSQL plans a join
    // with unanalysed tables as a hash join over every head.
    sql.push(&format!(
        "SELECT k.source, k.repository, k.tag, (SELECT h.digest FROM tag_heads h \
           WHERE h.source = k.source AND h.repository = k.repository AND h.tag = k.tag) \
         FROM {wanted} AS k"
    ));
    let found: Vec<(String, String, String, Option<String>)> = tx.fetch_all(&sql).await?;
    Ok(found
        .into_iter()
        .filter_map(|(source, repository, tag, digest)| Some(((source, repository, tag), digest?)))
        .collect())
}

/// Applies the moves of the events that were new (`inserted` ids), in order: the last
/// move of each tag wins.
pub(crate) async fn advance(
    tx: &mut Tx,
    moves: Vec<HeadMove>,
    inserted: &[String],
    now: i64,
) -> Result<(), StoreError> {
    if moves.is_empty() {
        return Ok(());
    }
    let inserted: HashSet<&str> = inserted.iter().map(String::as_str).collect();
    let mut last: HashMap<TagKey, HeadMove> = HashMap::new();
    for head in moves {
        if inserted.contains(head.event_id.as_str()) {
            last.insert(head.key.clone(), head);
        }
    }
    let (set, forget): (Vec<HeadMove>, Vec<HeadMove>) =
        last.into_values().partition(|head| head.digest.is_some());
    const HEAD: Columns = &[
        ("source", Column::Text),
        ("repository", Column::Text),
        ("tag", Column::Text),
        ("digest", Column::Text),
        ("event_id", Column::Text),
        ("updated_at", Column::Int),
    ];
    let rows = |heads: &[HeadMove]| {
        let mut rows = Rows::new(HEAD);
        for head in heads {
            rows.push([
                head.key.0.as_str().into(),
                head.key.1.as_str().into(),
                head.key.2.as_str().into(),
                head.digest.as_deref().into(),
                head.event_id.as_str().into(),
                now.into(),
            ]);
        }
        rows
    };
    if !set.is_empty() {
        let mut sql = Sql::new("");
        let source = sql.rows(tx.dialect(), rows(&set))?;
        // `WHERE true` lets SQLite parse the upsert clause after a SELECT.
        sql.push(&format!(
            "INSERT INTO tag_heads (source, repository, tag, digest, event_id, updated_at) \
             SELECT source, repository, tag, digest, event_id, updated_at FROM {source} AS r WHERE true \
             ON CONFLICT (source, repository, tag) DO UPDATE SET digest = excluded.digest, \
             event_id = excluded.event_id, updated_at = excluded.updated_at"
        ));
        tx.execute(&sql).await?;
    }
    if !forget.is_empty() {
        let mut sql = Sql::new("");
        let gone = sql.rows(tx.dialect(), rows(&forget))?;
        sql.push(&format!(
            "DELETE FROM tag_heads WHERE EXISTS (SELECT 1 FROM {gone} AS g \
             WHERE g.source = tag_heads.source AND g.repository = tag_heads.repository \
             AND g.tag = tag_heads.tag)"
        ));
        tx.execute(&sql).await?;
    }
    Ok(())
}
