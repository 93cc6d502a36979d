//! hookline: webhooks for container registries.
//!
//! A registry POSTs distribution notification envelopes to `ingest`, which normalises
//! them into [`event::Event`]s and commits them to the `store` before answering 2xx.
//! `dispatch` fans each event out to matching webhooks and delivers signed payloads with
//! leases and non-blocking retries, enriching pushes from the registry (`registry`) when
//! the operator configured one. `server` wires the roles together; `cli` holds the
//! operator commands. Modules in the order an event travels:
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admin;
pub mod api;
pub mod cli;
pub mod config;
pub(crate) mod console;
pub mod dispatch;
pub mod enrichment;
pub mod event;
pub mod ids;
pub mod ingest;
pub mod present;
pub mod ratelimit;
pub mod registry;
pub mod seal;
pub mod secret;
pub mod server;
pub mod ssrf;
pub mod store;
pub mod telemetry;
pub mod tls;
