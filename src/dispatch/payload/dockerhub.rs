//! The Docker Hub webhook callback shape, for Flux `dockerhub`, Argo CD Image Updater
//! `docker.io`, Keel `/v1/webhooks/dockerhub`, Jenkins and Kargo (consumers.md §2.2).
//!
//! Tag pushes only (`payload::delivers`). Integers are JSON integers, strings always
//! strings, booleans always booleans; no `callback_url` (Jenkins would POST to it), no
//! `dockerfile`/`full_description`. `repo_name` is `host[:port]/repository` so Keel and
//! Kargo match private-registry images; a webhook may ask for the bare name.

use serde_json::{Map, Value, json};

use super::{event_time_ms, registry_scheme, split_repository};
use crate::event::Event;
use crate::store::PayloadOptions;

/// Hosts that mean "Docker Hub itself": there `repo_name` is bare, as Docker Hub sends it.
const DOCKER_HUB_HOSTS: [&str; 4] = [
    "docker.io",
    "index.docker.io",
    "registry-1.docker.io",
    "registry.hub.docker.com",
];

/// The body.
pub(super) fn render(e: &Event, options: &PayloadOptions) -> Value {
    let (namespace, name) = split_repository(&e.repository);
    let repo_name = repo_name(e, options);
    let mut push_data = Map::new();
    push_data.insert("tag".into(), json!(e.tag.as_deref().unwrap_or_default()));
    push_data.insert("pushed_at".into(), json!(event_time_ms(e).div_euclid(1000)));
    push_data.insert(
        "pusher".into(),
        json!(e.actor.as_deref().unwrap_or_default()),
    );
    push_data.insert("images".into(), json!([]));
    if let Some(media_type) = &e.media_type {
        push_data.insert("media_type".into(), json!(media_type));
    }
    json!({
        "push_data": push_data,
        "repository": {
            "repo_name": repo_name,
            "namespace": namespace,
            "name": name,
            "owner": namespace,
            "repo_url": repo_url(e),
            "status": "Active",
            "is_official": false,
            "is_trusted": false,
            "star_count": 0,
            "comment_count": 0,
        },
    })
}

/// `host[:port]/repository` unless the webhook asked for the bare name, or the registry
/// is Docker Hub itself (or did not say which host it is).
fn repo_name(e: &Event, options: &PayloadOptions) -> String {
    let host = e.registry_host.as_deref();
    let qualify = match (options.include_host_in_repo_name, host) {
        (_, None) => false,
        (Some(choice), Some(_)) => choice,
        (None, Some(host)) => !DOCKER_HUB_HOSTS.contains(&host),
    };
    match host {
        Some(host) if qualify => format!("{host}/{}", e.repository),
        _ => e.repository.clone(),
    }
}

/// Where people look at the repository: `scheme://host[:port]/repository`.
fn repo_url(e: &Event) -> String {
    match &e.registry_host {
        Some(host) => format!("{}://{host}/{}", registry_scheme(e), e.repository),
        None => e.repository.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::payload::tests::event;

    #[test]
    fn host_qualified_repo_name_by_default() {
        let v = render(&event(), &PayloadOptions::default());
        assert_eq!(
            v["repository"]["repo_name"],
            "registry.example:5000/acme/tools/app"
        );
        assert_eq!(v["repository"]["namespace"], "acme");
        assert_eq!(v["repository"]["name"], "tools/app");
        assert_eq!(
            v["repository"]["repo_url"],
            "http://registry.example:5000/acme/tools/app"
        );
        assert_eq!(v["push_data"]["tag"], "1.4");
        assert_eq!(v["push_data"]["pushed_at"], 1_795_569_416);
        assert!(v["push_data"]["pushed_at"].is_i64());
        assert_eq!(v["push_data"]["pusher"], "alice");
        assert!(v.get("callback_url").is_none());
    }

    #[test]
    fn bare_repo_name_when_asked_or_on_docker_hub() {
        let bare = PayloadOptions {
            include_host_in_repo_name: Some(false),
            ..Default::default()
        };
        assert_eq!(
            render(&event(), &bare)["repository"]["repo_name"],
            "acme/tools/app"
        );
        let mut hub = event();
        hub.registry_host = Some("docker.io".into());
        assert_eq!(
            render(&hub, &PayloadOptions::default())["repository"]["repo_name"],
            "acme/tools/app"
        );
        let forced = PayloadOptions {
            include_host_in_repo_name: Some(true),
            ..Default::default()
        };
        assert_eq!(
            render(&hub, &forced)["repository"]["repo_name"],
            "docker.io/acme/tools/app"
        );
    }
}
