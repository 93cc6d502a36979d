//! The live tail: every attempt, once recorded, to whoever watches.
//!
//! One broadcast channel per process, shared by the roles like [`Wake`](super::Wake): the
//! recorder publishes what it has just committed; PostgreSQL replicas also publish what
//! other replicas recorded (announced by `NOTIFY`, read back by seq). Nothing is kept for
//! a watcher that falls behind: the channel holds the last [`CAPACITY`] attempts, and a
//! watcher that misses some learns it from the channel and is ended by its reader.

use std::sync::Arc;

use tokio::sync::broadcast;

use super::AttemptView;

/// Attempts the channel holds for its slowest watcher.
pub const CAPACITY: usize = 4096;

/// The sending side of the live tail; cheap to clone.
#[derive(Clone)]
pub struct Tail {
    sender: broadcast::Sender<Arc<AttemptView>>,
}

impl Default for Tail {
    fn default() -> Self {
        Tail::new()
    }
}

impl Tail {
    /// A tail nobody watches yet.
    pub fn new() -> Tail {
        Tail {
            sender: broadcast::channel(CAPACITY).0,
        }
    }

    /// Whether anybody watches: publishing costs nothing otherwise.
    pub fn is_watched(&self) -> bool {
        self.sender.receiver_count() > 0
    }

    /// How many watch.
    pub fn watchers(&self) -> usize {
        self.sender.receiver_count()
    }

    /// Hands a recorded attempt to every watcher.
    pub fn publish(&self, view: AttemptView) {
        let _ = self.sender.send(Arc::new(view));
    }

    /// Starts watching from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<AttemptView>> {
        self.sender.subscribe()
    }
}
