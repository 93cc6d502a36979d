//! (11) Receivers that take time: how fast one webhook is served when its receiver takes
//! 10 ms or 50 ms per request, or degrades (its latency grows with the requests it holds,
//! and it answers 429 past 16 at once). Each receiver is measured twice in the same run:
//! with the adaptive window, and with `--max-per-endpoint 4`, which is exactly the fixed
//! cap hookline had before the window (so the ratio is today's gain, same machine, same
//! minute).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;

use super::{Error, Hookline, Scale, WAIT_CAP, add_webhooks, drive, fresh_db};

/// How a receiver answers.
#[derive(Clone, Copy)]
enum Kind {
    /// Always this long.
    Fixed(u64),
    /// 10 ms plus 2 ms per other request it holds; 429 at once past 16 held.
    Degrading,
}

/// Knee of the degrading receiver.
const KNEE: usize = 16;

#[derive(Default)]
struct Slow {
    ok: AtomicUsize,
    refused: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

struct Held<'a>(&'a AtomicUsize);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn handler(State((slow, kind)): State<(Arc<Slow>, Kind)>) -> StatusCode {
    let held = slow.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
    let _guard = Held(&slow.in_flight);
    let delay = match kind {
        Kind::Fixed(ms) => ms,
        Kind::Degrading if held > KNEE => {
            slow.refused.fetch_add(1, Ordering::Relaxed);
            return StatusCode::TOO_MANY_REQUESTS;
        }
        Kind::Degrading => 10 + 2 * (held as u64 - 1),
    };
    slow.max_in_flight.fetch_max(held, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(delay)).await;
    slow.ok.fetch_add(1, Ordering::Relaxed);
    StatusCode::NO_CONTENT
}

async fn start(kind: Kind) -> Result<(String, Arc<Slow>), Error> {
    let slow = Arc::new(Slow::default());
    let app = axum::Router::new()
        .fallback(handler)
        .with_state((slow.clone(), kind));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((format!("http://{addr}/hook"), slow))
}

/// The rows of scenario (11).
pub async fn scenarios(
    backend: &str,
    scale: Scale,
    dir: &std::path::Path,
) -> Result<Vec<(String, String)>, Error> {
    let n = (scale.deliveries / 4).max(200);
    let mut rows = Vec::new();
    for (label, kind) in [
        ("10 ms", Kind::Fixed(10)),
        ("50 ms", Kind::Fixed(50)),
        (
            "degrading (10 ms + 2 ms per request held, 429 past 16)",
            Kind::Degrading,
        ),
    ] {
        let mut rates = Vec::new();
        let mut cells = Vec::new();
        for (mode, extra) in [
            ("fixed 4", &["--max-per-endpoint", "4"][..]),
            ("adaptive", &[][..]),
        ] {
            eprintln!("[{backend}] receiver {label}, {mode}");
            let (url, slow) = start(kind).await?;
            let name = format!("{backend}_slow_{}_{}", rows.len(), rates.len());
            let db = fresh_db(backend, dir, &name).await?;
            add_webhooks(&db, std::slice::from_ref(&url))
                .await?
                .close()
                .await;
            let h = Hookline::start(&db, "ingest,dispatcher", extra).await?;
            let started = Instant::now();
            drive(h.addr, &name, n as u64, 32).await?;
            let deadline = started + WAIT_CAP;
            let mut most = None;
            while slow.ok.load(Ordering::Relaxed) < n {
                if most.is_none() && slow.ok.load(Ordering::Relaxed) * 100 >= n * 95 {
                    most = Some(started.elapsed());
                }
                if Instant::now() > deadline {
                    return Err(format!(
                        "receiver {label}, {mode}: only {} of {n} delivered",
                        slow.ok.load(Ordering::Relaxed)
                    )
                    .into());
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let all = started.elapsed();
            // The rate over the first 95%: a delivery refused with 429 waits for its retry
            // (seconds, by the schedule), which says nothing about the rate.
            let rate = (n * 95 / 100) as f64 / most.unwrap_or(all).as_secs_f64();
            let refused = slow.refused.load(Ordering::Relaxed);
            let attempts = n + refused;
            rates.push(rate);
            cells.push(format!(
                "{mode}: {rate:.0}/s (all in {:.1}s), up to {} at once{}",
                all.as_secs_f64(),
                slow.max_in_flight.load(Ordering::Relaxed),
                if matches!(kind, Kind::Degrading) {
                    format!(
                        ", {:.1}% of attempts answered 429",
                        100.0 * refused as f64 / attempts as f64
                    )
                } else {
                    String::new()
                }
            ));
            drop(h);
        }
        rows.push((
            format!("(11) one webhook, receiver {label}: {n} deliveries"),
            format!(
                "{} → {:.1}× the fixed cap",
                cells.join("; "),
                rates[1] / rates[0]
            ),
        ));
    }
    Ok(rows)
}
