//! The CNCF distribution notification envelope, and its normalisation into [`Event`]s.
//!
//! Pure: bytes in, events and reject reasons out; no I/O, no clock (the caller passes
//! `received_at`). Each event in an envelope is parsed on its own, so one unusable event
//! is rejected with a reason while its siblings are kept. Unknown fields are ignored, as
//! registries add fields over time.

use serde::Deserialize;

use crate::event::{Event, EventType, Reference};

/// Why a whole envelope was refused (HTTP 400).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    /// Not JSON at all.
    #[error("malformed JSON: {0}")]
    Malformed(String),
    /// JSON, but without an `events` array.
    #[error("the envelope has no `events` array")]
    NoEvents,
    /// More events than the configured limit.
    #[error("the envelope has {count} events; at most {limit} are accepted per request")]
    TooManyEvents {
        /// Events in the envelope.
        count: usize,
        /// The configured limit.
        limit: usize,
    },
}

/// One event of an envelope that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Rejected {
    /// Position in the envelope's `events` array.
    pub index: usize,
    /// The registry's event id, when it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// What was wrong.
    pub reason: String,
}

/// A parsed envelope: usable events and rejected ones.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Normalised events, in envelope order.
    pub events: Vec<Event>,
    /// Events that could not be used.
    pub rejected: Vec<Rejected>,
}

/// The envelope: a list of events, each kept raw until parsed on its own.
#[derive(Deserialize)]
struct Envelope {
    events: Option<Vec<serde_json::Value>>,
}

/// One event as the registry sends it (distribution `notifications.Event`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegistryEvent {
    id: String,
    #[serde(default)]
    timestamp: Option<String>,
    action: String,
    target: Target,
    #[serde(default)]
    request: Request,
    #[serde(default)]
    actor: Actor,
    #[serde(default)]
    source: Source,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Target {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    size: Option<i64>,
    #[serde(default)]
    digest: Option<String>,
    /// Older registries send `length` (same as size).
    #[serde(default)]
    length: Option<i64>,
    repository: String,
    #[serde(default)]
    from_repository: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    tag: Option<String>,
    #[serde(default)]
    references: Option<Vec<Descriptor>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    digest: String,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    size: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
struct Request {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    addr: Option<String>,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    useragent: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Actor {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Source {
    #[serde(default)]
    addr: Option<String>,
    #[serde(default, rename = "instanceID")]
    instance_id: Option<String>,
}

/// Media types of manifests (as opposed to blobs).
const MANIFEST_MEDIA_TYPES: &[&str] = &[
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.artifact.manifest.v1+json",
];

/// Longest repository path distribution allows.
const MAX_REPOSITORY_LEN: usize = 255;
/// Longest tag the OCI distribution spec allows.
const MAX_TAG_LEN: usize = 128;
/// Longest registry event id accepted (distribution sends UUIDs).
const MAX_ID_LEN: usize = 256;

/// Parses an envelope body. `source` names the registry (its token); `new_id` mints
/// hookline event ids.
pub fn parse(
    body: &[u8],
    source: &str,
    received_at: i64,
    max_events: usize,
    mut new_id: impl FnMut() -> String,
) -> Result<Parsed, EnvelopeError> {
    let envelope: Envelope =
        serde_json::from_slice(body).map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
    // serde also reads a struct from a JSON array (`[[…]]`); an envelope is an object.
    let is_object = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let raw_events = envelope
        .events
        .filter(|_| is_object)
        .ok_or(EnvelopeError::NoEvents)?;
    if raw_events.len() > max_events {
        return Err(EnvelopeError::TooManyEvents {
            count: raw_events.len(),
            limit: max_events,
        });
    }
    let mut parsed = Parsed::default();
    for (index, raw) in raw_events.into_iter().enumerate() {
        let id = raw.get("id").and_then(|v| v.as_str()).map(str::to_owned);
        match normalise(&raw, source, received_at) {
            Ok(mut event) => {
                event.id = new_id();
                parsed.events.push(event);
            }
            Err(reason) => parsed.rejected.push(Rejected { index, id, reason }),
        }
    }
    Ok(parsed)
}

/// Turns one raw registry event into an [`Event`] (with an empty `id`), or says why not.
fn normalise(raw: &serde_json::Value, source: &str, received_at: i64) -> Result<Event, String> {
    // serde would read a struct from an array too; registries send objects.
    if !raw.is_object() || raw.get("target").is_some_and(|t| !t.is_object()) {
        return Err("an event and its `target` must be JSON objects".into());
    }
    let e: RegistryEvent = serde_json::from_value(raw.clone()).map_err(|e| e.to_string())?;
    if e.id.trim().is_empty() || e.id.len() > MAX_ID_LEN || e.id.chars().any(char::is_control) {
        return Err(format!(
            "event `id` must be 1 to {MAX_ID_LEN} characters without control characters"
        ));
    }
    let t = &e.target;
    check_repository(&t.repository)?;
    if let Some(tag) = &t.tag
        && !valid_tag(tag)
    {
        return Err(format!(
            "target.tag `{}` is not a valid tag (1 to {MAX_TAG_LEN} of A-Z a-z 0-9 _ . -, not starting with . or -)",
            tag.escape_debug()
        ));
    }
    if let Some(digest) = t.digest.as_deref().filter(|d| !d.is_empty())
        && !valid_digest(digest)
    {
        return Err(format!(
            "target.digest `{}` is not a valid digest (algorithm:hex)",
            digest.escape_debug()
        ));
    }
    let kind = classify(&e.action, t)?;
    Ok(Event {
        id: String::new(),
        source: source.to_owned(),
        registry_event_id: e.id.clone(),
        kind,
        repository: t.repository.clone(),
        tag: t.tag.clone(),
        digest: t.digest.clone().filter(|d| !d.is_empty()),
        media_type: t.media_type.clone().filter(|m| !m.is_empty()),
        size: t.size.or(t.length),
        references: t
            .references
            .iter()
            .flatten()
            .map(|d| Reference {
                digest: d.digest.clone(),
                media_type: d.media_type.clone(),
                size: d.size,
            })
            .collect(),
        url: t.url.clone(),
        from_repository: t.from_repository.clone(),
        actor: e.actor.name.clone().filter(|n| !n.is_empty()),
        registry_host: e.request.host.clone().filter(|h| !h.is_empty()),
        source_addr: e.source.addr.clone(),
        source_instance_id: e.source.instance_id.clone(),
        request_id: e.request.id.clone(),
        request_useragent: e.request.useragent.clone(),
        request_addr: e.request.addr.clone(),
        request_method: e.request.method.clone(),
        timestamp: e.timestamp.clone(),
        previous_digest: None,
        changed: None,
        enrichment: None,
        notice: None,
        trace_parent: None,
        trace_state: None,
        received_at,
        original: raw.clone(),
    })
}

/// OCI distribution tags: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
fn valid_tag(tag: &str) -> bool {
    let mut bytes = tag.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
    first_ok
        && tag.len() <= MAX_TAG_LEN
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// OCI digests: `algorithm:encoded`, e.g. `sha256:` and 64 hex characters.
fn valid_digest(digest: &str) -> bool {
    let Some((algorithm, encoded)) = digest.split_once(':') else {
        return false;
    };
    digest.len() <= 255
        && !algorithm.is_empty()
        && algorithm
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b))
        && !encoded.is_empty()
        && encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"=_-".contains(&b))
}

/// Distribution repository names: lowercase path components separated by `/`.
fn check_repository(repository: &str) -> Result<(), String> {
    if repository.is_empty() {
        return Err("target.repository is empty".into());
    }
    if repository.len() > MAX_REPOSITORY_LEN {
        return Err(format!(
            "target.repository is longer than {MAX_REPOSITORY_LEN} characters"
        ));
    }
    let valid_component = |c: &str| {
        !c.is_empty()
            && c.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
    };
    if !repository.split('/').all(valid_component) {
        return Err(format!(
            "target.repository `{repository}` is not a valid repository name"
        ));
    }
    Ok(())
}

/// Maps (action, target) to an event type.
fn classify(action: &str, t: &Target) -> Result<EventType, String> {
    let manifest = is_manifest(t);
    Ok(match action {
        // By digest alone (a platform manifest before its index, a signature): a part of
        // an image, not the push a deploy tool waits for.
        "push" if manifest && t.tag.as_deref().is_none_or(str::is_empty) => {
            EventType::ManifestPushed
        }
        "push" if manifest => EventType::ImagePushed,
        "push" => EventType::BlobPushed,
        "pull" if manifest => EventType::ImagePulled,
        "pull" => EventType::BlobPulled,
        "mount" if manifest => EventType::ImageMounted,
        "mount" => EventType::BlobMounted,
        // distribution 3.x: a whole repository deleted carries only the repository.
        "delete" if t.digest.is_none() && t.tag.is_none() => EventType::RepositoryDeleted,
        // By digest, or a tag deletion carrying `tag`. A blob deletion looks the same
        // (digest and repository only) and is reported as an image deletion.
        "delete" => EventType::ImageDeleted,
        other => return Err(format!("unknown action `{other}`")),
    })
}

/// Manifest or blob? The URL says it most reliably; then the tag; then the media type.
fn is_manifest(t: &Target) -> bool {
    if let Some(url) = &t.url {
        if url.contains("/manifests/") {
            return true;
        }
        if url.contains("/blobs/") {
            return false;
        }
    }
    t.tag.is_some()
        || t.media_type
            .as_deref()
            .is_some_and(|m| MANIFEST_MEDIA_TYPES.contains(&m))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by `fuzz/` (target `envelope`): serde reads a struct from a JSON array.
    #[test]
    fn arrays_are_not_envelopes_or_events() {
        let ids = || "evt_x".to_owned();
        for body in ["[[]]", " [[{\"id\":\"x\"}]]"] {
            assert_eq!(
                parse(body.as_bytes(), "default", 1, 100, ids).err(),
                Some(EnvelopeError::NoEvents),
                "{body}"
            );
        }
        let positional = r#"{"events":[["x","2026-11-25T01:16:56Z","push",{"repository":"a"}]]}"#;
        let parsed = parse(positional.as_bytes(), "default", 1, 100, ids).expect("envelope");
        assert!(parsed.events.is_empty());
        assert_eq!(
            parsed.rejected[0].reason,
            "an event and its `target` must be JSON objects"
        );
        assert_eq!(
            parse_one(r#"{"events":[{"id":"x","action":"push","target":["acme/app"]}]}"#),
            Err("an event and its `target` must be JSON objects".into())
        );
    }

    fn parse_one(json: &str) -> Result<Event, String> {
        let parsed = parse(json.as_bytes(), "default", 1, 100, || "evt_x".into())
            .map_err(|e| e.to_string())?;
        match (parsed.events.first(), parsed.rejected.first()) {
            (Some(e), None) => Ok(e.clone()),
            (_, Some(r)) => Err(r.reason.clone()),
            _ => Err("no events".into()),
        }
    }

    #[test]
    fn envelope_errors() {
        let err = |b: &str| parse(b.as_bytes(), "s", 0, 10, String::new).expect_err(b);
        assert!(matches!(err("{nope"), EnvelopeError::Malformed(_)));
        assert_eq!(err("{}"), EnvelopeError::NoEvents);
        assert!(matches!(
            err("{\"events\": 3}"),
            EnvelopeError::Malformed(_)
        ));
        let many = format!("{{\"events\": [{}]}}", ["{}"; 11].join(","));
        assert_eq!(
            err(&many),
            EnvelopeError::TooManyEvents {
                count: 11,
                limit: 10
            }
        );
    }

    #[test]
    fn a_repository_delete_has_only_the_repository() {
        let e = parse_one(
            r#"{"events":[{"id":"r1","action":"delete","target":{"repository":"acme/app"}}]}"#,
        )
        .expect("valid");
        assert_eq!(e.kind, EventType::RepositoryDeleted);
        assert_eq!(e.repository, "acme/app");
    }

    #[test]
    fn bad_events_say_why() {
        let reason = |target: &str| {
            parse_one(&format!(
                r#"{{"events":[{{"id":"a","action":"push","target":{target}}}]}}"#
            ))
            .expect_err(target)
        };
        assert!(reason(r#"{"repository":""}"#).contains("empty"));
        assert!(reason(r#"{"repository":"Acme/App"}"#).contains("not a valid repository"));
        assert!(reason(r#"{"repository":"a//b"}"#).contains("not a valid repository"));
        assert!(reason(r#"{"digest":"sha256:1"}"#).contains("repository"));
        let no_target =
            parse_one(r#"{"events":[{"id":"a","action":"push"}]}"#).expect_err("no target");
        assert!(no_target.contains("target"), "{no_target}");
        let odd =
            parse_one(r#"{"events":[{"id":"a","action":"frob","target":{"repository":"a"}}]}"#)
                .expect_err("unknown action");
        assert!(odd.contains("frob"));
    }

    #[test]
    fn ids_tags_and_digests_are_checked() {
        let with = |id: &str, target: &str| {
            parse_one(&format!(
                r#"{{"events":[{{"id":{id},"action":"push","target":{target}}}]}}"#
            ))
        };
        let tag = |t: &str| with("\"a\"", &format!(r#"{{"repository":"a","tag":{t}}}"#));
        assert!(tag("\"1.0\"").is_ok() && tag("\"v1_2-rc.3\"").is_ok() && tag("\"_x\"").is_ok());
        for bad in [
            "\"\"",
            "\".hidden\"",
            "\"-x\"",
            "\"a b\"",
            "\"a\\u0000b\"",
            "\"a/b\"",
        ] {
            assert!(
                tag(bad).expect_err(bad).contains("not a valid tag"),
                "{bad}"
            );
        }
        assert!(tag(&format!("\"{}\"", "a".repeat(129))).is_err());
        let digest = |d: &str| with("\"a\"", &format!(r#"{{"repository":"a","digest":{d}}}"#));
        assert!(digest("\"sha256:ab09\"").is_ok());
        for bad in ["\"ab09\"", "\"sha256:\"", "\"sha256:a b\"", "\"SHA256:ab\""] {
            assert!(
                digest(bad).expect_err(bad).contains("not a valid digest"),
                "{bad}"
            );
        }
        let repo = r#"{"repository":"a"}"#;
        assert!(
            with("\"x\\u0001y\"", repo)
                .expect_err("control")
                .contains("control")
        );
        assert!(with(&format!("\"{}\"", "i".repeat(257)), repo).is_err());
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let e = parse_one(
            r#"{"events":[{"id":"a","action":"push","newField":1,"target":{"repository":"a","tag":"1","x":[]}}]}"#,
        )
        .expect("valid");
        assert_eq!(e.kind, EventType::ImagePushed);
    }

    #[test]
    fn a_manifest_pushed_by_digest_alone_is_a_manifest_push_not_an_image_push() {
        let by_digest = r#"{"events":[{"id":"a","action":"push","target":{"repository":"acme/multi",
            "mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:ab09",
            "url":"http://r/v2/acme/multi/manifests/sha256:ab09"}}]}"#;
        assert_eq!(
            parse_one(by_digest).expect("valid").kind,
            EventType::ManifestPushed
        );
        let tagged = by_digest.replace(r#""digest":"#, r#""tag":"v2","digest":"#);
        assert_eq!(
            parse_one(&tagged).expect("valid").kind,
            EventType::ImagePushed
        );
    }
}
