//! Scenarios of the delivery log (issue "Deliveries you can see and get back"):
//! (8) database bytes per delivery and per attempt, (9) the delivery rate with a live-tail
//! client attached against without it, (10) the prune rate alone and while ingest and
//! delivery run, its effect on the delivery rate, and the SQLite file size across rounds.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hookline::api::proto::WatchDeliveriesRequest;
use hookline::api::proto::delivery_service_client::DeliveryServiceClient;
use hookline::store::{self, NewToken, TokenKind};

use super::{
    Error, Hookline, Scale, Sink, WAIT_CAP, add_webhooks, drive, fresh_db, median, wait_count,
};

/// Runs (8)–(10) on `backend`; returns table rows.
pub async fn scenarios(
    backend: &str,
    scale: Scale,
    dir: &std::path::Path,
    sink_url: &str,
    sink: &Sink,
) -> Result<Vec<(String, String)>, Error> {
    let mut rows = Vec::new();
    let n = scale.deliveries as u64;

    // (8) bytes per delivery and per attempt, after delivering n events to 1 webhook.
    eprintln!("[{backend}] delivery log: bytes per delivery");
    let db = fresh_db(backend, dir, &format!("{backend}_log")).await?;
    add_webhooks(&db, &[sink_url.to_owned()])
        .await?
        .close()
        .await;
    {
        let h = Hookline::start(&db, "ingest,dispatcher", &[]).await?;
        sink.count.store(0, Ordering::Relaxed);
        drive(h.addr, "log-a", n, 32).await?;
        wait_count(sink, n as usize, WAIT_CAP).await?;
        settle(&db).await?;
    }
    let sizes = table_sizes(backend, &db).await?;
    let log_bytes = sizes.events + sizes.deliveries + sizes.attempts;
    rows.push((
        format!("(8) database bytes per delivery (event + delivery + one attempt, indexes included; {n} deliveries)"),
        format!(
            "{:.0} B per delivery, of which {:.0} B the attempt ({:.0} B event, {:.0} B delivery); {} in all",
            log_bytes as f64 / n as f64,
            sizes.attempts as f64 / n as f64,
            sizes.events as f64 / n as f64,
            sizes.deliveries as f64 / n as f64,
            mib(sizes.total),
        ),
    ));

    // (10a) prune rate alone: the same rows, now older than a 1 s retention.
    eprintln!("[{backend}] delivery log: prune alone");
    let (pruned, prune_secs) = {
        let h = Hookline::start(&db, "ingest,dispatcher", &["--retention", "1s"]).await?;
        prune_until(&h, &db, n, Duration::from_secs(120)).await?
    };
    rows.push((
        "(10) prune rate, nothing else running".into(),
        format!(
            "{:.0} rows/s ({:.0} events/s with their deliveries and attempts)",
            pruned as f64 / prune_secs,
            n as f64 / prune_secs
        ),
    ));
    let size_after_first_round = sizes.total;

    // (10b) prune while ingest and delivery run: 3n old events go while n new ones arrive.
    eprintln!("[{backend}] delivery log: prune during ingest");
    {
        let h = Hookline::start(&db, "ingest,dispatcher", &[]).await?;
        sink.count.store(0, Ordering::Relaxed);
        drive(h.addr, "log-b", 3 * n, 32).await?;
        wait_count(sink, 3 * n as usize, WAIT_CAP).await?;
        settle(&db).await?;
    }
    // The same load on the same database without pruning (the default 30-day retention),
    // for a fair comparison: the database holds as many rows in both runs.
    let without_rate = {
        let h = Hookline::start(&db, "ingest,dispatcher", &[]).await?;
        sink.count.store(0, Ordering::Relaxed);
        let started = Instant::now();
        drive(h.addr, "log-c0", n, 32).await?;
        wait_count(sink, n as usize, WAIT_CAP).await?;
        let rate = n as f64 / started.elapsed().as_secs_f64();
        settle(&db).await?;
        rate
    };
    // Old enough for a 4 s retention; the new batch is not (it arrives during the run).
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (during_rate, during_prune) = {
        let h = Hookline::start(&db, "ingest,dispatcher", &["--retention", "4s"]).await?;
        // Start the load once pruning runs, so the two overlap.
        let deadline = Instant::now() + Duration::from_secs(10);
        while pruned_total(h.addr, "events").await? == 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        sink.count.store(0, Ordering::Relaxed);
        let pruned_before = pruned_total(h.addr, "events").await?;
        let started = Instant::now();
        drive(h.addr, "log-c", n, 32).await?;
        wait_count(sink, n as usize, WAIT_CAP).await?;
        let elapsed = started.elapsed().as_secs_f64();
        let pruned_during = pruned_total(h.addr, "events").await? - pruned_before;
        if pruned_during >= 4 * n - pruned_before {
            eprintln!("[{backend}] pruning finished before the load did: the overlap was partial");
        }
        // Let everything age out and go (all rounds) before the size check below.
        prune_until(&h, &db, 5 * n, Duration::from_secs(120)).await?;
        (n as f64 / elapsed, pruned_during as f64 / elapsed)
    };
    rows.push((
        "(10) delivery rate with 4n old rows being pruned / with the same rows kept (1 webhook); prune rate meanwhile".into(),
        format!(
            "{during_rate:.0} / {without_rate:.0} deliveries/s ({:+.1}%); {during_prune:.0} events/s pruned meanwhile",
            100.0 * (during_rate - without_rate) / without_rate
        ),
    ));
    if backend != "sqlite" {
        // What autovacuum does in production (it is off on the benchmark machine's server):
        // the dead rows' space becomes reusable.
        let pool = sqlx::PgPool::connect(&db).await?;
        sqlx::raw_sql("VACUUM").execute(&pool).await?;
        pool.close().await;
    }
    let peak = table_sizes(backend, &db).await?;
    // n more, all kept: on SQLite they go into the freed pages, so the file does not grow.
    {
        let h = Hookline::start(&db, "ingest,dispatcher", &[]).await?;
        sink.count.store(0, Ordering::Relaxed);
        drive(h.addr, "log-d", n, 32).await?;
        wait_count(sink, n as usize, WAIT_CAP).await?;
        settle(&db).await?;
    }
    let reused = table_sizes(backend, &db).await?;
    rows.push((
        "(10) database size: n kept / after pruning 5n (4n of them while n arrived) / after n more"
            .into(),
        format!(
            "{} / {}{} / {}{}",
            mib(size_after_first_round),
            mib(peak.total),
            free(backend, peak.free),
            mib(reused.total),
            free(backend, reused.free)
        ),
    ));

    // (9) the delivery rate with a live tail attached, alternating, median of two each.
    let mut without = Vec::new();
    let mut with = Vec::new();
    for round in 0..2 {
        for tail in [false, true] {
            eprintln!("[{backend}] delivery log: tail attached {tail}, round {round}");
            let db = fresh_db(backend, dir, &format!("{backend}_tail{tail}{round}")).await?;
            add_webhooks(&db, &[sink_url.to_owned()])
                .await?
                .close()
                .await;
            let token = admin_token(&db).await?;
            let api = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
            let api_addr = api.to_string();
            let h =
                Hookline::start(&db, "ingest,dispatcher,api", &["--api-addr", &api_addr]).await?;
            let seen = Arc::new(AtomicUsize::new(0));
            let watcher = if tail {
                Some(watch(&api_addr, &token, seen.clone()).await?)
            } else {
                None
            };
            sink.count.store(0, Ordering::Relaxed);
            let started = Instant::now();
            drive(h.addr, &format!("tail{tail}{round}"), n, 32).await?;
            wait_count(sink, n as usize, WAIT_CAP).await?;
            let rate = n as f64 / started.elapsed().as_secs_f64();
            if let Some(watcher) = watcher {
                let deadline = Instant::now() + Duration::from_secs(10);
                while seen.load(Ordering::Relaxed) < n as usize && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                watcher.abort();
                if seen.load(Ordering::Relaxed) < n as usize {
                    eprintln!(
                        "[{backend}] the tail saw {} of {n} attempts",
                        seen.load(Ordering::Relaxed)
                    );
                }
                with.push(rate);
            } else {
                without.push(rate);
            }
        }
    }
    let (a, b) = (median(&mut without), median(&mut with));
    rows.push((
        "(9) delivery rate without / with a live-tail client attached (1 webhook, median of 2)"
            .into(),
        format!("{a:.0} / {b:.0} deliveries/s (ratio {:.2})", b / a),
    ));
    Ok(rows)
}

/// Waits until every delivery's result is recorded (nothing pending), so that stopping
/// the process leaves no lease behind to expire in the next scenario.
async fn settle(url: &str) -> Result<(), Error> {
    let store = store::open(&super::bench_store(url)).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while store.queue_stats(store::now_ms()).await?.pending > 0 {
        if Instant::now() > deadline {
            return Err("deliveries still pending 30 s after the receiver got them all".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    store.close().await;
    Ok(())
}

/// SQLite's free pages, as a suffix; PostgreSQL's free space is not measured.
fn free(backend: &str, bytes: i64) -> String {
    if backend == "sqlite" {
        format!(" ({} free)", mib(bytes))
    } else {
        String::new()
    }
}

fn mib(bytes: i64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1024.0 / 1024.0)
}

/// Bytes held by the delivery log's tables with their indexes, and by the whole database.
struct Sizes {
    events: i64,
    deliveries: i64,
    attempts: i64,
    total: i64,
    /// Free pages (SQLite's freelist; PostgreSQL: not measured, 0).
    free: i64,
}

async fn table_sizes(backend: &str, url: &str) -> Result<Sizes, Error> {
    if backend == "sqlite" {
        let pool = sqlx::SqlitePool::connect(url).await?;
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&pool)
            .await?;
        let of = |table: &'static str| {
            let pool = pool.clone();
            async move {
                sqlx::query_scalar::<_, i64>(
                    "SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE name = ?1 \
                     OR name IN (SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?1)",
                )
                .bind(table)
                .fetch_one(&pool)
                .await
            }
        };
        let sizes = Sizes {
            events: of("events").await?,
            deliveries: of("deliveries").await?,
            attempts: of("attempts").await?,
            total: sqlx::query_scalar(
                "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
            )
            .fetch_one(&pool)
            .await?,
            free: sqlx::query_scalar(
                "SELECT freelist_count * page_size FROM pragma_freelist_count(), pragma_page_size()",
            )
            .fetch_one(&pool)
            .await?,
        };
        pool.close().await;
        Ok(sizes)
    } else {
        let pool = sqlx::PgPool::connect(url).await?;
        let of = |table: &'static str| {
            let pool = pool.clone();
            async move {
                sqlx::query_scalar::<_, i64>("SELECT pg_total_relation_size($1::regclass)")
                    .bind(table)
                    .fetch_one(&pool)
                    .await
            }
        };
        let sizes = Sizes {
            events: of("events").await?,
            deliveries: of("deliveries").await?,
            attempts: of("attempts").await?,
            total: sqlx::query_scalar("SELECT pg_database_size(current_database())")
                .fetch_one(&pool)
                .await?,
            free: 0,
        };
        pool.close().await;
        Ok(sizes)
    }
}

/// `hookline_pruned_total{table}` from the process's /metrics.
async fn pruned_total(addr: std::net::SocketAddr, table: &str) -> Result<u64, Error> {
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await?
        .text()
        .await?;
    let prefix = format!("hookline_pruned_total{{table=\"{table}\"}} ");
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0) as u64)
}

/// Waits until the process has pruned `events` events; returns the rows it pruned (events,
/// deliveries, attempts) and the seconds from its first pruned row to the last.
async fn prune_until(
    h: &Hookline,
    db: &str,
    events: u64,
    cap: Duration,
) -> Result<(u64, f64), Error> {
    let deadline = Instant::now() + cap;
    let mut first = None;
    loop {
        let done = pruned_total(h.addr, "events").await?;
        if done > 0 && first.is_none() {
            first = Some(Instant::now());
        }
        if done >= events {
            let secs = first.map_or(0.0, |f| f.elapsed().as_secs_f64()).max(0.05);
            let rows = done
                + pruned_total(h.addr, "deliveries").await?
                + pruned_total(h.addr, "attempts").await?;
            return Ok((rows, secs));
        }
        if Instant::now() > deadline {
            let store = store::open(&super::bench_store(db)).await?;
            let stats = store.queue_stats(store::now_ms()).await?;
            let left = store
                .list_events(&store::EventQuery {
                    limit: 3,
                    ..Default::default()
                })
                .await?;
            return Err(format!(
                "only {done} of {events} events pruned in {cap:?}; queue {stats:?}; newest events left {:?}; now {}",
                left.iter().map(|e| (e.received_at, &e.id)).collect::<Vec<_>>(),
                store::now_ms()
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// An admin API token, stored as `hookline tokens create --admin` would.
async fn admin_token(url: &str) -> Result<String, Error> {
    let store = store::open(&super::bench_store(url)).await?;
    let token = hookline::secret::generate_token();
    store
        .insert_token(&NewToken {
            id: hookline::ids::new_id("tok"),
            kind: TokenKind::Admin,
            subject: String::new(),
            hash: hookline::secret::hash_token(token.expose()),
            created_at: store::now_ms(),
            registry: None,
        })
        .await?;
    store.close().await;
    Ok(token.expose().to_owned())
}

/// A live-tail client reading every attempt as it comes, counting them.
async fn watch(
    api: &str,
    token: &str,
    seen: Arc<AtomicUsize>,
) -> Result<tokio::task::JoinHandle<()>, Error> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{api}"))?
        .connect()
        .await?;
    let bearer: tonic::metadata::MetadataValue<_> = format!("Bearer {token}").parse()?;
    let mut client =
        DeliveryServiceClient::with_interceptor(channel, move |mut r: tonic::Request<()>| {
            r.metadata_mut().insert("authorization", bearer.clone());
            Ok(r)
        });
    let mut stream = client
        .watch_deliveries(WatchDeliveriesRequest::default())
        .await?
        .into_inner();
    Ok(tokio::spawn(async move {
        while let Ok(Some(_)) = stream.message().await {
            seen.fetch_add(1, Ordering::Relaxed);
        }
    }))
}
