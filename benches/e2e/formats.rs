//! (16) What a payload format costs: one webhook's delivery rate and CPU per delivery with
//! format `hookline`, `slack` and the `github-dispatch` preset (a compiled template with
//! headers), in the same run, rounds alternated so drift hits each alike.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Instant;

use hookline::dispatch::payload::template::presets;
use hookline::store::{self, OpenOptions, PayloadOptions, Webhook, WebhookSecret};

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

/// One round: (deliveries/s, CPU ms per delivery over hookline and PostgreSQL).
async fn round(
    backend: &str,
    dir: &std::path::Path,
    (name, webhook): &(&str, Webhook),
    (sink_url, sink): (&str, &Sink),
    deliveries: usize,
    round: usize,
) -> Result<(f64, f64), Error> {
    let db = fresh_db(
        backend,
        dir,
        &format!("{backend}_fmt_{}_{round}", name.replace('-', "_")),
    )
    .await?;
    let store = store::open(&OpenOptions::new(&db)).await?;
    let webhook = Webhook {
        url: sink_url.to_owned(),
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
    let h = Hookline::start(&db, "ingest,dispatcher", &[]).await?;
    sink.count.store(0, Ordering::Relaxed);
    let (server_cpu, db_cpu) = (h.cpu_seconds(), postgres_cpu_seconds());
    let started = Instant::now();
    drive(
        h.addr,
        &format!("fmt-{name}-{round}"),
        deliveries as u64,
        32,
    )
    .await?;
    wait_count(sink, deliveries, WAIT_CAP).await?;
    let elapsed = started.elapsed();
    let cpu = (h.cpu_seconds() - server_cpu) + (postgres_cpu_seconds() - db_cpu);
    Ok((
        deliveries as f64 / elapsed.as_secs_f64(),
        cpu * 1000.0 / deliveries as f64,
    ))
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
    let mut results: Vec<Vec<(f64, f64)>> = vec![Vec::new(); formats.len()];
    for r in 0..ROUNDS {
        for (i, format) in formats.iter().enumerate() {
            eprintln!("[{backend}] format {}, round {}", format.0, r + 1);
            let target = (sink_url, sink);
            results[i].push(round(backend, dir, format, target, deliveries, r).await?);
        }
    }
    let mid = |mut v: Vec<f64>| median(&mut v);
    let base_rate = mid(results[0].iter().map(|r| r.0).collect());
    let base_cpu = mid(results[0].iter().map(|r| r.1).collect());
    let mut rows = Vec::new();
    for ((name, _), runs) in formats.iter().zip(&results) {
        let rate = mid(runs.iter().map(|r| r.0).collect());
        let cpu = mid(runs.iter().map(|r| r.1).collect());
        let each: Vec<String> = runs
            .iter()
            .map(|(rate, cpu)| format!("{rate:.0} /s {cpu:.3} ms"))
            .collect();
        rows.push((
            format!("(16) format {name}, 1 webhook, {deliveries} deliveries, {ROUNDS} rounds"),
            format!(
                "median {rate:.0} deliveries/s ({:+.0} % vs hookline), {cpu:.3} ms CPU per delivery ({:+.0} %); rounds: {}",
                100.0 * (rate / base_rate - 1.0),
                100.0 * (cpu / base_cpu - 1.0),
                each.join(" · ")
            ),
        ));
    }
    Ok(rows)
}
