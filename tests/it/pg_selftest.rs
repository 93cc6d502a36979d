//! Self-tests of the PostgreSQL harness (`harness::pg`): each test gets its own empty
//! database, databases are dropped on request, and leftovers older than two hours are
//! swept by the next `fresh_database` call.

use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::{Connection, PgConnection};

use crate::harness::pg::fresh_database;

async fn connect(url: &str) -> PgConnection {
    PgConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"))
}

async fn database_exists(server_url: &str, name: &str) -> bool {
    let mut conn = connect(server_url).await;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(&mut conn)
            .await
            .expect("querying pg_database");
    conn.close().await.expect("closing the connection");
    exists
}

#[tokio::test]
async fn concurrent_databases_are_distinct_empty_and_usable() {
    let (a, b) = tokio::join!(fresh_database(), fresh_database());
    assert_ne!(a.url, b.url);
    assert_ne!(a.name(), b.name());

    let mut conn_a = connect(&a.url).await;
    let mut conn_b = connect(&b.url).await;
    for conn in [&mut conn_a, &mut conn_b] {
        let tables: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
        )
        .fetch_one(&mut *conn)
        .await
        .expect("counting tables");
        assert_eq!(tables, 0, "a fresh database has no tables");
    }

    sqlx::raw_sql("CREATE TABLE t (v int); INSERT INTO t VALUES (42);")
        .execute(&mut conn_a)
        .await
        .expect("writing to database a");
    let v: i32 = sqlx::query_scalar("SELECT v FROM t")
        .fetch_one(&mut conn_a)
        .await
        .expect("reading back from database a");
    assert_eq!(v, 42);
    let in_b: Option<String> = sqlx::query_scalar("SELECT to_regclass('public.t')::text")
        .fetch_one(&mut conn_b)
        .await
        .expect("looking for t in database b");
    assert_eq!(in_b, None, "database b must not see database a's table");

    conn_a.close().await.expect("closing a");
    conn_b.close().await.expect("closing b");
    a.drop_db().await;
    b.drop_db().await;
}

#[tokio::test]
async fn drop_db_removes_the_database_and_stale_ones_are_swept() {
    let first = fresh_database().await;
    let server_url = first.server_url().to_owned();

    // A leftover of a run three hours ago, named the way the harness names databases.
    let three_hours_ago = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
        - 3 * 60 * 60;
    let stale = format!(
        "hookline_test_{three_hours_ago}_{:016x}",
        rand::random::<u64>()
    );
    let mut conn = connect(&server_url).await;
    sqlx::raw_sql(&format!("CREATE DATABASE \"{stale}\""))
        .execute(&mut conn)
        .await
        .expect("creating a stale-looking database");
    conn.close().await.expect("closing the connection");
    assert!(database_exists(&server_url, &stale).await);

    let second = fresh_database().await;
    assert!(
        !database_exists(&server_url, &stale).await,
        "fresh_database sweeps test databases older than 2 h"
    );
    assert!(
        database_exists(&server_url, first.name()).await,
        "a recent test database survives the sweep"
    );

    let (first_name, second_name) = (first.name().to_owned(), second.name().to_owned());
    first.drop_db().await;
    second.drop_db().await;
    assert!(!database_exists(&server_url, &first_name).await);
    assert!(!database_exists(&server_url, &second_name).await);
}
