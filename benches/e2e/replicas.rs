//! (14) A killed process's deliveries: from kill -9 to the first and the last of them
//! arriving again, with 20 held by the killed process under the default 30 s lease (SQLite:
//! `serve` restarted at once on the file; PostgreSQL: a second dispatcher already running).
//! (15) Dispatchers side by side (PostgreSQL): 100 webhooks delivered by 1, 2 and 4
//! dispatcher processes behind one ingest process, in the same run.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

use super::{
    Error, Hookline, Scale, Sink, WAIT_CAP, add_webhooks, drive, fresh_db, postgres_cpu_seconds,
    wait_count,
};

/// Deliveries the killed process holds.
const HELD: usize = 20;

/// A receiver that holds every request while `hold` is set, and notes when each
/// `webhook-id` last arrived.
#[derive(Default)]
struct Holding {
    hold: AtomicBool,
    arrived: AtomicUsize,
    last: Mutex<HashMap<String, Instant>>,
}

async fn holding(State(r): State<Arc<Holding>>, headers: HeaderMap) -> StatusCode {
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    r.last.lock().expect("lock").insert(id, Instant::now());
    r.arrived.fetch_add(1, Ordering::Relaxed);
    if r.hold.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_secs(120)).await;
    }
    StatusCode::NO_CONTENT
}

/// (14): kill -9 with `HELD` deliveries held, then (first, last) re-sent arrival after it.
async fn takeover(backend: &str, dir: &std::path::Path) -> Result<(Duration, Duration), Error> {
    let receiver = Arc::new(Holding::default());
    receiver.hold.store(true, Ordering::Relaxed);
    let app = axum::Router::new()
        .fallback(holding)
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let db = fresh_db(backend, dir, &format!("{backend}_takeover")).await?;
    add_webhooks(&db, &[url]).await?.close().await;
    let mut first = Hookline::start(&db, "ingest,dispatcher", &[]).await?;
    drive(first.addr, "takeover", HELD as u64, 4).await?;
    let deadline = Instant::now() + WAIT_CAP;
    while receiver.arrived.load(Ordering::Relaxed) == 0 {
        if Instant::now() > deadline {
            return Err("nothing arrived before the kill".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let survivor = match backend {
        "postgres" => {
            let s = Hookline::start(&db, "dispatcher", &[]).await?;
            // Past its start-up look: the death is found by its watch, not at its start.
            tokio::time::sleep(Duration::from_secs(3)).await;
            Some(s)
        }
        _ => None,
    };
    receiver.hold.store(false, Ordering::Relaxed);
    first.kill9();
    let killed = Instant::now();
    let _restarted = match backend {
        "postgres" => survivor,
        _ => Some(Hookline::start(&db, "ingest,dispatcher", &[]).await?),
    };
    let deadline = killed + WAIT_CAP;
    loop {
        let after: Vec<Instant> = receiver
            .last
            .lock()
            .expect("lock")
            .values()
            .copied()
            .filter(|at| *at >= killed)
            .collect();
        if after.len() == HELD {
            let first = after.iter().min().copied().unwrap_or(killed);
            let last = after.iter().max().copied().unwrap_or(killed);
            server.abort();
            return Ok((first - killed, last - killed));
        }
        if Instant::now() > deadline {
            return Err(format!("only {} of {HELD} arrived again", after.len()).into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// (15): 100 webhooks, `dispatchers` dispatcher processes behind one ingest process.
async fn side_by_side(
    dispatchers: usize,
    scale: Scale,
    dir: &std::path::Path,
    sink_url: &str,
    sink: &Sink,
) -> Result<(f64, f64), Error> {
    let webhooks = 100;
    let db = fresh_db("postgres", dir, &format!("postgres_sideby{dispatchers}")).await?;
    add_webhooks(&db, &vec![sink_url.to_owned(); webhooks])
        .await?
        .close()
        .await;
    let ingest = Hookline::start(&db, "ingest", &[]).await?;
    let mut workers = Vec::new();
    for _ in 0..dispatchers {
        workers.push(Hookline::start(&db, "dispatcher", &[]).await?);
    }
    // The steady state: dispatchers look at who is alive every second, and one started a
    // moment ago is not yet serving its share of the webhooks (a run lasts seconds). Both
    // builds wait alike.
    tokio::time::sleep(Duration::from_secs(3)).await;
    sink.count.store(0, Ordering::Relaxed);
    let envelopes = (scale.deliveries / webhooks) as u64;
    let expected = envelopes as usize * webhooks;
    let cpu = |ws: &[Hookline]| ws.iter().map(Hookline::cpu_seconds).sum::<f64>();
    let (before, db_before) = (cpu(&workers) + ingest.cpu_seconds(), postgres_cpu_seconds());
    let started = Instant::now();
    drive(ingest.addr, &format!("sideby{dispatchers}"), envelopes, 32).await?;
    wait_count(sink, expected, WAIT_CAP).await?;
    let rate = expected as f64 / started.elapsed().as_secs_f64();
    let used = cpu(&workers) + ingest.cpu_seconds() - before + postgres_cpu_seconds() - db_before;
    Ok((rate, used * 1000.0 / expected as f64))
}

pub async fn scenarios(
    backend: &str,
    scale: Scale,
    dir: &std::path::Path,
    sink_url: &str,
    sink: &Sink,
) -> Result<Vec<(String, String)>, Error> {
    let mut rows = Vec::new();
    eprintln!("[{backend}] kill -9 with {HELD} deliveries held");
    let (first, last) = takeover(backend, dir).await?;
    let how = match backend {
        "postgres" => "a second dispatcher running",
        _ => "serve restarted at once on the file",
    };
    rows.push((
        format!("(14) kill -9 holding {HELD} deliveries ({how}): first / last re-sent arrival"),
        format!(
            "{:.2} s / {:.2} s after the kill (lease 30 s)",
            first.as_secs_f64(),
            last.as_secs_f64()
        ),
    ));
    if backend == "postgres" {
        for dispatchers in [1, 2, 4] {
            eprintln!("[{backend}] 100 webhooks, {dispatchers} dispatcher process(es)");
            let (rate, cpu) = side_by_side(dispatchers, scale, dir, sink_url, sink).await?;
            rows.push((
                format!("(15) 100 webhooks, 1 ingest + {dispatchers} dispatcher process(es)"),
                format!("{rate:.0} deliveries/s, CPU per delivery (all processes + PostgreSQL) {cpu:.3} ms"),
            ));
        }
    }
    Ok(rows)
}
