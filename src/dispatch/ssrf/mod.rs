//! The SSRF guard, at its old path: it lives in `src/ssrf/` (floor 1 of ARCHITECTURE.md),
//! below configuration, which holds the operator's [`Guard`], and below both of its users,
//! the dispatcher (every send) and the API (registration). Nothing is defined here.

pub use crate::ssrf::*;
