//! What the list commands share: the log's filters and paging flags (`deliveries list`,
//! `events list`), and following pages until the flags are satisfied.
//!
//! A list shows the last 50 by default (`--limit N`), every row with `--all`, or exactly
//! one server page with `--page-size`/`--page-token`; the server decides what a page holds
//! and says where the next one starts. When more rows remain, stderr says how to get them.

use clap::Args;
use prost_types::Timestamp;

use super::show::parse_time;
use super::webhooks::parse_event_type;

/// The largest page a list asks for when it follows pages.
pub(super) const LARGEST_PAGE: usize = 500;

/// How a list command follows pages.
pub(super) trait Paging {
    /// The page token to start from ("" for the newest rows).
    fn first_token(&self) -> String;
    /// The page size to ask for, having `have` rows already.
    fn page_size(&self, have: usize) -> i32;
    /// Whether to stop after a page, having `have` rows and `next` as the next page token.
    fn done(&self, have: usize, next: &str) -> bool;
}

/// Fetches pages through `fetch(page_token, page_size)`, which answers with a page's rows
/// and the next page's token, as `paging` asks: every row, and the token after the last
/// page fetched ("" at the end of the list).
pub(super) async fn collect<T>(
    paging: &impl Paging,
    mut fetch: impl AsyncFnMut(String, i32) -> anyhow::Result<(Vec<T>, String)>,
) -> anyhow::Result<(Vec<T>, String)> {
    let mut rows = Vec::new();
    let mut token = paging.first_token();
    loop {
        let (page, next) = fetch(token, paging.page_size(rows.len())).await?;
        rows.extend(page);
        if paging.done(rows.len(), &next) {
            return Ok((rows, next));
        }
        token = next;
    }
}

/// Says on stderr how to continue, if rows remain after `next`.
pub(super) fn print_more(next: &str) {
    if !next.is_empty() {
        eprintln!("more: --page-token {next}");
    }
}

/// The filters and paging that `deliveries list` and `events list` share.
#[derive(Debug, Args)]
pub(super) struct Filters {
    /// Only events of this type, repeatable.
    #[arg(long = "event-type", value_name = "TYPE", value_parser = parse_event_type)]
    pub event_types: Vec<i32>,
    /// Only repositories matching this glob (`acme/*`, `acme/**`).
    #[arg(long, value_name = "GLOB")]
    pub repository: Option<String>,
    /// From this time on: a duration ago (`1h`, `2d`) or an RFC 3339 time.
    #[arg(long, value_name = "WHEN", value_parser = parse_time)]
    pub since: Option<Timestamp>,
    /// Before this time: a duration ago (`10m`) or an RFC 3339 time.
    #[arg(long, value_name = "WHEN", value_parser = parse_time)]
    pub until: Option<Timestamp>,
    /// Show at most this many, newest first (the log may hold millions); see --all.
    #[arg(long, default_value_t = 50, conflicts_with = "all")]
    pub limit: usize,
    /// Follow every page to the end of the log.
    #[arg(long)]
    pub all: bool,
    /// Fetch one page of this size (1–500) and print the next page's token.
    #[arg(long)]
    pub page_size: Option<i32>,
    /// Continue from this page token.
    #[arg(long)]
    pub page_token: Option<String>,
}

impl Filters {
    /// Whether to fetch one page only (the caller asked for paging).
    pub fn one_page(&self) -> bool {
        self.page_size.is_some() || self.page_token.is_some()
    }
}

impl Paging for Filters {
    fn first_token(&self) -> String {
        self.page_token.clone().unwrap_or_default()
    }

    /// The caller's page, or what is left of `--limit`, or the largest page with `--all`.
    fn page_size(&self, have: usize) -> i32 {
        if self.one_page() {
            return self.page_size.unwrap_or(0);
        }
        let left = if self.all {
            LARGEST_PAGE
        } else {
            self.limit.saturating_sub(have).clamp(1, LARGEST_PAGE)
        };
        i32::try_from(left).unwrap_or(1)
    }

    fn done(&self, have: usize, next: &str) -> bool {
        next.is_empty() || self.one_page() || (!self.all && have >= self.limit)
    }
}
