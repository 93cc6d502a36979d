//! Safety of an internet-facing service (SPEC §6), through a real server over sockets:
//! the SSRF guard at registration and at send time (`destinations`), every input limit
//! with its exact error (`limits`), no secret or token in any log, error, metric or
//! listing (`secrets`), nor any broker's password (`bus_secrets`), no stored secret readable at rest (`sealed`), and property tests of the two parsers that take strangers'
//! input (`props`).

mod bus_secrets;
mod destinations;
mod limits;
mod props;
mod sealed;
mod secrets;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::TcpListener;

pub use crate::harness::envelopes::push;

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
