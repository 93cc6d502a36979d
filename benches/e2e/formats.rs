//! (16) What a payload format costs: one webhook's delivery rate and CPU per delivery with
//! format `hookline`, `slack` and the `github-dispatch` preset (a compiled template with
//! headers), in the same run, rounds alternated so drift hits each alike.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use hookline::dispatch::payload::template::presets;
use hookline::store::{self, PayloadOptions, Webhook, WebhookSecret};

use super::{
    Error, Hookline, SECRET, Scale, Sink, WAIT_CAP, drive, fresh_db, median, postgres_cpu_seconds,
    wait_count,
};

/// Rounds of each format.
const ROUNDS: usize = 3;

/// The formats compared: name, stored format, options, headers.
fn formats() -> Vec<(&'static str, Webhook)> {
    let base = |format: &str| Webhook {
        name: format!("bench {format}"),
        format: format.into(),
        ..Webhook::new("wh_bench_format", "acme", "", store::now_ms())
    };
    let github = presets::find("github-dispatch").expect("preset");
    let mut headers: BTreeMap<String, String> = github
        .headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    headers.insert("Authorization".into(), "Bearer github_pat_bench".into());
    let template = Webhook {
        payload_options: PayloadOptions {
            template: Some(github.body.to_owned()),
            template_content_type: Some(github.content_type.to_owned()),
            ..PayloadOptions::default()
        },
        headers,
        ..base("template")
    };
    vec![
        ("hookline", base("hookline")),
        ("slack", base("slack")),
        ("github-dispatch", template),
    ]
}

/// Where a round's deliveries arrive, and how to tell they all did.
pub enum Arrivals<'a> {
    /// The HTTP sink at this URL.
    Sink(&'a str, &'a Sink),
    /// A Redis stream: the webhook's URL, and a client to count the stream's entries.
    Stream(&'a str, &'a redis::Client, &'a str),
    /// A JetStream stream: the webhook's URL, a context, and the stream's name.
    JetStream(&'a str, &'a async_nats::jetstream::Context, &'a str),
    /// A RabbitMQ queue: the webhook's URL, a channel, and the queue's name.
    Queue(&'a str, &'a lapin::Channel, &'a str),
    /// Whatever a consumer of ours counts (an MQTT subscriber): the webhook's URL, the count.
    Counted(&'a str, &'a AtomicUsize),
}

impl Arrivals<'_> {
    fn url(&self) -> &str {
        match self {
            Arrivals::Sink(url, _)
            | Arrivals::Stream(url, _, _)
            | Arrivals::JetStream(url, _, _)
            | Arrivals::Queue(url, _, _)
            | Arrivals::Counted(url, _) => url,
        }
    }

    async fn reset(&self) -> Result<(), Error> {
        match self {
            Arrivals::Sink(_, sink) => sink.count.store(0, Ordering::Relaxed),
            Arrivals::Stream(_, client, key) => {
                let mut c = client.get_multiplexed_async_connection().await?;
                redis::cmd("DEL")
                    .arg(*key)
                    .query_async::<()>(&mut c)
                    .await?;
            }
            Arrivals::JetStream(_, context, name) => {
                context.get_stream(*name).await?.purge().await?;
            }
            Arrivals::Queue(_, channel, name) => {
                channel
                    .queue_purge((*name).into(), Default::default())
                    .await?;
            }
            Arrivals::Counted(_, count) => count.store(0, Ordering::Relaxed),
        }
        Ok(())
    }

    /// How many have arrived.
    async fn arrived(&self) -> Result<usize, Error> {
        Ok(match self {
            Arrivals::Sink(_, sink) => sink.count.load(Ordering::Relaxed),
            Arrivals::Stream(_, client, key) => {
                let mut c = client.get_multiplexed_async_connection().await?;
                redis::cmd("XLEN").arg(*key).query_async(&mut c).await?
            }
            Arrivals::JetStream(_, context, name) => {
                context
                    .get_stream(*name)
                    .await?
                    .info()
                    .await?
                    .state
                    .messages as usize
            }
            Arrivals::Queue(_, channel, name) => {
                let passive = lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                };
                channel
                    .queue_declare((*name).into(), passive, Default::default())
                    .await?
                    .message_count() as usize
            }
            Arrivals::Counted(_, count) => count.load(Ordering::Relaxed),
        })
    }

    async fn wait(&self, n: usize) -> Result<(), Error> {
        if let Arrivals::Sink(_, sink) = self {
            return wait_count(sink, n, WAIT_CAP).await;
        }
        let deadline = Instant::now() + WAIT_CAP;
        loop {
            let arrived = self.arrived().await?;
            if arrived >= n {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("{arrived} of {n} after {WAIT_CAP:?}").into());
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}

/// One round: one webhook, `deliveries` envelopes from 32 clients; deliveries/s, CPU ms
/// per delivery over hookline and PostgreSQL, and apart that of whatever `other_cpu`
/// counts (a broker).
pub async fn round(
    backend: &str,
    dir: &std::path::Path,
    webhook: &(&str, Webhook),
    arrivals: &Arrivals<'_>,
    deliveries: usize,
    round: usize,
    other_cpu: fn() -> f64,
) -> Result<Round, Error> {
    round_with(
        backend,
        dir,
        webhook,
        arrivals,
        deliveries,
        round,
        other_cpu,
        &[],
    )
    .await
}

/// [`round`], with more flags for `hookline serve`.
#[allow(clippy::too_many_arguments)]
pub async fn round_with(
    backend: &str,
    dir: &std::path::Path,
    (name, webhook): &(&str, Webhook),
    arrivals: &Arrivals<'_>,
    deliveries: usize,
    round: usize,
    other_cpu: fn() -> f64,
    flags: &[&str],
) -> Result<Round, Error> {
    let db = fresh_db(
        backend,
        dir,
        &format!("{backend}_fmt_{}_{round}", name.replace('-', "_")),
    )
    .await?;
    let store = store::open(&super::bench_store(&db)).await?;
    let webhook = Webhook {
        url: arrivals.url().to_owned(),
        ..webhook.clone()
    };
    let secret = WebhookSecret {
        id: "whs_bench_format".into(),
        secret: hookline::secret::Secret::new(SECRET),
        created_at: store::now_ms(),
        expires_at: None,
    };
    store.insert_webhook(&webhook, &secret).await?;
    store.close().await;
    let h = Hookline::start(&db, "ingest,dispatcher", flags).await?;
    arrivals.reset().await?;
    let (server_cpu, database, other) = (h.cpu_seconds(), postgres_cpu_seconds(), other_cpu());
    let started = Instant::now();
    drive(
        h.addr,
        &format!("fmt-{name}-{round}"),
        deliveries as u64,
        32,
    )
    .await?;
    arrivals.wait(deliveries).await?;
    let elapsed = started.elapsed();
    let used = (h.cpu_seconds() - server_cpu) + (postgres_cpu_seconds() - database);
    let per = |seconds: f64| seconds * 1000.0 / deliveries as f64;
    Ok(Round {
        rate: deliveries as f64 / elapsed.as_secs_f64(),
        cpu: per(used),
        other_cpu: per(other_cpu() - other),
    })
}

/// Each round's (deliveries/s, CPU ms per delivery).
/// What one round measured.
#[derive(Clone, Copy)]
pub struct Round {
    /// Deliveries per second.
    pub rate: f64,
    /// CPU ms per delivery of hookline and PostgreSQL.
    pub cpu: f64,
    /// CPU ms per delivery of the other process counted (a broker), apart.
    pub other_cpu: f64,
}

pub type Rounds = Vec<Round>;

/// The median rate, the median CPU per delivery (hookline and PostgreSQL), the median of
/// the other's, and every round for the record.
pub fn summary(v: &Rounds) -> (f64, f64, f64, String) {
    let rate = median(&mut v.iter().map(|r| r.rate).collect::<Vec<_>>());
    let cpu = median(&mut v.iter().map(|r| r.cpu).collect::<Vec<_>>());
    let other = median(&mut v.iter().map(|r| r.other_cpu).collect::<Vec<_>>());
    let each = v
        .iter()
        .map(|r| format!("{:.0} /s {:.3} ms", r.rate, r.cpu))
        .collect::<Vec<_>>()
        .join(" · ");
    (rate, cpu, other, each)
}

/// The median rate and CPU per delivery of `runs`, each against those of `base` (named
/// `base_name`), and every round for the record.
pub fn against(runs: &Rounds, base: &Rounds, base_name: &str) -> String {
    let (base_rate, base_cpu, _, _) = summary(base);
    let (rate, cpu, _, each) = summary(runs);
    format!(
        "median {rate:.0} deliveries/s ({:+.0} % vs {base_name}), {cpu:.3} ms CPU per delivery ({:+.0} %); rounds: {each}",
        100.0 * (rate / base_rate - 1.0),
        100.0 * (cpu / base_cpu - 1.0),
    )
}

/// No other process's CPU.
pub fn none() -> f64 {
    0.0
}

/// (16), one row per format: each round's rate and CPU, and the median against hookline's.
pub async fn scenarios(
    backend: &str,
    scale: Scale,
    dir: &std::path::Path,
    sink_url: &str,
    sink: &Sink,
) -> Result<Vec<(String, String)>, Error> {
    let deliveries = scale.deliveries / 2;
    let formats = formats();
    let mut results: Vec<Rounds> = vec![Vec::new(); formats.len()];
    for r in 0..ROUNDS {
        for (i, format) in formats.iter().enumerate() {
            eprintln!("[{backend}] format {}, round {}", format.0, r + 1);
            let sink = Arrivals::Sink(sink_url, sink);
            results[i].push(round(backend, dir, format, &sink, deliveries, r, none).await?);
        }
    }
    let mut rows = Vec::new();
    for ((name, _), runs) in formats.iter().zip(&results) {
        rows.push((
            format!("(16) format {name}, 1 webhook, {deliveries} deliveries, {ROUNDS} rounds"),
            against(runs, &results[0], "hookline"),
        ));
    }
    Ok(rows)
}
