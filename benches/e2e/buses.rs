//! (17) Message buses as the destination: one webhook's rate and CPU per delivery to a
//! NATS JetStream stream and to a Redis stream, next to the HTTP sink in the same run
//! (rounds alternated), each broker's CPU counted in; and each broker's own rate for the
//! same publishes from 32 client tasks each awaiting its acknowledgement, the physical
//! limit hookline's rate is a share of. Uses the NATS (JetStream) on 127.0.0.1:4222 and
//! the Redis on 127.0.0.1:6379 of the machine; a broker that is not there is skipped.

use std::time::Instant;

use hookline::store::{self, Webhook};

use super::formats::{Arrivals, Rounds, none, round, summary};
use super::{Error, Scale, Sink, cpu_of};

const REDIS: &str = "redis://127.0.0.1:6379/0";
const NATS: &str = "127.0.0.1:4222";
const KEY: &str = "hookline-bench";
const SUBJECT: &str = "hookline.bench";
const STREAM: &str = "HOOKLINE_BENCH";
const ROUNDS: usize = 3;
/// The payload size of the brokers' own rate, about a CloudEvents body's.
const PAYLOAD: usize = 1_000;

fn redis_cpu() -> f64 {
    cpu_of("redis-server")
}

fn nats_cpu() -> f64 {
    cpu_of("nats-server")
}

/// Redis's own rate: `n` XADDs from 32 tasks, each awaiting its answer.
async fn redis_rate(client: &redis::Client, n: usize) -> Result<f64, Error> {
    let key = format!("{KEY}-direct");
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..32 {
        let mut c = client.get_multiplexed_async_connection().await?;
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            for i in (t..n).step_by(32) {
                redis::cmd("XADD")
                    .arg(&key)
                    .arg("*")
                    .arg("id")
                    .arg(i)
                    .arg("payload")
                    .arg(vec![b'x'; PAYLOAD])
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

/// JetStream's own rate: `n` publishes from 32 tasks, each awaiting its PubAck.
async fn nats_rate(context: &async_nats::jetstream::Context, n: usize) -> Result<f64, Error> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..32 {
        let context = context.clone();
        tasks.push(tokio::spawn(async move {
            for _ in (t..n).step_by(32) {
                context
                    .publish(SUBJECT, vec![b'x'; PAYLOAD].into())
                    .await?
                    .await?;
            }
            Ok::<(), async_nats::Error>(())
        }));
    }
    for task in tasks {
        task.await?.map_err(|e| e.to_string())?;
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    context.get_stream(STREAM).await?.purge().await?;
    Ok(rate)
}

/// (17) rows: HTTP, then each bus against it, then each broker alone.
pub async fn scenarios(
    backend: &str,
    scale: Scale,
    dir: &std::path::Path,
    sink_url: &str,
    sink: &Sink,
) -> Result<Vec<(String, String)>, Error> {
    let deliveries = scale.deliveries / 2;
    let webhook = Webhook {
        name: "bench bus".into(),
        format: "cloudevents".into(),
        ..Webhook::new("wh_bench_format", "acme", "", store::now_ms())
    };
    let redis = redis::Client::open(REDIS)?;
    let redis_up = redis.get_multiplexed_async_connection().await.is_ok();
    let nats = match async_nats::connect(NATS).await {
        Ok(client) => {
            let context = async_nats::jetstream::new(client);
            context
                .get_or_create_stream(async_nats::jetstream::stream::Config {
                    name: STREAM.into(),
                    subjects: vec![SUBJECT.into()],
                    ..Default::default()
                })
                .await
                .ok()
                .map(|_| context)
        }
        Err(_) => None,
    };
    let redis_url = format!("{REDIS}?stream={KEY}&maxlen={}", deliveries * 2);
    let nats_url = format!("nats://{NATS}/{SUBJECT}");
    let mut rows = Vec::new();
    let (mut to_http, mut to_redis, mut to_nats) = (Rounds::new(), Rounds::new(), Rounds::new());
    for r in 0..ROUNDS {
        eprintln!("[{backend}] HTTP / NATS / Redis, round {}", r + 1);
        let http = Arrivals::Sink(sink_url, sink);
        to_http.push(
            round(
                backend,
                dir,
                &("http", webhook.clone()),
                &http,
                deliveries,
                r,
                none,
            )
            .await?,
        );
        if let Some(context) = &nats {
            let stream = Arrivals::JetStream(&nats_url, context, STREAM);
            let bus = ("nats", webhook.clone());
            to_nats.push(round(backend, dir, &bus, &stream, deliveries, r, nats_cpu).await?);
        }
        if redis_up {
            let stream = Arrivals::Stream(&redis_url, &redis, KEY);
            let bus = ("redis", webhook.clone());
            to_redis.push(round(backend, dir, &bus, &stream, deliveries, r, redis_cpu).await?);
        }
    }
    let (http_rate, http_cpu, http_each) = summary(&to_http);
    rows.push((
        format!("(17) one webhook to the HTTP sink, {deliveries} deliveries, {ROUNDS} rounds"),
        format!("median {http_rate:.0} deliveries/s, {http_cpu:.3} ms CPU per delivery; rounds: {http_each}"),
    ));
    let buses: [(&str, &Rounds, bool); 2] = [
        ("a NATS JetStream stream", &to_nats, nats.is_some()),
        ("a Redis stream", &to_redis, redis_up),
    ];
    for (name, rounds, up) in buses {
        if !up {
            rows.push((
                format!("(17) the same to {name}"),
                "skipped: no broker on this machine".into(),
            ));
            continue;
        }
        let (rate, cpu, each) = summary(rounds);
        rows.push((
            format!("(17) the same to {name} (CPU includes the broker)"),
            format!(
                "median {rate:.0} deliveries/s ({:+.0} % vs HTTP), {cpu:.3} ms CPU per delivery; rounds: {each}",
                100.0 * (rate / http_rate - 1.0)
            ),
        ));
    }
    if let Some(context) = &nats {
        let direct = nats_rate(context, deliveries).await?;
        let (rate, _, _) = summary(&to_nats);
        rows.push((
            "(17) JetStream alone: publishes from 32 client tasks, each awaiting its PubAck".into(),
            format!(
                "{direct:.0} messages/s; hookline delivers at {:.0} % of it",
                100.0 * rate / direct
            ),
        ));
    }
    if redis_up {
        let direct = redis_rate(&redis, deliveries).await?;
        let (rate, _, _) = summary(&to_redis);
        rows.push((
            "(17) Redis alone: XADD from 32 client tasks, each awaiting its answer".into(),
            format!(
                "{direct:.0} entries/s; hookline delivers at {:.0} % of it",
                100.0 * rate / direct
            ),
        ));
    }
    Ok(rows)
}
