//! The delivery log's listings: ListEvents and ListDeliveries, newest first.
//!
//! Both take the same filters: event types, a repository glob and a `[since, until)`
//! window become the store's [`LogFilter`], the glob matched after the SQL narrowed by its
//! literal prefix. Pages go by keyset (the seq of the last row) behind an opaque token, so
//! a token stays correct while new rows are written; a glob's scan is bounded per call.

use std::future::Future;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use globset::GlobSet;
use tonic::{Request, Status};

use super::DeliveryApi;
use crate::api::convert::{delivery_to_proto, event_to_proto, event_type_from_proto, unix_ms};
use crate::api::error::Violations;
use crate::api::proto;
use crate::api::validate;
use crate::dispatch::matcher::repository_glob;
use crate::store::{
    DeliveryQuery, DeliveryView, EventQuery, EventRecord, LogFilter, StatusFilter, StoreError,
};

/// Rows a listing with a repository glob reads at most per call before answering with
/// what it found and a token to go on.
const SCAN_BUDGET: usize = 5000;

/// An opaque page token: a kind letter and the keyset position, base64url.
pub(super) fn encode_token(kind: char, parts: &[i64]) -> String {
    let text: Vec<String> = parts.iter().map(i64::to_string).collect();
    URL_SAFE_NO_PAD.encode(format!("{kind}:{}", text.join(":")))
}

pub(super) fn decode_token(
    field: &str,
    token: &str,
    kind: char,
    parts: usize,
    v: &mut Violations,
) -> Option<Vec<i64>> {
    if token.is_empty() {
        return None;
    }
    let decoded = URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| {
            let rest = text.strip_prefix(kind)?.strip_prefix(':')?;
            let numbers: Option<Vec<i64>> = rest.split(':').map(|p| p.parse().ok()).collect();
            numbers.filter(|n| n.len() == parts)
        });
    if decoded.is_none() {
        v.add(field, "not a token from a previous response of this call");
    }
    decoded
}

/// Event type filters as stored names, each once; only the first unknown value is
/// reported (a request repeating one thousands of times costs no more than naming it once).
fn event_types(field: &str, values: &[i32], v: &mut Violations) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for (i, value) in values.iter().enumerate() {
        match event_type_from_proto(*value) {
            Some(kind) if names.iter().any(|n| n == kind.as_str()) => {}
            Some(kind) => names.push(kind.as_str().to_owned()),
            None => {
                v.add(
                    format!("{field}[{i}]"),
                    format!("unknown event type {value}"),
                );
                break;
            }
        }
    }
    names
}

/// Delivery status filters, each once, whatever the request repeats; only the first
/// unknown value is reported.
fn statuses(values: &[i32], v: &mut Violations) -> Vec<StatusFilter> {
    let mut statuses = Vec::new();
    for (i, value) in values.iter().enumerate() {
        use proto::DeliveryStatus as S;
        match S::try_from(*value) {
            Ok(S::Pending) => statuses.push(StatusFilter::Pending),
            Ok(S::Retrying) => statuses.push(StatusFilter::Retrying),
            Ok(S::Succeeded) => statuses.push(StatusFilter::Succeeded),
            Ok(S::Failed) => statuses.push(StatusFilter::Failed),
            _ => {
                v.add(format!("statuses[{i}]"), format!("unknown status {value}"));
                break;
            }
        }
    }
    statuses.sort();
    statuses.dedup();
    statuses
}

/// A repository glob filter: the compiled glob and its literal prefix.
fn repository(value: &str, v: &mut Violations) -> Option<(GlobSet, String)> {
    if value.is_empty() {
        return None;
    }
    if value.len() > validate::MAX_GLOB {
        v.add(
            "repository",
            format!("at most {} characters", validate::MAX_GLOB),
        );
        return None;
    }
    match repository_glob(value) {
        Ok(glob) => Some(glob),
        Err(error) => {
            v.add("repository", error.to_string());
            None
        }
    }
}

/// A `[since, until)` window in Unix ms.
fn window(
    since: Option<&prost_types::Timestamp>,
    until: Option<&prost_types::Timestamp>,
    v: &mut Violations,
) -> (Option<i64>, Option<i64>) {
    let since = since.map(unix_ms);
    let until = until.map(unix_ms);
    if let (Some(s), Some(u)) = (since, until)
        && u <= s
    {
        v.add("until", "must be later than `since`");
    }
    (since, until)
}

/// The request fields both listings share, as the request spells them.
struct LogRequest<'a> {
    page_size: i32,
    page_token: &'a str,
    event_types: &'a [i32],
    repository: &'a str,
    since: Option<&'a prost_types::Timestamp>,
    until: Option<&'a prost_types::Timestamp>,
}

/// Implements `From<&request>` for [`LogRequest`] for each listing's request message,
/// whose shared fields have the same names.
macro_rules! log_request_from {
    ($($request:ty),*) => {$(
        impl<'a> From<&'a $request> for LogRequest<'a> {
            fn from(r: &'a $request) -> Self {
                LogRequest {
                    page_size: r.page_size,
                    page_token: &r.page_token,
                    event_types: &r.event_types,
                    repository: &r.repository,
                    since: r.since.as_ref(),
                    until: r.until.as_ref(),
                }
            }
        }
    )*};
}

log_request_from!(proto::ListEventsRequest, proto::ListDeliveriesRequest);

/// A store listing query, moved along the keyset.
trait Keyset {
    /// This query for the `limit` rows before `before_seq`.
    fn at(&self, before_seq: Option<i64>, limit: i64) -> Self;
}

impl Keyset for EventQuery {
    fn at(&self, before_seq: Option<i64>, limit: i64) -> Self {
        EventQuery {
            before_seq,
            limit,
            ..self.clone()
        }
    }
}

impl Keyset for DeliveryQuery {
    fn at(&self, before_seq: Option<i64>, limit: i64) -> Self {
        DeliveryQuery {
            before_seq,
            limit,
            ..self.clone()
        }
    }
}

/// A listing request, validated: where the page starts, how long it is, and the filters.
struct Listing {
    /// Whose page tokens these are (`e` events, `d` deliveries): one listing's token is
    /// refused by the other.
    kind: char,
    page_size: i64,
    before: Option<i64>,
    filter: LogFilter,
    /// Matched after the SQL narrowed by its literal prefix (`filter.repository_prefix`).
    glob: Option<GlobSet>,
}

impl Listing {
    /// Records every problem of `r` in `v`; the listing is only used once `v` is clean.
    fn new(kind: char, r: LogRequest<'_>, max_page_size: u32, v: &mut Violations) -> Listing {
        let page_size = validate::page_size(r.page_size, max_page_size, v);
        let before = decode_token("page_token", r.page_token, kind, 1, v).map(|p| p[0]);
        let types = event_types("event_types", r.event_types, v);
        let glob = repository(r.repository, v);
        let (since, until) = window(r.since, r.until, v);
        let (glob, repository_prefix) = match glob {
            Some((glob, prefix)) => (Some(glob), Some(prefix)),
            None => (None, None),
        };
        let filter = LogFilter {
            types,
            repository_prefix,
            since,
            until,
        };
        Listing {
            kind,
            page_size,
            before,
            filter,
            glob,
        }
    }

    /// One page read through `fetch(before, limit)`: the rows whose `repository` passes
    /// the glob, and the token of the next page ("" at the end).
    async fn page<T, F, Fut>(
        &self,
        repository: impl Fn(&T) -> Option<&str>,
        seq: impl Fn(&T) -> i64,
        fetch: F,
    ) -> Result<(Vec<T>, String), StoreError>
    where
        F: FnMut(Option<i64>, i64) -> Fut,
        Fut: Future<Output = Result<Vec<T>, StoreError>>,
    {
        let glob = self.glob.as_ref();
        let keep = |row: &T| glob.is_none_or(|g| repository(row).is_some_and(|r| g.is_match(r)));
        let (page, next) = keyset_page(
            self.page_size,
            self.before,
            glob.is_some(),
            keep,
            seq,
            fetch,
        )
        .await?;
        let token = next.map(|s| encode_token(self.kind, &[s]));
        Ok((page, token.unwrap_or_default()))
    }
}

/// Reads rows newest first through `fetch(before, limit)` until a page of `page_size`
/// rows that pass `keep` is full, or [`SCAN_BUDGET`] rows were read. Returns the page and
/// the seq to continue before, if there may be more.
async fn keyset_page<T, F, Fut>(
    page_size: i64,
    mut before: Option<i64>,
    filtered: bool,
    keep: impl Fn(&T) -> bool,
    seq: impl Fn(&T) -> i64,
    mut fetch: F,
) -> Result<(Vec<T>, Option<i64>), StoreError>
where
    F: FnMut(Option<i64>, i64) -> Fut,
    Fut: Future<Output = Result<Vec<T>, StoreError>>,
{
    let want = page_size as usize + 1;
    let chunk = if filtered { (want * 4).max(200) } else { want };
    let mut page = Vec::with_capacity(want);
    let mut scanned = 0;
    loop {
        let rows = fetch(before, chunk as i64).await?;
        let full = rows.len() == chunk;
        scanned += rows.len();
        for row in rows {
            before = Some(seq(&row));
            if keep(&row) {
                page.push(row);
                if page.len() == want {
                    page.pop();
                    let next = page.last().map(&seq);
                    return Ok((page, next));
                }
            }
        }
        if !full {
            return Ok((page, None));
        }
        if scanned >= SCAN_BUDGET {
            return Ok((page, before));
        }
    }
}

impl DeliveryApi {
    /// ListEvents: the events the caller sees, newest first.
    pub(super) async fn events_page(
        &self,
        request: &Request<proto::ListEventsRequest>,
    ) -> Result<proto::ListEventsResponse, Status> {
        let caller = self.gate.caller(request).await?;
        let r = request.get_ref();
        let mut v = Violations::default();
        let listing = Listing::new('e', r.into(), self.limits.max_page_size, &mut v);
        v.check()?;
        let base = EventQuery {
            within: caller.scope().map(str::to_owned),
            filter: listing.filter.clone(),
            ..EventQuery::default()
        };
        let store = &self.gate.store;
        let (page, next_page_token) = listing
            .page(
                |e: &EventRecord| Some(e.repository.as_str()),
                |e| e.seq,
                |before_seq, limit| {
                    let query = base.at(before_seq, limit);
                    async move { store.list_events(&query).await }
                },
            )
            .await?;
        Ok(proto::ListEventsResponse {
            events: page.iter().map(event_to_proto).collect(),
            next_page_token,
        })
    }

    /// ListDeliveries: the deliveries the caller sees, newest first, of one webhook or all.
    pub(super) async fn deliveries_page(
        &self,
        request: &Request<proto::ListDeliveriesRequest>,
    ) -> Result<proto::ListDeliveriesResponse, Status> {
        let caller = self.gate.caller(request).await?;
        let r = request.get_ref();
        let mut v = Violations::default();
        let listing = Listing::new('d', r.into(), self.limits.max_page_size, &mut v);
        let statuses = statuses(&r.statuses, &mut v);
        v.check()?;
        let base = DeliveryQuery {
            within: caller.scope().map(str::to_owned),
            webhook_id: self.webhook_filter(&caller, &r.webhook_id).await?,
            statuses,
            filter: listing.filter.clone(),
            ..DeliveryQuery::default()
        };
        let store = &self.gate.store;
        let (page, next_page_token) = listing
            .page(
                |d: &DeliveryView| d.repository.as_deref(),
                |d| d.delivery.seq,
                |before_seq, limit| {
                    let query = base.at(before_seq, limit);
                    async move { store.list_deliveries(&query).await }
                },
            )
            .await?;
        Ok(proto::ListDeliveriesResponse {
            deliveries: page.iter().map(delivery_to_proto).collect(),
            next_page_token,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_reject_garbage() {
        let mut v = Violations::default();
        let token = encode_token('r', &[1_700_000_000_000, 42]);
        assert_eq!(
            decode_token("page_token", &token, 'r', 2, &mut v),
            Some(vec![1_700_000_000_000, 42])
        );
        assert!(v.check().is_ok());
        for bad in ["%%%", &encode_token('e', &[1]), &encode_token('r', &[1])] {
            let mut v = Violations::default();
            assert_eq!(decode_token("page_token", bad, 'r', 2, &mut v), None);
            assert!(v.check().is_err(), "{bad}");
        }
    }
}
