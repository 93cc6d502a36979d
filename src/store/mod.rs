//! Storage: the only code that speaks SQL.
//!
//! [`Store`] is the handle every role shares. It wraps one [`Backend`] (SQLite or PostgreSQL,
//! chosen in exactly one place: [`open`]) and the in-process [`Wake`] signal that tells
//! dispatchers new work exists. Both backends implement the same trait and pass the same
//! contract test suite (`tests/it/store_contract.rs`). Timestamps are Unix milliseconds.

pub mod backup;
pub(crate) mod batch;
mod enrichment;
mod events;
mod handle;
mod intake;
mod log;
mod migrations;
mod postgres;
mod queue;
pub mod retention;
mod sealing;
mod serving;
mod sessions;
mod sql;
mod sqlite;
mod tag_heads;
pub mod tail;
mod tokens;
mod types;
mod wake;
mod webhooks;
mod writes;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::event::Event;
pub use enrichment::Enrichments;
pub use handle::Store;
pub use log::{
    DeliveryQuery, DeliveryView, EventQuery, EventRecord, HealthRecord, Log, LogFilter, PruneBatch,
    PruneCursor, Redelivery, ReplayOutcome, ReplayPlanner, ReplayRequest, STATS_KEPT_MS,
    StatsMinute, StatsTotals, StatusFilter,
};
pub use sealing::{SealReport, Sealing};
pub use sessions::{SessionRecord, Sessions};
pub use tail::Tail;
pub use types::*;
pub(crate) use types::{ClaimRow, WebhookRow, group_secrets, last_error, next_state_columns};
pub use wake::Wake;
pub use writes::{Probe, WriteHealth};

/// Why a storage call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or answered with an error.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Applying migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database was migrated by a newer hookline than this one, which does not keep
    /// this one's schema working.
    #[error(
        "the database schema is at version {found}, newer than this hookline knows (up to {known}), \
         and its migration {blocking} does not keep version {known} working; run a hookline at \
         least as new as the one that migrated it"
    )]
    SchemaTooNew {
        /// The highest version applied to the database.
        found: i64,
        /// The highest version this binary carries.
        known: i64,
        /// The first newer migration that does not keep `known` working.
        blocking: i64,
    },
    /// Migrations have not been applied (readiness check).
    #[error("the database schema is not migrated (run `hookline migrate`)")]
    NotMigrated,
    /// Writes have been failing (readiness): reads may still work.
    #[error("writes to the database have failed for {seconds} s: {reason}")]
    WritesFailing {
        /// How long, in whole seconds.
        seconds: u64,
        /// The last failure.
        reason: String,
    },
    /// Another `hookline serve` holds this SQLite file.
    #[error(
        "another `hookline serve` is using {path} (it holds {lock}); a SQLite database is served \
         by one process at a time: stop the other one, or use PostgreSQL for several replicas"
    )]
    InUse {
        /// The database file.
        path: String,
        /// The lock file the other process holds.
        lock: String,
    },
    /// The database URL is not one we support.
    #[error("unsupported database URL `{0}`: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    /// A stored row could not be decoded (corrupt JSON column).
    #[error("corrupt row in {table}: {source}")]
    Corrupt {
        /// The table holding the row.
        table: &'static str,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },
    /// A secret could not be sealed or opened (no key, a missing key, altered).
    #[error("{0}")]
    Sealing(#[from] crate::seal::SealError),
}

impl StoreError {
    /// True when the database is unreachable or overloaded: callers should answer
    /// "try again later" (HTTP 503, gRPC UNAVAILABLE) rather than "bad request".
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Database(e) => matches!(
                e,
                sqlx::Error::Io(_)
                    | sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::WorkerCrashed
                    | sqlx::Error::Database(_)
                    | sqlx::Error::Tls(_)
                    | sqlx::Error::Protocol(_)
            ),
            _ => false,
        }
    }
}

/// Decides which deliveries an event needs (the dispatcher's webhook matching).
pub type Planner = dyn Fn(&Event) -> Vec<NewDelivery> + Send + Sync;

/// What both backends provide: one trait per concern, each written once in its own file
/// (`tokens.rs`, `webhooks.rs`, `events.rs`, `queue.rs`, `log.rs`, …) over the handles a
/// backend hands out; `Schema` and the claim are each backend's own. Every method is one
/// short transaction (or none): no transaction is ever held open across anything but the database.
pub trait Backend:
    Schema
    + Liveness
    + Tokens
    + Webhooks
    + Events
    + Queue
    + Log
    + Sessions
    + Enrichments
    + Probe
    + Sealing
{
}
impl<T> Backend for T where
    T: Schema
        + Liveness
        + Tokens
        + Webhooks
        + Events
        + Queue
        + Log
        + Sessions
        + Enrichments
        + Probe
        + Sealing
{
}

/// Connection life cycle and schema.
#[async_trait]
pub trait Schema: Send + Sync + 'static {
    /// Applies embedded migrations; refuses a schema newer than this binary.
    async fn migrate(&self) -> Result<(), StoreError>;
    /// Database reachable and schema migrated up to this binary's version.
    async fn ready(&self) -> Result<(), StoreError>;
    /// Forwards wake-ups from other processes into `wake`, and the attempts they record
    /// into `tail` (while it is watched), until `cancel` fires.
    /// PostgreSQL: LISTEN/NOTIFY. SQLite: nothing to listen to, returns at once.
    async fn forward_remote_wakeups(&self, wake: Wake, tail: Tail, cancel: CancellationToken);
    /// Closes the connection pools.
    async fn close(&self);
}

/// Which dispatchers are alive, so that a dead one's leases are given back within seconds
/// of its death instead of when they expire (the lease stays the safety net). Each backend
/// knows death its own way: a SQLite file is served by one process at a time
/// ([`OpenOptions::exclusive`]), so at start every lease in it is a dead process's; on
/// PostgreSQL each dispatcher holds a session advisory lock, which ends with its session.
#[async_trait]
pub trait Liveness: Send + Sync {
    /// Marks this process's dispatcher alive until `cancel` fires or the process dies, and
    /// returns the owner id it must lease under. Returns once the mark is held, so nothing
    /// is ever leased under an owner others could take for dead.
    async fn hold_liveness(&self, cancel: CancellationToken) -> Result<String, StoreError>;
    /// Keys of the dispatchers alive now, or `None` where no other process can be alive
    /// (SQLite): then a dead owner can only be found once, at start.
    async fn live_owners(&self) -> Result<Option<Vec<i64>>, StoreError>;
    /// Gives back, due at `now`, every lease held by an owner that is not alive and not
    /// among `members` (the keys the caller still counts alive, within their grace; never
    /// `me`'s), and announces the work. Returns how many.
    async fn release_dead_leases(
        &self,
        me: &str,
        members: &[i64],
        now: i64,
    ) -> Result<u64, StoreError>;
    /// `owner`'s key among [`Liveness::live_owners`]' (0 where there are none).
    async fn owner_key(&self, owner: &str) -> Result<i64, StoreError>;
    /// The webhooks dispatcher `me` serves (`store/serving.rs`): only it claims their
    /// deliveries (`Only::Served`).
    async fn served_webhooks(&self, me: &str) -> Result<Vec<String>, StoreError>;
    /// Takes the serving of those of `ids` that no dispatcher serves or whose dispatcher
    /// is dead: not alive now, and not among `members` (the keys the caller still counts
    /// alive, within their grace); returns those taken now.
    async fn take_webhooks(
        &self,
        me: &str,
        ids: &[String],
        members: &[i64],
        now: i64,
    ) -> Result<Vec<String>, StoreError>;
    /// Gives up serving `ids` (only `me`'s rows), announcing work so that their next
    /// dispatcher takes them at once; returns how many.
    async fn give_up_webhooks(&self, me: &str, ids: &[String]) -> Result<u64, StoreError>;
}

/// API and registry tokens (hashes only).
#[async_trait]
pub trait Tokens: Send + Sync {
    /// Stores a new token (its hash only).
    async fn insert_token(&self, token: &NewToken) -> Result<(), StoreError>;
    /// The live (not revoked) token with this hash.
    async fn find_token(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError>;
    /// All tokens, newest first, revoked ones included.
    async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError>;
    /// Revokes a token; false if no live token has this id.
    async fn revoke_token(&self, id: &str, now: i64) -> Result<bool, StoreError>;
}

/// Webhooks and their secrets.
#[async_trait]
pub trait Webhooks: Send + Sync {
    /// Stores a new webhook with its first secret.
    async fn insert_webhook(
        &self,
        webhook: &Webhook,
        secret: &WebhookSecret,
    ) -> Result<(), StoreError>;
    /// One webhook by id.
    async fn get_webhook(&self, id: &str) -> Result<Option<Webhook>, StoreError>;
    /// Counter bumped by every webhook write; cheap to poll.
    async fn webhooks_revision(&self) -> Result<i64, StoreError>;
    /// Every enabled webhook with its secrets that are valid at `now`, current first.
    async fn enabled_webhooks(&self, now: i64) -> Result<Vec<WebhookWithSecrets>, StoreError>;
    /// Disables a webhook, recording why (410 Gone, failing for too long, …).
    async fn disable_webhook(&self, id: &str, reason: &str, now: i64) -> Result<(), StoreError>;
    /// Records the start of a run of failures (Some) or its end (None).
    async fn set_failing_since(&self, id: &str, since: Option<i64>) -> Result<(), StoreError>;
    /// Webhooks matching `query`, ordered by id (creation order), at most `query.limit`.
    async fn list_webhooks(&self, query: &WebhookQuery) -> Result<Vec<Webhook>, StoreError>;
    /// Writes the changeable fields of `webhook` (name, url, filters, format, headers,
    /// ordered, enabled, disabled_reason, updated_at) if the stored row still has
    /// `expected_updated_at`: a compare-and-set, so a concurrent change (an update, or the
    /// dispatcher disabling it) is never overwritten unseen. Re-enabling clears
    /// `failing_since`. False if the webhook is gone or changed meanwhile.
    async fn update_webhook(
        &self,
        webhook: &Webhook,
        expected_updated_at: i64,
    ) -> Result<bool, StoreError>;
    /// Deletes a webhook and its secrets; false if there was none. Its deliveries stay:
    /// the dispatcher fails pending ones ("webhook deleted") and the log keeps the rest.
    async fn delete_webhook(&self, id: &str) -> Result<bool, StoreError>;
    /// Makes `secret` the webhook's current secret; the previous current one stays valid
    /// until `previous_expires_at`; secrets expired by `secret.created_at` are dropped.
    /// False if the webhook does not exist.
    async fn rotate_secret(
        &self,
        webhook_id: &str,
        secret: &WebhookSecret,
        previous_expires_at: i64,
    ) -> Result<bool, StoreError>;
}

/// Events as received, and their fan-out into deliveries.
#[async_trait]
pub trait Events: Send + Sync {
    /// Stores several envelopes' events in one transaction (group commit), skipping any
    /// whose (source, registry_event_id) is already stored; with a `fan_out` plan, also
    /// their deliveries, leasing what may start to the planner's dispatcher
    /// (`store/intake.rs`). Returns, per envelope, how many were new, and what was leased.
    async fn store_events(
        &self,
        batches: &[&[Event]],
        fan_out: Option<&FanOutNow<'_>>,
    ) -> Result<Stored, StoreError>;
    /// Stores several envelopes' events in one transaction, unfanned; see `store_events`.
    async fn insert_event_batches(
        &self,
        batches: &[&[Event]],
    ) -> Result<Vec<InsertedEvents>, StoreError> {
        Ok(self.store_events(batches, None).await?.counts)
    }
    /// Stores one envelope's events in one transaction; see `store_events`.
    async fn insert_events(&self, events: &[Event]) -> Result<InsertedEvents, StoreError> {
        let counts = self.insert_event_batches(&[events]).await?;
        Ok(counts.first().copied().unwrap_or_default())
    }
    /// Events by id, in no particular order.
    async fn get_events(&self, ids: &[String]) -> Result<Vec<Event>, StoreError>;
    /// The most recent events, newest first.
    async fn recent_events(&self, limit: i64) -> Result<Vec<Event>, StoreError>;
    /// Stores an event that is addressed rather than matched (a test ping), already
    /// fanned out, together with its deliveries, in one transaction.
    async fn insert_fanned_out(
        &self,
        event: &Event,
        deliveries: &[NewDelivery],
        now: i64,
    ) -> Result<(), StoreError>;
    /// Takes up to `limit` events not yet fanned out, asks `plan` which deliveries each
    /// needs, enqueues them and marks the events fanned out, all in one transaction.
    /// `plan` was built from `webhooks_revision`; if webhooks changed since, nothing is
    /// done and the report says `stale`: rebuild the plan and call again.
    async fn fan_out(
        &self,
        limit: i64,
        now: i64,
        webhooks_revision: i64,
        plan: &Planner,
    ) -> Result<FanOutReport, StoreError>;
}

/// The delivery queue.
#[async_trait]
pub trait Queue: Send + Sync {
    /// Adds deliveries to the queue, due at `now`.
    async fn enqueue(&self, deliveries: &[NewDelivery], now: i64) -> Result<(), StoreError>;
    /// Claims up to `limit` due deliveries with a lease. Due means: pending, its time has
    /// come (or its lease expired), its webhook not skipped, and, for an ordering key, no
    /// earlier pending delivery with the same key.
    async fn claim_due(&self, claim: &Claim<'_>) -> Result<Vec<ClaimedDelivery>, StoreError>;
    /// Pushes these leases (if still held) to `until`. By id, so the cost does not grow
    /// with the queue. Returns how many were still held.
    async fn extend_leases(&self, leases: &[Lease], until: i64) -> Result<u64, StoreError>;
    /// Records attempts and moves each delivery to its next state (complete,
    /// reschedule or give up), in one transaction. A delivery whose lease was lost
    /// keeps its state; its attempt is still recorded. Returns how many leases were held.
    async fn finish(&self, results: &[Finished], now: i64) -> Result<u64, StoreError>;
    /// Gives leased deliveries back, due at `now`, without counting an attempt.
    async fn release(&self, leases: &[Lease], now: i64) -> Result<u64, StoreError>;
    /// Clears expired leases (they are already due again; this makes it visible).
    async fn reclaim_expired(&self, now: i64) -> Result<u64, StoreError>;
    /// One delivery by id.
    async fn get_delivery(&self, id: &str) -> Result<Option<DeliveryRecord>, StoreError>;
    /// Deliveries of one event, in queue order.
    async fn deliveries_for_event(&self, event_id: &str)
    -> Result<Vec<DeliveryRecord>, StoreError>;
    /// Attempts of one delivery, in order.
    async fn attempts(&self, delivery_id: &str) -> Result<Vec<AttemptRecord>, StoreError>;
    /// Counts by status, for metrics and benchmarks.
    async fn queue_stats(&self, now: i64) -> Result<QueueStats, StoreError>;
}

/// Options for opening a store.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// `sqlite://PATH` or `postgres://…`.
    pub url: String,
    /// Pool size for PostgreSQL; readers for SQLite (it always has one writer).
    pub max_connections: u32,
    /// How long a caller waits for a pooled connection before the store reports unavailable.
    pub acquire_timeout: Duration,
    /// Run migrations on open (serve does; `migrate` runs them explicitly).
    pub migrate: bool,
    /// This process serves the database alone (SQLite: `serve` locks `PATH.lock` for its
    /// lifetime, and a second `serve` on the file is refused). PostgreSQL ignores it.
    pub exclusive: bool,
    /// The keys that seal and open stored secrets (`seal.rs`); empty: a store that reads
    /// or writes no secret (a secret it meets is an error).
    pub keys: std::sync::Arc<crate::seal::Keyring>,
}

impl OpenOptions {
    /// Defaults for a URL: 8 connections, 5 s acquire timeout, migrate on open, shared.
    pub fn new(url: impl Into<String>) -> Self {
        OpenOptions {
            url: url.into(),
            max_connections: 8,
            acquire_timeout: Duration::from_secs(5),
            migrate: true,
            exclusive: false,
            keys: Default::default(),
        }
    }

    /// The same, sealing and opening secrets with `keys`.
    pub fn with_keys(mut self, keys: std::sync::Arc<crate::seal::Keyring>) -> Self {
        self.keys = keys;
        self
    }
}

/// Opens the store named by the URL. The only place that looks at which database runs.
pub async fn open(options: &OpenOptions) -> Result<Store, StoreError> {
    let backend: Arc<dyn Backend> = if let Some(path) = options.url.strip_prefix("sqlite://") {
        Arc::new(sqlite::SqliteBackend::connect(path, options).await?)
    } else if options.url.starts_with("postgres://") || options.url.starts_with("postgresql://") {
        Arc::new(postgres::PgBackend::connect(options).await?)
    } else {
        return Err(StoreError::UnsupportedUrl(redact_url(&options.url)));
    };
    if options.migrate {
        backend.migrate().await?;
    }
    Ok(Store {
        backend,
        wake: Wake::new(),
        tail: Tail::new(),
        writes: WriteHealth::default(),
    })
}

/// A database URL with any password removed, fit for logs and errors.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            match url[scheme_end + 3..at].split_once(':') {
                Some((user, _password)) => {
                    format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..])
                }
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Current time in Unix milliseconds.
pub fn now_ms() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn redacts_passwords_in_urls() {
        assert_eq!(
            redact_url("postgres://app:hunter2@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(redact_url("sqlite://hookline.db"), "sqlite://hookline.db");
        assert_eq!(redact_url("postgres://pg@db/x"), "postgres://pg@db/x");
    }
}
