//! Harbor's "Default" webhook shape, for Flux `harbor`, Argo CD Image Updater `harbor`,
//! Keel `/v1/webhooks/harbor` and Kargo `harbor` (consumers.md §2.3).
//!
//! `PUSH_ARTIFACT` for tag pushes; `DELETE_ARTIFACT` for deletes only when the webhook
//! asked for them (`payload::delivers`). `occur_at` is an integer, `resource_url` is
//! `host[:port]/repository:tag` without a scheme, `repo_full_name` has no host, and the
//! namespace is the first path segment (Harbor's project).

use serde_json::{Map, Value, json};

use super::{event_time_ms, split_repository};
use crate::event::{Event, EventType};

/// The body.
pub(super) fn render(e: &Event) -> Value {
    let (namespace, name) = split_repository(&e.repository);
    let kind = match e.kind {
        EventType::ImageDeleted => "DELETE_ARTIFACT",
        _ => "PUSH_ARTIFACT",
    };
    let mut resource = Map::new();
    if let Some(digest) = &e.digest {
        resource.insert("digest".into(), json!(digest));
    }
    resource.insert("tag".into(), json!(e.tag.as_deref().unwrap_or_default()));
    resource.insert("resource_url".into(), json!(resource_url(e)));
    json!({
        "type": kind,
        "occur_at": event_time_ms(e).div_euclid(1000),
        "operator": e.actor.as_deref().unwrap_or_default(),
        "event_data": {
            "resources": [resource],
            "repository": {
                "name": name,
                "namespace": namespace,
                "repo_full_name": e.repository,
                // hookline cannot know the registry's access policy; Harbor always sends one.
                "repo_type": "private",
            },
        },
    })
}

/// `host[:port]/repository:tag` (or `@digest` without a tag), no scheme.
fn resource_url(e: &Event) -> String {
    let mut url = match &e.registry_host {
        Some(host) => format!("{host}/{}", e.repository),
        None => e.repository.clone(),
    };
    match (&e.tag, &e.digest) {
        (Some(tag), _) => {
            url.push(':');
            url.push_str(tag);
        }
        (None, Some(digest)) => {
            url.push('@');
            url.push_str(digest);
        }
        (None, None) => {}
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::payload::tests::event;

    #[test]
    fn push_artifact_with_a_scheme_less_resource_url() {
        let v = render(&event());
        assert_eq!(v["type"], "PUSH_ARTIFACT");
        assert_eq!(v["occur_at"], 1_795_569_416);
        assert_eq!(v["operator"], "alice");
        let r = &v["event_data"]["resources"][0];
        assert_eq!(
            r["resource_url"],
            "registry.example:5000/acme/tools/app:1.4"
        );
        assert_eq!(r["tag"], "1.4");
        assert_eq!(r["digest"], "sha256:abc");
        let repo = &v["event_data"]["repository"];
        assert_eq!(repo["repo_full_name"], "acme/tools/app");
        assert_eq!(repo["namespace"], "acme");
        assert_eq!(repo["name"], "tools/app");
    }

    #[test]
    fn deletes_are_delete_artifact() {
        let mut e = event();
        e.kind = EventType::ImageDeleted;
        e.tag = None;
        let v = render(&e);
        assert_eq!(v["type"], "DELETE_ARTIFACT");
        assert_eq!(
            v["event_data"]["resources"][0]["resource_url"],
            "registry.example:5000/acme/tools/app@sha256:abc"
        );
    }
}
