//! Which webhooks want an event: the fan-out filter.
//!
//! Pure and in-memory. [`compile_filters`] validates and compiles one webhook's event
//! types and repository/tag globs (the API uses it to refuse bad input); [`Matcher`] holds
//! every enabled webhook, compiled once and indexed by namespace, so matching an event
//! costs a few hash lookups plus the filters of the candidate tenants only. Fan-out then
//! turns the matches into `NewDelivery` rows; `ping` never goes through here.

use std::collections::HashMap;
use std::sync::Arc;

use globset::{Candidate, GlobBuilder, GlobSet, GlobSetBuilder};

use crate::dispatch::payload::{self, Format};
use crate::dispatch::sign;
use crate::event::{Event, EventType};
use crate::secret::Secret;
use crate::store::{Webhook, WebhookWithSecrets};

/// Why a webhook's filters cannot be used. Also the API's `INVALID_ARGUMENT` detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// A repository or tag pattern is not a valid glob.
    #[error("{field}: invalid glob {pattern:?}: {reason}")]
    BadGlob {
        /// `repositories` or `tags`.
        field: &'static str,
        /// The pattern as given.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An event type name hookline does not know.
    #[error("event_types: unknown event type {0:?}")]
    UnknownEventType(String),
}

impl FilterError {
    /// The webhook field at fault, for the API's error detail.
    pub fn field(&self) -> &'static str {
        match self {
            FilterError::BadGlob { field, .. } => field,
            FilterError::UnknownEventType(_) => "event_types",
        }
    }
}

/// A set of event types, one bit per [`EventType::ALL`] entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TypeSet(u16);

// One bit per event type must fit.
const _: () = assert!(EventType::ALL.len() <= 16);

impl TypeSet {
    fn bit(kind: EventType) -> u16 {
        1 << (kind as u16)
    }

    /// What an empty `event_types` means: every type except the opt-in ones (blobs,
    /// untagged manifest pushes) and `ping`.
    fn default_types() -> TypeSet {
        TypeSet(
            EventType::ALL
                .into_iter()
                .filter(|t| !t.is_opt_in() && *t != EventType::Ping)
                .fold(0, |bits, t| bits | TypeSet::bit(t)),
        )
    }

    fn contains(self, kind: EventType) -> bool {
        self.0 & TypeSet::bit(kind) != 0
    }
}

/// One webhook's compiled filters: event types, repository globs and tag globs.
/// The namespace is not part of it; [`Matcher`] checks that through its index.
#[derive(Debug, Clone)]
pub struct Filters {
    types: TypeSet,
    /// None: any repository.
    repositories: Option<GlobSet>,
    /// None: any event, tagged or not.
    tags: Option<GlobSet>,
}

impl Filters {
    /// Whether the event passes the type, repository and tag filters (not the namespace).
    pub fn matches(&self, event: &Event) -> bool {
        if !self.types.contains(event.kind) {
            return false;
        }
        if let Some(repositories) = &self.repositories
            && !repositories.is_match_candidate(&Candidate::new(&event.repository))
        {
            return false;
        }
        match (&self.tags, &event.tag) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(tags), Some(tag)) => tags.is_match_candidate(&Candidate::new(tag)),
        }
    }
}

/// Validates and compiles the filters of one webhook. Used by the API to answer
/// `INVALID_ARGUMENT` (the error names the field) and by [`Matcher::new`].
pub fn compile_filters(
    event_types: &[String],
    repositories: &[String],
    tags: &[String],
) -> Result<Filters, FilterError> {
    let types = if event_types.is_empty() {
        TypeSet::default_types()
    } else {
        let mut bits = 0;
        for name in event_types {
            let kind = EventType::parse(name)
                .ok_or_else(|| FilterError::UnknownEventType(name.clone()))?;
            bits |= TypeSet::bit(kind);
        }
        TypeSet(bits)
    };
    Ok(Filters {
        types,
        repositories: compile_globs("repositories", repositories)?,
        tags: compile_globs("tags", tags)?,
    })
}

/// Compiles one repository glob of a listing filter (same syntax as webhook filters).
/// Returns the glob and its literal prefix (what SQL can narrow by).
pub fn repository_glob(pattern: &str) -> Result<(GlobSet, String), FilterError> {
    let set = compile_globs("repository", &[pattern.to_owned()])?.unwrap_or_else(GlobSet::empty);
    let prefix: String = pattern
        .chars()
        .take_while(|c| !matches!(c, '*' | '?' | '[' | '{' | '\\'))
        .collect();
    Ok((set, prefix))
}

/// Compiles a list of globs where `*` and `?` stay within one path segment and `**`
/// crosses segments. An empty list compiles to None ("anything").
fn compile_globs(field: &'static str, patterns: &[String]) -> Result<Option<GlobSet>, FilterError> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let bad = |pattern: &str, reason: String| FilterError::BadGlob {
        field,
        pattern: pattern.to_owned(),
        reason,
    };
    let mut set = GlobSetBuilder::new();
    for pattern in patterns {
        if pattern.is_empty() {
            return Err(bad(pattern, "empty pattern".into()));
        }
        let glob = GlobBuilder::new(pattern)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| bad(pattern, e.kind().to_string()))?;
        set.add(glob);
    }
    set.build()
        .map(Some)
        .map_err(|e| bad(&patterns.join(" "), e.kind().to_string()))
}

/// A webhook ready to match and sign with.
pub struct CompiledWebhook {
    /// The webhook as stored.
    pub webhook: Webhook,
    /// Signing keys (decoded secrets), current first; undecodable secrets are left out.
    pub keys: Vec<Vec<u8>>,
    /// The payload format, parsed once.
    pub format: Format,
    /// How its requests are made (its template compiled once), or why they cannot be:
    /// a stored template the API accepted always compiles, but a newer hookline's may not.
    pub renderer: Result<payload::Renderer, String>,
    /// The current secret, verbatim, when the webhook wants a GitHub-style signature
    /// header too (that header carries one signature, so only the current secret signs).
    pub github_secret: Option<Secret>,
    /// The client certificate presented to the receiver, if any.
    pub identity: Option<super::transport::Identity>,
    /// The OAuth client credentials of its bearer token, if any.
    pub oauth: Option<super::oauth::Credentials>,
    filters: Filters,
}

impl CompiledWebhook {
    /// Compiles one webhook's filters and decodes its secrets.
    fn compile(source: WebhookWithSecrets) -> Result<CompiledWebhook, FilterError> {
        let WebhookWithSecrets { webhook, secrets } = source;
        let filters = compile_filters(&webhook.event_types, &webhook.repositories, &webhook.tags)?;
        let mut keys = Vec::with_capacity(secrets.len());
        for secret in &secrets {
            match sign::secret_key(&secret.secret) {
                Ok(key) => keys.push(key),
                Err(error) => tracing::warn!(
                    webhook_id = %webhook.id,
                    secret_id = %secret.id,
                    %error,
                    "skipping a webhook secret that cannot be used for signing"
                ),
            }
        }
        if keys.is_empty() {
            tracing::warn!(webhook_id = %webhook.id, "webhook has no usable signing secret");
        }
        let github_secret = webhook
            .signature_header
            .as_ref()
            .and_then(|_| secrets.first().map(|s| s.secret.clone()));
        let format = Format::parse(&webhook.format);
        let renderer = payload::Renderer::new(format, &webhook.payload_options, &webhook.headers)
            .map(|renderer| renderer.for_destination(&webhook.url))
            .map_err(|error| error.to_string());
        let identity = webhook
            .client_identity
            .as_ref()
            .map(super::transport::Identity::of);
        let oauth = webhook.oauth.as_ref().map(super::oauth::Credentials::of);
        Ok(CompiledWebhook {
            format,
            renderer,
            identity,
            oauth,
            webhook,
            keys,
            github_secret,
            filters,
        })
    }

    /// Whether the filters pass the event and the payload format can carry it (a
    /// dockerhub webhook gets tag pushes only: `payload::delivers`).
    fn accepts(&self, event: &Event) -> bool {
        self.filters.matches(event)
            && payload::delivers(self.format, &self.webhook.payload_options, event)
    }

    /// One webhook's filters and format, without its secrets: for deciding which events
    /// it wants (a replay), never for sending.
    pub fn for_matching(webhook: Webhook) -> Result<CompiledWebhook, FilterError> {
        let filters = compile_filters(&webhook.event_types, &webhook.repositories, &webhook.tags)?;
        Ok(CompiledWebhook {
            format: Format::parse(&webhook.format),
            renderer: Err("compiled for matching only".to_owned()),
            webhook,
            keys: Vec::new(),
            github_secret: None,
            identity: None,
            oauth: None,
            filters,
        })
    }

    /// Whether this webhook wants the event: namespace and filters, `ping` never.
    /// For directed checks (replaying one webhook's events); fan-out uses [`Matcher::matching`].
    pub fn wants(&self, event: &Event) -> bool {
        event.kind != EventType::Ping
            && in_namespace(&self.webhook.namespace, &event.repository)
            && self.accepts(event)
    }

    /// Whether it asks for owner notices (from its compiled event types): a notice
    /// destination, about which no notice is ever raised.
    pub fn asks_for_notices(&self) -> bool {
        EventType::NOTICES
            .into_iter()
            .any(|kind| self.filters.types.contains(kind))
    }
}

impl std::fmt::Debug for CompiledWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys are secret material: show how many, never their bytes.
        f.debug_struct("CompiledWebhook")
            .field("webhook", &self.webhook)
            .field("keys", &self.keys.len())
            .field("format", &self.format)
            .field("filters", &self.filters)
            .finish()
    }
}

/// Whether `repository` lies in `namespace`: the namespace itself or below it at a `/`
/// (so `acme` holds `acme/app` but not `acmecorp/app`); `""` holds everything.
fn in_namespace(namespace: &str, repository: &str) -> bool {
    namespace.is_empty()
        || repository
            .strip_prefix(namespace)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The namespaces that can hold `repository`: `""`, then every `/`-prefix, then the
/// repository itself (`acme/tools/app` → `""`, `acme`, `acme/tools`, `acme/tools/app`).
fn candidate_namespaces(repository: &str) -> impl Iterator<Item = &str> {
    std::iter::once("")
        .chain(
            repository
                .match_indices('/')
                .map(move |(i, _)| &repository[..i]),
        )
        .chain(std::iter::once(repository).filter(|r| !r.is_empty()))
}

/// Every enabled webhook, compiled and indexed by namespace. Rebuilt when webhooks change.
#[derive(Default)]
pub struct Matcher {
    /// Namespace → its webhooks, in the order given. An event looks up only the namespaces
    /// that can hold its repository, so unrelated tenants cost nothing.
    by_namespace: HashMap<String, Vec<Arc<CompiledWebhook>>>,
    by_id: HashMap<String, Arc<CompiledWebhook>>,
}

impl Matcher {
    /// Builds from the store's enabled webhooks. Disabled webhooks are left out, and so are
    /// webhooks whose filters do not compile (with a warning naming the webhook).
    pub fn new(webhooks: Vec<WebhookWithSecrets>) -> Matcher {
        let mut matcher = Matcher::default();
        for source in webhooks {
            if !source.webhook.enabled {
                tracing::debug!(webhook_id = %source.webhook.id, "not matching a disabled webhook");
                continue;
            }
            let id = source.webhook.id.clone();
            let compiled = match CompiledWebhook::compile(source) {
                Ok(compiled) => Arc::new(compiled),
                Err(error) => {
                    tracing::warn!(webhook_id = %id, %error, "skipping webhook with invalid filters");
                    continue;
                }
            };
            if matcher.by_id.contains_key(&id) {
                tracing::warn!(webhook_id = %id, "skipping duplicate webhook id");
                continue;
            }
            matcher
                .by_namespace
                .entry(compiled.webhook.namespace.clone())
                .or_default()
                .push(Arc::clone(&compiled));
            matcher.by_id.insert(id, compiled);
        }
        matcher
    }

    /// How many webhooks are matched against.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// True when no webhook is matched against.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Every webhook that wants this event: admin-wide ones first, then from the outermost
    /// namespace inwards. Empty for `ping`, which is addressed to one webhook directly.
    pub fn matching(&self, event: &Event) -> Vec<Arc<CompiledWebhook>> {
        if event.kind == EventType::Ping {
            return Vec::new();
        }
        candidate_namespaces(&event.repository)
            .filter_map(|namespace| self.by_namespace.get(namespace))
            .flatten()
            .filter(|webhook| webhook.accepts(event))
            .cloned()
            .collect()
    }

    /// One webhook by id, if it is enabled and its filters compiled.
    pub fn get(&self, webhook_id: &str) -> Option<Arc<CompiledWebhook>> {
        self.by_id.get(webhook_id).cloned()
    }
}

impl std::fmt::Debug for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Matcher")
            .field("webhooks", &self.by_id.len())
            .field("namespaces", &self.by_namespace.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::secret::Secret;
    use crate::store::WebhookSecret;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    fn webhook(id: &str, namespace: &str) -> Webhook {
        Webhook {
            name: id.into(),
            ..Webhook::new(id, namespace, "https://example.com/hook", 0)
        }
    }

    fn with_secrets(webhook: Webhook, secrets: &[&str]) -> WebhookWithSecrets {
        WebhookWithSecrets {
            webhook,
            secrets: secrets
                .iter()
                .enumerate()
                .map(|(i, s)| WebhookSecret {
                    id: format!("sec_{i}"),
                    secret: Secret::new(*s),
                    created_at: 0,
                    expires_at: None,
                })
                .collect(),
        }
    }

    fn hook(id: &str, namespace: &str) -> WebhookWithSecrets {
        with_secrets(webhook(id, namespace), &[SECRET])
    }

    fn filtered(
        id: &str,
        namespace: &str,
        types: &[&str],
        repos: &[&str],
        tags: &[&str],
    ) -> WebhookWithSecrets {
        let mut w = webhook(id, namespace);
        w.event_types = strings(types);
        w.repositories = strings(repos);
        w.tags = strings(tags);
        with_secrets(w, &[SECRET])
    }

    fn event(kind: EventType, repository: &str, tag: Option<&str>) -> Event {
        Event {
            tag: tag.map(Into::into),
            ..Event::new("evt_1", "default", "r1", kind, repository, 0)
        }
    }

    fn pushed(repository: &str, tag: Option<&str>) -> Event {
        event(EventType::ImagePushed, repository, tag)
    }

    fn ids(matches: Vec<Arc<CompiledWebhook>>) -> BTreeSet<String> {
        matches.iter().map(|w| w.webhook.id.clone()).collect()
    }

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    fn filters(types: &[&str], repos: &[&str], tags: &[&str]) -> Filters {
        compile_filters(&strings(types), &strings(repos), &strings(tags)).expect("valid filters")
    }

    #[test]
    fn namespace_holds_itself_and_below_but_not_lookalikes() {
        let m = Matcher::new(vec![hook("wh_acme", "acme")]);
        for repo in ["acme", "acme/app", "acme/tools/app"] {
            assert_eq!(
                ids(m.matching(&pushed(repo, None))),
                set(&["wh_acme"]),
                "{repo}"
            );
        }
        for repo in [
            "acmecorp/app",
            "acmecorp",
            "acm",
            "other/acme/app",
            "xacme/app",
        ] {
            assert!(m.matching(&pushed(repo, None)).is_empty(), "{repo}");
        }
    }

    #[test]
    fn admin_wide_namespace_gets_every_repository() {
        let m = Matcher::new(vec![hook("wh_admin", ""), hook("wh_acme", "acme")]);
        assert_eq!(
            ids(m.matching(&pushed("zeta/app", None))),
            set(&["wh_admin"])
        );
        assert_eq!(ids(m.matching(&pushed("solo", None))), set(&["wh_admin"]));
        assert_eq!(
            ids(m.matching(&pushed("acme/app", None))),
            set(&["wh_admin", "wh_acme"])
        );
    }

    #[test]
    fn nested_namespaces_each_get_their_share() {
        let m = Matcher::new(vec![
            hook("wh_acme", "acme"),
            hook("wh_tools", "acme/tools"),
            hook("wh_deep", "acme/tools/app"),
        ]);
        assert_eq!(
            ids(m.matching(&pushed("acme/tools/app", None))),
            set(&["wh_acme", "wh_tools", "wh_deep"])
        );
        assert_eq!(
            ids(m.matching(&pushed("acme/tools/lib", None))),
            set(&["wh_acme", "wh_tools"])
        );
        assert_eq!(
            ids(m.matching(&pushed("acme/toolsx/app", None))),
            set(&["wh_acme"])
        );
        assert_eq!(
            ids(m.matching(&pushed("acme/app", None))),
            set(&["wh_acme"])
        );
    }

    #[test]
    fn results_go_from_outermost_namespace_inwards() {
        let m = Matcher::new(vec![
            hook("wh_deep", "a/b"),
            hook("wh_mid", "a"),
            hook("wh_admin", ""),
        ]);
        let order: Vec<String> = m
            .matching(&pushed("a/b/c", None))
            .iter()
            .map(|w| w.webhook.id.clone())
            .collect();
        assert_eq!(order, ["wh_admin", "wh_mid", "wh_deep"]);
    }

    #[test]
    fn candidate_namespaces_are_every_slash_prefix() {
        let c: Vec<&str> = candidate_namespaces("acme/tools/app").collect();
        assert_eq!(c, ["", "acme", "acme/tools", "acme/tools/app"]);
        assert_eq!(
            candidate_namespaces("solo").collect::<Vec<_>>(),
            ["", "solo"]
        );
        assert_eq!(candidate_namespaces("").collect::<Vec<_>>(), [""]);
    }

    #[test]
    fn empty_event_types_mean_every_non_blob_type_but_ping() {
        let f = filters(&[], &[], &[]);
        for kind in EventType::ALL {
            let want = !kind.is_opt_in() && kind != EventType::Ping;
            assert_eq!(f.matches(&event(kind, "acme/app", None)), want, "{kind}");
        }
    }

    #[test]
    fn listed_event_types_are_the_only_ones() {
        let f = filters(&["image.deleted", "repository.deleted"], &[], &[]);
        assert!(f.matches(&event(EventType::ImageDeleted, "a/b", None)));
        assert!(f.matches(&event(EventType::RepositoryDeleted, "a/b", None)));
        assert!(!f.matches(&event(EventType::ImagePushed, "a/b", None)));
        assert!(!f.matches(&event(EventType::BlobPushed, "a/b", None)));
    }

    #[test]
    fn blob_types_only_when_listed() {
        let f = filters(&["blob.pushed", "image.pushed"], &[], &[]);
        assert!(f.matches(&event(EventType::BlobPushed, "a/b", None)));
        assert!(f.matches(&event(EventType::ImagePushed, "a/b", None)));
        assert!(!f.matches(&event(EventType::BlobPulled, "a/b", None)));
        assert!(!f.matches(&event(EventType::BlobMounted, "a/b", None)));
        let m = Matcher::new(vec![
            filtered("wh_blob", "a", &["blob.pulled"], &[], &[]),
            hook("wh_plain", "a"),
        ]);
        assert_eq!(
            ids(m.matching(&event(EventType::BlobPulled, "a/b", None))),
            set(&["wh_blob"])
        );
    }

    #[test]
    fn ping_is_never_fanned_out() {
        let m = Matcher::new(vec![
            hook("wh_all", ""),
            filtered("wh_ping", "a", &["ping"], &[], &[]),
        ]);
        assert!(m.matching(&event(EventType::Ping, "a/b", None)).is_empty());
        let wh = m.get("wh_ping").expect("indexed");
        assert!(!wh.wants(&event(EventType::Ping, "a/b", None)));
    }

    #[test]
    fn single_star_stays_in_one_segment_and_double_star_crosses() {
        let one = filters(&[], &["acme/*"], &[]);
        assert!(one.matches(&pushed("acme/app", None)));
        assert!(!one.matches(&pushed("acme/tools/app", None)));
        assert!(!one.matches(&pushed("acme", None)));
        let any = filters(&[], &["acme/**"], &[]);
        assert!(any.matches(&pushed("acme/app", None)));
        assert!(any.matches(&pushed("acme/tools/app", None)));
        let q = filters(&[], &["acme/app?"], &[]);
        assert!(q.matches(&pushed("acme/app1", None)));
        assert!(!q.matches(&pushed("acme/app/", None)));
        assert!(!q.matches(&pushed("acme/app", None)));
    }

    #[test]
    fn repository_globs_match_the_full_path_and_any_one_suffices() {
        let f = filters(&[], &["acme/web", "acme/*/api"], &[]);
        assert!(f.matches(&pushed("acme/web", None)));
        assert!(f.matches(&pushed("acme/billing/api", None)));
        assert!(!f.matches(&pushed("acme/web2", None)));
        assert!(!f.matches(&pushed("x/acme/web", None)));
        assert!(!f.matches(&pushed("acme/billing/api/v2", None)));
    }

    #[test]
    fn tag_globs_need_a_matching_tag() {
        let f = filters(&[], &[], &["1.*", "v[0-9]*", "latest"]);
        for tag in ["1.2", "1.2.3", "v3", "v10-rc1", "latest"] {
            assert!(f.matches(&pushed("a/b", Some(tag))), "{tag}");
        }
        for tag in ["2.0", "vx", "latest2", "11.0"] {
            assert!(!f.matches(&pushed("a/b", Some(tag))), "{tag}");
        }
        assert!(!f.matches(&pushed("a/b", None)), "tagless event");
        assert!(!filters(&[], &[], &["*"]).matches(&pushed("a/b", None)));
    }

    #[test]
    fn no_tag_filter_takes_tagged_and_tagless_events() {
        let f = filters(&[], &[], &[]);
        assert!(f.matches(&pushed("a/b", None)));
        assert!(f.matches(&pushed("a/b", Some("anything"))));
    }

    #[test]
    fn bad_filters_name_the_field() {
        let err = compile_filters(&[], &strings(&["acme/[abc"]), &[]).expect_err("bad");
        assert_eq!(err.field(), "repositories");
        assert!(matches!(&err, FilterError::BadGlob { pattern, .. } if pattern == "acme/[abc"));
        assert!(
            err.to_string().starts_with("repositories: invalid glob"),
            "{err}"
        );

        let err = compile_filters(&[], &[], &strings(&["1.*", "{a,b"])).expect_err("bad");
        assert_eq!(err.field(), "tags");
        assert!(err.to_string().contains("{a,b"), "{err}");

        let err = compile_filters(&[], &[], &strings(&[""])).expect_err("empty");
        assert_eq!(err.field(), "tags");

        let err = compile_filters(&strings(&["image.pushed", "image.exploded"]), &[], &[])
            .expect_err("unknown");
        assert_eq!(err, FilterError::UnknownEventType("image.exploded".into()));
        assert_eq!(err.field(), "event_types");
    }

    #[test]
    fn skips_invalid_and_disabled_webhooks() {
        let mut disabled = webhook("wh_off", "a");
        disabled.enabled = false;
        let m = Matcher::new(vec![
            hook("wh_ok", "a"),
            filtered("wh_bad", "a", &[], &["a/[x"], &[]),
            filtered("wh_unknown", "a", &["nope"], &[], &[]),
            with_secrets(disabled, &[SECRET]),
        ]);
        assert_eq!(m.len(), 1);
        assert!(!m.is_empty());
        assert!(m.get("wh_ok").is_some());
        assert!(m.get("wh_bad").is_none() && m.get("wh_off").is_none());
        assert_eq!(ids(m.matching(&pushed("a/b", None))), set(&["wh_ok"]));
        assert!(Matcher::new(vec![]).is_empty());
    }

    #[test]
    fn keys_keep_order_and_skip_undecodable_secrets() {
        let m = Matcher::new(vec![with_secrets(
            webhook("wh_1", "a"),
            &["whsec_aGVsbG8=", "whsec_not*base64", "d29ybGQ="],
        )]);
        let wh = m.get("wh_1").expect("compiled");
        assert_eq!(wh.keys, vec![b"hello".to_vec(), b"world".to_vec()]);
        let shown = format!("{wh:?}");
        assert!(!shown.contains("104, 101"), "{shown}");
    }

    #[test]
    fn wants_checks_namespace_and_filters() {
        let m = Matcher::new(vec![filtered("wh_1", "acme", &[], &["acme/*"], &["1.*"])]);
        let wh = m.get("wh_1").expect("compiled");
        assert!(wh.wants(&pushed("acme/app", Some("1.0"))));
        assert!(!wh.wants(&pushed("acme/app", Some("2.0"))));
        assert!(!wh.wants(&pushed("acmecorp/app", Some("1.0"))));
    }

    #[test]
    fn the_payload_format_narrows_what_fans_out() {
        let mut dockerhub = webhook("wh_hub", "acme");
        dockerhub.format = "dockerhub".into();
        dockerhub.signature_header = Some("X-Signature".into());
        let mut harbor = webhook("wh_harbor", "acme");
        harbor.format = "harbor".into();
        harbor.payload_options.harbor_deletes = true;
        let m = Matcher::new(vec![
            with_secrets(
                dockerhub,
                &[SECRET, "whsec_b2xkb2xkb2xkb2xkb2xkb2xkb2xkb2xk"],
            ),
            with_secrets(harbor, &[SECRET]),
            hook("wh_plain", "acme"),
        ]);
        let ids = |e: &Event| -> Vec<String> {
            let mut ids: Vec<String> = m.matching(e).iter().map(|w| w.webhook.id.clone()).collect();
            ids.sort();
            ids
        };
        assert_eq!(
            ids(&pushed("acme/app", Some("1.0"))),
            ["wh_harbor", "wh_hub", "wh_plain"]
        );
        assert_eq!(ids(&pushed("acme/app", None)), ["wh_plain"]);
        assert_eq!(
            ids(&event(EventType::ImageDeleted, "acme/app", Some("1.0"))),
            ["wh_harbor", "wh_plain"]
        );
        assert_eq!(
            ids(&event(EventType::ImagePulled, "acme/app", Some("1.0"))),
            ["wh_plain"]
        );
        let hub = m.get("wh_hub").expect("compiled");
        assert_eq!(hub.format, Format::DockerHub);
        assert!(!hub.wants(&event(EventType::ImageDeleted, "acme/app", Some("1.0"))));
        // The GitHub-style header signs with the current secret only.
        assert_eq!(hub.github_secret.as_ref().map(Secret::expose), Some(SECRET));
        assert!(m.get("wh_plain").expect("compiled").github_secret.is_none());
    }

    /// 5,000 webhooks over 1,000 namespaces (with `t1`/`t10`/`t100` prefix traps and nested
    /// `tN/team` tenants); every answer is checked against a brute-force scan.
    #[test]
    fn thousands_of_webhooks_match_exactly() {
        let namespaces: Vec<String> = (0..1000)
            .map(|i| match i {
                0 => String::new(),
                1..800 => format!("t{i}"),
                _ => format!("t{}/team", i - 800),
            })
            .collect();
        let mut all = Vec::new();
        for j in 0..5000 {
            let ns = &namespaces[j % 1000];
            let id = format!("wh_{j}");
            let app = format!("{ns}/app*");
            let deep = format!("{ns}/**");
            all.push(match j / 1000 {
                0 => hook(&id, ns),
                1 => filtered(&id, ns, &["image.deleted"], &[], &[]),
                2 if !ns.is_empty() => filtered(&id, ns, &[], &[&app], &[]),
                3 => filtered(&id, ns, &[], &[], &["1.*"]),
                4 if !ns.is_empty() => {
                    filtered(&id, ns, &["blob.pushed", "image.pushed"], &[&deep], &[])
                }
                _ => hook(&id, ns),
            });
        }
        let m = Matcher::new(all);
        assert_eq!(m.len(), 5000);

        // The rules, restated independently of the globs.
        let expect = |e: &Event| -> BTreeSet<String> {
            (0..5000)
                .filter(|&j| {
                    let ns = &namespaces[j % 1000];
                    let repo = e.repository.as_str();
                    let in_ns = ns.is_empty() || repo == ns || repo.starts_with(&format!("{ns}/"));
                    let default_type =
                        matches!(e.kind, EventType::ImagePushed | EventType::ImageDeleted);
                    let below = repo.strip_prefix(&format!("{ns}/"));
                    in_ns
                        && match j / 1000 {
                            1 => e.kind == EventType::ImageDeleted,
                            2 if !ns.is_empty() => {
                                default_type
                                    && below
                                        .is_some_and(|r| r.starts_with("app") && !r.contains('/'))
                            }
                            3 => {
                                default_type
                                    && e.tag.as_deref().is_some_and(|t| t.starts_with("1."))
                            }
                            4 if !ns.is_empty() => {
                                matches!(e.kind, EventType::BlobPushed | EventType::ImagePushed)
                                    && below.is_some()
                            }
                            _ => default_type,
                        }
                })
                .map(|j| format!("wh_{j}"))
                .collect()
        };

        let repos = [
            "t1",
            "t1/app",
            "t1/app2",
            "t1/lib",
            "t1/lib/app",
            "t10/app",
            "t100/app",
            "t1/team",
            "t1/team/app",
            "t1/team/app1/x",
            "t199/team/apple",
            "t799/app",
            "t800/app",
            "nobody/app",
            "t5/teamx/app",
        ];
        let kinds = [
            EventType::ImagePushed,
            EventType::ImageDeleted,
            EventType::BlobPushed,
            EventType::BlobPulled,
            EventType::Ping,
        ];
        let mut total = 0;
        for repo in repos {
            for kind in kinds {
                for tag in [None, Some("1.2"), Some("2.0")] {
                    let e = event(kind, repo, tag);
                    let got = m.matching(&e);
                    assert_eq!(got.len(), ids(got.clone()).len(), "no duplicates");
                    let want = if kind == EventType::Ping {
                        BTreeSet::new()
                    } else {
                        expect(&e)
                    };
                    assert_eq!(ids(got), want, "{kind} {repo} {tag:?}");
                    total += want.len();
                }
            }
        }
        assert!(
            total > 100,
            "the scenario should exercise real matches, got {total}"
        );
    }
}
