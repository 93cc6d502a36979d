//! Enrichment results in memory, keyed by (source, digest), with one fetch per key at a
//! time: concurrent deliveries of the same image (one per webhook, a burst of tags) wait
//! for the fetch already running instead of starting their own.
//!
//! Only complete results are kept (a digest's content never changes), at most `capacity`
//! of them, the oldest evicted first. A failure is handed to the waiters of that fetch and
//! forgotten, so the next event asks the registry again.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::enrichment::{Facts, Reason};

/// A fetch's result, shared by its waiters.
pub(crate) type Shared = Option<Result<Arc<Facts>, Reason>>;

/// (source, digest).
pub(crate) type Key = (String, String);

/// What a lookup found.
pub(crate) enum Lookup {
    /// Read before.
    Hit(Arc<Facts>),
    /// Being read: wait for this.
    Wait(watch::Receiver<Shared>),
    /// Nobody reads it: the caller must, and report with [`Cache::complete`] through this.
    Lead(watch::Sender<Shared>, watch::Receiver<Shared>),
}

/// The cache.
pub(crate) struct Cache {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    done: HashMap<Key, Arc<Facts>>,
    order: VecDeque<Key>,
    pending: HashMap<Key, watch::Receiver<Shared>>,
}

impl Cache {
    /// A cache of at most `capacity` complete results.
    pub(crate) fn new(capacity: usize) -> Cache {
        Cache {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The result for `key`, the fetch to wait for, or the lead of a new fetch.
    pub(crate) fn lookup(&self, key: &Key) -> Lookup {
        let mut inner = self.lock();
        if let Some(facts) = inner.done.get(key) {
            return Lookup::Hit(facts.clone());
        }
        if let Some(rx) = inner.pending.get(key) {
            return Lookup::Wait(rx.clone());
        }
        let (tx, rx) = watch::channel(None);
        inner.pending.insert(key.clone(), rx.clone());
        Lookup::Lead(tx, rx)
    }

    /// Ends the fetch of `key`: keeps a complete result, wakes every waiter.
    pub(crate) fn complete(
        &self,
        key: Key,
        tx: &watch::Sender<Shared>,
        result: Result<Arc<Facts>, Reason>,
    ) {
        {
            let mut inner = self.lock();
            inner.pending.remove(&key);
            if let Ok(facts) = &result
                && inner.done.insert(key.clone(), facts.clone()).is_none()
            {
                inner.order.push_back(key);
                while inner.order.len() > self.capacity {
                    if let Some(old) = inner.order.pop_front() {
                        inner.done.remove(&old);
                    }
                }
            }
        }
        tx.send_replace(Some(result));
    }

    /// Complete results held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().done.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding it leaves plain maps: still consistent enough to use.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(rev: &str) -> Arc<Facts> {
        Arc::new(Facts {
            platforms: vec!["linux/amd64".into()],
            config_digest: None,
            manifests: vec![],
            total_size: 1,
            source: None,
            revision: Some(rev.into()),
            version: None,
            created: None,
            title: None,
            labels: Default::default(),
            annotations: Default::default(),
        })
    }

    fn key(d: &str) -> Key {
        ("default".into(), d.into())
    }

    #[tokio::test]
    async fn concurrent_lookups_share_one_fetch() {
        let cache = Cache::new(4);
        let Lookup::Lead(tx, _) = cache.lookup(&key("a")) else {
            panic!("the first lookup leads");
        };
        let Lookup::Wait(mut rx) = cache.lookup(&key("a")) else {
            panic!("the second waits");
        };
        assert!(
            matches!(cache.lookup(&key("b")), Lookup::Lead(..)),
            "another key leads"
        );
        cache.complete(key("a"), &tx, Ok(facts("r1")));
        let got = rx.wait_for(Option::is_some).await.expect("sent").clone();
        assert_eq!(got, Some(Ok(facts("r1"))));
        assert!(
            matches!(cache.lookup(&key("a")), Lookup::Hit(f) if f.revision.as_deref() == Some("r1"))
        );
    }

    #[tokio::test]
    async fn failures_are_shared_then_forgotten() {
        let cache = Cache::new(4);
        let Lookup::Lead(tx, _) = cache.lookup(&key("a")) else {
            panic!("leads");
        };
        let Lookup::Wait(mut rx) = cache.lookup(&key("a")) else {
            panic!("waits");
        };
        cache.complete(key("a"), &tx, Err(Reason::Unreachable));
        let got = rx.wait_for(Option::is_some).await.expect("sent").clone();
        assert_eq!(got, Some(Err(Reason::Unreachable)));
        assert!(
            matches!(cache.lookup(&key("a")), Lookup::Lead(..)),
            "asked again"
        );
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn the_oldest_result_is_evicted_past_capacity() {
        let cache = Cache::new(2);
        for d in ["a", "b", "c"] {
            let Lookup::Lead(tx, _) = cache.lookup(&key(d)) else {
                panic!("leads");
            };
            cache.complete(key(d), &tx, Ok(facts(d)));
        }
        assert_eq!(cache.len(), 2);
        assert!(
            matches!(cache.lookup(&key("a")), Lookup::Lead(..)),
            "evicted"
        );
        assert!(matches!(cache.lookup(&key("c")), Lookup::Hit(_)));
    }
}
