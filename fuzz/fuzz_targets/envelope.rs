//! Fuzzes the notify envelope parser (`ingest::envelope::parse`) with arbitrary bytes.
//!
//! Beyond "never panics": every entry of the `events` array comes back as exactly one
//! stored event or one rejection (in index order), the limit is honoured, and every
//! accepted event carries what fan-out relies on (a repository, the source, our id).

#![no_main]

use hookline::ingest::envelope::{EnvelopeError, parse};
use libfuzzer_sys::fuzz_target;

const MAX_EVENTS: usize = 64;

fuzz_target!(|data: &[u8]| {
    let mut n = 0u32;
    let result = parse(data, "fuzz", 42, MAX_EVENTS, || {
        n += 1;
        format!("evt_{n}")
    });
    let count = serde_json::from_slice::<serde_json::Value>(data)
        .ok()
        .and_then(|v| v.get("events")?.as_array().map(Vec::len));
    match result {
        Ok(parsed) => {
            let count = count.expect("an accepted envelope has an events array");
            assert!(count <= MAX_EVENTS);
            assert_eq!(parsed.events.len() + parsed.rejected.len(), count);
            assert!(parsed.rejected.windows(2).all(|w| w[0].index < w[1].index));
            for event in &parsed.events {
                assert!(!event.repository.is_empty());
                assert_eq!(event.source, "fuzz");
                assert_eq!(event.received_at, 42);
                assert!(event.id.starts_with("evt_"));
                assert!(!event.registry_event_id.trim().is_empty());
            }
        }
        Err(EnvelopeError::TooManyEvents { count: c, limit }) => {
            assert_eq!(limit, MAX_EVENTS);
            assert!(c > MAX_EVENTS);
        }
        Err(_) => {}
    }
});
