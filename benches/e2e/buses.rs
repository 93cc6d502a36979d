//! (17) A message bus as the destination: one webhook's rate and CPU per delivery to a
//! Redis stream, next to the HTTP sink in the same run (rounds alternated), with Redis's
//! own CPU apart; and Redis's own rate for the same `XADD`s from 32 client tasks, the
//! physical limit hookline's rate is a share of. Uses the Redis on 127.0.0.1:6379.

use std::time::Instant;

use hookline::store::{self, Webhook};

use super::formats::{Arrivals, none, round};
use super::{Error, Scale, Sink, median, process_cpu_seconds};

const REDIS: &str = "redis://127.0.0.1:6379/0";
const STREAM: &str = "hookline-bench";
const ROUNDS: usize = 3;

/// CPU seconds used so far by every `redis-server` process.
fn redis_cpu_seconds() -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "redis-server")
        })
        .map(process_cpu_seconds)
        .sum()
}

/// Redis's own rate: `n` XADDs of a `size`-byte payload from 32 tasks, each waiting for
/// its answer before the next, as hookline's deliveries do.
async fn broker_rate(client: &redis::Client, n: usize, size: usize) -> Result<f64, Error> {
    let key = format!("{STREAM}-direct");
    let payload = vec![b'x'; size];
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..32 {
        let mut c = client.get_multiplexed_async_connection().await?;
        let (key, payload) = (key.clone(), payload.clone());
        tasks.push(tokio::spawn(async move {
            for i in (t..n).step_by(32) {
                redis::cmd("XADD")
                    .arg(&key)
                    .arg("*")
                    .arg("id")
                    .arg(i)
                    .arg("payload")
                    .arg(&payload)
                    .query_async::<String>(&mut c)
                    .await?;
            }
            Ok::<(), redis::RedisError>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    let mut c = client.get_multiplexed_async_connection().await?;
    redis::cmd("DEL")
        .arg(&key)
        .query_async::<()>(&mut c)
        .await?;
    Ok(rate)
}

/// (17) rows: HTTP and Redis per round, the medians, Redis alone.
pub async fn scenarios(
    backend: &str,
    scale: Scale,
    dir: &std::path::Path,
    sink_url: &str,
    sink: &Sink,
) -> Result<Vec<(String, String)>, Error> {
    let client = redis::Client::open(REDIS)?;
    if client.get_multiplexed_async_connection().await.is_err() {
        return Ok(vec![(
            "(17) a Redis stream".into(),
            "skipped: no Redis on 127.0.0.1:6379".into(),
        )]);
    }
    let deliveries = scale.deliveries / 2;
    let webhook = Webhook {
        name: "bench bus".into(),
        format: "cloudevents".into(),
        ..Webhook::new("wh_bench_format", "acme", "", store::now_ms())
    };
    let url = format!("{REDIS}?stream={STREAM}&maxlen={}", deliveries * 2);
    let (http, stream) = (
        Arrivals::Sink(sink_url, sink),
        Arrivals::Stream(&url, &client, STREAM),
    );
    let (mut to_http, mut to_redis) = (Vec::new(), Vec::new());
    for r in 0..ROUNDS {
        eprintln!("[{backend}] HTTP / Redis stream, round {}", r + 1);
        let http_round = ("http", webhook.clone());
        to_http.push(round(backend, dir, &http_round, &http, deliveries, r, none).await?);
        let bus_round = ("redis", webhook.clone());
        to_redis.push(
            round(
                backend,
                dir,
                &bus_round,
                &stream,
                deliveries,
                r,
                redis_cpu_seconds,
            )
            .await?,
        );
    }
    let direct = broker_rate(&client, deliveries, 1_000).await?;
    let rates = |v: &[(f64, f64)]| median(&mut v.iter().map(|r| r.0).collect::<Vec<_>>());
    let cpus = |v: &[(f64, f64)]| median(&mut v.iter().map(|r| r.1).collect::<Vec<_>>());
    let each = |v: &[(f64, f64)]| {
        v.iter()
            .map(|(rate, cpu)| format!("{rate:.0} /s {cpu:.3} ms"))
            .collect::<Vec<_>>()
            .join(" · ")
    };
    let (http_rate, redis_rate) = (rates(&to_http), rates(&to_redis));
    Ok(vec![
        (
            format!("(17) one webhook to the HTTP sink, {deliveries} deliveries, {ROUNDS} rounds"),
            format!(
                "median {http_rate:.0} deliveries/s, {:.3} ms CPU per delivery; rounds: {}",
                cpus(&to_http),
                each(&to_http)
            ),
        ),
        (
            "(17) the same to a Redis stream (CPU includes redis-server)".into(),
            format!(
                "median {redis_rate:.0} deliveries/s ({:+.0} % vs HTTP), {:.3} ms CPU per delivery; rounds: {}",
                100.0 * (redis_rate / http_rate - 1.0),
                cpus(&to_redis),
                each(&to_redis)
            ),
        ),
        (
            "(17) Redis alone: XADD from 32 client tasks, each awaiting its answer".into(),
            format!(
                "{direct:.0} entries/s; hookline delivers at {:.0} % of it",
                100.0 * redis_rate / direct
            ),
        ),
    ])
}
