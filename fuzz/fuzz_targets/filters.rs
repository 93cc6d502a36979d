//! Fuzzes the webhook filter compiler (`dispatch::matcher::compile_filters`), which takes
//! API users' globs and event type names, and the matching of what it compiles.
//!
//! Input: text split at NUL into event types (comma-separated), repository globs and tag
//! globs (newline-separated), then repository:tag pairs to match. Beyond "never panics":
//! a refusal names a field; a compiled filter answers every event, and a literal
//! repository glob matches its own repository.

#![no_main]

use hookline::dispatch::matcher::compile_filters;
use hookline::ingest::envelope::parse;
use libfuzzer_sys::fuzz_target;

fn list(part: Option<&str>, separator: char) -> Vec<String> {
    part.map(|p| p.split(separator).take(16).map(str::to_owned).collect())
        .unwrap_or_default()
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\0');
    let types: Vec<String> = list(parts.next(), ',')
        .into_iter()
        .filter(|t| !t.is_empty())
        .collect();
    let repositories = list(parts.next(), '\n');
    let tags = list(parts.next(), '\n');
    let targets = list(parts.next(), '\n');
    let filters = match compile_filters(&types, &repositories, &tags) {
        Ok(filters) => filters,
        Err(error) => {
            assert!(["event_types", "repositories", "tags"].contains(&error.field()));
            return;
        }
    };
    // Events the parser accepts, for the pairs given and for each glob taken literally.
    let mut pairs: Vec<(String, String)> = targets
        .iter()
        .map(|t| match t.split_once(':') {
            Some((r, tag)) => (r.to_owned(), tag.to_owned()),
            None => (t.clone(), "latest".to_owned()),
        })
        .collect();
    pairs.extend(repositories.iter().map(|r| (r.clone(), "latest".to_owned())));
    let events: Vec<serde_json::Value> = pairs
        .iter()
        .enumerate()
        .map(|(i, (repository, tag))| {
            serde_json::json!({
                "id": format!("e{i}"),
                "action": "push",
                "target": {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": "sha256:ab09df3b044990449fbd0a7f841bbfba912842e49212a79a8e029b8370aa6fb0",
                    "repository": repository,
                    "tag": tag,
                },
            })
        })
        .collect();
    let body = serde_json::json!({ "events": events }).to_string();
    let parsed = parse(body.as_bytes(), "fuzz", 0, 1000, || "evt_1".into()).expect("an envelope");
    let literal = |glob: &str| !glob.contains(['*', '?', '[', ']', '{', '}', '\\']);
    for event in &parsed.events {
        let matched = filters.matches(event);
        let wanted_type = types.is_empty() || types.iter().any(|t| t == event.kind.as_str());
        let literal_hit = repositories.iter().any(|g| literal(g) && *g == event.repository);
        let any_tag = tags.is_empty() || tags.iter().any(|t| t == "*" || t == "**");
        if wanted_type && literal_hit && any_tag {
            assert!(matched, "a literal glob must match its own repository: {event:?}");
        }
    }
});
