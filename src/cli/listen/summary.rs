//! What `hookline listen` shows of an event and hands to `--exec`: the same few fields
//! from a body in any of hookline's five payload formats, recognised by shape (a
//! receiver does not know which format its webhook was given). Pure.

use serde_json::Value;

/// The fields of an event that a person or a script wants, from a body in any of
/// hookline's formats (recognised by shape).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Summary {
    pub format: &'static str,
    pub event_type: String,
    pub event_id: String,
    pub registry: String,
    pub repository: String,
    pub tag: String,
    pub digest: String,
    pub image: String,
}

/// Reads the summary out of a delivery body; `format` is `unknown` for anything else.
pub(crate) fn summarize(v: &Value) -> Summary {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let mut out = if v.get("specversion").is_some() {
        let d = &v["data"];
        Summary {
            format: "cloudevents",
            event_type: s(&v["type"]).trim_start_matches("io.hookline.").to_owned(),
            event_id: s(&v["id"]),
            registry: s(&d["registry"]),
            repository: s(&d["repository"]),
            tag: s(&d["tag"]),
            digest: s(&d["digest"]),
            image: s(&d["image"]),
        }
    } else if v.get("version").is_some() && v.get("type").is_some() {
        Summary {
            format: "hookline",
            event_type: s(&v["type"]),
            event_id: s(&v["id"]),
            registry: s(&v["registry"]),
            repository: s(&v["repository"]),
            tag: s(&v["tag"]),
            digest: s(&v["digest"]),
            image: s(&v["image"]),
        }
    } else if let Some(push) = v.get("push_data") {
        Summary {
            format: "dockerhub",
            event_type: "image.pushed".into(),
            repository: s(&v["repository"]["repo_name"]),
            tag: s(&push["tag"]),
            ..Summary::default()
        }
    } else if let Some(data) = v.get("event_data") {
        let r = &data["resources"][0];
        Summary {
            format: "harbor",
            event_type: match v["type"].as_str() {
                Some("DELETE_ARTIFACT") => "image.deleted".into(),
                _ => "image.pushed".into(),
            },
            repository: s(&data["repository"]["repo_full_name"]),
            tag: s(&r["tag"]),
            digest: s(&r["digest"]),
            image: s(&r["resource_url"]),
            ..Summary::default()
        }
    } else if let Some(e) = v["events"].get(0) {
        let t = &e["target"];
        let blob = t["url"].as_str().is_some_and(|u| u.contains("/blobs/"));
        let action = e["action"].as_str().unwrap_or("unknown");
        let action = match action {
            "push" => "pushed",
            "pull" => "pulled",
            "delete" => "deleted",
            "mount" => "mounted",
            other => other,
        };
        Summary {
            format: "distribution",
            event_type: format!("{}.{action}", if blob { "blob" } else { "image" }),
            event_id: s(&e["id"]),
            registry: s(&e["request"]["host"]),
            repository: s(&t["repository"]),
            tag: s(&t["tag"]),
            digest: s(&t["digest"]),
            ..Summary::default()
        }
    } else {
        Summary {
            format: "unknown",
            event_type: "unknown".into(),
            ..Summary::default()
        }
    };
    if out.image.is_empty() && !out.repository.is_empty() {
        out.image = match out.registry.as_str() {
            "" => out.repository.clone(),
            host => format!("{host}/{}", out.repository),
        };
        if !out.tag.is_empty() {
            out.image = format!("{}:{}", out.image, out.tag);
        }
        if !out.digest.is_empty() {
            out.image = format!("{}@{}", out.image, out.digest);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn summaries_of_every_format() {
        let hookline = json!({"version": "1", "type": "image.pushed", "id": "evt_1",
            "registry": "r:5000", "repository": "acme/app", "tag": "1.0", "digest": "sha256:a",
            "image": "r:5000/acme/app:1.0@sha256:a"});
        let s = summarize(&hookline);
        assert_eq!(
            (s.format, s.image.as_str()),
            ("hookline", "r:5000/acme/app:1.0@sha256:a")
        );
        let ce = json!({"specversion": "1.0", "type": "io.hookline.image.pushed", "id": "evt_1",
            "data": {"registry": "r:5000", "repository": "acme/app", "tag": "1.0", "digest": "sha256:a", "image": "x"}});
        assert_eq!(summarize(&ce).event_type, "image.pushed");
        let hub =
            json!({"push_data": {"tag": "1.0"}, "repository": {"repo_name": "r:5000/acme/app"}});
        assert_eq!(summarize(&hub).image, "r:5000/acme/app:1.0");
        let harbor = json!({"type": "PUSH_ARTIFACT", "event_data": {"resources": [{"tag": "1.0",
            "digest": "sha256:a", "resource_url": "r:5000/acme/app:1.0"}], "repository": {"repo_full_name": "acme/app"}}});
        assert_eq!(summarize(&harbor).image, "r:5000/acme/app:1.0");
        let dist = json!({"events": [{"id": "u", "action": "push", "target": {"repository": "acme/app",
            "tag": "1.0", "digest": "sha256:a", "url": "http://r:5000/v2/acme/app/manifests/sha256:a"},
            "request": {"host": "r:5000"}}]});
        let s = summarize(&dist);
        assert_eq!(
            (s.event_type.as_str(), s.image.as_str()),
            ("image.pushed", "r:5000/acme/app:1.0@sha256:a")
        );
        assert_eq!(summarize(&json!({"x": 1})).format, "unknown");
    }
}
