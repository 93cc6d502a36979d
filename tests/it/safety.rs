//! Safety of an internet-facing service (SPEC §6), through a real server over sockets:
//! the SSRF guard at registration and at send time (`destinations`), every input limit
//! with its exact error (`limits`), no secret or token in any log, error, metric or
//! listing (`secrets`), and property tests of the two parsers that take strangers'
//! input (`props`).

mod destinations;
mod limits;
mod props;
mod secrets;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::TcpListener;

/// A registry envelope with one manifest push of `repository:tag` and a unique event id.
pub fn push(repository: &str, tag: &str) -> String {
    serde_json::json!({"events": [{
        "id": hookline::ids::new_id("reg"),
        "timestamp": "2026-11-25T01:16:56.986524926Z",
        "action": "push",
        "target": {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "size": 345,
            "digest": "sha256:ab09df3b044990449fbd0a7f841bbfba912842e49212a79a8e029b8370aa6fb0",
            "repository": repository,
            "url": format!("http://127.0.0.1:5000/v2/{repository}/manifests/sha256:ab09"),
            "tag": tag
        },
        "request": {"id": "r", "addr": "127.0.0.1:1", "host": "127.0.0.1:5000", "method": "PUT", "useragent": "test"},
        "actor": {},
        "source": {"addr": "vm:5000", "instanceID": "i"}
    }]})
    .to_string()
}

/// A listener that only counts the connections it accepts: proof that nothing connected.
pub struct Tripwire {
    /// Its port.
    pub port: u16,
    accepted: Arc<AtomicUsize>,
}

impl Tripwire {
    /// Listens on `ip`:0; None if this machine has no such address (e.g. no IPv6).
    pub async fn on(ip: &str) -> Option<Tripwire> {
        let listener = TcpListener::bind((ip, 0)).await.ok()?;
        let port = listener.local_addr().ok()?.port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        Some(Tripwire { port, accepted })
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}
