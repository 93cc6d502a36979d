//! hookline end-to-end benchmark: `cargo bench --bench e2e [-- --quick] [-- --backend sqlite|postgres] [-- --log-only | --receivers-only | --latency-only | --core-only | --enrichment-only | --replicas-only | --formats-only | --buses-only | --traces-only | --instructions-only]`.
//! `HOOKLINE_BENCH_BIN=PATH` runs another hookline build (an earlier commit's) instead.
//!
//! Starts the release `hookline` binary against SQLite, then PostgreSQL, with a fast
//! receiver on 127.0.0.1, and drives bounded load through the real notify endpoint.
//! Every figure that matters is a ratio taken in the same run (these machines are noisy):
//! hookline's delivery rate against `wrk`'s raw rate on the same receiver. Loopback only;
//! every loop is bounded in count and time. Prints a Markdown table for BENCHMARKS.md.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use hookline::store::{self, OpenOptions, Store, Webhook, WebhookSecret};

const TOKEN: &str = "bench-registry-token";
const SECRET: &str = "whsec_dGVzdHNlY3JldHRlc3RzZWNyZXR0ZXN0c2VjcmV0";

/// The key that seals the bench's stored secrets, given to the server it starts too.
const BENCH_KEY: &str = "aG9va2xpbmUgYmVuY2gga2V5LCAzMiBieXRlcyBsbyE=";

/// Options to open a bench database with, sealing with [`BENCH_KEY`].
fn bench_store(url: &str) -> OpenOptions {
    let keys = hookline::seal::Keyring::parse(BENCH_KEY).expect("the bench key");
    OpenOptions::new(url).with_keys(std::sync::Arc::new(keys))
}

/// Hard cap on any single wait, so the whole run stays bounded.
const WAIT_CAP: Duration = Duration::from_secs(120);

#[path = "e2e/buses.rs"]
mod buses;
#[path = "e2e/enrichment.rs"]
mod enrichment;
#[path = "e2e/formats.rs"]
mod formats;
#[path = "e2e/instructions.rs"]
mod instructions;
#[path = "e2e/log.rs"]
mod log;
#[path = "e2e/receivers.rs"]
mod receivers;
#[path = "e2e/replicas.rs"]
mod replicas;
#[path = "e2e/traces.rs"]
mod traces;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[derive(Clone, Copy)]
struct Scale {
    deliveries: usize,
    latency_rate: u64,
    latency_secs: u64,
    backlog_big: usize,
    backlog_probe: usize,
    wrk_secs: u64,
}

const FULL: Scale = Scale {
    deliveries: 20_000,
    latency_rate: 200,
    latency_secs: 20,
    backlog_big: 1_000_000,
    backlog_probe: 10_000,
    wrk_secs: 5,
};
const QUICK: Scale = Scale {
    deliveries: 2_000,
    latency_rate: 100,
    latency_secs: 3,
    backlog_big: 50_000,
    backlog_probe: 2_000,
    wrk_secs: 2,
};

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    let scale = if args.iter().any(|a| a == "--quick") {
        QUICK
    } else {
        FULL
    };
    // Only the delivery-log scenarios (8)–(10), the slow receivers (11), the one-client
    // latency (12), or the core path: (2) with one webhook, its CPU, and (12).
    let only = if args.iter().any(|a| a == "--log-only") {
        Only::Log
    } else if args.iter().any(|a| a == "--receivers-only") {
        Only::Receivers
    } else if args.iter().any(|a| a == "--latency-only") {
        Only::Latency
    } else if args.iter().any(|a| a == "--core-only") {
        Only::Core
    } else if args.iter().any(|a| a == "--enrichment-only") {
        Only::Enrichment
    } else if args.iter().any(|a| a == "--replicas-only") {
        Only::Replicas
    } else if args.iter().any(|a| a == "--formats-only") {
        Only::Formats
    } else if args.iter().any(|a| a == "--buses-only") {
        Only::Buses
    } else if args.iter().any(|a| a == "--traces-only") {
        Only::Traces
    } else if args.iter().any(|a| a == "--instructions-only") {
        Only::Instructions
    } else {
        Only::All
    };
    let backends: Vec<&str> = match args.iter().position(|a| a == "--backend") {
        Some(i) => vec![args.get(i + 1).map(String::as_str).unwrap_or("sqlite")],
        None => vec!["sqlite", "postgres"],
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        println!("# hookline benchmark\n");
        println!("machine: {} cores, {}", cores(), mem_total());
        let mut report = Vec::new();
        for backend in backends {
            report.push(run_backend(backend, scale, only).await?);
        }
        println!("\n{}", report.join("\n"));
        Ok(())
    })
}

/// A receiver that answers 200 at once; counts requests and, when asked, arrival times.
#[derive(Default)]
struct Sink {
    count: AtomicUsize,
    /// request id (from the hookline payload's `request.id`) → arrival.
    arrivals: Mutex<HashMap<String, Instant>>,
    track: std::sync::atomic::AtomicBool,
    /// Hang this long on requests to `/hang`.
    hang_ms: AtomicU64,
}

async fn sink_handler(
    State(sink): State<Arc<Sink>>,
    uri: axum::http::Uri,
    body: Bytes,
) -> &'static str {
    if uri.path() == "/hang" {
        tokio::time::sleep(Duration::from_millis(sink.hang_ms.load(Ordering::Relaxed))).await;
        return "ok";
    }
    if sink.track.load(Ordering::Relaxed)
        && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body)
        && let Some(id) = v["request"]["id"].as_str()
    {
        sink.arrivals
            .lock()
            .expect("lock")
            .insert(id.to_owned(), Instant::now());
    }
    sink.count.fetch_add(1, Ordering::Relaxed);
    "ok"
}

async fn start_sink() -> Result<(SocketAddr, Arc<Sink>), Error> {
    let sink = Arc::new(Sink::default());
    let app = axum::Router::new()
        .fallback(sink_handler)
        .with_state(sink.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((addr, sink))
}

/// A fresh database for one scenario.
async fn fresh_db(backend: &str, dir: &std::path::Path, name: &str) -> Result<String, Error> {
    match backend {
        "sqlite" => Ok(format!(
            "sqlite://{}",
            dir.join(format!("{name}.db")).display()
        )),
        _ => {
            let server = std::env::var("BENCH_DATABASE_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
            let db = format!("hookline_bench_{name}");
            let pool = sqlx::PgPool::connect(&server).await?;
            sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                .execute(&pool)
                .await?;
            sqlx::raw_sql(&format!("CREATE DATABASE {db}"))
                .execute(&pool)
                .await?;
            pool.close().await;
            let base = server.rsplit_once('/').map(|(b, _)| b).unwrap_or(&server);
            Ok(format!("{base}/{db}"))
        }
    }
}

async fn add_webhooks(url: &str, targets: &[String]) -> Result<Store, Error> {
    let store = store::open(&bench_store(url)).await?;
    for (i, target) in targets.iter().enumerate() {
        let id = format!("wh_bench_{i:04}");
        let webhook = Webhook {
            name: format!("bench {i}"),
            ..Webhook::new(id.clone(), "acme", target.clone(), store::now_ms())
        };
        let secret = WebhookSecret {
            id: format!("whs_bench_{i:04}"),
            secret: hookline::secret::Secret::new(SECRET),
            created_at: store::now_ms(),
            expires_at: None,
        };
        store.insert_webhook(&webhook, &secret).await?;
    }
    Ok(store)
}

/// The release hookline binary, killed on drop.
struct Hookline {
    child: Child,
    addr: SocketAddr,
}

impl Hookline {
    async fn start(db: &str, roles: &str, extra: &[&str]) -> Result<Hookline, Error> {
        Hookline::start_under(&[], Duration::from_secs(30), db, roles, extra).await
    }

    /// [`Hookline::start`] as the arguments of `wrapper` (e.g. `valgrind`), ready within
    /// `ready_within`.
    async fn start_under(
        wrapper: &[&str],
        ready_within: Duration,
        db: &str,
        roles: &str,
        extra: &[&str],
    ) -> Result<Hookline, Error> {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let mut args = vec![
            "serve".to_string(),
            "--roles".into(),
            roles.into(),
            "--db".into(),
            db.into(),
            // A process without ingest answers /healthz on its admin address.
            if roles.contains("ingest") {
                "--ingest-addr".into()
            } else {
                "--admin-addr".into()
            },
            addr.to_string(),
            "--registry-token".into(),
            TOKEN.into(),
            "--log-level".into(),
            "warn".into(),
            // The sink is on loopback, which the SSRF guard refuses unless allow-listed;
            // wrk pushes far past a registry's rate, so the ingest limit is off.
            "--allow-cidrs".into(),
            "127.0.0.0/8".into(),
            "--ingest-rate-limit".into(),
            "0".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        // HOOKLINE_BENCH_BIN runs another build (an earlier commit's) against the same
        // drivers, for a same-run comparison.
        let binary = std::env::var("HOOKLINE_BENCH_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_hookline").to_owned());
        let mut command = match wrapper.split_first() {
            Some((program, wrapper_args)) => {
                let mut command = Command::new(program);
                command.args(wrapper_args).arg(binary);
                command
            }
            None => Command::new(binary),
        };
        let child = command
            .args(&args)
            .env("HOOKLINE_SECRET_KEY", BENCH_KEY)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()?;
        let h = Hookline { child, addr };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + ready_within;
        while client
            .get(format!("http://{addr}/healthz"))
            .send()
            .await
            .is_err()
        {
            if Instant::now() > deadline {
                return Err("hookline did not start".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(h)
    }

    /// SIGKILL: dies at once, mid-work.
    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// CPU seconds (user + system) this process has used.
    fn cpu_seconds(&self) -> f64 {
        process_cpu_seconds(self.child.id())
    }

    fn rss_mb(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    }
}

impl Drop for Hookline {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn envelope(i: u64, run: &str) -> String {
    serde_json::json!({"events": [{
        "id": format!("{run}-{i}"),
        "timestamp": "2026-11-25T01:16:56.986524926Z",
        "action": "push",
        "target": {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "size": 345,
            "digest": "sha256:ab09df3b044990449fbd0a7f841bbfba912842e49212a79a8e029b8370aa6fb0",
            "length": 345,
            "repository": "acme/app",
            "url": "http://127.0.0.1:5000/v2/acme/app/manifests/sha256:ab09df3b044990449fbd0a7f841bbfba912842e49212a79a8e029b8370aa6fb0",
            "tag": format!("1.{i}"),
        },
        "request": {"id": format!("{run}-{i}"), "addr": "127.0.0.1:1", "host": "127.0.0.1:5000", "method": "PUT", "useragent": "bench"},
        "actor": {},
        "source": {"addr": "bench:5000", "instanceID": "bench"}
    }]})
    .to_string()
}

/// POSTs `count` single-event envelopes with `concurrency` clients. Returns the commit
/// (2xx) instant of each, by request id.
async fn drive(
    addr: SocketAddr,
    run: &str,
    count: u64,
    concurrency: usize,
) -> Result<HashMap<String, Instant>, Error> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, next, run) = (client.clone(), next.clone(), run.to_owned());
        tasks.spawn(async move {
            let mut acks = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return Ok::<_, reqwest::Error>(acks);
                }
                let response = client
                    .post(format!("http://{addr}/v1/notify"))
                    .bearer_auth(TOKEN)
                    .header(
                        "content-type",
                        "application/vnd.docker.distribution.events.v1+json",
                    )
                    .body(envelope(i, &run))
                    .send()
                    .await?;
                if response.status().is_success() {
                    acks.push((format!("{run}-{i}"), Instant::now()));
                }
            }
        });
    }
    let mut acks = HashMap::new();
    while let Some(joined) = tasks.join_next().await {
        acks.extend(joined??);
    }
    Ok(acks)
}

async fn wait_count(sink: &Sink, target: usize, cap: Duration) -> Result<(), Error> {
    let deadline = Instant::now() + cap;
    while sink.count.load(Ordering::Relaxed) < target {
        if Instant::now() > deadline {
            return Err(format!(
                "only {} of {target} deliveries arrived in {cap:?}",
                sink.count.load(Ordering::Relaxed)
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// wrk's raw request rate against `url` with a body of `body_len` bytes.
fn wrk_rate(
    url: &str,
    body_len: usize,
    connections: usize,
    secs: u64,
    dir: &std::path::Path,
) -> Result<f64, Error> {
    let script = dir.join("post.lua");
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\nwrk.body = string.rep(\"x\", {body_len})\nwrk.headers[\"Content-Type\"] = \"application/json\"\n"
        ),
    )?;
    let out = Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{secs}s"),
            "-s",
        ])
        .arg(&script)
        .arg(url)
        .output()
        .map_err(|e| format!("running wrk (apt-get install wrk): {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| l.starts_with("Requests/sec:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("unexpected wrk output: {text}").into())
}

/// wrk posting unique single-event envelopes at the notify endpoint (ingest alone).
fn wrk_ingest(addr: SocketAddr, secs: u64, dir: &std::path::Path) -> Result<f64, Error> {
    let template = envelope(0, "WRKID").replace("WRKID-0", "%s");
    let script = dir.join("ingest.lua");
    std::fs::write(
        &script,
        format!(
            "local n = 0\nlocal tpl = [==[{template}]==]\nwrk.method = \"POST\"\n\
             wrk.headers[\"Content-Type\"] = \"application/vnd.docker.distribution.events.v1+json\"\n\
             wrk.headers[\"Authorization\"] = \"Bearer {TOKEN}\"\n\
             request = function()\n  n = n + 1\n  local id = string.format(\"wrk-%d\", n)\n  \
             return wrk.format(nil, nil, nil, (tpl:gsub(\"%%s\", id)))\nend\n"
        ),
    )?;
    let out = Command::new("wrk")
        .args(["-t1", "-c16", &format!("-d{secs}s"), "-s"])
        .arg(&script)
        .arg(format!("http://{addr}/v1/notify"))
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("Non-2xx") {
        return Err(format!("ingest answered non-2xx under wrk: {text}").into());
    }
    text.lines()
        .find(|l| l.starts_with("Requests/sec:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("unexpected wrk output: {text}").into())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// (12) One client sending one event at a time, as a registry with a lone push does: the
/// next POST only after the previous event reached the receiver. Reports the notify
/// answer (POST → 2xx), the rest of the path (2xx → receiver; 0 when the delivery beat the
/// client's reading of its 2xx) and the whole (POST → receiver) separately.
async fn one_client_latency(
    backend: &str,
    scale: Scale,
    dir: &std::path::Path,
    sink_url: &str,
    sink: &Arc<Sink>,
) -> Result<Vec<(String, String)>, Error> {
    let events: u64 = if scale.deliveries >= FULL.deliveries {
        500
    } else {
        100
    };
    eprintln!("[{backend}] one client, one event at a time ({events})");
    let db = fresh_db(backend, dir, &format!("{backend}_one_client")).await?;
    add_webhooks(&db, &[sink_url.to_owned()])
        .await?
        .close()
        .await;
    let h = Hookline::start(&db, "ingest,dispatcher", &[]).await?;
    let timings = one_at_a_time(&h, sink, "one", events, Duration::from_secs(5), &|i| {
        envelope(i, "one")
    })
    .await?;
    drop(h);
    let (mut answer, mut onward, mut whole) = (Vec::new(), Vec::new(), Vec::new());
    for t in timings {
        answer.push(t.answered - t.posted);
        onward.push(t.arrived.saturating_duration_since(t.answered));
        whole.push(t.arrived.saturating_duration_since(t.posted));
    }
    let text = |mut v: Vec<Duration>| {
        v.sort();
        format!(
            "p50 {} · p99 {}",
            ms(percentile(&v, 0.5)),
            ms(percentile(&v, 0.99))
        )
    };
    Ok(vec![
        (
            format!("(12) one client, one event at a time ({events}): POST → 2xx"),
            text(answer),
        ),
        ("(12) … 2xx → receiver".into(), text(onward)),
        ("(12) … POST → receiver".into(), text(whole)),
    ])
}

/// When one event was posted, answered, and reached the sink.
struct Timing {
    posted: Instant,
    answered: Instant,
    arrived: Instant,
}

/// Sends `events` events one at a time, as a registry with a lone push does: the next
/// POST only after the previous event reached the sink (at most `wait`). Event `i` is the
/// envelope `body(i)`, whose request id must be `{run}-{i}`. The first 10 warm the
/// connection and the server's caches and are not returned.
async fn one_at_a_time(
    h: &Hookline,
    sink: &Arc<Sink>,
    run: &str,
    events: u64,
    wait: Duration,
    body: &dyn Fn(u64) -> String,
) -> Result<Vec<Timing>, Error> {
    sink.arrivals.lock().expect("lock").clear();
    sink.track.store(true, Ordering::Relaxed);
    let client = reqwest::Client::new();
    let mut timings = Vec::new();
    for i in 0..events + 10 {
        let id = format!("{run}-{i}");
        let posted = Instant::now();
        let response = client
            .post(format!("http://{}/v1/notify", h.addr))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(body(i))
            .send()
            .await?;
        let answered = Instant::now();
        if !response.status().is_success() {
            return Err(format!("notify answered {}", response.status()).into());
        }
        let deadline = Instant::now() + wait;
        let arrived = loop {
            if let Some(at) = sink.arrivals.lock().expect("lock").get(&id).copied() {
                break at;
            }
            if Instant::now() > deadline {
                return Err(format!("{id} never reached the receiver").into());
            }
            tokio::time::sleep(Duration::from_micros(100)).await;
        };
        if i >= 10 {
            timings.push(Timing {
                posted,
                answered,
                arrived,
            });
        }
    }
    sink.track.store(false, Ordering::Relaxed);
    Ok(timings)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Which scenarios to run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Only {
    All,
    Log,
    Receivers,
    Latency,
    Core,
    /// Only enrichment from the registry, scenario (13).
    Enrichment,
    /// Only a killed process's deliveries (14) and dispatchers side by side (15).
    Replicas,
    /// Only the payload formats' cost, scenario (16).
    Formats,
    /// Only a message bus as the destination, scenario (17).
    Buses,
    /// Only what OpenTelemetry tracing costs, scenario (18).
    Traces,
    Instructions,
}

async fn run_backend(backend: &str, scale: Scale, only: Only) -> Result<String, Error> {
    let dir = tempfile::tempdir()?;
    let mut rows: Vec<(String, String)> = Vec::new();
    let (sink_addr, sink) = start_sink().await?;
    let sink_url = format!("http://{sink_addr}/hook");
    match only {
        Only::Log => {
            rows.extend(log::scenarios(backend, scale, dir.path(), &sink_url, &sink).await?);
            return Ok(table(backend, rows));
        }
        Only::Receivers => {
            rows.extend(receivers::scenarios(backend, scale, dir.path()).await?);
            return Ok(table(backend, rows));
        }
        Only::Latency => {
            rows.extend(one_client_latency(backend, scale, dir.path(), &sink_url, &sink).await?);
            return Ok(table(backend, rows));
        }
        Only::Enrichment => {
            let quick = scale.deliveries < FULL.deliveries;
            rows.extend(enrichment::scenarios(backend, quick, dir.path(), &sink_url, &sink).await?);
            return Ok(table(backend, rows));
        }
        Only::Replicas => {
            rows.extend(replicas::scenarios(backend, scale, dir.path(), &sink_url, &sink).await?);
            return Ok(table(backend, rows));
        }
        Only::Formats => {
            rows.extend(formats::scenarios(backend, scale, dir.path(), &sink_url, &sink).await?);
            return Ok(table(backend, rows));
        }
        Only::Buses => {
            rows.extend(buses::scenarios(backend, scale, dir.path(), &sink_url, &sink).await?);
            return Ok(table(backend, rows));
        }
        Only::Traces => {
            rows.extend(traces::scenarios(backend, scale, dir.path(), &sink_url, &sink).await?);
            return Ok(table(backend, rows));
        }
        Only::Instructions => {
            rows.extend(instructions::scenarios(backend, dir.path(), &sink_url, &sink).await?);
            return Ok(table(backend, rows));
        }
        Only::Core | Only::All => {}
    }
    let (mut raw4, mut raw) = (f64::NAN, f64::NAN);
    if only == Only::All {
        eprintln!("[{backend}] raw receiver rate (wrk)");
        // The same body size as hookline's payload for these events.
        let payload_len = hookline::dispatch::payload::render(
            hookline::dispatch::payload::Format::Hookline,
            &Default::default(),
            &bench_event(0),
        )
        .body
        .len();
        // The sink's own rate at 4 connections (where a webhook's adaptive window starts) and
        // at 32: the physical limits hookline's one-webhook figures compare to.
        raw4 = wrk_rate(&sink_url, payload_len, 4, scale.wrk_secs, dir.path())?;
        raw = wrk_rate(&sink_url, payload_len, 32, scale.wrk_secs, dir.path())?;
        rows.push((
            "(1) receiver raw rate, wrk, 4 / 32 connections".into(),
            format!("{raw4:.0} / {raw:.0} req/s"),
        ));
        sink.count.store(0, Ordering::Relaxed);

        // (7) ingest alone
        {
            eprintln!("[{backend}] ingest alone");
            let db = fresh_db(backend, dir.path(), &format!("{backend}_ingest")).await?;
            store::open(&bench_store(&db)).await?.close().await;
            let h = Hookline::start(&db, "ingest", &[]).await?;
            let rate = wrk_ingest(h.addr, scale.wrk_secs, dir.path())?;
            rows.push((
                "(7) ingest alone, single-event envelopes (wrk c=16)".into(),
                format!("{rate:.0} /s"),
            ));
        }
    }

    // (2) end-to-end delivery rate with 1, 10, 100 webhooks; (6) memory
    let mut rss_idle = 0.0;
    let mut rss_after = 0.0;
    let fan_outs: &[usize] = if only == Only::Core {
        &[1]
    } else {
        &[1, 10, 100]
    };
    for &webhooks in fan_outs {
        eprintln!("[{backend}] end to end, {webhooks} webhooks");
        let db = fresh_db(backend, dir.path(), &format!("{backend}_e2e{webhooks}")).await?;
        let targets = vec![sink_url.clone(); webhooks];
        add_webhooks(&db, &targets).await?.close().await;
        let h = Hookline::start(&db, "ingest,dispatcher", &[]).await?;
        if webhooks == 1 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            rss_idle = h.rss_mb();
        }
        sink.count.store(0, Ordering::Relaxed);
        let envelopes = (scale.deliveries / webhooks) as u64;
        let expected = envelopes as usize * webhooks;
        let (server_cpu, db_cpu) = (h.cpu_seconds(), postgres_cpu_seconds());
        let started = Instant::now();
        drive(h.addr, &format!("e2e{webhooks}"), envelopes, 32).await?;
        let ingested = started.elapsed();
        wait_count(&sink, expected, WAIT_CAP).await?;
        let elapsed = started.elapsed();
        // CPU per delivery; the database's is in the server's process on SQLite.
        let per = |seconds: f64| seconds * 1000.0 / expected as f64;
        let server_cpu = per(h.cpu_seconds() - server_cpu);
        let db_cpu = per(postgres_cpu_seconds() - db_cpu);
        let rate = expected as f64 / elapsed.as_secs_f64();
        rows.push((
            format!("(2) end to end, {webhooks} webhook(s): {envelopes} envelopes → {expected} deliveries"),
            format!(
                "{rate:.0} deliveries/s{} (ingest done in {:.1}s, all delivered in {:.1}s)",
                if raw.is_nan() {
                    String::new()
                } else {
                    format!(
                        " = {:.0}% of raw at 4 connections, {:.0}% of raw at 32",
                        100.0 * rate / raw4,
                        100.0 * rate / raw
                    )
                },
                ingested.as_secs_f64(),
                elapsed.as_secs_f64()
            ),
        ));
        if webhooks == 1 {
            rss_after = h.rss_mb();
            rows.push((
                "(2) … CPU per delivery, 1 webhook: hookline + PostgreSQL".into(),
                if backend == "postgres" {
                    format!("{server_cpu:.3} + {db_cpu:.3} ms")
                } else {
                    format!("{server_cpu:.3} ms (SQLite runs inside hookline)")
                },
            ));
        }
    }

    if only == Only::Core {
        rows.extend(one_client_latency(backend, scale, dir.path(), &sink_url, &sink).await?);
        return Ok(table(backend, rows));
    }

    // (3) latency at a fixed moderate rate
    {
        eprintln!("[{backend}] latency at {} events/s", scale.latency_rate);
        let db = fresh_db(backend, dir.path(), &format!("{backend}_latency")).await?;
        add_webhooks(&db, std::slice::from_ref(&sink_url))
            .await?
            .close()
            .await;
        let h = Hookline::start(&db, "ingest,dispatcher", &[]).await?;
        sink.arrivals.lock().expect("lock").clear();
        sink.track.store(true, Ordering::Relaxed);
        let total = scale.latency_rate * scale.latency_secs;
        let client = reqwest::Client::new();
        let mut ticker =
            tokio::time::interval(Duration::from_micros(1_000_000 / scale.latency_rate));
        let acks = Arc::new(Mutex::new(HashMap::new()));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..total {
            ticker.tick().await;
            let (client, acks, addr) = (client.clone(), acks.clone(), h.addr);
            tasks.spawn(async move {
                let r = client
                    .post(format!("http://{addr}/v1/notify"))
                    .bearer_auth(TOKEN)
                    .header("content-type", "application/json")
                    .body(envelope(i, "lat"))
                    .send()
                    .await;
                if r.is_ok_and(|r| r.status().is_success()) {
                    acks.lock()
                        .expect("lock")
                        .insert(format!("lat-{i}"), Instant::now());
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        let deadline = Instant::now() + Duration::from_secs(30);
        while sink.arrivals.lock().expect("lock").len() < total as usize
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        sink.track.store(false, Ordering::Relaxed);
        let arrivals = sink.arrivals.lock().expect("lock").clone();
        let acks = acks.lock().expect("lock").clone();
        // Commit-to-receiver: from the 2xx (the commit) to arrival. A delivery can arrive
        // before the client has read its 2xx; those count as 0.
        let mut lat: Vec<Duration> = acks
            .iter()
            .filter_map(|(id, acked)| {
                arrivals
                    .get(id)
                    .map(|arrived| arrived.saturating_duration_since(*acked))
            })
            .collect();
        lat.sort();
        rows.push((
            format!(
                "(3) commit → receiver latency at {}/s for {}s ({} of {total} measured)",
                scale.latency_rate,
                scale.latency_secs,
                lat.len()
            ),
            format!(
                "p50 {} · p90 {} · p99 {} · max {}",
                ms(percentile(&lat, 0.5)),
                ms(percentile(&lat, 0.9)),
                ms(percentile(&lat, 0.99)),
                ms(lat.last().copied().unwrap_or_default())
            ),
        ));
        drop(h);
    }

    rows.extend(one_client_latency(backend, scale, dir.path(), &sink_url, &sink).await?);

    // (4) isolation: healthy endpoints with and without one that hangs 10 s per request.
    // Alternating runs, median of three each: single runs vary by tens of percent here.
    {
        let mut without = Vec::new();
        let mut with = Vec::new();
        for round in 0..3 {
            for with_hang in [false, true] {
                eprintln!("[{backend}] isolation round {round}, hanging endpoint: {with_hang}");
                let db = fresh_db(
                    backend,
                    dir.path(),
                    &format!("{backend}_iso{with_hang}{round}"),
                )
                .await?;
                let mut targets = vec![sink_url.clone(); 10];
                if with_hang {
                    sink.hang_ms.store(10_000, Ordering::Relaxed);
                    targets.push(format!("http://{sink_addr}/hang"));
                }
                add_webhooks(&db, &targets).await?.close().await;
                let h = Hookline::start(&db, "ingest,dispatcher", &["--shutdown-grace", "100ms"])
                    .await?;
                sink.count.store(0, Ordering::Relaxed);
                let envelopes = (scale.deliveries / 10) as u64;
                let started = Instant::now();
                drive(h.addr, &format!("iso{with_hang}{round}"), envelopes, 32).await?;
                wait_count(&sink, envelopes as usize * 10, WAIT_CAP).await?;
                let rate = envelopes as f64 * 10.0 / started.elapsed().as_secs_f64();
                if with_hang {
                    with.push(rate)
                } else {
                    without.push(rate)
                }
            }
        }
        let (a, b) = (median(&mut without), median(&mut with));
        rows.push((
            "(4) isolation: 10 healthy webhooks, without / with an 11th hanging 10 s (median of 3)"
                .into(),
            format!(
                "{a:.0} / {b:.0} deliveries/s ({:+.1}%)",
                100.0 * (b - a) / a
            ),
        ));
    }

    // (5) backlog: claim-and-deliver rate with a small and a huge queue; (6) memory at 1M
    {
        let mut rates = Vec::new();
        let mut rss_backlog = 0.0;
        for queued in [scale.backlog_probe, scale.backlog_big] {
            eprintln!("[{backend}] backlog of {queued}");
            let db = fresh_db(backend, dir.path(), &format!("{backend}_backlog{queued}")).await?;
            let targets = vec![sink_url.clone(); 10];
            let store = add_webhooks(&db, &targets).await?;
            store.close().await;
            seed_backlog(backend, &db, queued).await?;
            sink.count.store(0, Ordering::Relaxed);
            let started = Instant::now();
            let h = Hookline::start(&db, "ingest,dispatcher", &[]).await?;
            wait_count(&sink, scale.backlog_probe, WAIT_CAP).await?;
            rates.push(scale.backlog_probe as f64 / started.elapsed().as_secs_f64());
            rss_backlog = h.rss_mb();
        }
        rows.push((
            format!(
                "(5) backlog: first {} deliveries with {} / {} queued",
                scale.backlog_probe, scale.backlog_probe, scale.backlog_big
            ),
            format!(
                "{:.0} / {:.0} deliveries/s (ratio {:.2})",
                rates[0],
                rates[1],
                rates[1] / rates[0]
            ),
        ));
        rows.push((
            "(6) memory (RSS): idle / after (2) / with the big backlog".into(),
            format!("{rss_idle:.1} MB / {rss_after:.1} MB / {rss_backlog:.1} MB"),
        ));
    }

    rows.extend(log::scenarios(backend, scale, dir.path(), &sink_url, &sink).await?);
    rows.extend(receivers::scenarios(backend, scale, dir.path()).await?);
    rows.extend(formats::scenarios(backend, scale, dir.path(), &sink_url, &sink).await?);
    rows.extend(buses::scenarios(backend, scale, dir.path(), &sink_url, &sink).await?);
    Ok(table(backend, rows))
}

/// CPU seconds (user + system, and of children it reaped) a process has used, from
/// `/proc/PID/stat`; 0 if it is gone.
fn process_cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at field 3.
    let fields: Vec<f64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .filter_map(|f| f.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    // utime, stime, cutime, cstime are fields 14–17 (1-based): 11–14 here ("state" is not
    // a number, so it was dropped).
    let ticks: f64 = fields.get(10..14).map_or(0.0, |f| f.iter().sum());
    ticks / CLOCK_TICKS
}

/// `sysconf(_SC_CLK_TCK)` on Linux.
const CLOCK_TICKS: f64 = 100.0;

/// CPU seconds used so far by every PostgreSQL server process on this machine.
fn postgres_cpu_seconds() -> f64 {
    cpu_of("postgres")
}

/// CPU seconds used so far by every process on this machine named `comm`.
fn cpu_of(comm: &str) -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == comm)
        })
        .map(process_cpu_seconds)
        .sum()
}

/// The Markdown table of one backend's rows.
fn table(backend: &str, rows: Vec<(String, String)>) -> String {
    let mut table = format!("## {backend}\n\n| measure | result |\n|---|---|\n");
    for (k, v) in rows {
        table.push_str(&format!("| {k} | {v} |\n"));
    }
    table
}

/// Puts `n` due deliveries (over 10 webhooks, one event) straight into the queue.
async fn seed_backlog(backend: &str, url: &str, n: usize) -> Result<(), Error> {
    let now = store::now_ms();
    let body = serde_json::to_string(&bench_event(now))?;
    if backend == "sqlite" {
        let pool = sqlx::SqlitePool::connect(url).await?;
        sqlx::query("INSERT INTO events (id, source, registry_event_id, type, repository, tag, digest, body, received_at, fanned_out) VALUES ('evt_bench', 'bench', 'bench', 'image.pushed', 'acme/app', '1.0', NULL, ?1, ?2, TRUE)")
            .bind(&body).bind(now).execute(&pool).await?;
        sqlx::query(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?1) \
             INSERT INTO deliveries (id, event_id, webhook_id, status, next_attempt_at, created_at, updated_at) \
             SELECT 'dlv_bench_' || x, 'evt_bench', printf('wh_bench_%04d', x % 10), 'pending', ?2, ?2, ?2 FROM c",
        )
        .bind(n as i64).bind(now).execute(&pool).await?;
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(url).await?;
        sqlx::query("INSERT INTO events (id, source, registry_event_id, type, repository, tag, digest, body, received_at, fanned_out) VALUES ('evt_bench', 'bench', 'bench', 'image.pushed', 'acme/app', '1.0', NULL, $1, $2, TRUE)")
            .bind(&body).bind(now).execute(&pool).await?;
        sqlx::query(
            "INSERT INTO deliveries (id, event_id, webhook_id, status, next_attempt_at, created_at, updated_at) \
             SELECT 'dlv_bench_' || x, 'evt_bench', 'wh_bench_' || lpad((x % 10)::text, 4, '0'), 'pending', $2, $2, $2 \
             FROM generate_series(1, $1) AS x",
        )
        .bind(n as i64).bind(now).execute(&pool).await?;
        sqlx::raw_sql("VACUUM ANALYZE deliveries")
            .execute(&pool)
            .await?;
        pool.close().await;
    }
    Ok(())
}

fn bench_event(now: i64) -> hookline::event::Event {
    use hookline::event::{Event, EventType};
    Event {
        tag: Some("1.0".into()),
        digest: Some(
            "sha256:ab09df3b044990449fbd0a7f841bbfba912842e49212a79a8e029b8370aa6fb0".into(),
        ),
        media_type: Some("application/vnd.oci.image.manifest.v1+json".into()),
        size: Some(345),
        registry_host: Some("127.0.0.1:5000".into()),
        request_id: Some("backlog".into()),
        original: serde_json::json!({}),
        ..Event::new(
            "evt_bench",
            "bench",
            "bench",
            EventType::ImagePushed,
            "acme/app",
            now,
        )
    }
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn mem_total() -> String {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_owned())
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or_else(
            || "unknown memory".into(),
            |kb| format!("{:.1} GiB RAM", kb / 1024.0 / 1024.0),
        )
}
