//! Ready templates for the CI systems people start from a push, selectable by name
//! (`--preset github-dispatch`): each a body, its content type and the headers its
//! receiver needs. docs/templates.md shows each with the pipeline that reads it.

/// One preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    /// What `--preset` takes.
    pub name: &'static str,
    /// One line for people: what it starts.
    pub summary: &'static str,
    /// The body's content type.
    pub content_type: &'static str,
    /// The body's template.
    pub body: &'static str,
    /// Headers the receiver needs; the owner's own headers of the same name win.
    pub headers: &'static [(&'static str, &'static str)],
    /// What the owner must add, said when the preset is chosen.
    pub needs: &'static str,
}

/// The fields every CI preset sends, as one JSON object's members.
macro_rules! ci_fields {
    () => {
        r#""image": {{ image|tojson }},
  "repository": {{ repository|tojson }},
  "tag": {{ tag|tojson }},
  "digest": {{ digest|tojson }},
  "registry": {{ registry|tojson }},
  "actor": {{ actor|tojson }},
  "type": {{ type|tojson }},
  "event_id": {{ id|tojson }},
  "platforms": {{ (enrichment.platforms if enrichment and enrichment.platforms is defined else [])|tojson }}"#
    };
}

/// Every preset, by name.
pub const PRESETS: [Preset; 5] = [
    Preset {
        name: "github-dispatch",
        summary: "GitHub Actions: a repository_dispatch event (on: repository_dispatch)",
        content_type: "application/json",
        body: concat!(
            "{\n  \"event_type\": {{ (\"registry-\" ~ type)|tojson }},\n  \"client_payload\": {\n  ",
            ci_fields!(),
            "\n  }\n}\n"
        ),
        headers: &[
            ("Accept", "application/vnd.github+json"),
            ("X-GitHub-Api-Version", "2022-11-28"),
        ],
        needs: "the URL https://api.github.com/repos/OWNER/REPO/dispatches and an Authorization header `Bearer <token>` (a fine-grained token with Contents: write)",
    },
    Preset {
        name: "gitlab-trigger",
        summary: "GitLab CI: a pipeline trigger, with the image in CI/CD variables",
        content_type: "application/x-www-form-urlencoded",
        body: "ref=main\
&variables[HOOKLINE_IMAGE]={{ (image or '')|urlencode }}\
&variables[HOOKLINE_REPOSITORY]={{ repository|urlencode }}\
&variables[HOOKLINE_TAG]={{ (tag or '')|urlencode }}\
&variables[HOOKLINE_DIGEST]={{ (digest or '')|urlencode }}\
&variables[HOOKLINE_EVENT]={{ type|urlencode }}\
&variables[HOOKLINE_EVENT_ID]={{ id|urlencode }}",
        headers: &[],
        needs: "the URL https://GITLAB/api/v4/projects/ID/trigger/pipeline?token=TRIGGER_TOKEN (the token in the query string); change `ref=main` to your branch",
    },
    Preset {
        name: "tekton",
        summary: "Tekton Triggers: an EventListener whose TriggerBinding reads $(body.image)",
        content_type: "application/json",
        body: concat!("{\n  ", ci_fields!(), "\n}\n"),
        headers: &[],
        needs: "the EventListener's URL",
    },
    Preset {
        name: "argo-events",
        summary: "Argo Events: a webhook EventSource; a Sensor reads body.image",
        content_type: "application/json",
        body: concat!("{\n  ", ci_fields!(), "\n}\n"),
        headers: &[],
        needs: "the EventSource's URL (its port, endpoint and method POST)",
    },
    Preset {
        name: "jenkins-generic",
        summary: "Jenkins Generic Webhook Trigger: variables read by JSONPath ($.image)",
        content_type: "application/json",
        body: concat!("{\n  ", ci_fields!(), "\n}\n"),
        headers: &[],
        needs: "the URL https://JENKINS/generic-webhook-trigger/invoke and a `token` header with the job's trigger token",
    },
];

/// The preset of this name.
pub fn find(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

/// The names, for messages.
pub fn names() -> String {
    PRESETS.map(|p| p.name).join(", ")
}
