//! Row and domain types that cross the storage boundary.
//!
//! Plain data: what goes into the store and what comes back. Row structs derive
//! `sqlx::FromRow` once and serve both backends, so the two never disagree on a column.

use std::collections::BTreeMap;
use std::time::Duration;

pub use crate::enrichment::RegistryAccess;
use crate::secret::Secret;

/// What a token lets its bearer do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A registry posting notifications to the ingest endpoint.
    Registry,
    /// An API client confined to one namespace.
    Namespace,
    /// An API client that sees every namespace.
    Admin,
}

impl TokenKind {
    /// The name stored in the `tokens.kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Registry => "registry",
            TokenKind::Namespace => "namespace",
            TokenKind::Admin => "admin",
        }
    }

    /// Parses a stored kind.
    pub fn parse(s: &str) -> Option<TokenKind> {
        match s {
            "registry" => Some(TokenKind::Registry),
            "namespace" => Some(TokenKind::Namespace),
            "admin" => Some(TokenKind::Admin),
            _ => None,
        }
    }
}

/// A token to store. The token itself is never stored, only its hash.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// Public id, used to list and revoke it.
    pub id: String,
    /// What it grants.
    pub kind: TokenKind,
    /// Registry name, namespace, or empty for admin.
    pub subject: String,
    /// SHA-256 of the token, hex.
    pub hash: String,
    /// Creation time.
    pub created_at: i64,
    /// For a registry token: how hookline reads that registry to enrich its events.
    pub registry: Option<RegistryAccess>,
}

/// A registry source (a registry token's name) with the access hookline has to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrySource {
    /// The source name, as `events.source`.
    pub source: String,
    /// How to read it.
    pub access: RegistryAccess,
}

/// A stored token, without its hash.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TokenRecord {
    /// Public id.
    pub id: String,
    /// `registry`, `namespace` or `admin`.
    pub kind: String,
    /// Registry name, namespace, or empty for admin.
    pub subject: String,
    /// Creation time.
    pub created_at: i64,
    /// When it was revoked, if it was.
    pub revoked_at: Option<i64>,
    /// The registry's base URL, for a registry token that has one (listings only).
    #[sqlx(default)]
    pub registry_url: Option<String>,
    /// Whether registry credentials are stored (never the credentials; listings only).
    #[sqlx(default)]
    pub registry_credentials: bool,
}

/// A webhook: where to send which events, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// Public id (`wh_…`).
    pub id: String,
    /// The tenant: a repository path prefix such as `acme`.
    pub namespace: String,
    /// A name for people.
    pub name: String,
    /// Destination URL, query string kept verbatim.
    pub url: String,
    /// Event type names this webhook wants; empty means every non-blob type.
    pub event_types: Vec<String>,
    /// Repository globs; empty means every repository in the namespace.
    pub repositories: Vec<String>,
    /// Tag globs; empty means any tag (and events without a tag).
    pub tags: Vec<String>,
    /// Payload format name.
    pub format: String,
    /// Custom headers sent verbatim.
    pub headers: BTreeMap<String, String>,
    /// Name of an extra GitHub-style signature header (`X-Hub-Signature-256`), if any.
    pub signature_header: Option<String>,
    /// Format-specific choices (dockerhub `repo_name`, harbor deletes).
    pub payload_options: PayloadOptions,
    /// Deliver in event order per repository:tag.
    pub ordered: bool,
    /// The owner's ceiling on requests in flight (None: the dispatcher's own caps).
    pub max_concurrency: Option<i64>,
    /// The owner's ceiling on deliveries per second, in thousandths (None: no limit).
    pub rate_limit_milli: Option<i64>,
    /// False once disabled by a person or by hookline.
    pub enabled: bool,
    /// Why hookline disabled it.
    pub disabled_reason: Option<String>,
    /// Start of the current run of failed attempts, for auto-disable.
    pub failing_since: Option<i64>,
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
}

impl Webhook {
    /// An enabled webhook with no filters (every non-blob event of its namespace), the
    /// `hookline` format and no custom headers; callers set what differs.
    pub fn new(
        id: impl Into<String>,
        namespace: impl Into<String>,
        url: impl Into<String>,
        now: i64,
    ) -> Webhook {
        Webhook {
            id: id.into(),
            namespace: namespace.into(),
            name: String::new(),
            url: url.into(),
            event_types: Vec::new(),
            repositories: Vec::new(),
            tags: Vec::new(),
            format: "hookline".into(),
            headers: BTreeMap::new(),
            signature_header: None,
            payload_options: PayloadOptions::default(),
            ordered: false,
            max_concurrency: None,
            rate_limit_milli: None,
            enabled: true,
            disabled_reason: None,
            failing_since: None,
            created_at: now,
            updated_at: now,
        }
    }
}

/// The `webhooks` row as stored (JSON columns undecoded).
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct WebhookRow {
    pub id: String,
    pub namespace: String,
    pub name: String,
    pub url: String,
    pub event_types: String,
    pub repositories: String,
    pub tags: String,
    pub format: String,
    pub headers: String,
    pub signature_header: Option<String>,
    pub payload_options: String,
    pub ordered: bool,
    pub max_concurrency: Option<i64>,
    pub rate_limit_milli: Option<i64>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub failing_since: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl WebhookRow {
    pub(crate) fn decode(self) -> Result<Webhook, super::StoreError> {
        let json = |s: &str| -> Result<Vec<String>, super::StoreError> {
            serde_json::from_str(s).map_err(|source| super::StoreError::Corrupt {
                table: "webhooks",
                source,
            })
        };
        Ok(Webhook {
            event_types: json(&self.event_types)?,
            repositories: json(&self.repositories)?,
            tags: json(&self.tags)?,
            headers: serde_json::from_str(&self.headers).map_err(|source| {
                super::StoreError::Corrupt {
                    table: "webhooks",
                    source,
                }
            })?,
            payload_options: serde_json::from_str(&self.payload_options).map_err(|source| {
                super::StoreError::Corrupt {
                    table: "webhooks",
                    source,
                }
            })?,
            signature_header: self.signature_header,
            id: self.id,
            namespace: self.namespace,
            name: self.name,
            url: self.url,
            format: self.format,
            ordered: self.ordered,
            max_concurrency: self.max_concurrency,
            rate_limit_milli: self.rate_limit_milli,
            enabled: self.enabled,
            disabled_reason: self.disabled_reason,
            failing_since: self.failing_since,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

impl Webhook {
    /// JSON encodings of the list and map columns, in column order.
    pub(crate) fn json_columns(&self) -> [String; 4] {
        let list = |v: &Vec<String>| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
        [
            list(&self.event_types),
            list(&self.repositories),
            list(&self.tags),
            serde_json::to_string(&self.headers).unwrap_or_else(|_| "{}".into()),
        ]
    }

    /// JSON encoding of the `payload_options` column.
    pub(crate) fn options_column(&self) -> String {
        serde_json::to_string(&self.payload_options).unwrap_or_else(|_| "{}".into())
    }
}

/// Choices a webhook makes about its payload format, stored as JSON. Options of other
/// formats than the webhook's are kept but have no effect.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PayloadOptions {
    /// dockerhub: whether `repository.repo_name` starts with the registry host
    /// (`reg.example.com:5000/team/app`). None: yes, unless the registry is Docker Hub
    /// itself; Keel and Kargo match images by host, so a bare name would not match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_host_in_repo_name: Option<bool>,
    /// harbor: deliver deletes too, as `DELETE_ARTIFACT`. Off by default because Harbor
    /// receivers (Argo CD Image Updater, Kargo) answer 400 to anything but `PUSH_ARTIFACT`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub harbor_deletes: bool,
}

/// Which webhooks [`Webhooks::list_webhooks`](super::Webhooks::list_webhooks) returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookQuery {
    /// Only webhooks whose namespace is this one or lies below it (`acme` holds `acme`
    /// and `acme/tools`, not `acmecorp`). None: every namespace. This is how a tenant's
    /// visibility reaches SQL, so it compares path segments, never `LIKE` patterns.
    pub within: Option<String>,
    /// Only enabled (true) or disabled (false) webhooks.
    pub enabled: Option<bool>,
    /// Only names containing this text, ignoring ASCII case.
    pub name_contains: Option<String>,
    /// Only URLs containing this text.
    pub url_contains: Option<String>,
    /// Only ids after this one: the keyset cursor of pagination.
    pub after_id: Option<String>,
    /// At most this many.
    pub limit: i64,
}

/// A signing secret of a webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSecret {
    /// Id of this secret.
    pub id: String,
    /// `whsec_<base64>`.
    pub secret: Secret,
    /// When it was created.
    pub created_at: i64,
    /// None for the current secret; for a rotated-out one, the end of its grace period.
    pub expires_at: Option<i64>,
}

/// A webhook with the secrets it signs with right now (current first).
#[derive(Debug, Clone)]
pub struct WebhookWithSecrets {
    /// The webhook.
    pub webhook: Webhook,
    /// Valid secrets, current first.
    pub secrets: Vec<WebhookSecret>,
}

/// Result of storing a batch of events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InsertedEvents {
    /// Events that were new.
    pub inserted: usize,
    /// Events already stored (a registry re-sent them).
    pub duplicates: usize,
}

/// A fan-out plan for the transaction that stores events (see `store/intake.rs`): the
/// dispatcher of the storing process matches the new events and leases what may start.
pub struct FanOutNow<'a> {
    /// The webhooks revision `plan` was built from; checked inside the transaction.
    pub webhooks_revision: i64,
    /// The deliveries an event needs.
    pub plan: &'a super::Planner,
    /// Who leases (the dispatcher's id, as in a claim).
    pub owner: &'a str,
    /// How long the lease lasts unless extended.
    pub lease: Duration,
    /// At most this many deliveries leased.
    pub limit: usize,
    /// Webhooks whose deliveries must not be leased now (full lane, open circuit, pause).
    pub skip_webhooks: &'a [String],
}

/// What storing a batch of events did.
#[derive(Debug, Default)]
pub struct Stored {
    /// Per envelope, how many events were new.
    pub counts: Vec<InsertedEvents>,
    /// Deliveries fanned out and leased to the caller's dispatcher, to hand it after the
    /// commit.
    pub leased: Vec<ClaimedDelivery>,
    /// Whether a dispatcher has anything to do: events left unfanned, or deliveries that
    /// were not leased.
    pub work_left: bool,
}

/// A delivery to enqueue: one event for one webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    /// Public id, sent as `webhook-id`; stable across retries.
    pub id: String,
    /// The event.
    pub event_id: String,
    /// The webhook.
    pub webhook_id: String,
    /// The webhook's namespace: tenants see their deliveries by it.
    pub namespace: String,
    /// Set for ordered webhooks: deliveries with the same key go out one at a time, in order.
    pub ordering_key: Option<String>,
}

/// What one fan-out pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FanOutReport {
    /// Events fanned out.
    pub events: usize,
    /// Deliveries created.
    pub deliveries: usize,
    /// Webhooks changed since the plan was built: nothing was done.
    pub stale: bool,
}

/// A request to claim due work.
#[derive(Debug, Clone)]
pub struct Claim<'a> {
    /// Who claims (one id per dispatcher process), for lease extension and visibility.
    pub owner: &'a str,
    /// The claim's "now".
    pub now: i64,
    /// How long the lease lasts unless extended.
    pub lease: Duration,
    /// At most this many deliveries.
    pub limit: i64,
    /// Webhooks whose concurrency slots are full: skip their deliveries.
    pub skip_webhooks: &'a [String],
}

/// Proof of holding a delivery's lease. Finishing or releasing needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The delivery.
    pub delivery_id: String,
    /// Unique to this claim; a later claim of the same delivery gets another.
    pub lease_id: String,
}

/// A claimed delivery with its event, ready to send.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    /// Lease held on it.
    pub lease: Lease,
    /// The event.
    pub event_id: String,
    /// The webhook.
    pub webhook_id: String,
    /// Attempts made before this one.
    pub attempts: i64,
    /// Attempts made before the latest redelivery or replay: the retry schedule counts
    /// `attempts - retry_base`.
    pub retry_base: i64,
    /// The webhook's namespace.
    pub namespace: String,
    /// Set for ordered webhooks.
    pub ordering_key: Option<String>,
    /// When it was first enqueued.
    pub created_at: i64,
    /// The normalised event JSON; None if the event is no longer stored (pruned).
    pub event_body: Option<String>,
}

/// Where a delivery goes after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextState {
    /// Delivered (2xx): complete.
    Succeeded,
    /// Try again at this time: reschedule.
    RetryAt(i64),
    /// No more attempts: give up.
    Failed,
}

/// One HTTP try, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AttemptRecord {
    /// Id of the attempt.
    pub id: String,
    /// The delivery.
    pub delivery_id: String,
    /// 1 for the first attempt.
    pub number: i64,
    /// When the request started.
    pub started_at: i64,
    /// How long until the response (or error).
    pub duration_ms: i64,
    /// HTTP status, if a response came.
    pub status_code: Option<i64>,
    /// Response headers, JSON object.
    pub response_headers: Option<String>,
    /// Response body excerpt.
    pub response_body: Option<String>,
    /// Transport error or refusal, if any.
    pub error: Option<String>,
    /// `succeeded`, `retry`, `failed`, `disabled`, `refused`.
    pub outcome: String,
    /// What kind of failure: `http` (a non-2xx answer), `timeout`, `connect`, `tls`,
    /// `request` (another transport error), `refused` (SSRF guard), `not_sent`. None on success.
    pub error_class: Option<String>,
    /// Why hookline decided what it did (`HTTP 422 is final: …`, `retry 2 of 9 in 30s`).
    pub reason: Option<String>,
    /// When the next attempt is due, if one is scheduled.
    pub next_attempt_at: Option<i64>,
}

/// An attempt's result and the delivery's next state.
#[derive(Debug, Clone)]
pub struct Finished {
    /// The lease held while attempting.
    pub lease: Lease,
    /// The attempt to record.
    pub attempt: AttemptRecord,
    /// Where the delivery goes now.
    pub next: NextState,
    /// Whose attempt it was, for the webhook's health and the live tail.
    pub context: AttemptContext,
    /// The webhook's circuit breaker as the dispatcher left it after this attempt.
    pub circuit: CircuitView,
}

/// What an attempt was for: its webhook and event, as the live tail shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct AttemptContext {
    /// The webhook.
    pub webhook_id: String,
    /// The webhook's namespace.
    pub namespace: String,
    /// The event.
    pub event_id: String,
    /// The event's type name; None if the event is no longer stored.
    pub event_type: Option<String>,
    /// The event's repository.
    pub repository: Option<String>,
    /// The event's tag.
    pub tag: Option<String>,
    /// The endpoint's adaptive concurrency window when the attempt ended (for the
    /// webhook's health; None when nothing was sent).
    #[sqlx(default)]
    pub concurrency_window: Option<i64>,
}

/// A webhook's circuit breaker, as shown to its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CircuitView {
    /// Deliveries flow.
    #[default]
    Closed,
    /// Deliveries are held until this time (Unix ms), then one probe goes out.
    Open {
        /// End of the cool-down.
        until: i64,
    },
    /// One probe is in flight.
    HalfOpen,
}

impl CircuitView {
    /// The stored name: `closed`, `open`, `half_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitView::Closed => "closed",
            CircuitView::Open { .. } => "open",
            CircuitView::HalfOpen => "half_open",
        }
    }

    /// End of an open circuit's cool-down.
    pub fn until(self) -> Option<i64> {
        match self {
            CircuitView::Open { until } => Some(until),
            _ => None,
        }
    }
}

/// One finished attempt with its context: the unit of the live tail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptView {
    /// The attempt.
    pub attempt: AttemptRecord,
    /// Its webhook and event.
    pub context: AttemptContext,
    /// The delivery's status after this attempt (`pending`, `succeeded`, `failed`).
    pub delivery_status: String,
}

/// A delivery as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DeliveryRecord {
    /// Queue position (insertion order).
    pub seq: i64,
    /// Public id.
    pub id: String,
    /// The event.
    pub event_id: String,
    /// The webhook.
    pub webhook_id: String,
    /// `pending`, `succeeded`, `failed`.
    pub status: String,
    /// Attempts made.
    pub attempts: i64,
    /// When it is due (while leased: when the lease expires).
    pub next_attempt_at: i64,
    /// Current lease, if any.
    pub lease_id: Option<String>,
    /// Who holds the lease.
    pub lease_owner: Option<String>,
    /// Lease expiry.
    pub lease_until: Option<i64>,
    /// Ordering key for ordered webhooks.
    pub ordering_key: Option<String>,
    /// The last attempt's error or status summary.
    pub last_error: Option<String>,
    /// When enqueued.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
    /// The webhook's namespace when the delivery was created.
    pub namespace: String,
    /// Attempts made before the latest redelivery or replay.
    pub retry_base: i64,
    /// The last attempt's HTTP status, if it got one.
    pub last_status_code: Option<i64>,
    /// How long the last attempt took.
    pub last_duration_ms: Option<i64>,
    /// When the last attempt started.
    pub last_attempt_at: Option<i64>,
}

impl DeliveryRecord {
    /// The status people see: `pending` (not yet tried, or redelivered), `retrying`
    /// (tried, another attempt scheduled), `succeeded` or `failed`.
    pub fn display_status(&self) -> &str {
        if self.status == "pending" && self.attempts > self.retry_base {
            "retrying"
        } else {
            &self.status
        }
    }
}

/// Queue depth figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueStats {
    /// Pending deliveries (due, scheduled or leased).
    pub pending: i64,
    /// Pending and due now, not leased.
    pub due: i64,
    /// Succeeded.
    pub succeeded: i64,
    /// Failed for good.
    pub failed: i64,
    /// Events not yet fanned out.
    pub unfanned_events: i64,
    /// Age in ms of the oldest due delivery, 0 if none.
    pub oldest_due_age_ms: i64,
}

/// Joins webhook rows with their secret rows (sorted by webhook id, current secret first).
pub(crate) fn group_secrets(
    rows: Vec<WebhookRow>,
    secrets: Vec<(String, String, String, i64, Option<i64>)>,
) -> Result<Vec<WebhookWithSecrets>, super::StoreError> {
    let mut by_webhook: std::collections::HashMap<String, Vec<WebhookSecret>> =
        std::collections::HashMap::new();
    for (webhook_id, id, secret, created_at, expires_at) in secrets {
        by_webhook
            .entry(webhook_id)
            .or_default()
            .push(WebhookSecret {
                id,
                secret: Secret::new(secret),
                created_at,
                expires_at,
            });
    }
    rows.into_iter()
        .map(|row| {
            let secrets = by_webhook.remove(&row.id).unwrap_or_default();
            Ok(WebhookWithSecrets {
                webhook: row.decode()?,
                secrets,
            })
        })
        .collect()
}

/// Decodes an `events.body` column (also a claimed delivery's event body).
pub fn decode_event(body: &str) -> Result<crate::event::Event, super::StoreError> {
    serde_json::from_str(body).map_err(|source| super::StoreError::Corrupt {
        table: "events",
        source,
    })
}

/// The `status` and `next_attempt_at` a delivery gets for its next state.
pub(crate) fn next_state_columns(next: NextState, now: i64) -> (&'static str, i64) {
    match next {
        NextState::Succeeded => ("succeeded", now),
        NextState::RetryAt(at) => ("pending", at),
        NextState::Failed => ("failed", now),
    }
}

/// A one-line summary of what went wrong in an attempt, kept on the delivery.
pub(crate) fn last_error(attempt: &AttemptRecord) -> Option<String> {
    match (&attempt.error, attempt.status_code) {
        (Some(error), _) => Some(error.clone()),
        (None, Some(code)) if !(200..300).contains(&code) => Some(format!("HTTP {code}")),
        _ => None,
    }
}

/// A row a claim returns (PostgreSQL also returns the event body in it).
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ClaimRow {
    pub id: String,
    pub event_id: String,
    pub webhook_id: String,
    pub attempts: i64,
    pub retry_base: i64,
    pub namespace: String,
    pub ordering_key: Option<String>,
    pub created_at: i64,
    #[sqlx(default)]
    pub event_body: Option<String>,
}

impl ClaimRow {
    /// The claimed delivery under `lease_id`, with its event body if found.
    pub(crate) fn into_claimed(
        self,
        lease_id: &str,
        event_body: Option<String>,
    ) -> ClaimedDelivery {
        ClaimedDelivery {
            event_body: event_body.or(self.event_body),
            lease: Lease {
                delivery_id: self.id,
                lease_id: lease_id.to_owned(),
            },
            event_id: self.event_id,
            webhook_id: self.webhook_id,
            attempts: self.attempts,
            retry_base: self.retry_base,
            namespace: self.namespace,
            ordering_key: self.ordering_key,
            created_at: self.created_at,
        }
    }
}
