//! Property tests of the two parsers that take strangers' input: the envelope parser
//! (registries) and the glob/filter compiler (API users). Bounded: a fixed number of
//! cases each, a few seconds in all, so they run in every `.ci/run`. The `fuzz/` crate
//! explores the same two functions without bounds.

use hookline::dispatch::matcher::compile_filters;
use hookline::event::Event;
use hookline::ingest::envelope::{EnvelopeError, parse};
use proptest::prelude::*;
use serde_json::{Value, json};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Any JSON value, a few levels deep, with the keys a registry event uses mixed in.
fn any_json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("id".to_owned()),
        Just("action".to_owned()),
        Just("target".to_owned()),
        Just("repository".to_owned()),
        Just("tag".to_owned()),
        Just("digest".to_owned()),
        Just("mediaType".to_owned()),
        Just("size".to_owned()),
        Just("references".to_owned()),
        Just("request".to_owned()),
        "[a-zA-Z]{0,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,24}".prop_map(Value::from),
        Just(Value::from("push")),
        Just(Value::from("pull")),
        Just(Value::from("delete")),
        Just(Value::from("acme/app")),
        Just(Value::from(
            "sha256:ab09df3b044990449fbd0a7f841bbfba912842e49212a79a8e029b8370aa6fb0"
        )),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A repository name distribution accepts.
fn repository() -> impl Strategy<Value = String> {
    prop::collection::vec("[a-z0-9]([a-z0-9._-]{0,6}[a-z0-9])?", 1..4).prop_map(|c| c.join("/"))
}

/// A tag distribution accepts.
fn tag() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_][a-zA-Z0-9._-]{0,20}"
}

fn push_event(repository: &str, tag: &str) -> Value {
    json!({
        "id": hookline::ids::new_id("reg"),
        "timestamp": "2026-11-25T01:16:56Z",
        "action": "push",
        "target": {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "size": 345,
            "digest": "sha256:ab09df3b044990449fbd0a7f841bbfba912842e49212a79a8e029b8370aa6fb0",
            "repository": repository,
            "tag": tag
        }
    })
}

fn ids() -> impl FnMut() -> String {
    let mut n = 0;
    move || {
        n += 1;
        format!("evt_{n}")
    }
}

/// The event a push of `repository:tag` becomes.
fn event(repository: &str, tag: &str) -> Event {
    let body = json!({ "events": [push_event(repository, tag)] }).to_string();
    let mut parsed = parse(body.as_bytes(), "test", 0, 10, ids()).expect("valid envelope");
    assert!(parsed.rejected.is_empty(), "{:?}", parsed.rejected);
    parsed.events.remove(0)
}

proptest! {
    #![proptest_config(config(256))]

    /// Arbitrary bytes: an answer, never a panic.
    #[test]
    fn any_bytes_are_answered(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse(&body, "test", 0, 1000, ids());
    }

    /// Any JSON under `events`: every entry is either an event or a rejection with its
    /// index, in order; a rejected sibling never costs the others.
    #[test]
    fn every_event_is_accepted_or_rejected_with_its_index(
        events in prop::collection::vec(any_json(), 0..12),
        good in prop::collection::vec((repository(), tag()), 0..4),
    ) {
        let mut all = events.clone();
        all.extend(good.iter().map(|(r, t)| push_event(r, t)));
        let body = json!({ "events": all }).to_string();
        let parsed = parse(body.as_bytes(), "test", 7, 1000, ids()).expect("an events array");
        prop_assert_eq!(parsed.events.len() + parsed.rejected.len(), all.len());
        let indices: Vec<usize> = parsed.rejected.iter().map(|r| r.index).collect();
        prop_assert!(indices.windows(2).all(|w| w[0] < w[1]));
        prop_assert!(indices.iter().all(|i| *i < events.len()), "a valid push was rejected: {:?}", parsed.rejected);
        for e in &parsed.events {
            prop_assert_eq!(e.received_at, 7);
            prop_assert!(!e.repository.is_empty());
        }
        let tail = &parsed.events[parsed.events.len() - good.len()..];
        for (e, (r, t)) in tail.iter().zip(&good) {
            prop_assert_eq!(&e.repository, r);
            prop_assert_eq!(e.tag.as_deref(), Some(t.as_str()));
        }
    }

    /// More events than the limit is refused as a whole, with both numbers.
    #[test]
    fn the_event_limit_holds(count in 0usize..40, limit in 1usize..20) {
        let events: Vec<Value> = (0..count).map(|_| push_event("acme/app", "v1")).collect();
        let body = json!({ "events": events }).to_string();
        match parse(body.as_bytes(), "test", 0, limit, ids()) {
            Ok(parsed) => prop_assert!(count <= limit && parsed.events.len() == count),
            Err(error) => prop_assert_eq!(error, EnvelopeError::TooManyEvents { count, limit }),
        }
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// Arbitrary pattern text: compiled or refused with a reason, never a panic.
    #[test]
    fn any_glob_is_answered(
        repositories in prop::collection::vec(".{0,16}", 0..4),
        tags in prop::collection::vec("[a-z*?{},\\[\\]!\\\\-]{0,12}", 0..4),
        types in prop::collection::vec("[a-z.]{0,14}", 0..3),
    ) {
        if let Err(error) = compile_filters(&types, &repositories, &tags) {
            prop_assert!(!error.to_string().is_empty());
        }
    }

    /// A literal repository matches itself and nothing else; `prefix/*` stays within one
    /// path segment; `prefix/**` reaches below.
    #[test]
    fn globs_match_as_documented(repo in repository(), other in repository(), t in tag()) {
        let none: &[String] = &[];
        let literal = compile_filters(none, std::slice::from_ref(&repo), none).expect("a literal compiles");
        prop_assert!(literal.matches(&event(&repo, &t)));
        prop_assert_eq!(literal.matches(&event(&other, &t)), other == repo);

        let one = compile_filters(none, &[format!("{repo}/*")], none).expect("compiles");
        let deep = compile_filters(none, &[format!("{repo}/**")], none).expect("compiles");
        let child = format!("{repo}/{}", other.split('/').next().unwrap_or("x"));
        let grandchild = format!("{repo}/{other}/x");
        prop_assert!(one.matches(&event(&child, &t)));
        prop_assert!(!one.matches(&event(&grandchild, &t)));
        prop_assert!(deep.matches(&event(&child, &t)) && deep.matches(&event(&grandchild, &t)));
        prop_assert!(!one.matches(&event(&repo, &t)));

        let tagged = compile_filters(none, none, std::slice::from_ref(&t)).expect("a literal tag compiles");
        prop_assert!(tagged.matches(&event(&repo, &t)));
        let longer = format!("{}x", t);
        prop_assert!(!tagged.matches(&event(&repo, &longer)));
    }
}
