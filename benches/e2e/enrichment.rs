//! (13) Enrichment from the registry: what it costs per event, off and on.
//!
//! One client, one event at a time (as in (12)), POST → receiver, in three rounds that
//! alternate within one run: enrichment off (no registry URL: the default), on with every
//! event naming the same image (the first reads the registry, the rest hit the cache, so
//! each pays only the stored-enrichment read and write), and on with every event a new image
//! (each reads the registry: an index, two image manifests and two configs). The registry is
//! an in-process HTTP server on 127.0.0.1 answering the distribution API's manifest and blob
//! reads with real OCI documents (digests verified by hookline), counted per request.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use sha2::Digest;

use super::{Error, Hookline, Sink, add_webhooks, fresh_db, ms, one_at_a_time, percentile};

/// Documents by digest, and how many reads were served.
#[derive(Default)]
struct Registry {
    docs: HashMap<String, (&'static str, Vec<u8>)>,
    reads: AtomicUsize,
}

fn digest(bytes: &[u8]) -> String {
    let hash = sha2::Sha256::digest(bytes);
    format!(
        "sha256:{}",
        hash.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

impl Registry {
    /// Adds a two-platform image (index, two manifests, two configs); returns the index digest.
    fn add_image(&mut self, n: usize) -> String {
        let mut children = Vec::new();
        for arch in ["amd64", "arm64"] {
            let config = serde_json::json!({
                "os": "linux", "architecture": arch, "created": "2026-12-01T00:00:00Z",
                "config": {"Labels": {"org.opencontainers.image.revision": format!("rev{n}")}},
                "rootfs": {"type": "layers", "diff_ids": []},
            })
            .to_string()
            .into_bytes();
            let config_digest = digest(&config);
            let manifest = serde_json::json!({
                "schemaVersion": 2, "mediaType": MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
                "layers": [],
            })
            .to_string()
            .into_bytes();
            let manifest_digest = digest(&manifest);
            children.push(serde_json::json!({
                "mediaType": MANIFEST, "digest": manifest_digest, "size": manifest.len(),
                "platform": {"os": "linux", "architecture": arch},
            }));
            self.docs
                .insert(config_digest, ("application/octet-stream", config));
            self.docs.insert(manifest_digest, (MANIFEST, manifest));
        }
        let index =
            serde_json::json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": children})
                .to_string()
                .into_bytes();
        let index_digest = digest(&index);
        self.docs.insert(index_digest.clone(), (INDEX, index));
        index_digest
    }
}

async fn read(
    State(registry): State<Arc<Registry>>,
    Path((_repo, _kind, reference)): Path<(String, String, String)>,
) -> axum::response::Response {
    registry.reads.fetch_add(1, Ordering::Relaxed);
    match registry.docs.get(&reference) {
        Some((media_type, body)) => {
            ([(header::CONTENT_TYPE, *media_type)], body.clone()).into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

fn envelope(i: u64, run: &str, digest: &str) -> String {
    serde_json::json!({"events": [{
        "id": format!("{run}-{i}"),
        "timestamp": "2026-11-25T01:16:56.986524926Z",
        "action": "push",
        "target": {
            "mediaType": INDEX, "size": 491, "digest": digest, "repository": "acme/app",
            "url": format!("http://127.0.0.1:5000/v2/acme/app/manifests/{digest}"),
            "tag": format!("1.{i}"),
        },
        "request": {"id": format!("{run}-{i}"), "addr": "127.0.0.1:1", "host": "127.0.0.1:5000", "method": "PUT", "useragent": "bench"},
        "actor": {},
        "source": {"addr": "bench:5000", "instanceID": "bench"}
    }]})
    .to_string()
}

/// POST → receiver of `events` events sent one at a time (after 10 unmeasured), event `i`
/// naming `digest_of(i)`.
async fn round(
    h: &Hookline,
    sink: &Arc<Sink>,
    run: &str,
    events: u64,
    digest_of: &dyn Fn(u64) -> String,
) -> Result<Vec<Duration>, Error> {
    let timings = one_at_a_time(h, sink, run, events, Duration::from_secs(10), &|i| {
        envelope(i, run, &digest_of(i))
    })
    .await?;
    let mut whole: Vec<Duration> = timings
        .iter()
        .map(|t| t.arrived.saturating_duration_since(t.posted))
        .collect();
    whole.sort();
    Ok(whole)
}

/// The (13) rows.
pub(super) async fn scenarios(
    backend: &str,
    quick: bool,
    dir: &std::path::Path,
    sink_url: &str,
    sink: &Arc<Sink>,
) -> Result<Vec<(String, String)>, Error> {
    let events: u64 = if quick { 100 } else { 300 };
    let mut registry = Registry::default();
    let shared = registry.add_image(0);
    let fresh: Vec<String> = (0..events + 10)
        .map(|n| registry.add_image(n as usize + 1))
        .collect();
    let registry = Arc::new(registry);
    let app = axum::Router::new()
        .route("/v2/{repo}/{ns}/{kind}/{reference}", axum::routing::get(
            |State(r): State<Arc<Registry>>, Path((_a, _b, kind, reference)): Path<(String, String, String, String)>| async move {
                read(State(r), Path((String::new(), kind, reference))).await
            },
        ))
        .with_state(registry.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let registry_url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let mut rows = Vec::new();
    let mut results: HashMap<&str, Vec<Vec<Duration>>> = HashMap::new();
    // Two alternations of the three rounds, each on a fresh database and server.
    for pass in 0..2 {
        for mode in ["off", "cached", "new image"] {
            eprintln!("[{backend}] (13) enrichment {mode}, pass {}", pass + 1);
            let db = fresh_db(
                backend,
                dir,
                &format!("{backend}_enrich_{pass}_{}", mode.replace(' ', "_")),
            )
            .await?;
            add_webhooks(&db, &[sink_url.to_owned()])
                .await?
                .close()
                .await;
            let extra: Vec<&str> = match mode {
                "off" => vec![],
                _ => vec!["--registry-url", &registry_url],
            };
            let h = Hookline::start(&db, "ingest,dispatcher", &extra).await?;
            let before = registry.reads.load(Ordering::Relaxed);
            let run = format!("e{pass}{}", mode.replace(' ', ""));
            let lat = match mode {
                "new image" => {
                    let fresh = fresh.clone();
                    round(&h, sink, &run, events, &move |i| fresh[i as usize].clone()).await?
                }
                _ => {
                    let shared = shared.clone();
                    round(&h, sink, &run, events, &move |_| shared.clone()).await?
                }
            };
            let reads = registry.reads.load(Ordering::Relaxed) - before;
            drop(h);
            if pass == 1 {
                rows.push((
                    format!("(13) enrichment {mode}: registry reads per event (pass 2)"),
                    format!("{:.2}", reads as f64 / (events + 10) as f64),
                ));
            }
            results.entry(mode).or_default().push(lat);
        }
    }
    for mode in ["off", "cached", "new image"] {
        let runs = &results[mode];
        let p = |q: f64| {
            runs.iter()
                .map(|v| ms(percentile(v, q)))
                .collect::<Vec<_>>()
                .join(" / ")
        };
        rows.push((
            format!("(13) one event at a time ({events}), enrichment {mode}: POST → receiver, pass 1 / pass 2"),
            format!("p50 {} · p99 {}", p(0.5), p(0.99)),
        ));
    }
    Ok(rows)
}
