//! Integration tests: one binary (see STYLE.md).

mod api;
mod backup;
mod browser_selftest;
mod cli;
mod cli_deliveries;
mod concurrency;
mod console;
mod deliveries;
mod dispatch;
mod faults;
mod harness;
mod ingest;
mod layers;
mod listen;
mod payloads;
mod pg_selftest;
mod registry_enrichment;
mod registry_events;
mod registry_selftest;
mod replicas;
mod safety;
mod serve;
mod stalls;
mod store_contract;
mod takeover;
mod tls;
