use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::*;
use crate::dispatch::payload::sample;
use crate::event::EventType;

fn push() -> Event {
    sample(EventType::ImagePushed, "acme", 1_795_569_430_000)
}

fn compile(body: &str) -> Result<Template, TemplateError> {
    Template::compile(body, None, &BTreeMap::new())
}

fn render(body: &str, e: &Event) -> Result<String, TemplateError> {
    let rendered = compile(body)?.render(e)?;
    Ok(String::from_utf8(rendered.body).expect("utf-8"))
}

/// Rendered as plain text (no JSON check).
fn text(body: &str, e: &Event) -> Result<String, TemplateError> {
    let rendered = Template::compile(body, Some("text/plain"), &BTreeMap::new())?.render(e)?;
    Ok(String::from_utf8(rendered.body).expect("utf-8"))
}

#[test]
fn the_context_is_the_hookline_payload_and_event() {
    let e = push();
    let out = render(
        r#"{"image": {{ image|tojson }}, "tag": {{ tag|tojson }}, "short": {{ digest|short_digest|tojson }},
"platforms": {{ enrichment.platforms|join(",")|tojson }}, "same": {{ (event.id == id)|tojson }},
"repo": "{{ repository|urlencode }}", "type": "{{ type }}", "changed": {{ changed|tojson }}}"#,
        &e,
    )
    .expect("renders");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(
        v["image"],
        "registry.example.com/acme/app:1.4@sha256:6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b"
    );
    assert_eq!(v["tag"], "1.4");
    assert_eq!(v["short"], "sha256:6c3c624b58db");
    assert_eq!(v["platforms"], "linux/amd64,linux/arm64");
    assert_eq!(v["same"], true);
    assert_eq!(v["repo"], "acme/app", "a path keeps its slashes");
    assert_eq!(v["type"], "image.pushed");
    assert_eq!(v["changed"], true);
}

#[test]
fn every_context_field_is_there() {
    let e = push();
    for field in [
        "version",
        "id",
        "type",
        "time",
        "registry",
        "repository",
        "tag",
        "digest",
        "previous_digest",
        "changed",
        "enrichment",
        "image",
        "media_type",
        "size",
        "references",
        "from_repository",
        "actor",
        "source",
        "request",
        "received_at",
        "event",
    ] {
        let out = text(&format!("{{{{ {field} is defined }}}}"), &e)
            .unwrap_or_else(|error| panic!("{field}: {error}"));
        assert_eq!(out, "True", "{field}");
    }
}

#[test]
fn compile_errors_carry_line_and_column() {
    let error = compile("{\n  \"a\": {{ tag |tojson }\n}")
        .err()
        .expect("refused");
    assert_eq!(error.part, Part::Body);
    assert!(
        error.message.starts_with("line 2, column "),
        "{}",
        error.message
    );
    assert!(error.message.contains("syntax error"), "{}", error.message);
    let error = compile("ok\n  {{ tag|nosuchfilter }}")
        .err()
        .expect("refused");
    assert_eq!(
        error.message,
        "line 2, column 10: unknown filter `nosuchfilter` is not allowed in a template"
    );
}

#[test]
fn a_field_the_event_lacks_is_an_error_not_an_empty_string() {
    let mut e = push();
    e.enrichment = None;
    let error = text("{\n{{ enrichment.platforms }}", &e).expect_err("strict");
    assert_eq!(error.part, Part::Body);
    assert!(error.message.starts_with("line 2"), "{}", error.message);
    assert!(text("{% for p in enrichment.platforms %}{% endfor %}", &e).is_err());
    assert!(text("{{ nosuchfield }}", &e).is_err());
    for filtered in [
        "{{ nosuchfield|tojson }}",
        "{{ nosuch|join(',') }}",
        "{{ nosuch|urlencode }}",
    ] {
        assert!(text(filtered, &e).is_err(), "{filtered}");
    }
    // Guarded, it renders.
    assert_eq!(
        text("{{ enrichment.platforms if enrichment else 'none' }}", &e).expect("guarded"),
        "none"
    );
}

#[test]
fn what_could_grow_without_bound_is_refused_at_compile_time() {
    for (template, what) in [
        ("{% set s = tag %}{{ s }}", "`set`"),
        ("{% set s %}x{% endset %}", "`set`"),
        ("{% with s = tag %}{{ s }}{% endwith %}", "`with`"),
        (
            "{% filter tojson %}{{ tag }}{% endfilter %}",
            "a filter block",
        ),
        ("{{ 'x' * 99999999 }}", "`*`"),
        ("{{ 2 ** 64 }}", "`*`"),
        ("{{ tag|center(1000000000) }}", "unknown filter `center`"),
        (
            "{{ tag|replace('', 'xxxxxxxx') }}",
            "unknown filter `replace`",
        ),
        ("{{ lipsum(100000) }}", "a call"),
        (
            "{% for x in references recursive %}{{ loop(x) }}{% endfor %}",
            "a recursive loop",
        ),
        ("{{ tag is divisibleby(3) }}", "unknown test `divisibleby`"),
        ("{% include 'x' %}", "syntax error"),
        ("{% macro m() %}{% endmacro %}", "syntax error"),
    ] {
        let error = compile(template)
            .err()
            .unwrap_or_else(|| panic!("{template} compiles"));
        assert!(
            error.message.contains(what),
            "{template}: {}",
            error.message
        );
    }
}

#[test]
fn a_loop_without_end_runs_out_of_fuel_quickly() {
    let started = Instant::now();
    let error = render(
        "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
        &push(),
    )
    .expect_err("stops");
    assert!(error.message.contains("runs too long"), "{}", error.message);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_body_of_100_mb_stops_at_the_cap() {
    let started = Instant::now();
    let error = render(
        "{% for a in range(100000) %}{{ event|tojson }}{{ event|tojson }}{% endfor %}",
        &push(),
    )
    .expect_err("stops");
    assert_eq!(error.message, "the rendered text is longer than 256 KiB");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_json_content_type_needs_a_json_body() {
    let error = render(r#"{"repository": {{ repository }}}"#, &push()).expect_err("unquoted");
    assert!(error.message.contains("not JSON"), "{}", error.message);
    let form = Template::compile(
        "tag={{ tag|urlencode }}",
        Some("application/x-www-form-urlencoded"),
        &BTreeMap::new(),
    )
    .expect("compiles");
    assert!(!form.is_json());
    assert_eq!(form.render(&push()).expect("renders").body, b"tag=1.4");
}

#[test]
fn content_types_and_headers() {
    for bad in ["json", "text/", "a b/c", "application/json\r\nX: y"] {
        let error = Template::compile("x", Some(bad), &BTreeMap::new())
            .err()
            .expect("refused");
        assert_eq!(error.part, Part::ContentType, "{bad}");
    }
    let headers = BTreeMap::from([
        (
            "Authorization".to_owned(),
            "Bearer token-without-template".to_owned(),
        ),
        ("X-Image".to_owned(), "{{ image }}".to_owned()),
        ("X-Bad".to_owned(), "{{ tag ~ '\\n' }}".to_owned()),
    ]);
    let t = Template::compile("{}", None, &headers).expect("compiles");
    let error = t.render(&push()).expect_err("a line break in a header");
    assert_eq!(error.part, Part::Header("X-Bad".into()));
    let mut headers = headers;
    headers.remove("X-Bad");
    let t = Template::compile("{}", Some("application/vnd.acme+json"), &headers).expect("compiles");
    let r = t.render(&push()).expect("renders");
    assert_eq!(r.content_type, "application/vnd.acme+json");
    assert_eq!(
        r.headers,
        [
            ("Authorization".to_owned(), "Bearer token-without-template".to_owned()),
            (
                "X-Image".to_owned(),
                "registry.example.com/acme/app:1.4@sha256:6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b".to_owned()
            ),
        ]
    );
    let error = Template::compile(
        "{}",
        None,
        &BTreeMap::from([("X".to_owned(), "{{".to_owned())]),
    )
    .err()
    .expect("refused");
    assert_eq!(error.part, Part::Header("X".into()));
}

#[test]
fn every_preset_renders_every_sample() {
    for preset in presets::PRESETS {
        let headers: BTreeMap<String, String> = preset
            .headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let t = Template::compile(preset.body, Some(preset.content_type), &headers)
            .unwrap_or_else(|e| panic!("{}: {e}", preset.name));
        for kind in EventType::ALL {
            t.render(&sample(kind, "acme", 0))
                .unwrap_or_else(|e| panic!("{} {kind}: {e}", preset.name));
        }
    }
    assert_eq!(
        presets::find("github-dispatch").map(|p| p.name),
        Some("github-dispatch")
    );
    assert!(presets::find("nope").is_none());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    /// Whatever a stranger writes, compiling and rendering it answers; it never panics.
    #[test]
    fn arbitrary_templates_never_panic(source in "(\\{\\{|\\}\\}|\\{%|%\\}|[a-z_ .|()~+*'\"0-9\\[\\],=<>!-]|for |in |if |endfor|endif|tojson|range|event|tag){0,40}") {
        if let Ok(t) = compile(&source) {
            let _ = t.render(&push());
        }
    }
}
