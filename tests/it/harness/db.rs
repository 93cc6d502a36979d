//! One database per test, on either backend.
//!
//! `store_test!(name, |db| async move { … })` expands to two tests, `name::sqlite` and
//! `name::postgres`, running the same body: the storage contract is one suite, not two copies.

use std::sync::Arc;

use hookline::seal::Keyring;
use hookline::store::{self, OpenOptions, Store};

use super::pg::{PgDatabase, fresh_database};
use super::watchdog::Watchdog;

/// Far past any test's usual time (the longest take about 10 s), before nextest's own
/// timeout (2 min; 5 in CI) kills it without a word.
const HANG: std::time::Duration = std::time::Duration::from_secs(90);

/// The key that seals the tests' secrets: in `hookline.key` beside every SQLite test
/// database (where `serve` looks when no key is given), given to PostgreSQL servers
/// (`test_config`, and `HOOKLINE_SECRET_KEY` for spawned processes).
pub const TEST_KEY: &str = "aG9va2xpbmUgdGVzdCBrZXksIDMyIGJ5dGVzIGxvbmc=";

/// [`TEST_KEY`] as a keyring.
pub fn test_keys() -> Arc<Keyring> {
    Arc::new(Keyring::parse(TEST_KEY).expect("the test key"))
}

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in a temp dir.
    Sqlite,
    /// A fresh PostgreSQL database.
    Postgres,
}

/// A fresh, empty database for one test.
pub struct TestDb {
    /// Which backend.
    pub backend: Backend,
    /// Its URL.
    pub url: String,
    /// Keeps the SQLite file's directory alive.
    _dir: Option<tempfile::TempDir>,
    pg: Option<PgDatabase>,
    /// Prints every thread's backtrace if the test runs far past its usual time.
    _watchdog: Watchdog,
}

impl TestDb {
    /// Creates the database (migrations are applied by `store()`).
    pub async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir for sqlite");
                let url = format!("sqlite://{}", dir.path().join("hookline.db").display());
                std::fs::write(dir.path().join("hookline.key"), TEST_KEY).expect("key file");
                TestDb {
                    backend,
                    url,
                    _dir: Some(dir),
                    pg: None,
                    _watchdog: Watchdog::arm(HANG),
                }
            }
            Backend::Postgres => {
                let pg = fresh_database().await;
                TestDb {
                    backend,
                    url: pg.url.clone(),
                    _dir: None,
                    pg: Some(pg),
                    _watchdog: Watchdog::arm(HANG),
                }
            }
        }
    }

    /// Opens a store (its own pools) on this database, migrating it.
    pub async fn store(&self) -> Store {
        store::open(&OpenOptions::new(&self.url).with_keys(test_keys()))
            .await
            .expect("open store")
    }

    /// Drops the PostgreSQL database (SQLite's dir goes with `self`).
    pub async fn finish(mut self) {
        if let Some(pg) = self.pg.take() {
            pg.drop_db().await;
        }
    }
}

/// Runs one async test body on both backends, as two tests.
#[macro_export]
macro_rules! store_test {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            use $crate::harness::db::{Backend, TestDb};

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = TestDb::new(Backend::Sqlite).await;
                let body = $body;
                body(&db).await;
                db.finish().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let db = TestDb::new(Backend::Postgres).await;
                let body = $body;
                body(&db).await;
                db.finish().await;
            }
        }
    };
}

/// Plain SQL on a test database, beside hookline (to write what an older hookline
/// stored, or read what this one did).
pub enum Raw {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Raw {
    /// A pool of its own on `db`.
    pub async fn open(db: &TestDb) -> Raw {
        match db.backend {
            Backend::Sqlite => {
                let options: sqlx::sqlite::SqliteConnectOptions =
                    db.url.parse().expect("sqlite url");
                Raw::Sqlite(sqlx::SqlitePool::connect_with(options).await.expect("open"))
            }
            Backend::Postgres => Raw::Postgres(sqlx::PgPool::connect(&db.url).await.expect("open")),
        }
    }

    /// Runs `sql` with text arguments `$1`, `$2`, ….
    pub async fn execute(&self, sql: &str, args: &[&str]) {
        match self {
            Raw::Sqlite(pool) => bound(sql, args).execute(pool).await.map(drop),
            Raw::Postgres(pool) => bound(sql, args).execute(pool).await.map(drop),
        }
        .expect("execute")
    }

    /// Runs `sql` (text arguments) in a transaction that stays open, holding its locks,
    /// until the returned [`Held`] is released.
    pub async fn hold(&self, sql: &str, args: &[&str]) -> Held {
        match self {
            Raw::Sqlite(pool) => {
                let mut tx = pool.begin().await.expect("begin");
                bound(sql, args).execute(&mut *tx).await.expect("execute");
                Held::Sqlite(tx)
            }
            Raw::Postgres(pool) => {
                let mut tx = pool.begin().await.expect("begin");
                bound(sql, args).execute(&mut *tx).await.expect("execute");
                Held::Postgres(tx)
            }
        }
    }

    /// The first column of every row `sql` returns, as text.
    pub async fn strings(&self, sql: &str) -> Vec<String> {
        let rows: Result<Vec<(String,)>, _> = match self {
            Raw::Sqlite(pool) => sqlx::query_as(sql).fetch_all(pool).await,
            Raw::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await,
        };
        rows.expect("query").into_iter().map(|(s,)| s).collect()
    }
}

/// `sql` with text arguments `$1`, `$2`, … bound, on database `DB`.
fn bound<'q, DB: sqlx::Database>(
    sql: &'q str,
    args: &[&'q str],
) -> sqlx::query::Query<'q, DB, DB::Arguments<'q>>
where
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    args.iter()
        .fold(sqlx::query(sql), |query, arg| query.bind(*arg))
}

/// An open transaction from [`Raw::hold`].
pub enum Held {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

impl Held {
    /// Rolls it back, letting go of its locks.
    pub async fn release(self) {
        match self {
            Held::Sqlite(tx) => tx.rollback().await,
            Held::Postgres(tx) => tx.rollback().await,
        }
        .expect("rollback");
    }
}
