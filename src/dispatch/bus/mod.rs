//! Destinations that are not HTTP: message buses. [`Router`] is the dispatcher's one
//! [`Transport`]: it sends each message by its destination's scheme, `http(s)` through
//! `client::Http`, `redis` to a Redis stream (`redis.rs`). Every bus transport vets the
//! broker's host with the same SSRF guard as HTTP and connects to the vetted address, and
//! maps its broker's answers to outcomes in one place, as `client::outcome` does for HTTP.

pub mod redis;

use std::time::{Duration, Instant};

use super::client::Http;
use super::transport::{Attempt, Destination, Exchange, Message, Outcome, RetryClass, Transport};
use crate::ssrf::Guard;

/// The URL schemes a webhook's destination may have.
pub const SCHEMES: [&str; 3] = ["http", "https", "redis"];

/// Every way out, by scheme.
pub struct Router {
    http: Http,
    redis: redis::Streams,
}

impl Router {
    /// HTTP and the buses, each vetting hosts with `guard`, each publish bounded by
    /// `timeout`.
    pub fn new(http: Http, guard: Guard, connect_timeout: Duration, timeout: Duration) -> Router {
        Router {
            http,
            redis: redis::Streams::new(guard, connect_timeout, timeout),
        }
    }
}

#[async_trait::async_trait]
impl Transport for Router {
    async fn send(&self, destination: Destination<'_>, message: Message) -> Attempt {
        let scheme = destination
            .address
            .split_once("://")
            .map(|(scheme, _)| scheme.to_ascii_lowercase())
            .unwrap_or_default();
        match scheme.as_str() {
            "redis" => self.redis.send(destination, message).await,
            "http" | "https" => self.http.send(destination, message).await,
            _ => not_sent(
                Instant::now(),
                "invalid_url",
                format!(
                    "hookline cannot send to a `{scheme}` address; use one of: {}",
                    SCHEMES.join(", ")
                ),
            ),
        }
    }
}

/// A final attempt that sent nothing, of `class`, for `reason`.
pub(crate) fn not_sent(started: Instant, class: &'static str, reason: String) -> Attempt {
    Attempt {
        outcome: Outcome::NotSent {
            reason: reason.clone(),
        },
        exchange: Exchange {
            started_at: started_at(started),
            duration: started.elapsed(),
            error: Some(reason),
            error_class: Some(class),
            ..Exchange::default()
        },
    }
}

/// An attempt to try again, of `class` (the attempt log's `error_class` and the retry
/// class), saying `error`.
pub(crate) fn retry(
    started: Instant,
    class: RetryClass,
    error_class: &'static str,
    error: String,
) -> Attempt {
    Attempt {
        outcome: Outcome::Retry {
            class,
            subject: error_class.replace('_', " "),
            retry_after: None,
        },
        exchange: Exchange {
            started_at: started_at(started),
            duration: started.elapsed(),
            error: Some(error),
            error_class: Some(error_class),
            ..Exchange::default()
        },
    }
}

/// Unix ms when the send that began at `started` began.
pub(crate) fn started_at(started: Instant) -> i64 {
    crate::store::now_ms() - started.elapsed().as_millis() as i64
}
