//! Public ids: a short type prefix and a time-ordered UUIDv7, e.g. `evt_0193…`.
//!
//! The prefix tells a person reading a log what kind of thing an id names; the UUIDv7
//! keeps ids roughly in creation order, which keeps index inserts local.

/// A new id with the given prefix (`evt`, `dlv`, `wh`, `tok`, …).
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_prefixed_and_unique() {
        let a = super::new_id("evt");
        let b = super::new_id("evt");
        assert!(a.starts_with("evt_") && a.len() == 36);
        assert_ne!(a, b);
    }
}
