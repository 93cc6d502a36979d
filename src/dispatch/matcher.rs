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

use crate::dispatch::sign;
use crate::event::{Event, EventType};
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

    /// What an empty `event_types` means: every type except blobs and `ping`.
    fn default_types() -> TypeSet {
        TypeSet(
            EventType::ALL
                .into_iter()
                .filter(|t| !t.is_blob() && *t != EventType::Ping)
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
        Ok(CompiledWebhook {
            webhook,
            keys,
            filters,
        })
    }

    /// Whether this webhook wants the event: namespace and filters, `ping` never.
    /// For directed checks (replaying one webhook's events); fan-out uses [`Matcher::matching`].
    pub fn wants(&self, event: &Event) -> bool {
        event.kind != EventType::Ping
            && in_namespace(&self.webhook.namespace, &event.repository)
            && self.filters.matches(event)
    }
}

impl std::fmt::Debug for CompiledWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys are secret material: show how many, never their bytes.
        f.debug_struct("CompiledWebhook")
            .field("webhook", &self.webhook)
            .field("keys", &self.keys.len())
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
            .filter(|webhook| webhook.filters.matches(event))
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

