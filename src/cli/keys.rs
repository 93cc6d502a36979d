//! `hookline keys generate|rewrap`: the keys that seal stored secrets (`seal.rs`).
//!
//! `generate` prints a new key for a key file; `rewrap` re-seals every stored secret under
//! the newest key of `--secret-key-file` (after a rotation), straight on the database,
//! while hookline runs: in batches, compare-and-set, so running it twice does no harm.

use anyhow::Context;
use clap::Subcommand;

use crate::config::Config;
use crate::store::{self, Store};

/// Rows per transaction of `rewrap`.
const BATCH: i64 = 200;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Print a new random key (32 bytes, base64): the first line of a new key file, or a
    /// new first line before the old keys when rotating.
    Generate,
    /// Re-seal every stored secret under the newest key (run after putting a new key first
    /// in --secret-key-file; then the older keys can be removed).
    Rewrap,
}

pub async fn run(command: KeysCommand, config: &Config) -> anyhow::Result<()> {
    match command {
        KeysCommand::Generate => {
            println!("{}", crate::seal::generate());
            Ok(())
        }
        KeysCommand::Rewrap => {
            let store = super::open_store(config, true).await?;
            let result = rewrap(&store).await;
            store.close().await;
            let report = result.with_context(|| {
                format!(
                    "re-sealing the secrets of {}",
                    store::redact_url(&config.db)
                )
            })?;
            println!(
                "re-sealed {} secrets under the newest key, sealed {} that were plaintext; {} were already current",
                report.resealed, report.sealed, report.unchanged
            );
            Ok(())
        }
    }
}

async fn rewrap(store: &Store) -> Result<store::SealReport, store::StoreError> {
    store.backend().seal_stored(true, BATCH).await
}
