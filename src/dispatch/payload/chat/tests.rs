use serde_json::Value;

use super::*;
use crate::dispatch::payload::{Format, render, tests::event};
use crate::enrichment::{Enrichment, Facts};

fn options(link: Option<&str>, mention: Option<&str>) -> PayloadOptions {
    PayloadOptions {
        chat_link: link.map(str::to_owned),
        chat_mention: mention.map(str::to_owned),
        ..PayloadOptions::default()
    }
}

fn enriched() -> Event {
    let mut e = event();
    e.digest = Some(format!("sha256:{}", "0123456789abcdef".repeat(4)));
    e.previous_digest = Some(format!("sha256:{}", "fedcba9876543210".repeat(4)));
    e.changed = Some(true);
    e.enrichment = Some(Enrichment::Complete(Box::new(Facts {
        platforms: vec!["linux/amd64".into(), "linux/arm64".into()],
        revision: Some("4f2c1e9".into()),
        ..Facts::default()
    })));
    e
}

#[test]
fn a_push_says_what_to_what_by_whom() {
    let s = Summary::of(&enriched(), &PayloadOptions::default());
    assert_eq!(s.title, "Pushed acme/tools/app:1.4");
    assert_eq!(
        s.reference.as_deref(),
        Some(
            "registry.example:5000/acme/tools/app:1.4@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
        )
    );
    let facts: Vec<(&str, &str)> = s
        .facts
        .iter()
        .map(|f| (f.label, f.value.as_str()))
        .collect();
    assert_eq!(
        facts,
        [
            ("Digest", "sha256:0123456789ab"),
            ("By", "alice"),
            ("Platforms", "linux/amd64, linux/arm64"),
            ("Revision", "4f2c1e9"),
            ("Replaces", "sha256:fedcba987654"),
        ]
    );
    assert_eq!(s.tone, Tone::Good);
    assert_eq!(s.time, "2026-11-25T01:16:56.986524926Z");
}

#[test]
fn titles_per_event() {
    let opts = PayloadOptions::default();
    let mut e = event();
    e.changed = Some(false);
    assert_eq!(
        Summary::of(&e, &opts).title,
        "Pushed acme/tools/app:1.4 (unchanged)"
    );
    e.kind = EventType::ImageDeleted;
    e.tag = None;
    let s = Summary::of(&e, &opts);
    assert_eq!(s.title, "Deleted acme/tools/app@sha256:abc");
    assert_eq!(s.tone, Tone::Removed);
    e.kind = EventType::RepositoryDeleted;
    e.digest = None;
    let s = Summary::of(&e, &opts);
    assert_eq!(s.title, "Deleted repository acme/tools/app");
    assert_eq!(s.reference, None);
    e.kind = EventType::Ping;
    let s = Summary::of(&e, &opts);
    assert!(
        s.title.starts_with("Test message from hookline"),
        "{}",
        s.title
    );
    assert_eq!(s.reference, None);
}

#[test]
fn replaces_only_when_the_tag_changed() {
    let mut e = enriched();
    e.changed = Some(false);
    let s = Summary::of(&e, &PayloadOptions::default());
    assert!(s.facts.iter().all(|f| f.label != "Replaces"));
}

#[test]
fn clip_cuts_at_characters_with_an_ellipsis_and_flattens_lines() {
    assert_eq!(clip("abc", 3), "abc");
    assert_eq!(clip("abcd", 3), "ab…");
    assert_eq!(clip("äöüß", 3), "äö…");
    assert_eq!(clip("a\nb\tc", 10), "a b c");
    assert_eq!(clip("", 3), "");
}

#[test]
fn oversized_inputs_are_capped() {
    let mut e = enriched();
    e.tag = Some("t".repeat(10_000));
    e.actor = Some("a".repeat(10_000));
    if let Some(Enrichment::Complete(facts)) = &mut e.enrichment {
        facts.platforms = (0..200).map(|i| format!("linux/arch{i}")).collect();
    }
    let s = Summary::of(&e, &options(None, Some(&"m".repeat(10_000))));
    assert_eq!(s.title.chars().count(), TITLE_MAX);
    assert!(s.title.ends_with('…'));
    assert_eq!(
        s.reference.as_deref().map(|r| r.chars().count()),
        Some(REFERENCE_MAX)
    );
    assert!(s.facts.iter().all(|f| f.value.chars().count() <= VALUE_MAX));
    let platforms = s
        .facts
        .iter()
        .find(|f| f.label == "Platforms")
        .map(|f| &f.value);
    assert!(
        platforms.is_some_and(|p| p.ends_with("and 192 more")),
        "{platforms:?}"
    );
    assert_eq!(s.mention.map(|m| m.chars().count()), Some(MENTION_MAX));
}

#[test]
fn links_fill_placeholders_encoded_and_skip_missing_values() {
    let e = event();
    assert_eq!(
        fill_link(
            "https://ui.example/{namespace}/{name}/tags/{tag}?d={digest}",
            &e
        )
        .as_deref(),
        Some("https://ui.example/acme/tools/app/tags/1.4?d=sha256%3Aabc")
    );
    assert_eq!(
        fill_link("https://{registry}/r/{repository}", &e).as_deref(),
        Some("https://registry.example%3A5000/r/acme/tools/app")
    );
    let mut untagged = e.clone();
    untagged.tag = None;
    assert_eq!(fill_link("https://ui/{tag}", &untagged), None);
    assert_eq!(fill_link("https://ui/{nope}", &e), None);
}

#[test]
fn link_templates_are_checked() {
    assert!(check_link_template("https://ui.example/{repository}/tags/{tag}").is_ok());
    assert!(check_link_template("http://ui/{digest}").is_ok());
    for (bad, says) in [
        ("ui.example/{tag}", "https://"),
        ("https://ui/{tags}", "unknown placeholder {tags}"),
        ("https://ui/{tag", "without its"),
        ("javascript:alert(1)", "https://"),
    ] {
        let error = check_link_template(bad).expect_err(bad);
        assert!(error.contains(says), "{bad}: {error}");
    }
}

fn body(format: Format, e: &Event, o: &PayloadOptions) -> Value {
    let m = render(format, o, e);
    assert_eq!(m.content_type, "application/json");
    serde_json::from_slice(&m.body).expect("json")
}

#[test]
fn slack_escapes_values_and_keeps_the_mention() {
    let mut e = enriched();
    e.actor = Some("<!channel> & co".into());
    let v = body(
        Format::Slack,
        &e,
        &options(Some("https://ui/{tag}"), Some("<!here>")),
    );
    assert_eq!(v["text"], "<!here> Pushed acme/tools/app:1.4");
    let text = v.to_string();
    assert!(text.contains("&lt;!channel&gt; &amp; co"), "{text}");
    assert!(!text.contains("<!channel>"), "{text}");
    let blocks = v["blocks"].as_array().expect("blocks");
    assert_eq!(
        blocks[0]["text"]["text"],
        "<!here> *Pushed acme/tools/app:1.4*"
    );
    assert_eq!(blocks[3]["elements"][0]["url"], "https://ui/1.4");
}

#[test]
fn every_chat_format_names_the_reference_and_the_link() {
    let e = enriched();
    let o = options(Some("https://ui.example/{repository}"), Some("@channel"));
    for format in [
        Format::Slack,
        Format::MsTeams,
        Format::Discord,
        Format::GoogleChat,
        Format::Mattermost,
    ] {
        let text = body(format, &e, &o).to_string();
        for needle in [
            "acme/tools/app:1.4@sha256:0123456789abcdef",
            "sha256:0123456789ab",
            "https://ui.example/acme/tools/app",
            "@channel",
            "linux/arm64",
        ] {
            assert!(text.contains(needle), "{format:?} lacks {needle}: {text}");
        }
        assert!(format.is_chat());
    }
}

#[test]
fn discord_and_teams_shapes() {
    let e = enriched();
    let v = body(Format::Discord, &e, &PayloadOptions::default());
    assert!(v.get("content").is_none(), "no mention, no content");
    assert_eq!(v["embeds"][0]["color"], 0x2EB67D);
    assert_eq!(
        v["embeds"][0]["fields"][0]["value"],
        "`sha256:0123456789ab`"
    );
    let v = body(Format::MsTeams, &e, &PayloadOptions::default());
    assert_eq!(v["type"], "message");
    let card = &v["attachments"][0];
    assert_eq!(
        card["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert_eq!(card["content"]["version"], "1.5");
    assert!(
        card["content"].get("actions").is_none(),
        "no link, no action"
    );
}
