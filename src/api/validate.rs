//! Input rules of the API: every check that answers INVALID_ARGUMENT, as pure functions.
//!
//! Each check records problems in [`Violations`] under the request's field path
//! (`webhook.url`, `webhook.repositories[2]`) and never quotes a secret. Glob syntax
//! and event type names are the dispatcher's own (`matcher::compile_filters`), so what
//! the API accepts is exactly what fan-out can use.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use axum::http::HeaderName;

use super::auth::within;
use super::convert::{event_type_from_proto, format_from_proto};
use super::error::Violations;
use super::proto;

mod headers;
mod identity;
mod payload;
use crate::config::ApiConfig;
use crate::dispatch::matcher::compile_filters;
use crate::dispatch::sign;
use crate::dispatch::ssrf::Guard;
use crate::event::EventType;
use crate::secret::Secret;
pub(crate) use payload::{expand_preset, template_field};

/// Longest accepted URL.
pub(crate) const MAX_URL: usize = 2048;
/// Longest accepted name.
pub(crate) const MAX_NAME: usize = 128;
/// Longest accepted glob.
pub(crate) const MAX_GLOB: usize = 255;
/// Longest custom header name.
pub(crate) const MAX_HEADER_NAME: usize = 128;
/// Longest custom header value.
pub(crate) const MAX_HEADER_VALUE: usize = 4096;
/// Most bytes of all custom header names and values together.
pub(crate) const MAX_HEADERS_BYTES: usize = 16 * 1024;
/// Longest list filter text.
pub(crate) const MAX_FILTER: usize = 255;
/// Page of ListWebhooks when the request names none (or the largest, if smaller).
pub(crate) const DEFAULT_PAGE: i64 = 50;
/// Longest grace period of a rotated-out secret.
pub(crate) const MAX_GRACE: Duration = Duration::from_secs(30 * 24 * 3600);
/// Grace period when the request names none.
pub(crate) const DEFAULT_GRACE: Duration = Duration::from_secs(24 * 3600);

/// Headers hookline sets itself, and hop-by-hop headers that describe a connection
/// rather than a request; `webhook-*` is refused as a whole.
const RESERVED_HEADERS: [&str; 14] = [
    "host",
    "content-length",
    "content-type",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
    "expect",
];

/// A webhook's user-settable fields in stored form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fields {
    pub name: String,
    pub url: String,
    pub event_types: Vec<String>,
    pub repositories: Vec<String>,
    pub tags: Vec<String>,
    pub format: String,
    pub headers: BTreeMap<String, String>,
    pub signature_header: Option<String>,
    pub payload_options: crate::store::PayloadOptions,
    pub max_concurrency: Option<i64>,
    pub rate_limit_milli: Option<i64>,
    pub client_identity: Option<crate::store::ClientIdentity>,
    pub oauth: Option<crate::store::OAuthClient>,
    pub plain_headers: Vec<String>,
}

/// The most requests in flight an owner may allow one webhook.
pub(crate) const MAX_CONCURRENCY: i32 = 10_000;
/// The highest rate limit an owner may set, deliveries per second.
pub(crate) const MAX_RATE_LIMIT: f64 = 100_000.0;

/// The owner's limits: a ceiling on requests in flight, and deliveries per second (stored
/// in thousandths).
fn owner_limits(w: &proto::Webhook, v: &mut Violations) -> (Option<i64>, Option<i64>) {
    let concurrency = w.max_concurrency.filter(|n| {
        let ok = (1..=MAX_CONCURRENCY).contains(n);
        if !ok {
            v.add(
                "webhook.max_concurrency",
                format!("must be between 1 and {MAX_CONCURRENCY}"),
            );
        }
        ok
    });
    let rate = w.rate_limit.and_then(|r| {
        let milli = (r * 1000.0).round();
        if !r.is_finite() || r <= 0.0 || r > MAX_RATE_LIMIT {
            v.add(
                "webhook.rate_limit",
                format!("deliveries per second: more than 0 and at most {MAX_RATE_LIMIT}"),
            );
            None
        } else if milli < 1.0 {
            v.add(
                "webhook.rate_limit",
                "at least 0.001 (one delivery in 1000 s)",
            );
            None
        } else {
            Some(milli as i64)
        }
    });
    (concurrency.map(i64::from), rate)
}

/// Checks every user-settable field of `w` for a webhook in `namespace`.
pub(crate) fn fields(
    w: &proto::Webhook,
    namespace: &str,
    limits: &ApiConfig,
    v: &mut Violations,
) -> Fields {
    name(&w.name, v);
    url(&w.url, v);
    let event_types = event_types(&w.event_types, v);
    let max_globs = limits.max_filters_per_webhook;
    globs(
        "webhook.repositories",
        &w.repositories,
        Some(namespace),
        max_globs,
        v,
    );
    globs("webhook.tags", &w.tags, None, max_globs, v);
    let bus = crate::dispatch::bus::is_bus(&w.url);
    let format = match format_from_proto(w.payload_format) {
        // A bus carries CloudEvents unless the owner says otherwise.
        Some(_) if bus && w.payload_format == proto::PayloadFormat::Unspecified as i32 => {
            "cloudevents".to_owned()
        }
        Some(format) if bus && crate::dispatch::payload::Format::parse(format).is_chat() => {
            v.add(
                "webhook.payload_format",
                "a chat format posts to the chat service's https URL, not to a bus",
            );
            format.to_owned()
        }
        Some(format) => format.to_owned(),
        None => {
            v.add(
                "webhook.payload_format",
                format!("unknown payload format {}", w.payload_format),
            );
            String::new()
        }
    };
    notice_format(&format, &event_types, v);
    headers::check(&w.headers, limits.max_custom_headers, v);
    let plain_headers = headers::plain(&w.plain_headers, &w.headers, v);
    signature_header(&w.signature_header, &w.headers, v);
    let (max_concurrency, rate_limit_milli) = owner_limits(w, v);
    let payload_options = super::convert::options_from_proto(w.payload_options.as_ref());
    payload::chat_options(&payload_options, v);
    let custom = super::convert::headers(&w.headers);
    payload::template(
        &format,
        &payload_options,
        &custom,
        &event_types,
        namespace,
        v,
    );
    let client_identity =
        identity::client_identity(&w.client_certificate, &w.client_key, &w.url, v);
    let oauth = identity::oauth(w.oauth.as_ref(), &w.url, v);
    Fields {
        max_concurrency,
        rate_limit_milli,
        client_identity,
        oauth,
        plain_headers,
        name: w.name.clone(),
        url: w.url.clone(),
        event_types,
        repositories: w.repositories.clone(),
        tags: w.tags.clone(),
        format,
        headers: custom,
        signature_header: (!w.signature_header.is_empty()).then(|| w.signature_header.clone()),
        payload_options,
    }
}

/// Longest GitHub-style signature header name.
pub(crate) const MAX_SIGNATURE_HEADER: usize = 64;

/// The optional GitHub-style signature header's name: an HTTP token, not one hookline
/// sets, and not a custom header's name too (one of the two values would be lost).
fn signature_header(name: &str, custom: &HashMap<String, String>, v: &mut Violations) {
    const FIELD: &str = "webhook.signature_header";
    if name.is_empty() {
        return;
    }
    let lower = name.to_ascii_lowercase();
    if name.len() > MAX_SIGNATURE_HEADER {
        v.add(FIELD, format!("at most {MAX_SIGNATURE_HEADER} characters"));
    } else if HeaderName::from_bytes(name.as_bytes()).is_err() {
        v.add(
            FIELD,
            "not a valid header name (letters, digits and !#$%&'*+-.^_`|~ only)",
        );
    } else if RESERVED_HEADERS.contains(&lower.as_str()) || lower.starts_with("webhook-") {
        v.add(FIELD, "set by hookline; choose another name");
    } else if custom.keys().any(|k| k.eq_ignore_ascii_case(name)) {
        v.add(
            FIELD,
            "also a custom header name; remove that header or choose another name",
        );
    }
}

fn name(name: &str, v: &mut Violations) {
    let chars = name.chars().count();
    if name.trim().is_empty() {
        v.add("webhook.name", "required");
    } else if chars > MAX_NAME {
        v.add(
            "webhook.name",
            format!("at most {MAX_NAME} characters (got {chars})"),
        );
    } else if name.chars().any(char::is_control) {
        v.add("webhook.name", "must not contain control characters");
    }
}

fn url(text: &str, v: &mut Violations) {
    const FIELD: &str = "webhook.url";
    if text.is_empty() {
        return v.add(FIELD, "required");
    }
    if text.len() > MAX_URL {
        return v.add(
            FIELD,
            format!("at most {MAX_URL} characters (got {})", text.len()),
        );
    }
    if text.contains(super::convert::REDACTED) {
        return v.add(
            FIELD,
            "this is the redacted form hookline shows of a chat webhook's URL: send the whole URL, or leave url out of update_mask to keep it",
        );
    }
    match reqwest::Url::parse(text) {
        Err(error) => v.add(FIELD, format!("not a valid URL: {error}")),
        Ok(parsed) if crate::dispatch::bus::is_bus(parsed.as_str()) => {
            if let Err(problem) = crate::dispatch::bus::check(&parsed) {
                v.add(FIELD, problem);
            }
        }
        Ok(parsed) if !matches!(parsed.scheme(), "http" | "https") => v.add(
            FIELD,
            "scheme must be http or https (or amqp, amqps, mqtt, mqtts, nats, tls, redis, rediss for a message bus)",
        ),
        Ok(parsed) if parsed.host_str().is_none_or(str::is_empty) => {
            v.add(FIELD, "host is missing")
        }
        Ok(_) => {}
    }
}

fn event_types(values: &[i32], v: &mut Violations) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for (i, value) in values.iter().enumerate() {
        match event_type_from_proto(*value) {
            Some(kind) => {
                if !names.iter().any(|n| n == kind.as_str()) {
                    names.push(kind.as_str().to_owned());
                }
            }
            None => v.add(
                format!("webhook.event_types[{i}]"),
                format!("unknown event type {value}"),
            ),
        }
    }
    names
}

/// A notice destination takes a format that can say what a notice is about: the registry
/// formats (Docker Hub's, Harbor's, distribution's) describe images only.
fn notice_format(format: &str, event_types: &[String], v: &mut Violations) {
    use crate::dispatch::payload::Format;
    let notices = event_types
        .iter()
        .any(|t| EventType::parse(t).is_some_and(EventType::is_notice));
    if notices
        && matches!(
            Format::parse(format),
            Format::DockerHub | Format::Harbor | Format::Distribution
        )
    {
        v.add(
            "webhook.payload_format",
            format!(
                "{format} describes images only and cannot carry owner notices (webhook.*, delivery.failed): use hookline, cloudevents, a chat format or a template"
            ),
        );
    }
}

/// Repository globs (`confine` = the namespace) or tag globs (`confine` = None).
fn globs(field: &str, patterns: &[String], confine: Option<&str>, max: usize, v: &mut Violations) {
    if patterns.len() > max {
        return v.add(
            field,
            format!("at most {max} patterns (got {})", patterns.len()),
        );
    }
    for (i, pattern) in patterns.iter().enumerate() {
        let at = format!("{field}[{i}]");
        if pattern.chars().count() > MAX_GLOB {
            v.add(at, format!("at most {MAX_GLOB} characters"));
            continue;
        }
        let one = std::slice::from_ref(pattern);
        let compiled = match confine {
            Some(_) => compile_filters(&[], one, &[]),
            None => compile_filters(&[], &[], one),
        };
        if let Err(error) = compiled {
            // The matcher's message starts with its own field name; keep only the reason.
            let text = error.to_string();
            let reason = text
                .split_once(": ")
                .map_or(text.as_str(), |(_, reason)| reason);
            v.add(at, reason.to_owned());
            continue;
        }
        if let Some(namespace) = confine
            && !confined(pattern, namespace)
        {
            v.add(
                at,
                format!(
                    "pattern {pattern:?} reaches outside the namespace: it must be `{namespace}` or start with `{namespace}/`"
                ),
            );
        }
    }
}

/// Whether a repository glob can only match repositories inside `namespace`: its
/// literal prefix (everything before the first glob metacharacter) must be the
/// namespace itself (with no metacharacter at all) or start with `namespace/`.
pub(crate) fn confined(pattern: &str, namespace: &str) -> bool {
    if namespace.is_empty() {
        return true;
    }
    let literal_end = pattern
        .find(['*', '?', '[', ']', '{', '}', '\\'])
        .unwrap_or(pattern.len());
    let literal = &pattern[..literal_end];
    if literal_end == pattern.len() && literal == namespace {
        return true;
    }
    literal
        .strip_prefix(namespace)
        .is_some_and(|rest| rest.starts_with('/'))
}

/// A user-supplied signing secret: `whsec_` and the standard base64 of 24 to 64 bytes.
/// The description never includes the value.
pub(crate) fn secret(field: &str, value: &str, v: &mut Violations) -> Option<Secret> {
    let secret = Secret::new(value);
    let ok = value.starts_with(sign::SECRET_PREFIX)
        && sign::secret_key(&secret).is_ok_and(|key| (24..=64).contains(&key.len()));
    if ok {
        Some(secret)
    } else {
        v.add(
            field,
            "must be `whsec_` followed by the standard base64 of 24 to 64 random bytes (or empty, to have one generated)",
        );
        None
    }
}

/// A namespace as tokens and webhooks use it: `acme`, `acme/tools`. True if valid.
pub(crate) fn namespace(field: &str, ns: &str, v: &mut Violations) -> bool {
    let ok = ns.len() <= 255
        && ns.split('/').all(|segment| {
            !segment.is_empty()
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        });
    if !ok {
        v.add(
            field,
            "must be a repository path prefix like `acme` or `acme/tools` (lowercase letters, digits, `.`, `_`, `-`; segments separated by `/`)",
        );
    }
    ok
}

/// Whether a namespace token's caller may create in `ns` (at or below its own).
pub(crate) fn creatable(scope: &str, ns: &str) -> bool {
    !ns.is_empty() && within(scope, ns)
}

/// The page size of a list request, at most `max`.
pub(crate) fn page_size(value: i32, max: u32, v: &mut Violations) -> i64 {
    let max = i64::from(max);
    match i64::from(value) {
        0 => DEFAULT_PAGE.min(max),
        n if (1..=max).contains(&n) => n,
        n => {
            v.add(
                "page_size",
                format!("must be between 1 and {max} (got {n})"),
            );
            DEFAULT_PAGE.min(max)
        }
    }
}

/// The SSRF check at registration: the URL's IP literal, or every address its host
/// resolves to now, must be public or allow-listed. INVALID_ARGUMENT on `webhook.url`
/// otherwise (quoting the host and address, never the path or query).
pub(crate) async fn destination(guard: &Guard, url: &str) -> Result<(), tonic::Status> {
    vetted(guard, "webhook.url", url).await
}

/// The guard's verdict on `url` (the webhook's, or its token endpoint's), as `field`'s.
pub(crate) async fn vetted(guard: &Guard, field: &str, url: &str) -> Result<(), tonic::Status> {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return Err(Violations::one(field, "not a valid URL"));
    };
    guard
        .vet_url(&parsed)
        .await
        .map_err(|error| Violations::one(field, error.to_string()))
}

/// An optional list filter text ("" means no filter).
pub(crate) fn filter_text(field: &str, value: &str, v: &mut Violations) -> Option<String> {
    if value.chars().count() > MAX_FILTER {
        v.add(field, format!("at most {MAX_FILTER} characters"));
    }
    (!value.is_empty()).then(|| value.to_owned())
}

/// The grace period of a rotation.
pub(crate) fn grace(value: Option<&prost_types::Duration>, v: &mut Violations) -> Duration {
    let Some(d) = value else {
        return DEFAULT_GRACE;
    };
    if d.seconds < 0 || d.nanos < 0 || d.nanos >= 1_000_000_000 {
        v.add("grace_period", "must not be negative");
        return DEFAULT_GRACE;
    }
    let grace = Duration::new(d.seconds as u64, d.nanos as u32);
    if grace > MAX_GRACE {
        v.add("grace_period", "at most 30 days");
        return DEFAULT_GRACE;
    }
    grace
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> proto::Webhook {
        proto::Webhook {
            name: "deploy".into(),
            url: "https://example.com/hook?token=x".into(),
            event_types: vec![proto::EventType::ImagePushed as i32],
            repositories: vec!["acme/*".into()],
            tags: vec!["v*".into()],
            headers: [("X-Team".to_owned(), "deploy".to_owned())].into(),
            ..Default::default()
        }
    }

    type Change = Box<dyn FnOnce(&mut proto::Webhook)>;

    /// The default limits.
    fn limits() -> ApiConfig {
        crate::config::Config::resolve(Default::default(), Default::default())
            .expect("defaults")
            .api
    }

    /// The fields named by the violations of `w` in namespace `acme`.
    fn problems(change: impl FnOnce(&mut proto::Webhook)) -> String {
        let mut w = valid();
        change(&mut w);
        let mut v = Violations::default();
        fields(&w, "acme", &limits(), &mut v);
        match v.check() {
            Ok(()) => String::new(),
            Err(status) => status.message().to_owned(),
        }
    }

    #[test]
    fn a_valid_webhook_passes() {
        assert_eq!(problems(|_| {}), "");
        let mut v = Violations::default();
        let f = fields(&valid(), "acme", &limits(), &mut v);
        assert_eq!(f.format, "hookline");
        assert_eq!(f.event_types, ["image.pushed"]);
        assert_eq!(f.signature_header, None);
        let mut w = valid();
        w.signature_header = "X-Hub-Signature-256".into();
        let f = fields(&w, "acme", &limits(), &mut v);
        assert_eq!(f.signature_header.as_deref(), Some("X-Hub-Signature-256"));
        assert!(v.check().is_ok());
    }

    #[test]
    fn each_rule_names_its_field() {
        let mut cases: Vec<(&str, Change)> = vec![
            ("webhook.name: required", Box::new(|w| w.name.clear())),
            (
                "webhook.name: at most 128",
                Box::new(|w| w.name = "n".repeat(129)),
            ),
            ("webhook.url: required", Box::new(|w| w.url.clear())),
            (
                "webhook.url: scheme must be http or https (or amqp, amqps, mqtt, mqtts, nats, tls, redis, rediss for a message bus)",
                Box::new(|w| w.url = "ftp://x/y".into()),
            ),
            (
                "webhook.url: not a valid URL",
                Box::new(|w| w.url = "https://".into()),
            ),
            (
                "webhook.url: not a valid URL",
                Box::new(|w| w.url = "no-scheme".into()),
            ),
            (
                "webhook.url: at most 2048",
                Box::new(|w| w.url = format!("https://x/{}", "a".repeat(2048))),
            ),
            (
                "webhook.event_types[1]: unknown event type 42",
                Box::new(|w| w.event_types.push(42)),
            ),
            (
                "webhook.event_types[0]: unknown event type 0",
                Box::new(|w| w.event_types = vec![0]),
            ),
            (
                "webhook.repositories[0]: invalid glob",
                Box::new(|w| w.repositories = vec!["acme/[".into()]),
            ),
            (
                "webhook.repositories[0]: pattern \"other/*\" reaches outside",
                Box::new(|w| w.repositories = vec!["other/*".into()]),
            ),
            (
                "webhook.repositories[0]: pattern \"acme*\" reaches outside",
                Box::new(|w| w.repositories = vec!["acme*".into()]),
            ),
            (
                "webhook.repositories: at most 50",
                Box::new(|w| w.repositories = vec!["acme/x".into(); 51]),
            ),
            (
                "webhook.repositories[0]: at most 255",
                Box::new(|w| w.repositories = vec![format!("acme/{}", "x".repeat(251))]),
            ),
            (
                "webhook.tags[0]: invalid glob",
                Box::new(|w| w.tags = vec!["v{1".into()]),
            ),
            (
                "webhook.tags[0]: invalid glob \"\": empty pattern",
                Box::new(|w| w.tags = vec![String::new()]),
            ),
            (
                "webhook.tags: at most 50",
                Box::new(|w| w.tags = vec!["v".into(); 51]),
            ),
            (
                "webhook.payload_format: unknown payload format 17",
                Box::new(|w| w.payload_format = 17),
            ),
            (
                "webhook.headers: at most 20",
                Box::new(|w| w.headers = (0..21).map(|i| (format!("x-{i}"), "v".into())).collect()),
            ),
            (
                "webhook.headers[\"bad name\"]: not a valid header name",
                Box::new(|w| {
                    w.headers.insert("bad name".into(), "v".into());
                }),
            ),
            (
                "webhook.headers[\"Content-Type\"]: set by hookline",
                Box::new(|w| {
                    w.headers.insert("Content-Type".into(), "text/plain".into());
                }),
            ),
            (
                "webhook.headers[\"Webhook-Signature\"]: set by hookline",
                Box::new(|w| {
                    w.headers.insert("Webhook-Signature".into(), "v1,x".into());
                }),
            ),
            (
                "webhook.headers[\"host\"]: set by hookline",
                Box::new(|w| {
                    w.headers.insert("host".into(), "x".into());
                }),
            ),
            (
                "webhook.headers[\"x-evil\"]: value must be visible",
                Box::new(|w| {
                    w.headers.insert("x-evil".into(), "a\r\nb: c".into());
                }),
            ),
        ];
        cases.extend::<Vec<(&str, Change)>>(vec![
            (
                "webhook.signature_header: not a valid header name",
                Box::new(|w| w.signature_header = "X Signature".into()),
            ),
            (
                "webhook.signature_header: set by hookline",
                Box::new(|w| w.signature_header = "Webhook-Signature".into()),
            ),
            (
                "webhook.signature_header: set by hookline",
                Box::new(|w| w.signature_header = "content-type".into()),
            ),
            (
                "webhook.signature_header: also a custom header name",
                Box::new(|w| w.signature_header = "x-team".into()),
            ),
            (
                "webhook.signature_header: at most 64",
                Box::new(|w| w.signature_header = "x".repeat(65)),
            ),
        ]);
        for (expected, change) in cases {
            let got = problems(change);
            assert!(
                got.starts_with(expected),
                "expected {expected:?}, got {got:?}"
            );
        }
    }

    #[test]
    fn repository_globs_stay_in_the_namespace() {
        for ok in [
            "acme",
            "acme/*",
            "acme/**",
            "acme/tools/app-?",
            "acme/{a,b}",
        ] {
            assert!(confined(ok, "acme"), "{ok}");
        }
        for bad in [
            "acme*",
            "acmecorp/*",
            "*",
            "**",
            "*/app",
            "ac?e/x",
            "{acme,other}/x",
            "acme[/]x",
        ] {
            assert!(!confined(bad, "acme"), "{bad}");
        }
        assert!(
            confined("**", ""),
            "an every-repository webhook may match anything"
        );
    }

    #[test]
    fn secrets_need_the_prefix_and_enough_bytes_and_are_never_quoted() {
        let mut v = Violations::default();
        assert!(secret("secret", sign::generate_secret().expose(), &mut v).is_some());
        // 24 bytes, unpadded base64 accepted.
        assert!(secret("secret", "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", &mut v).is_some());
        assert!(v.check().is_ok());
        for bad in [
            "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0", // no prefix
            "whsec_c2hvcnQ=",                   // 5 bytes
            "whsec_!!!notbase64!!!",
            "whsec_",
        ] {
            let mut v = Violations::default();
            assert!(secret("secret", bad, &mut v).is_none(), "{bad}");
            let message = v.into_status().message().to_owned();
            assert!(message.starts_with("secret: must be `whsec_`"), "{message}");
            assert!(
                !message.contains(bad.trim_start_matches("whsec_")) || bad == "whsec_",
                "{message}"
            );
        }
    }

    #[test]
    fn namespaces_and_pages() {
        let mut v = Violations::default();
        namespace("n", "acme/tools", &mut v);
        assert!(v.check().is_ok());
        for bad in ["", "Acme", "acme/", "/acme", "acme//x", "ac me"] {
            let mut v = Violations::default();
            namespace("n", bad, &mut v);
            assert!(v.check().is_err(), "{bad:?}");
        }
        assert!(creatable("acme", "acme/tools") && creatable("acme", "acme"));
        assert!(!creatable("acme", "acmecorp") && !creatable("acme", ""));
        let mut v = Violations::default();
        assert_eq!(page_size(0, 500, &mut v), 50);
        assert_eq!(page_size(500, 500, &mut v), 500);
        assert!(v.check().is_ok());
        for bad in [-1, 501] {
            let mut v = Violations::default();
            page_size(bad, 500, &mut v);
            assert!(v.into_status().message().starts_with("page_size:"));
        }
    }

    #[test]
    fn grace_periods() {
        let mut v = Violations::default();
        assert_eq!(grace(None, &mut v), DEFAULT_GRACE);
        let zero = prost_types::Duration {
            seconds: 0,
            nanos: 0,
        };
        assert_eq!(grace(Some(&zero), &mut v), Duration::ZERO);
        assert!(v.check().is_ok());
        for bad in [-1, 31 * 24 * 3600] {
            let mut v = Violations::default();
            grace(
                Some(&prost_types::Duration {
                    seconds: bad,
                    nanos: 0,
                }),
                &mut v,
            );
            assert!(v.into_status().message().starts_with("grace_period:"));
        }
    }
}
