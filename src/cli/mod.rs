//! The `hookline` command line: argument definitions and what each command does.
//!
//! `serve` and `migrate` run the server side; `tokens` works directly on the database
//! (the operator's bootstrap: no server needed); `webhooks`, `deliveries` (with the live
//! `tail`), `events` and `replay` are gRPC clients of the api role (`client.rs` connects
//! and explains failures, `listing.rs` the list commands' filters and paging, `show.rs`
//! the shared texts); `listen` is a local receiver that verifies deliveries
//! (`listen.rs`). Errors here are `anyhow` with context, printed by `main` as one clear
//! line. Long-running commands (`listen`, `deliveries tail`) get
//! the shutdown token so Ctrl-C ends them cleanly.

mod client;
mod deliveries;
mod events;
mod keys;
mod listen;
mod listing;
mod show;
mod tokens;
mod webhooks;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use crate::config::{CommonSettings, Config, ServeSettings};
use crate::store::{self, OpenOptions, Store};

/// The version `--version` prints: the crate's and the git revision it was built from
/// (build.rs; `unknown` when built without git or `HOOKLINE_REVISION`).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (revision ",
    env!("HOOKLINE_REVISION"),
    ")"
);

/// hookline: webhooks for container registries.
#[derive(Debug, Parser)]
#[command(name = "hookline", version = VERSION, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    common: CommonSettings,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run hookline: the notify endpoint, the dispatcher and the API (or the roles named by --roles).
    Serve(Box<ServeSettings>),
    /// Apply database migrations and exit.
    Migrate,
    /// Write a consistent copy of the live SQLite database to PATH (ingest and dispatch keep
    /// running); restore by starting hookline on the copy. PostgreSQL: use pg_dump.
    Backup {
        /// Where to write the copy (a new file; its directory must exist).
        path: std::path::PathBuf,
    },
    /// Create, list and revoke API and registry tokens (works directly on the database).
    #[command(subcommand)]
    Tokens(tokens::TokensCommand),
    /// The keys that seal stored secrets: generate one, re-seal everything under the newest.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Manage webhooks through the gRPC API (--server, --token).
    Webhooks(webhooks::WebhooksArgs),
    /// The delivery log: list, show with attempts, redeliver, and a live tail of attempts.
    Deliveries(deliveries::DeliveriesArgs),
    /// Events received from registries: list, and show one with its deliveries.
    Events(events::EventsArgs),
    /// Queue a webhook's events since a time again (recovery after the receiver's outage).
    Replay(events::ReplayArgs),
    /// Receive deliveries locally: verify signatures, print events, optionally run a command per event.
    Listen(listen::ListenArgs),
    /// Print a shell completion script: `hookline completions bash > /etc/bash_completion.d/hookline`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Output style of client commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Output {
    /// Aligned columns for people.
    #[default]
    Table,
    /// JSON for scripts.
    Json,
}

impl Cli {
    /// The log format and filter the command asked for, and for `serve` where its traces
    /// go. A `serve` whose options do not resolve gets no traces here: `run` reports why.
    pub fn telemetry(
        &self,
    ) -> Result<
        (
            crate::config::LogFormat,
            String,
            Option<crate::config::TraceConfig>,
        ),
        crate::config::ConfigError,
    > {
        if let Command::Serve(settings) = &self.command
            && let Ok(config) = Config::resolve(self.common.clone(), (**settings).clone())
        {
            return Ok((config.log_format, config.log_level, config.traces));
        }
        let config = Config::common(self.common.clone())?;
        Ok((config.log_format, config.log_level, None))
    }
}

/// Runs the parsed command. `shutdown` is cancelled by `main` on SIGTERM/SIGINT.
pub async fn run(cli: Cli, shutdown: CancellationToken) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(settings) => {
            let config = Config::resolve(cli.common, *settings)?;
            crate::server::run(&config, shutdown).await?;
            Ok(())
        }
        Command::Migrate => {
            let config = Config::common(cli.common)?;
            let store = open_store(&config, true).await?;
            // Plaintext secrets from before sealing are sealed now, if there is a key.
            let sealed = store.backend().seal_stored(false, 500).await;
            store.close().await;
            match sealed {
                Ok(report) if report.sealed > 0 => {
                    println!(
                        "sealed {} stored secrets that were plaintext",
                        report.sealed
                    );
                }
                Ok(_) => {}
                Err(store::StoreError::Sealing(crate::seal::SealError::NoKey)) => println!(
                    "stored secrets are not sealed yet: `serve` seals them with its key at start"
                ),
                Err(error) => return Err(error).context("checking the stored secrets"),
            }
            println!("database {} is migrated", store::redact_url(&config.db));
            Ok(())
        }
        Command::Backup { path } => {
            let config = Config::common(cli.common)?;
            let report = store::backup::backup(&config.db, &path).await?;
            println!(
                "backed up {} to {} ({:.1} MB, {} events, {} deliveries pending) in {}",
                store::redact_url(&config.db),
                report.path.display(),
                report.bytes as f64 / 1e6,
                report.events,
                report.pending_deliveries,
                crate::present::duration_text(report.elapsed.as_millis() as i64),
            );
            let key = match &config.secret_keys {
                crate::config::SecretKeys::Given(_) => "your secret key file".to_owned(),
                crate::config::SecretKeys::BesideDatabase => {
                    format!("{} beside the database", crate::config::DEFAULT_KEY_FILE)
                }
            };
            println!(
                "its secrets are sealed: the copy opens only with the key, {key}, which is not in it; back the key up apart from the database"
            );
            Ok(())
        }
        Command::Tokens(command) => {
            let config = Config::common(cli.common)?;
            let store = open_store(&config, true).await?;
            let result = tokens::run(command, &store).await;
            store.close().await;
            result
        }
        Command::Keys(command) => {
            let config = Config::common(cli.common)?;
            keys::run(command, &config).await
        }
        Command::Webhooks(args) => webhooks::run(args).await,
        Command::Deliveries(args) => deliveries::run(args, shutdown).await,
        Command::Events(args) => events::run(args).await,
        Command::Replay(args) => events::replay(args).await,
        Command::Listen(args) => listen::run(args, shutdown).await,
        Command::Completions { shell } => {
            // Into a buffer first: clap_complete panics on a failed write (`| head`).
            let mut script = Vec::new();
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "hookline", &mut script);
            match std::io::Write::write_all(&mut std::io::stdout(), &script) {
                Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
                    Err(anyhow::Error::new(error).context("writing the completion script"))
                }
                _ => Ok(()),
            }
        }
    }
}

/// The store, with the keys that seal its secrets: those given, or on SQLite the key file
/// beside it (made if absent); on PostgreSQL without a key, none (a secret is then an
/// error that says how to make one).
async fn open_store(config: &Config, migrate: bool) -> anyhow::Result<Store> {
    let keys = match crate::config::keyring_for(&config.secret_keys, &config.db) {
        Ok((keys, made)) => {
            if let Some(file) = made {
                eprintln!(
                    "made {}, the key that seals stored secrets: back it up apart from the database",
                    file.display()
                );
            }
            keys
        }
        // PostgreSQL without a key: commands that touch no secret still work.
        Err(_) if !config.db.starts_with("sqlite://") => Default::default(),
        Err(error) => anyhow::bail!("secret keys: {error}"),
    };
    let mut options = OpenOptions::new(&config.db).with_keys(keys);
    options.migrate = migrate;
    options.max_connections = 2;
    store::open(&options)
        .await
        .with_context(|| format!("opening the database {}", store::redact_url(&config.db)))
}
