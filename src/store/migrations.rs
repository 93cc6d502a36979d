//! Schema version checks shared by both backends.
//!
//! Migrations are embedded per dialect (`migrations/sqlite`, `migrations/postgres`, same
//! numbering), forward-only, and applied by sqlx. These checks turn "the database is
//! newer than this binary" into a clear refusal instead of sqlx's generic error.

use sqlx::migrate::Migrator;

use super::StoreError;

/// The newest version this binary carries.
pub(super) fn known_version(migrator: &Migrator) -> i64 {
    migrator.iter().map(|m| m.version).max().unwrap_or(0)
}

/// Refuses to touch a database migrated by a newer hookline.
pub(super) fn refuse_newer(applied: Option<i64>, migrator: &Migrator) -> Result<(), StoreError> {
    let known = known_version(migrator);
    match applied {
        Some(found) if found > known => Err(StoreError::SchemaTooNew { found, known }),
        _ => Ok(()),
    }
}

/// Ready means migrated to exactly what this binary knows.
pub(super) fn check_current(applied: Option<i64>, migrator: &Migrator) -> Result<(), StoreError> {
    refuse_newer(applied, migrator)?;
    match applied {
        Some(v) if v == known_version(migrator) => Ok(()),
        _ => Err(StoreError::NotMigrated),
    }
}
