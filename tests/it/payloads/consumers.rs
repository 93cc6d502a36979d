//! The dockerhub and harbor formats, read the way each consumer in consumers.md reads
//! them: one test per consumer endpoint, over every fixture the format carries (the tag
//! pushes), checking each field it reads is present, of the right JSON type, and right
//! for the fixture.

use hookline::dispatch::payload::{Format, delivers};
use hookline::store::PayloadOptions;
use serde_json::Value;

use super::{Fixture, fixtures, integer, optional_bool, render, render_with, string};

/// The fixtures a format delivers, with their rendered bodies (content type checked).
fn carried(format: Format) -> Vec<(Fixture, Value)> {
    let out: Vec<(Fixture, Value)> = fixtures()
        .into_iter()
        .filter(|f| delivers(format, &PayloadOptions::default(), &f.event))
        .map(|f| {
            let (content_type, body) = render(format, &f.event);
            assert_eq!(content_type, "application/json", "{}", f.name);
            (f, body)
        })
        .collect();
    assert_eq!(out.len(), 5, "the five tag pushes");
    out
}

/// `registry/repository` as the fixture's registry serves it.
fn host_repo(f: &Fixture) -> String {
    let e = &f.envelope["events"][0];
    format!(
        "{}/{}",
        e["request"]["host"].as_str().expect("host"),
        e["target"]["repository"].as_str().expect("repo")
    )
}

fn tag(f: &Fixture) -> &str {
    f.envelope["events"][0]["target"]["tag"]
        .as_str()
        .expect("tag")
}

// --- dockerhub (consumers.md §2.2) ---

/// Type rules every Docker Hub consumer relies on: integers are integers, booleans
/// booleans, no `callback_url` (Jenkins would POST build results to it).
fn dockerhub_types(v: &Value) {
    assert!(v.get("callback_url").is_none(), "no callback_url");
    integer(v, "/push_data/pushed_at");
    for path in ["/repository/star_count", "/repository/comment_count"] {
        integer(v, path);
    }
    for path in [
        "/repository/is_official",
        "/repository/is_trusted",
        "/repository/is_private",
    ] {
        optional_bool(v, path);
    }
    assert!(
        v["push_data"]["images"].is_array(),
        "images is an array (Keel []any)"
    );
    assert!(v["repository"].get("dockerfile").is_none());
}

#[test]
fn flux_dockerhub_receiver() {
    // Flux decodes push_data.tag and repository.repo_name/repo_url (and logs them); CEL
    // filters need type-correct JSON and `application/json`.
    for (f, v) in carried(Format::DockerHub) {
        dockerhub_types(&v);
        assert_eq!(string(&v, "/push_data/tag", true), tag(&f));
        assert_eq!(string(&v, "/repository/repo_name", true), host_repo(&f));
        let url = string(&v, "/repository/repo_url", true);
        assert_eq!(url, format!("http://{}", host_repo(&f)), "{}", f.name);
    }
}

#[test]
fn argo_cd_image_updater_docker_io_webhook() {
    // Argo: push_data.tag (required), repository.repo_name, else namespace + "/" + name.
    for (f, v) in carried(Format::DockerHub) {
        assert_eq!(string(&v, "/push_data/tag", true), tag(&f));
        string(&v, "/repository/repo_name", true);
        let repo = f.event.repository.clone();
        let namespace = string(&v, "/repository/namespace", true);
        let name = string(&v, "/repository/name", true);
        assert_eq!(format!("{namespace}/{name}"), repo, "{}", f.name);
    }
}

#[test]
fn keel_dockerhub_webhook() {
    // Keel: Go ints for pushed_at/date_created/star/comment counts, []any images,
    // repo_name host/path to match a private registry's images, tag required.
    for (f, v) in carried(Format::DockerHub) {
        dockerhub_types(&v);
        assert_eq!(string(&v, "/push_data/tag", true), tag(&f));
        assert_eq!(string(&v, "/repository/repo_name", true), host_repo(&f));
        let pushed_at = integer(&v, "/push_data/pushed_at");
        let ts = f.envelope["events"][0]["timestamp"].as_str().expect("ts");
        let want = time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339)
            .expect("fixture ts")
            .unix_timestamp();
        assert_eq!(pushed_at, want, "{}", f.name);
        string(&v, "/push_data/pusher", false);
    }
}

#[test]
fn jenkins_dockerhub_notification() {
    // Jenkins matches repo_name exactly, reads push_data.tag/pusher/pushed_at (optLong),
    // and must not see a callback_url.
    for (f, v) in carried(Format::DockerHub) {
        dockerhub_types(&v);
        assert_eq!(string(&v, "/repository/repo_name", true), host_repo(&f));
        assert_eq!(string(&v, "/push_data/tag", true), tag(&f));
        let pusher = string(&v, "/push_data/pusher", false);
        let actor = f.envelope["events"][0]["actor"]["name"]
            .as_str()
            .unwrap_or_default();
        assert_eq!(pusher, actor, "{}", f.name);
    }
}

#[test]
fn kargo_dockerhub_receiver() {
    // Kargo normalises repo_name (bare names to docker.io/…), needs the tag, and uses
    // push_data.media_type to tell Helm charts from images.
    for (f, v) in carried(Format::DockerHub) {
        assert_eq!(string(&v, "/repository/repo_name", true), host_repo(&f));
        assert_eq!(string(&v, "/push_data/tag", true), tag(&f));
        let media_type = string(&v, "/push_data/media_type", true);
        assert_eq!(
            media_type, f.envelope["events"][0]["target"]["mediaType"],
            "{}",
            f.name
        );
    }
}

#[test]
fn dockerhub_repo_name_is_bare_when_asked() {
    let bare = PayloadOptions {
        include_host_in_repo_name: Some(false),
        ..Default::default()
    };
    for (f, _) in carried(Format::DockerHub) {
        let (_, v) = render_with(Format::DockerHub, &bare, &f.event);
        assert_eq!(
            string(&v, "/repository/repo_name", true),
            f.event.repository
        );
    }
}

// --- harbor (consumers.md §2.3) ---

/// Rules every Harbor consumer relies on.
fn harbor_common(f: &Fixture, v: &Value) {
    assert_eq!(string(v, "/type", true), "PUSH_ARTIFACT", "{}", f.name);
    integer(v, "/occur_at");
    let resources = v["event_data"]["resources"].as_array().expect("resources");
    assert!(!resources.is_empty());
    assert_eq!(string(v, "/event_data/resources/0/tag", true), tag(f));
    assert_eq!(
        string(v, "/event_data/repository/repo_full_name", true),
        f.event.repository,
        "no host in repo_full_name"
    );
}

#[test]
fn flux_harbor_receiver() {
    // Flux harbor: decodes the payload (type-correct JSON); the secret is a verbatim
    // Authorization header (sent as a custom header, see delivery.rs).
    for (f, v) in carried(Format::Harbor) {
        harbor_common(&f, &v);
        string(&v, "/event_data/resources/0/resource_url", true);
    }
}

#[test]
fn argo_cd_image_updater_harbor_webhook() {
    // Argo: type PUSH_ARTIFACT, registry host taken from resource_url (no scheme),
    // repo_full_name compared to the image path, digest and tag from the resource.
    for (f, v) in carried(Format::Harbor) {
        harbor_common(&f, &v);
        let url = string(&v, "/event_data/resources/0/resource_url", true);
        assert!(!url.contains("://"), "no scheme: {url}");
        let host = url.split('/').next().expect("host");
        assert_eq!(
            host, f.envelope["events"][0]["request"]["host"],
            "{}",
            f.name
        );
        assert_eq!(
            string(&v, "/event_data/resources/0/digest", true),
            f.envelope["events"][0]["target"]["digest"]
        );
    }
}

#[test]
fn keel_harbor_webhook() {
    // Keel: integer occur_at and date_created (when present), the tag from resource_url.
    for (f, v) in carried(Format::Harbor) {
        harbor_common(&f, &v);
        if v["event_data"]["repository"].get("date_created").is_some() {
            integer(&v, "/event_data/repository/date_created");
        }
        let url = string(&v, "/event_data/resources/0/resource_url", true);
        assert_eq!(url, format!("{}:{}", host_repo(&f), tag(&f)), "{}", f.name);
        string(&v, "/operator", false);
    }
}

#[test]
fn kargo_harbor_receiver() {
    // Kargo: PUSH_ARTIFACT only, normalises resource_url, namespace = Harbor project.
    for (f, v) in carried(Format::Harbor) {
        harbor_common(&f, &v);
        let (project, rest) = f.event.repository.split_once('/').expect("project/name");
        assert_eq!(
            string(&v, "/event_data/repository/namespace", true),
            project
        );
        assert_eq!(string(&v, "/event_data/repository/name", true), rest);
        assert_eq!(
            string(&v, "/event_data/resources/0/resource_url", true),
            format!("{}:{}", host_repo(&f), tag(&f))
        );
    }
}
