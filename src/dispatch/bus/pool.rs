//! The shared broker connections of one bus transport: one per endpoint (address, port,
//! credentials and whatever else the bus keys it by), opened on first use, dropped when a
//! send finds it broken, and closed when no send has used it for [`IDLE`].
//!
//! Each endpoint has its own slot, so a broker that is slow to connect holds up only the
//! sends to it, never those to another broker. Keys hold passwords: they live in memory
//! only.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// How long a connection no send has used stays open.
pub const IDLE: Duration = Duration::from_secs(300);

/// Connections of type `C` (a cheap handle: dropping the last clone closes it).
pub struct Pool<C> {
    slots: Arc<Slots<C>>,
}

type Slots<C> = Mutex<HashMap<String, Arc<Slot<C>>>>;

struct Slot<C> {
    connection: tokio::sync::Mutex<Option<C>>,
    used: Mutex<Instant>,
}

impl<C: Clone + Send + 'static> Pool<C> {
    /// A pool whose connections close after `idle` unused; a task sweeps it every quarter
    /// of that, for as long as the pool lives. Must be called inside the tokio runtime.
    pub fn new(idle: Duration) -> Pool<C> {
        let slots: Arc<Slots<C>> = Arc::default();
        tokio::spawn(sweep(Arc::downgrade(&slots), idle));
        Pool { slots }
    }

    /// The connection kept under `key`, or a new one from `connect` (kept if it succeeds).
    pub async fn get<E, F>(&self, key: &str, connect: impl FnOnce() -> F) -> Result<C, E>
    where
        F: Future<Output = Result<C, E>>,
    {
        let slot = {
            let mut slots = lock(&self.slots);
            slots
                .entry(key.to_owned())
                .or_insert_with(|| {
                    Arc::new(Slot {
                        connection: tokio::sync::Mutex::new(None),
                        used: Mutex::new(Instant::now()),
                    })
                })
                .clone()
        };
        *lock(&slot.used) = Instant::now();
        let mut connection = slot.connection.lock().await;
        if let Some(open) = connection.as_ref() {
            return Ok(open.clone());
        }
        let open = connect().await?;
        *connection = Some(open.clone());
        Ok(open)
    }

    /// Marks the connection kept under `key`, if any, as used now: one whose handles
    /// live on in another pool's connections (AMQP channels) stays while they are used.
    pub fn touch(&self, key: &str) {
        if let Some(slot) = lock(&self.slots).get(key) {
            *lock(&slot.used) = Instant::now();
        }
    }

    /// Drops the connection kept under `key` (it failed): the next send opens another.
    pub fn forget(&self, key: &str) {
        lock(&self.slots).remove(key);
    }

    /// How many endpoints have a slot.
    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.slots).len()
    }
}

/// Every `idle / 4`, drops the slots unused for `idle`, until the pool is gone.
async fn sweep<C>(slots: Weak<Slots<C>>, idle: Duration) {
    let mut ticks = tokio::time::interval((idle / 4).max(Duration::from_millis(10)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(slots) = slots.upgrade() else {
            return;
        };
        lock(&slots).retain(|_, slot| lock(&slot.used).elapsed() < idle);
    }
}

/// A std mutex's guard, poisoned or not: nothing the bus transports keep behind one can
/// be left inconsistent by a panic.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection that counts its live clones, as a socket held by handles would.
    #[derive(Clone)]
    struct Handle(Arc<()>);

    #[tokio::test]
    async fn shares_one_connection_per_key_and_reconnects_after_forget() {
        let pool = Pool::new(IDLE);
        let opened = std::sync::atomic::AtomicUsize::new(0);
        let connect = || async {
            opened.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok::<_, ()>(Handle(Arc::new(())))
        };
        let a = pool.get("a", connect).await.unwrap();
        let again = pool.get("a", connect).await.unwrap();
        assert!(Arc::ptr_eq(&a.0, &again.0));
        pool.get("b", connect).await.unwrap();
        assert_eq!(opened.load(std::sync::atomic::Ordering::SeqCst), 2);
        pool.forget("a");
        let fresh = pool.get("a", connect).await.unwrap();
        assert!(!Arc::ptr_eq(&a.0, &fresh.0));
    }

    #[tokio::test]
    async fn a_failed_connect_keeps_nothing() {
        let pool: Pool<Handle> = Pool::new(IDLE);
        let failed = pool
            .get("a", || async { Err::<Handle, _>("refused") })
            .await;
        assert_eq!(failed.err(), Some("refused"));
        let opened = pool
            .get("a", || async { Ok::<_, ()>(Handle(Arc::new(()))) })
            .await;
        assert!(opened.is_ok());
    }

    #[tokio::test]
    async fn an_idle_connection_is_closed() {
        let pool = Pool::new(Duration::from_millis(80));
        let handle = pool
            .get("a", || async { Ok::<_, ()>(Handle(Arc::new(()))) })
            .await
            .unwrap();
        let watch = Arc::downgrade(&handle.0);
        drop(handle);
        assert_eq!(pool.len(), 1);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(pool.len(), 0);
        assert!(
            watch.upgrade().is_none(),
            "the last clone went with the slot"
        );
    }
}
