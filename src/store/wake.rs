//! The wake-up signal between whoever creates work and the dispatchers that do it.
//!
//! A counter in a `tokio::sync::watch` channel: every notify bumps it, every waiter
//! sees at least one change after it subscribed, so a wake-up that arrives while a
//! dispatcher is busy is not lost (unlike `Notify::notify_waiters`). Across processes,
//! PostgreSQL's LISTEN/NOTIFY feeds the same counter; the fallback poll covers the rest.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// Cheap-to-clone wake signal.
#[derive(Clone, Debug)]
pub struct Wake {
    tx: Arc<watch::Sender<u64>>,
}

/// A waiter's end of the signal.
#[derive(Debug)]
pub struct Waiter {
    rx: watch::Receiver<u64>,
}

impl Wake {
    /// A new signal with no waiters.
    pub fn new() -> Self {
        Wake {
            tx: Arc::new(watch::channel(0).0),
        }
    }

    /// Wakes every waiter (now, or at its next wait if it is busy).
    pub fn notify(&self) {
        self.tx.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A new waiter; it sees notifications sent after this call.
    pub fn waiter(&self) -> Waiter {
        let mut rx = self.tx.subscribe();
        rx.mark_unchanged();
        Waiter { rx }
    }
}

impl Default for Wake {
    fn default() -> Self {
        Wake::new()
    }
}

impl Waiter {
    /// Waits for a notification or the timeout, whichever first. True if notified.
    pub async fn wait(&mut self, timeout: Duration) -> bool {
        matches!(
            tokio::time::timeout(timeout, self.rx.changed()).await,
            Ok(Ok(()))
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_notification_sent_while_busy_is_not_lost() {
        let wake = Wake::new();
        let mut waiter = wake.waiter();
        wake.notify(); // nobody is waiting yet
        assert!(waiter.wait(Duration::from_secs(5)).await);
        // consumed: the next wait times out
        assert!(!waiter.wait(Duration::from_millis(20)).await);
    }

    #[tokio::test]
    async fn every_waiter_is_woken() {
        let wake = Wake::new();
        let mut a = wake.waiter();
        let mut b = wake.waiter();
        wake.notify();
        assert!(a.wait(Duration::from_secs(5)).await);
        assert!(b.wait(Duration::from_secs(5)).await);
    }
}
