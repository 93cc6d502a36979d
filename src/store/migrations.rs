//! Schema version checks shared by both backends.
//!
//! Migrations are embedded per dialect (`migrations/sqlite`, `migrations/postgres`, same
//! numbering), forward-only, and applied by sqlx. These checks turn "the database is
//! newer than this binary" into either a clear refusal or, during a rolling upgrade, into
//! running on: from migration 7 on, each migration declares in `schema_compat` the oldest
//! schema version that may keep running on it, so replicas of the previous version stay
//! ready after an additive migration and only an incompatible one stops them.

use sqlx::migrate::Migrator;

use super::StoreError;

/// The newest version this binary carries.
pub(super) fn known_version(migrator: &Migrator) -> i64 {
    migrator.iter().map(|m| m.version).max().unwrap_or(0)
}

/// What a database says of its schema.
pub(super) struct Applied {
    /// The highest successfully applied migration, or None on a fresh database.
    pub version: Option<i64>,
    /// Applied migrations newer than this binary's, each with the oldest version it keeps
    /// working (None: it declares nothing, so it keeps nothing older than itself).
    pub newer: Vec<(i64, Option<i64>)>,
}

/// Where a database's schema stands against this binary's.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Standing {
    /// Fresh, or older than this binary: migrate it.
    Behind,
    /// Exactly this binary's.
    Current,
    /// Newer, but every newer migration keeps this binary's version working.
    NewerCompatible {
        /// The database's version.
        found: i64,
    },
}

/// Where `applied` stands for this binary; a newer schema that does not keep this binary's
/// version working is refused, naming the first migration that does not.
pub(super) fn standing(applied: &Applied, migrator: &Migrator) -> Result<Standing, StoreError> {
    let known = known_version(migrator);
    match applied.version {
        None => Ok(Standing::Behind),
        Some(version) if version < known => Ok(Standing::Behind),
        Some(version) if version == known => Ok(Standing::Current),
        Some(found) => {
            let keeps_us = |oldest: &Option<i64>| oldest.is_some_and(|oldest| oldest <= known);
            match applied.newer.iter().find(|(_, oldest)| !keeps_us(oldest)) {
                Some(&(blocking, _)) => Err(StoreError::SchemaTooNew {
                    found,
                    known,
                    blocking,
                }),
                None => Ok(Standing::NewerCompatible { found }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn migrator_up_to(version: i64) -> Migrator {
        let migrations = (1..=version)
            .map(|v| {
                sqlx::migrate::Migration::new(
                    v,
                    format!("m{v}").into(),
                    sqlx::migrate::MigrationType::Simple,
                    "".into(),
                    false,
                )
            })
            .collect::<Vec<_>>();
        Migrator {
            migrations: migrations.into(),
            ..Migrator::DEFAULT
        }
    }

    fn applied(version: Option<i64>, newer: &[(i64, Option<i64>)]) -> Applied {
        Applied {
            version,
            newer: newer.to_vec(),
        }
    }

    #[test]
    fn older_and_current_schemas_are_migrated_or_run() {
        let m = migrator_up_to(8);
        assert_eq!(
            standing(&applied(None, &[]), &m).ok(),
            Some(Standing::Behind)
        );
        assert_eq!(
            standing(&applied(Some(7), &[]), &m).ok(),
            Some(Standing::Behind)
        );
        assert_eq!(
            standing(&applied(Some(8), &[]), &m).ok(),
            Some(Standing::Current)
        );
    }

    #[test]
    fn a_newer_schema_runs_only_if_every_newer_migration_keeps_this_version() {
        let m = migrator_up_to(8);
        let additive = applied(Some(10), &[(9, Some(8)), (10, Some(7))]);
        assert_eq!(
            standing(&additive, &m).ok(),
            Some(Standing::NewerCompatible { found: 10 })
        );
        let breaking = applied(Some(10), &[(9, Some(8)), (10, Some(10))]);
        let error = standing(&breaking, &m).expect_err("refused");
        assert!(
            matches!(
                error,
                StoreError::SchemaTooNew {
                    found: 10,
                    known: 8,
                    blocking: 10
                }
            ),
            "{error}"
        );
        let undeclared = applied(Some(9), &[(9, None)]);
        assert!(standing(&undeclared, &m).is_err());
    }
}
