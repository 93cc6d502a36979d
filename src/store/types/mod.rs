//! Row and domain types that cross the storage boundary.
//!
//! Plain data: what goes into the store and what comes back, one file per concept:
//! `tokens.rs` (tokens and registry sources), `webhooks.rs`, `events.rs` (storing and
//! fanning out events), `deliveries.rs` (the queue's rows, claims and leases), `attempts.rs`
//! (attempts, their results and the live tail's view). `rows.rs` is where stored rows
//! become these types and back. Row structs derive `sqlx::FromRow` once and serve both
//! backends, so the two never disagree on a column. The bottom floor of the store: no I/O
//! and no SQL here, and nothing from the crate but `secret` and `event`.

mod attempts;
mod deliveries;
mod events;
mod rows;
mod tokens;
mod webhooks;

pub use attempts::{AttemptContext, AttemptRecord, AttemptView, CircuitView, Finished};
pub use deliveries::{
    Claim, ClaimedDelivery, DeliveryRecord, Lease, NewDelivery, NextState, Only, QueueStats,
};
pub use events::{FanOutNow, FanOutReport, InsertedEvents, Stored};
pub use rows::decode_event;
pub(crate) use rows::{ClaimRow, WebhookRow, group_secrets, last_error, next_state_columns};
pub use tokens::{NewToken, RegistryAccess, RegistrySource, TokenKind, TokenRecord};
pub use webhooks::{
    CHAT_FORMATS, ClientIdentity, OAuthClient, PayloadOptions, Webhook, WebhookQuery,
    WebhookSecret, WebhookWithSecrets, url_is_credential,
};
