//! (19) Instructions per delivery, counted by `valgrind --tool=callgrind`: repeatable where
//! seconds on these shared machines are not (issue "Performance at the floor").
//!
//! hookline runs under callgrind twice on a fresh database with one webhook on the sink,
//! delivering [`SMALL`] and then [`BIG`] single-event envelopes (8 clients), and is stopped
//! with SIGTERM so callgrind writes its totals. The difference of the two totals over the
//! difference of the counts is the cost of one delivery, ingest to result, with start-up
//! and shutdown cancelled out. Only hookline's own process is counted: PostgreSQL's server
//! is not. The output files stay in `target/callgrind/` for `callgrind_annotate`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{Error, Hookline, Sink, add_webhooks, drive, fresh_db, wait_count};

/// Envelopes of the small and the big run.
const SMALL: u64 = 200;
const BIG: u64 = 1_200;

/// (19) for one backend.
pub async fn scenarios(
    backend: &str,
    dir: &Path,
    sink_url: &str,
    sink: &Sink,
) -> Result<Vec<(String, String)>, Error> {
    let keep = PathBuf::from("target/callgrind");
    std::fs::create_dir_all(&keep)?;
    let mut totals = Vec::new();
    for count in [SMALL, BIG] {
        eprintln!("[{backend}] callgrind, {count} deliveries");
        let out = keep.join(format!("{backend}-{count}.out"));
        totals.push(counted(backend, dir, sink_url, sink, count, &out).await?);
    }
    let per = (totals[1] - totals[0]) as f64 / (BIG - SMALL) as f64;
    Ok(vec![(
        format!(
            "(19) instructions per delivery, 1 webhook, hookline only (callgrind: {SMALL} and {BIG} deliveries, the difference)"
        ),
        format!(
            "{per:.0} (totals {} / {})",
            group(totals[0]),
            group(totals[1])
        ),
    )])
}

/// Runs hookline under callgrind for `count` deliveries; its total instruction count.
async fn counted(
    backend: &str,
    dir: &Path,
    sink_url: &str,
    sink: &Sink,
    count: u64,
    out: &Path,
) -> Result<u64, Error> {
    let db = fresh_db(backend, dir, &format!("{backend}_callgrind{count}")).await?;
    add_webhooks(&db, &[sink_url.to_owned()])
        .await?
        .close()
        .await;
    let out_arg = format!("--callgrind-out-file={}", out.display());
    let wrapper = ["valgrind", "--tool=callgrind", "--quiet", &out_arg];
    let mut h = Hookline::start_under(
        &wrapper,
        Duration::from_secs(120),
        &db,
        "ingest,dispatcher",
        &[],
    )
    .await?;
    sink.count.store(0, Ordering::Relaxed);
    drive(h.addr, &format!("cg{count}"), count, 8).await?;
    wait_count(sink, count as usize, Duration::from_secs(300)).await?;
    // SIGTERM: a clean stop, after which callgrind writes its totals.
    let pid = h.child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status()?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while h.child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            return Err("hookline under callgrind did not stop in 120 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    total(out)
}

/// The `totals:` (or `summary:`) line of a callgrind output file.
fn total(out: &Path) -> Result<u64, Error> {
    let text = std::fs::read_to_string(out)?;
    text.lines()
        .find_map(|l| {
            l.strip_prefix("totals:")
                .or_else(|| l.strip_prefix("summary:"))
        })
        .and_then(|n| n.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("no totals in {}", out.display()).into())
}

/// `1234567` as `1 234 567`.
fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(' ');
        }
        grouped.push(c);
    }
    grouped
}
