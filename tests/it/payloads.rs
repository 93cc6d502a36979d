//! What receivers get, checked by code we did not write: every payload format built from
//! every fixture event (`../shared/fixtures/distribution/`) and read the way each consumer
//! in consumers.md reads it; signatures verified by the `standardwebhooks` crate.
//!
//! `formats.rs`: hookline against its JSON Schema (and the documented examples), CloudEvents
//! through `cloudevents-sdk`, the distribution envelope round trip. `consumers.rs`: dockerhub
//! and harbor, one test per consumer endpoint. `delivery.rs`: end to end through a real
//! server on both backends: signatures, rotation, the GitHub-style header, content types,
//! and fan-out that never creates a delivery a format cannot carry. `cli.rs`: the CLI's
//! flags for the signature header and the format options.

mod chat;
mod cli;
mod consumers;
mod delivery;
mod formats;
mod templates;

use std::path::PathBuf;

use hookline::dispatch::payload::{self, Format};
use hookline::event::Event;
use hookline::store::PayloadOptions;
use serde_json::Value;

/// The server configuration of the end-to-end payload tests: the API too, a claim every
/// 100 ms, three retries 100 ms apart.
pub fn fast(c: &mut hookline::config::Config) {
    crate::harness::server::with_api(c);
    c.dispatch.poll_interval = std::time::Duration::from_millis(100);
    c.dispatch.retry_schedule = vec![std::time::Duration::from_millis(100); 3];
}

/// When every fixture event was "received" (deterministic output).
pub const RECEIVED_AT: i64 = 1_795_569_430_000;

pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/distribution")
}

/// One fixture: its file name, the raw envelope and the event hookline makes of it.
pub struct Fixture {
    pub name: String,
    pub envelope: Value,
    pub event: Event,
}

/// Every fixture envelope, normalised by the real ingest code, with a stable event id.
pub fn fixtures() -> Vec<Fixture> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures_dir())
        .expect("fixtures dir (../shared beside the repository)")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".json") && n.as_bytes()[0].is_ascii_digit())
        .collect();
    names.sort();
    assert_eq!(names.len(), 11, "the 11 fixture events");
    names
        .into_iter()
        .enumerate()
        .map(|(i, name)| {
            let bytes = std::fs::read(fixtures_dir().join(&name)).expect("fixture");
            let envelope: Value = serde_json::from_slice(&bytes).expect("fixture json");
            let parsed =
                hookline::ingest::envelope::parse(&bytes, "default", RECEIVED_AT, 10, || {
                    event_id(i)
                })
                .expect("fixture parses");
            assert!(parsed.rejected.is_empty(), "{name}: {:?}", parsed.rejected);
            let event = parsed.events.into_iter().next().expect("one event");
            Fixture {
                name,
                envelope,
                event,
            }
        })
        .collect()
}

/// A stable hookline event id for fixture `i`.
pub fn event_id(i: usize) -> String {
    format!("evt_019ab5c0000070008000{i:010x}")
}

/// Renders `event` in `format` with default options: (content type, JSON body).
pub fn render(format: Format, event: &Event) -> (String, Value) {
    render_with(format, &PayloadOptions::default(), event)
}

/// Renders with options: (content type, JSON body).
pub fn render_with(format: Format, options: &PayloadOptions, event: &Event) -> (String, Value) {
    let p = payload::render(format, options, event);
    let body = serde_json::from_slice(&p.body).expect("every format is JSON");
    (p.content_type.into_owned(), body)
}

/// Asserts `v[path]` is a JSON string (an empty one allowed only if `nonempty` is false).
#[track_caller]
pub fn string<'a>(v: &'a Value, path: &str, nonempty: bool) -> &'a str {
    let field = v
        .pointer(path)
        .unwrap_or_else(|| panic!("{path} missing in {v}"));
    let s = field
        .as_str()
        .unwrap_or_else(|| panic!("{path} must be a string, got {field}"));
    assert!(
        !nonempty || !s.is_empty(),
        "{path} must not be empty in {v}"
    );
    s
}

/// Asserts `v[path]` is a JSON integer (not a float, not a string).
#[track_caller]
pub fn integer(v: &Value, path: &str) -> i64 {
    let field = v
        .pointer(path)
        .unwrap_or_else(|| panic!("{path} missing in {v}"));
    assert!(
        field.is_i64() || field.is_u64(),
        "{path} must be a JSON integer, got {field}"
    );
    field.as_i64().expect("fits i64")
}

/// Asserts `v[path]`, when present, is a JSON boolean.
#[track_caller]
pub fn optional_bool(v: &Value, path: &str) {
    if let Some(field) = v.pointer(path) {
        assert!(field.is_boolean(), "{path} must be a boolean, got {field}");
    }
}
