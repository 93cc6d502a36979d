//! SQL text both backends share, and the handles that run it on either database.
//!
//! Most statements are the same in SQLite and PostgreSQL once placeholders are written
//! `$1`, `$2`… (sqlx binds SQLite's `$N` by number too). What differs is small and named
//! here, in [`Dialect`] (how text is searched, how a list parameter becomes rows) and in
//! `rows.rs` (how a batch of rows becomes one table). A
//! statement written once ([`Sql`]) is run by [`Reads`] (a pool: the read pool, or a
//! backend's migration pool) or [`Tx`] (a write transaction or a read snapshot), which
//! hold either database, so the store's concerns built on them (log, webhooks, queue,
//! events, tokens) are written once too. The backends' own files keep what is genuinely
//! dialect-specific (claims with `SKIP LOCKED`, `LISTEN/NOTIFY`); the few steps that
//! differ inside a shared transaction are `Tx` methods (`announce_work`, `take_prune_turn`).

use sqlx::migrate::Migrator;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{
    Arguments, Database, Encode, FromRow, PgPool, Postgres, Sqlite, SqlitePool, Transaction, Type,
};

mod rows;

pub(crate) use rows::{Column, Columns, Rows};

use super::migrations::{self, Applied, Standing};
use super::writes::watched;
use super::{NewDelivery, StoreError};

/// The columns of `deliveries` a [`DeliveryRecord`](super::DeliveryRecord) reads, prefixed `d.`.
pub(crate) const DELIVERY_COLUMNS: &str = "d.seq, d.id, d.event_id, d.webhook_id, d.status, d.attempts, \
     d.next_attempt_at, d.lease_id, d.lease_owner, d.lease_until, d.ordering_key, d.last_error, \
     d.created_at, d.updated_at, d.namespace, d.retry_base, d.last_status_code, d.last_duration_ms, \
     d.last_attempt_at";

/// The columns of `attempts` an [`AttemptRecord`](super::AttemptRecord) reads, prefixed `a.`.
pub(crate) const ATTEMPT_COLUMNS: &str = "a.id, a.delivery_id, a.number, a.started_at, a.duration_ms, \
     a.status_code, a.response_headers, a.response_body, a.error, a.outcome, a.error_class, \
     a.reason, a.next_attempt_at";

/// The columns of `events` an [`EventRecord`](super::EventRecord) reads, prefixed `e.`.
pub(crate) const EVENT_COLUMNS: &str = "e.seq, e.id, e.source, e.type AS kind, e.repository, e.tag, \
     e.digest, e.received_at, e.body";

/// The SQL dialect a statement is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// A JSON array of strings in parameter `param` as a one-column table whose column is
    /// named `value`, for `IN (…)` and joins.
    pub(crate) fn text_list(self, param: &str) -> String {
        match self {
            Dialect::Sqlite => format!("(SELECT value FROM json_each({param}))"),
            Dialect::Postgres => {
                format!("(SELECT value FROM jsonb_array_elements_text({param}::jsonb))")
            }
        }
    }

    /// A JSON array of integers in parameter `param` as a one-column table, for `IN (…)`.
    pub(crate) fn int_list(self, param: &str) -> String {
        match self {
            Dialect::Sqlite => format!("(SELECT value FROM json_each({param}))"),
            Dialect::Postgres => format!(
                "(SELECT CAST(value AS BIGINT) FROM jsonb_array_elements_text({param}::jsonb))"
            ),
        }
    }

    /// `column` contains the text of parameter `param`, ignoring ASCII case if `fold_case`
    /// (both databases fold ASCII only: PostgreSQL in the "C" collation).
    pub(crate) fn contains(self, column: &str, param: &str, fold_case: bool) -> String {
        match (self, fold_case) {
            (Dialect::Sqlite, false) => format!("instr({column}, {param}) > 0"),
            (Dialect::Sqlite, true) => format!("instr(lower({column}), lower({param})) > 0"),
            (Dialect::Postgres, false) => format!("strpos({column}, CAST({param} AS TEXT)) > 0"),
            (Dialect::Postgres, true) => format!(
                "strpos(lower({column} COLLATE \"C\"), lower(CAST({param} AS TEXT) COLLATE \"C\")) > 0"
            ),
        }
    }
}

/// A bound value. A NULL keeps its type (`OptInt`, `OptText`), which PostgreSQL needs to
/// store it in a typed column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Param {
    Int(i64),
    Text(String),
    Bool(bool),
    OptInt(Option<i64>),
    OptText(Option<String>),
}

impl From<i64> for Param {
    fn from(v: i64) -> Self {
        Param::Int(v)
    }
}
impl From<&str> for Param {
    fn from(v: &str) -> Self {
        Param::Text(v.to_owned())
    }
}
impl From<String> for Param {
    fn from(v: String) -> Self {
        Param::Text(v)
    }
}
impl From<bool> for Param {
    fn from(v: bool) -> Self {
        Param::Bool(v)
    }
}
impl From<Option<i64>> for Param {
    fn from(v: Option<i64>) -> Self {
        Param::OptInt(v)
    }
}
impl From<Option<String>> for Param {
    fn from(v: Option<String>) -> Self {
        Param::OptText(v)
    }
}
impl From<Option<&str>> for Param {
    fn from(v: Option<&str>) -> Self {
        Param::OptText(v.map(str::to_owned))
    }
}

/// A statement built piece by piece with its parameters, numbered `$1`, `$2`… in order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sql {
    pub(crate) text: String,
    params: Vec<Param>,
}

impl Sql {
    pub(crate) fn new(text: impl Into<String>) -> Sql {
        Sql {
            text: text.into(),
            params: Vec::new(),
        }
    }

    /// Adds a parameter that the text already names by its number (`$1` for the first).
    pub(crate) fn arg(mut self, value: impl Into<Param>) -> Self {
        self.params.push(value.into());
        self
    }

    /// Appends text.
    pub(crate) fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Adds a parameter and returns its placeholder (`$3`) to write into the text.
    pub(crate) fn bind(&mut self, value: impl Into<Param>) -> String {
        self.params.push(value.into());
        format!("${}", self.params.len())
    }

    /// `column` is `namespace` or lies below it at a `/` (`acme` holds `acme/tools`, never
    /// `acmecorp`): compared with substr, never LIKE, whose `_` and `%` a path may contain.
    pub(crate) fn push_within(&mut self, column: &str, namespace: &str) -> &mut Self {
        let p = self.bind(namespace);
        let text = format!(
            "({column} = CAST({p} AS TEXT) OR substr({column}, 1, length(CAST({p} AS TEXT)) + 1) = CAST({p} AS TEXT) || '/')"
        );
        self.push(&text)
    }

    /// The parameters, ready for `sqlx::query_with` on database `DB`, borrowing the text
    /// (a batch's event bodies are not copied once more).
    pub(crate) fn arguments<'q, DB: Database>(&'q self) -> Result<DB::Arguments<'q>, StoreError>
    where
        i64: Encode<'q, DB> + Type<DB>,
        &'q str: Encode<'q, DB> + Type<DB>,
        bool: Encode<'q, DB> + Type<DB>,
        Option<i64>: Encode<'q, DB>,
        Option<&'q str>: Encode<'q, DB>,
    {
        let mut args = DB::Arguments::default();
        for param in &self.params {
            let added = match param {
                Param::Int(v) => args.add(*v),
                Param::Text(v) => args.add(v.as_str()),
                Param::Bool(v) => args.add(*v),
                Param::OptInt(v) => args.add(*v),
                Param::OptText(v) => args.add(v.as_deref()),
            };
            added.map_err(|e| StoreError::Database(sqlx::Error::Encode(e)))?;
        }
        Ok(args)
    }
}

/// A row type both databases decode.
pub(crate) trait Row:
    Send + Unpin + for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow>
{
}
impl<T> Row for T where T: Send + Unpin + for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow>
{}

/// Runs a [`Sql`] through one sqlx call on whichever database `$handle` holds:
/// `$kind::Sqlite($on)` and `$kind::Postgres($on)` give the executor `$exec`, then
/// `sqlx::$query(…).$method($exec).await?` runs, followed by any `.$then()` calls.
macro_rules! run_on {
    ($handle:expr, $kind:ident($on:ident) => $exec:expr, $sql:expr,
     $query:ident.$method:ident $(.$then:ident())*) => {
        match $handle {
            $kind::Sqlite($on) => sqlx::$query(&$sql.text, $sql.arguments::<Sqlite>()?)
                .$method($exec)
                .await?$(.$then())*,
            $kind::Postgres($on) => sqlx::$query(&$sql.text, $sql.arguments::<Postgres>()?)
                .$method($exec)
                .await?$(.$then())*,
        }
    };
}

/// Reads on either database (SQLite: the reader pool, never waiting for the writer).
#[derive(Clone, Copy)]
pub(crate) enum Reads<'a> {
    Sqlite(&'a SqlitePool),
    Postgres(&'a PgPool),
}

impl Reads<'_> {
    pub(crate) fn dialect(self) -> Dialect {
        match self {
            Reads::Sqlite(_) => Dialect::Sqlite,
            Reads::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Every row of `sql`.
    pub(crate) async fn fetch_all<T: Row>(self, sql: &Sql) -> Result<Vec<T>, StoreError> {
        Ok(run_on!(self, Reads(pool) => pool, sql, query_as_with.fetch_all))
    }

    /// The row of `sql`, if any.
    pub(crate) async fn fetch_optional<T: Row>(self, sql: &Sql) -> Result<Option<T>, StoreError> {
        Ok(run_on!(self, Reads(pool) => pool, sql, query_as_with.fetch_optional))
    }

    /// The one row of `sql` (an error if there is none).
    pub(crate) async fn fetch_one<T: Row>(self, sql: &Sql) -> Result<T, StoreError> {
        Ok(run_on!(self, Reads(pool) => pool, sql, query_as_with.fetch_one))
    }

    /// A read-only transaction, for several reads from one consistent snapshot.
    pub(crate) async fn snapshot(self) -> Result<Tx, StoreError> {
        Ok(match self {
            Reads::Sqlite(pool) => Tx::Sqlite(pool.begin().await?),
            Reads::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    /// Applies `migrator`'s migrations on this pool (SQLite: pass the writer). A newer
    /// schema is left as it is: run on if it keeps this binary's version, refused if not.
    pub(crate) async fn migrate(self, migrator: &Migrator) -> Result<(), StoreError> {
        let known = migrations::known_version(migrator);
        if let Standing::NewerCompatible { found } =
            migrations::standing(&self.applied(known).await?, migrator)?
        {
            tracing::info!(
                found,
                known,
                "the database schema is newer than this hookline's but keeps it working; \
                 running on it without migrating"
            );
            return Ok(());
        }
        match self {
            Reads::Sqlite(pool) => migrator.run(pool).await?,
            Reads::Postgres(pool) => migrator.run(pool).await?,
        }
        Ok(())
    }

    /// Whether this binary can serve the schema: migrated up to its version, or newer and
    /// keeping its version working.
    pub(crate) async fn check_migrated(self, migrator: &Migrator) -> Result<(), StoreError> {
        let known = migrations::known_version(migrator);
        match migrations::standing(&self.applied(known).await?, migrator)? {
            Standing::Behind => Err(StoreError::NotMigrated),
            Standing::Current | Standing::NewerCompatible { .. } => Ok(()),
        }
    }

    /// The database's applied migrations, and what those newer than `known` keep working.
    async fn applied(self, known: i64) -> Result<Applied, StoreError> {
        let table = Sql::new(match self.dialect() {
            Dialect::Sqlite => {
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'"
            }
            Dialect::Postgres => "SELECT to_regclass('_sqlx_migrations')::text",
        });
        let table: Option<(Option<String>,)> = self.fetch_optional(&table).await?;
        if table.and_then(|(name,)| name).is_none() {
            return Ok(Applied {
                version: None,
                newer: Vec::new(),
            });
        }
        let version = Sql::new("SELECT MAX(version) FROM _sqlx_migrations WHERE success");
        let (version,): (Option<i64>,) = self.fetch_one(&version).await?;
        let newer = match version {
            Some(v) if v > known => {
                let declared = Sql::new(
                    "SELECT m.version, c.oldest_reader FROM _sqlx_migrations m \
                     LEFT JOIN schema_compat c ON c.version = m.version \
                     WHERE m.success AND m.version > $1 ORDER BY m.version",
                )
                .arg(known);
                self.fetch_all(&declared).await?
            }
            _ => Vec::new(),
        };
        Ok(Applied { version, newer })
    }
}

/// A transaction on either database: a write transaction (SQLite: `BEGIN IMMEDIATE` on
/// the one writer), or a [`Reads::snapshot`]. Dropped without [`Tx::commit`], it rolls back.
pub(crate) enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

impl Tx {
    pub(crate) fn dialect(&self) -> Dialect {
        match self {
            Tx::Sqlite(_) => Dialect::Sqlite,
            Tx::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Runs `sql`; returns the rows it changed.
    pub(crate) async fn execute(&mut self, sql: &Sql) -> Result<u64, StoreError> {
        Ok(run_on!(self, Tx(tx) => &mut **tx, sql, query_with.execute.rows_affected()))
    }

    /// Runs `sql` as the whole transaction and commits; returns the rows it changed.
    pub(crate) async fn execute_alone(mut self, sql: &Sql) -> Result<u64, StoreError> {
        let changed = self.execute(sql).await?;
        self.commit().await?;
        Ok(changed)
    }

    /// Every row of `sql`.
    pub(crate) async fn fetch_all<T: Row>(&mut self, sql: &Sql) -> Result<Vec<T>, StoreError> {
        Ok(run_on!(self, Tx(tx) => &mut **tx, sql, query_as_with.fetch_all))
    }

    /// The row of `sql`, if any.
    pub(crate) async fn fetch_optional<T: Row>(
        &mut self,
        sql: &Sql,
    ) -> Result<Option<T>, StoreError> {
        Ok(run_on!(self, Tx(tx) => &mut **tx, sql, query_as_with.fetch_optional))
    }

    /// The one row of `sql` (an error if there is none).
    pub(crate) async fn fetch_one<T: Row>(&mut self, sql: &Sql) -> Result<T, StoreError> {
        Ok(run_on!(self, Tx(tx) => &mut **tx, sql, query_as_with.fetch_one))
    }

    /// Queues deliveries, due at `now`, in one set-based statement. Rows keep the slice's
    /// order, so `seq` follows event order.
    pub(crate) async fn insert_deliveries(
        &mut self,
        deliveries: &[NewDelivery],
        now: i64,
    ) -> Result<(), StoreError> {
        if deliveries.is_empty() {
            return Ok(());
        }
        let rows = super::intake::unleased_rows(deliveries);
        self.execute(&super::intake::deliveries_insert(
            self.dialect(),
            rows,
            now,
        )?)
        .await?;
        Ok(())
    }

    /// Tells every replica, once this commits, that work is due (PostgreSQL `NOTIFY`;
    /// SQLite has one process, whose store wakes its dispatcher itself).
    pub(crate) async fn announce_work(&mut self) -> Result<(), StoreError> {
        match self {
            Tx::Sqlite(_) => Ok(()),
            Tx::Postgres(tx) => super::postgres::notify_on_commit(tx).await,
        }
    }

    /// Whether this process may prune now: on PostgreSQL one replica at a time, by an
    /// advisory lock held until this transaction ends; SQLite's writer is already exclusive.
    pub(crate) async fn take_prune_turn(&mut self) -> Result<bool, StoreError> {
        /// The advisory lock key of pruning ("hookprun").
        const PRUNE_LOCK: i64 = 0x686f_6f6b_7072_756e;
        match self {
            Tx::Sqlite(_) => Ok(true),
            Tx::Postgres(tx) => Ok(sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
                .bind(PRUNE_LOCK)
                .fetch_one(&mut **tx)
                .await?),
        }
    }

    pub(crate) async fn commit(self) -> Result<(), StoreError> {
        match self {
            Tx::Sqlite(tx) => {
                let disk =
                    || "SQLite's COMMIT: the disk syncing the write-ahead log (fsync)".into();
                watched("commit", disk, tx.commit()).await?
            }
            Tx::Postgres(tx) => {
                let server =
                    || "PostgreSQL's COMMIT: the server's disk, or a synchronous standby".into();
                watched("commit", server, tx.commit()).await?
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_in_order() {
        let mut sql = Sql::new("SELECT 1 WHERE a = ");
        let a = sql.bind(1i64);
        sql.push(&a).push(" AND ");
        sql.push_within("ns", "acme");
        assert_eq!(
            sql.text,
            "SELECT 1 WHERE a = $1 AND (ns = CAST($2 AS TEXT) OR substr(ns, 1, length(CAST($2 AS TEXT)) + 1) = CAST($2 AS TEXT) || '/')"
        );
        assert_eq!(sql.params, vec![Param::Int(1), Param::Text("acme".into())]);
    }
}
