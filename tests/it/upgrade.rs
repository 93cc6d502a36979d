//! Upgrades without a gap. A database an older hookline wrote (schema 6, with work in every
//! state) is migrated by this one, which delivers everything pending once and nothing
//! else; and a replica finding the schema newer than itself stays ready if every newer
//! migration keeps its version working (`schema_compat`), and refuses, saying which
//! migration does not, otherwise.

use std::borrow::Cow;
use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use hookline::store::{StoreError, now_ms};
use sqlx::migrate::Migrator;

use crate::harness::db::{Backend, TestDb};
use crate::harness::receiver::Receiver;
use crate::harness::server::TestServer;
use crate::store_test;

/// The schema the fixtures were written by.
const OLD_SCHEMA: i64 = 6;

/// A value bound into a fixture statement.
enum Arg {
    Text(String),
    Int(i64),
}

/// Binds `args` in order, on either backend.
fn bind<'q, DB: sqlx::Database>(
    mut query: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>,
    args: Vec<Arg>,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    for arg in args {
        query = match arg {
            Arg::Text(t) => query.bind(t),
            Arg::Int(i) => query.bind(i),
        };
    }
    query
}

/// A connection pool of either backend, for statements this hookline would not write.
enum Pool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Pool {
    async fn open(db: &TestDb) -> Pool {
        match db.backend {
            Backend::Sqlite => {
                let options = sqlx::sqlite::SqliteConnectOptions::from_str(&db.url)
                    .expect("url")
                    .create_if_missing(true);
                Pool::Sqlite(sqlx::SqlitePool::connect_with(options).await.expect("open"))
            }
            Backend::Postgres => {
                Pool::Postgres(sqlx::PgPool::connect(&db.url).await.expect("open"))
            }
        }
    }

    /// Applies this binary's migrations up to `version` only, as an older hookline did.
    async fn migrate_up_to(&self, backend: Backend, version: i64) {
        let dir = match backend {
            Backend::Sqlite => "migrations/sqlite",
            Backend::Postgres => "migrations/postgres",
        };
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        let mut migrator = Migrator::new(path).await.expect("read migrations");
        let older: Vec<_> = migrator
            .iter()
            .filter(|m| m.version <= version)
            .cloned()
            .collect();
        migrator.migrations = Cow::Owned(older);
        match self {
            Pool::Sqlite(pool) => migrator.run(pool).await.expect("old migrations"),
            Pool::Postgres(pool) => migrator.run(pool).await.expect("old migrations"),
        }
    }

    async fn execute(&self, sql: &str, args: Vec<Arg>) {
        match self {
            Pool::Sqlite(pool) => bind(sqlx::query(sql), args).execute(pool).await.map(drop),
            Pool::Postgres(pool) => bind(sqlx::query(sql), args).execute(pool).await.map(drop),
        }
        .expect(sql);
    }

    async fn close(self) {
        match self {
            Pool::Sqlite(pool) => pool.close().await,
            Pool::Postgres(pool) => pool.close().await,
        }
    }
}

/// An event body as hookline with schema 6 stored it (captured from that build).
fn old_event_body(id: &str, tag: &str, received_at: i64) -> String {
    format!(
        r#"{{"id":"{id}","source":"default","registry_event_id":"reg-{tag}","type":"image.pushed","repository":"acme/app","tag":"{tag}","digest":"sha256:6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b","media_type":"application/vnd.oci.image.manifest.v1+json","size":527,"actor":"alice","registry_host":"registry.example.com","timestamp":"2026-12-01T10:00:00Z","changed":true,"received_at":{received_at},"original":{{"action":"push","actor":{{"name":"alice"}},"id":"reg-{tag}","request":{{"host":"registry.example.com"}},"target":{{"digest":"sha256:6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b","mediaType":"application/vnd.oci.image.manifest.v1+json","repository":"acme/app","size":527,"tag":"{tag}"}},"timestamp":"2026-12-01T10:00:00Z"}}}}"#
    )
}

/// One delivery as schema 6 held it.
struct Old {
    state: &'static str,
    status: &'static str,
    attempts: i64,
    next: i64,
    /// Lease owner and end.
    lease: Option<(&'static str, i64)>,
    /// The last attempt's error.
    error: Option<&'static str>,
}

/// Writes, as schema 6 held them, a webhook to `url` and four deliveries: new, retrying
/// (one failed attempt, due now), leased by a dispatcher of that version (lease running
/// out in 2 s) and failed for good. Returns the delivery ids by state.
async fn old_fixtures(pool: &Pool, url: &str) -> HashMap<&'static str, String> {
    let now = now_ms();
    let webhook = "wh_01a24f805c7d75b6a3a07e4199b9af38";
    pool.execute(
        "INSERT INTO webhooks (id, namespace, name, url, event_types, repositories, tags, format, \
           headers, ordered, enabled, disabled_reason, failing_since, created_at, updated_at, \
           signature_header, payload_options, max_concurrency, rate_limit_milli) \
         VALUES ($1, 'acme', 'deploys', $2, '[]', '[\"acme/*\"]', '[]', 'hookline', '{}', FALSE, \
           TRUE, NULL, NULL, $3, $3, NULL, '{}', NULL, NULL)",
        vec![
            Arg::Text(webhook.into()),
            Arg::Text(url.into()),
            Arg::Int(now - 60_000),
        ],
    )
    .await;
    pool.execute(
        "INSERT INTO webhook_secrets (id, webhook_id, secret, created_at, expires_at) \
         VALUES ('whs_01a24f805c7d75b6a3a07e42f82b9db7', $1, \
           'whsec_SXTWx/Vgu2X7A16sLf/edzRkjQ/0HrCdqnISmb+D1Kg=', $2, NULL)",
        vec![Arg::Text(webhook.into()), Arg::Int(now - 60_000)],
    )
    .await;
    let mut ids = HashMap::new();
    let states = [
        Old {
            state: "new",
            status: "pending",
            attempts: 0,
            next: now - 1_000,
            lease: None,
            error: None,
        },
        Old {
            state: "retrying",
            status: "pending",
            attempts: 1,
            next: now - 500,
            lease: None,
            error: Some("HTTP 500"),
        },
        Old {
            state: "leased",
            status: "pending",
            attempts: 0,
            next: now + 2_000,
            lease: Some(("dispatcher_01a24f7d", now + 2_000)),
            error: None,
        },
        Old {
            state: "failed",
            status: "failed",
            attempts: 1,
            next: now - 30_000,
            lease: None,
            error: Some("HTTP 400 is final"),
        },
    ];
    for (i, old) in states.into_iter().enumerate() {
        let Old {
            state,
            status,
            attempts,
            next,
            lease,
            error,
        } = old;
        let event = format!("evt_old{i}");
        let delivery = format!("dlv_old{i}");
        let received = now - 40_000 + i as i64;
        pool.execute(
            "INSERT INTO events (id, source, registry_event_id, type, repository, tag, digest, \
               body, received_at, fanned_out, enrichment) \
             VALUES ($1, 'default', $2, 'image.pushed', 'acme/app', $3, \
               'sha256:6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b', $4, $5, \
               TRUE, NULL)",
            vec![
                Arg::Text(event.clone()),
                Arg::Text(format!("reg-1.{i}")),
                Arg::Text(format!("1.{i}")),
                Arg::Text(old_event_body(&event, &format!("1.{i}"), received)),
                Arg::Int(received),
            ],
        )
        .await;
        let (lease_id, owner, until) = match lease {
            Some((owner, until)) => (Some(format!("lease_old{i}")), Some(owner), Some(until)),
            None => (None, None, None),
        };
        pool.execute(
            &format!(
                "INSERT INTO deliveries (id, event_id, webhook_id, status, attempts, \
                   next_attempt_at, lease_id, lease_owner, lease_until, ordering_key, last_error, \
                   created_at, updated_at, namespace, retry_base, last_status_code, \
                   last_duration_ms, last_attempt_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, {}, {}, {}, NULL, {}, $7, $7, 'acme', 0, {}, {}, {})",
                sql_text(lease_id.as_deref()),
                sql_text(owner),
                sql_int(until),
                sql_text(error),
                sql_int(error.map(|e| if e.contains("400") { 400 } else { 500 })),
                sql_int(error.map(|_| 12)),
                sql_int(error.map(|_| now - 20_000)),
            ),
            vec![
                Arg::Text(delivery.clone()),
                Arg::Text(event),
                Arg::Text(webhook.into()),
                Arg::Text(status.into()),
                Arg::Int(attempts),
                Arg::Int(next),
                Arg::Int(received + 5),
            ],
        )
        .await;
        if let Some(error) = error {
            let (code, outcome) = if status == "failed" {
                (400, "failed")
            } else {
                (500, "retry")
            };
            pool.execute(
                "INSERT INTO attempts (id, delivery_id, number, started_at, duration_ms, \
                   status_code, response_headers, response_body, error, outcome, error_class, \
                   reason, next_attempt_at) \
                 VALUES ($1, $2, 1, $3, 12, $4, '{}', '', $5, $6, 'http', $5, NULL)",
                vec![
                    Arg::Text(format!("att_old{i}")),
                    Arg::Text(delivery.clone()),
                    Arg::Int(now - 20_000),
                    Arg::Int(code),
                    Arg::Text(error.into()),
                    Arg::Text(outcome.into()),
                ],
            )
            .await;
        }
        ids.insert(state, delivery);
    }
    ids
}

fn sql_text(value: Option<&str>) -> String {
    value.map_or("NULL".into(), |v| format!("'{v}'"))
}

fn sql_int(value: Option<i64>) -> String {
    value.map_or("NULL".into(), |v| v.to_string())
}

store_test!(
    a_database_an_older_hookline_wrote_is_upgraded_and_its_pending_work_delivered_once,
    async |db: &TestDb| {
        let receiver = Receiver::start().await;
        let pool = Pool::open(db).await;
        pool.migrate_up_to(db.backend, OLD_SCHEMA).await;
        let ids = old_fixtures(&pool, &receiver.url()).await;
        pool.close().await;

        let server = TestServer::start(db, |_| {}).await;
        receiver.wait_for(3, Duration::from_secs(20)).await;
        // Time for anything sent twice, or the failed one, to arrive too.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let mut sent: Vec<String> = receiver
            .received()
            .iter()
            .map(|r| r.header("webhook-id"))
            .collect();
        sent.sort();
        let mut pending = vec![
            ids["new"].clone(),
            ids["retrying"].clone(),
            ids["leased"].clone(),
        ];
        pending.sort();
        assert_eq!(
            sent, pending,
            "every pending delivery once, the failed one never"
        );
        for state in ["new", "retrying", "leased"] {
            let d = server
                .store
                .get_delivery(&ids[state])
                .await
                .expect("get")
                .expect("kept");
            assert_eq!(d.status, "succeeded", "{state}: {d:?}");
        }
        let failed = server
            .store
            .get_delivery(&ids["failed"])
            .await
            .expect("get")
            .expect("kept");
        assert_eq!(failed.status, "failed");
        assert!(
            receiver
                .received()
                .iter()
                .all(|r| r.signed_with("whsec_SXTWx/Vgu2X7A16sLf/edzRkjQ/0HrCdqnISmb+D1Kg="))
        );
        server.stop().await;
    }
);

/// Records that a newer hookline applied migration `version`, keeping `oldest_reader`
/// working (None: declaring nothing).
async fn pretend_newer_migration(db: &TestDb, version: i64, oldest_reader: Option<i64>) {
    let pool = Pool::open(db).await;
    let checksum = match db.backend {
        Backend::Sqlite => "X'00'",
        Backend::Postgres => "'\\x00'::bytea",
    };
    pool.execute(
        &format!(
            "INSERT INTO _sqlx_migrations (version, description, installed_on, success, checksum, \
               execution_time) VALUES ($1, 'from the future', CURRENT_TIMESTAMP, TRUE, {checksum}, 0)"
        ),
        vec![Arg::Int(version)],
    )
    .await;
    if let Some(oldest) = oldest_reader {
        pool.execute(
            "INSERT INTO schema_compat (version, oldest_reader) VALUES ($1, $2)",
            vec![Arg::Int(version), Arg::Int(oldest)],
        )
        .await;
    }
    pool.close().await;
}

store_test!(
    a_newer_schema_that_keeps_this_version_is_served_and_one_that_does_not_is_refused,
    async |db: &TestDb| {
        let known = {
            let store = db.store().await;
            store.close().await;
            let pool = Pool::open(db).await;
            let version: (i64,) = match &pool {
                Pool::Sqlite(p) => sqlx::query_as("SELECT MAX(version) FROM _sqlx_migrations")
                    .fetch_one(p)
                    .await
                    .expect("version"),
                Pool::Postgres(p) => sqlx::query_as("SELECT MAX(version) FROM _sqlx_migrations")
                    .fetch_one(p)
                    .await
                    .expect("version"),
            };
            pool.close().await;
            version.0
        };
        // An additive migration from a newer hookline: this one stays ready and works.
        pretend_newer_migration(db, known + 1, Some(known)).await;
        let receiver = Receiver::start().await;
        let server = TestServer::start(db, |_| {}).await;
        let (status, body) = server.get("/readyz").await;
        assert_eq!(status, 200, "{body}");
        let (hook, secret) = crate::store_contract::webhook("acme", &receiver.url());
        server
            .store
            .insert_webhook(&hook, &secret)
            .await
            .expect("webhook");
        server
            .notify_ok(&crate::harness::envelopes::push("acme/app", "2.0"))
            .await;
        receiver.wait_for(1, Duration::from_secs(10)).await;
        server.stop().await;

        // One that breaks it: refused, naming the migration.
        pretend_newer_migration(db, known + 2, Some(known + 2)).await;
        let error = hookline::store::open(&hookline::store::OpenOptions::new(&db.url))
            .await
            .err()
            .expect("refused");
        assert!(
            matches!(error, StoreError::SchemaTooNew { blocking, .. } if blocking == known + 2),
            "{error}"
        );
        assert!(
            error.to_string().contains(&format!(
                "its migration {} does not keep version {known} working",
                known + 2
            )),
            "{error}"
        );
    }
);

store_test!(
    every_migration_from_7_on_declares_what_it_keeps_working,
    async |db: &TestDb| {
        db.store().await.close().await;
        let pool = Pool::open(db).await;
        let query = "SELECT m.version, c.oldest_reader FROM _sqlx_migrations m \
                     LEFT JOIN schema_compat c ON c.version = m.version \
                     WHERE m.version >= 7 ORDER BY m.version";
        let rows: Vec<(i64, Option<i64>)> = match &pool {
            Pool::Sqlite(p) => sqlx::query_as(query).fetch_all(p).await,
            Pool::Postgres(p) => sqlx::query_as(query).fetch_all(p).await,
        }
        .expect("declarations");
        pool.close().await;
        assert!(!rows.is_empty(), "migration 7 applied");
        for (version, oldest) in rows {
            let oldest = oldest.unwrap_or_else(|| {
                panic!("migration {version} must insert its row into schema_compat")
            });
            assert!(oldest <= version, "migration {version} keeps {oldest}");
        }
    }
);
