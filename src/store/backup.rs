//! `hookline backup PATH`: a consistent copy of a live SQLite database.
//!
//! `VACUUM INTO` reads the database in one read transaction, so the copy is the database
//! as of one instant: every transaction committed before it started (every event ingest
//! acknowledged) is in it, none half-written. Under WAL it blocks neither the writer nor
//! other readers, so ingest and dispatch keep running. The copy is written beside the
//! destination under a temporary name, flushed to disk, checked, and only then renamed into
//! place: a crash or a full disk never leaves a truncated file at PATH.
//!
//! PostgreSQL is backed up with its own tools (`pg_dump`, base backups and WAL archiving);
//! docs/operations.md says how and what hookline needs after a restore.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

/// What a backup wrote.
#[derive(Debug)]
pub struct BackupReport {
    /// Where the copy is.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// Events in the copy.
    pub events: i64,
    /// Deliveries in the copy not yet finished (they resume when hookline starts on it).
    pub pending_deliveries: i64,
    /// How long it took.
    pub elapsed: Duration,
}

/// Why a backup failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The database URL names PostgreSQL (or something else).
    #[error(
        "`hookline backup` copies the embedded SQLite database; for PostgreSQL use pg_dump or \
         base backups with WAL archiving (docs/operations.md, \"Backup and restore\")"
    )]
    NotSqlite,
    /// The source database file does not exist.
    #[error("no SQLite database at {0}")]
    NoSource(String),
    /// The destination already exists: a backup never overwrites.
    #[error("{0} already exists: choose a new path or remove it first")]
    DestinationExists(String),
    /// The destination's directory is missing or not writable.
    #[error("cannot write {path}: {source}")]
    Destination {
        /// The destination.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// SQLite failed (the disk filled up, the source is corrupt, …).
    #[error("backing up: {0}")]
    Database(#[from] sqlx::Error),
    /// The copy does not pass SQLite's check.
    #[error("the copy at {path} failed SQLite's integrity check: {message}")]
    Check {
        /// The copy (left under its temporary name for inspection).
        path: String,
        /// SQLite's first complaint.
        message: String,
    },
}

/// Copies the SQLite database named by `db_url` (`sqlite://PATH`) to `destination`.
pub async fn backup(db_url: &str, destination: &Path) -> Result<BackupReport, BackupError> {
    let started = Instant::now();
    let source = db_url
        .strip_prefix("sqlite://")
        .ok_or(BackupError::NotSqlite)?;
    // `sqlite://hookline.db?mode=rwc` names the same file as `serve` reads it.
    let source = source.split('?').next().unwrap_or(source);
    if !Path::new(source).exists() {
        return Err(BackupError::NoSource(source.to_owned()));
    }
    let shown = destination.display().to_string();
    if destination.exists() {
        return Err(BackupError::DestinationExists(shown));
    }
    let directory = match destination.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = destination
        .file_name()
        .ok_or_else(|| BackupError::Destination {
            path: shown.clone(),
            source: std::io::Error::other("the path names no file"),
        })?;
    let mut partial_name = file_name.to_os_string();
    partial_name.push(format!(".partial-{}", std::process::id()));
    let partial = directory.join(partial_name);
    let partial_text = partial.to_str().ok_or_else(|| BackupError::Destination {
        path: shown.clone(),
        source: std::io::Error::other("the path is not valid UTF-8"),
    })?;

    // The live database is opened as it is (no create, no migration): only read.
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{source}"))?
        .create_if_missing(false)
        .busy_timeout(Duration::from_secs(30));
    let mut connection = SqliteConnection::connect_with(&options).await?;
    let vacuumed = sqlx::query("VACUUM INTO ?")
        .bind(partial_text)
        .execute(&mut connection)
        .await;
    connection.close().await?;
    if let Err(error) = vacuumed {
        let _ = std::fs::remove_file(&partial);
        return Err(error.into());
    }

    let (events, pending_deliveries) = match check_copy(&partial).await {
        Ok(counts) => counts,
        Err(error) => {
            if !matches!(error, BackupError::Check { .. }) {
                let _ = std::fs::remove_file(&partial);
            }
            return Err(error);
        }
    };
    let durable = || -> std::io::Result<u64> {
        let file = std::fs::File::open(&partial)?;
        file.sync_all()?;
        let bytes = file.metadata()?.len();
        if destination.exists() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "appeared while the backup ran",
            ));
        }
        std::fs::rename(&partial, destination)?;
        // The rename itself is durable once the directory is.
        std::fs::File::open(&directory)?.sync_all()?;
        Ok(bytes)
    };
    let bytes = durable().map_err(|source| {
        let _ = std::fs::remove_file(&partial);
        BackupError::Destination {
            path: shown.clone(),
            source,
        }
    })?;
    Ok(BackupReport {
        path: destination.to_path_buf(),
        bytes,
        events,
        pending_deliveries,
        elapsed: started.elapsed(),
    })
}

/// Opens the copy read-only, runs SQLite's quick check and counts what it holds:
/// (events, pending deliveries).
async fn check_copy(path: &Path) -> Result<(i64, i64), BackupError> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .create_if_missing(false);
    let mut connection = SqliteConnection::connect_with(&options).await?;
    let check: String = sqlx::query_scalar("PRAGMA quick_check")
        .fetch_one(&mut connection)
        .await?;
    if check != "ok" {
        connection.close().await?;
        return Err(BackupError::Check {
            path: path.display().to_string(),
            message: check,
        });
    }
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&mut connection)
        .await?;
    let pending_deliveries: i64 =
        sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE status = 'pending'")
            .fetch_one(&mut connection)
            .await?;
    connection.close().await?;
    Ok((events, pending_deliveries))
}
