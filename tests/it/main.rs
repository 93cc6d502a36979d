//! Integration tests: one binary (see STYLE.md).

mod harness;
mod ingest;
mod pg_selftest;
mod registry_selftest;
mod store_contract;
