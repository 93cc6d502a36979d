//! The destination seam: how a rendered, signed message leaves hookline, and what came of it.
//!
//! A [`Transport`] takes a [`Message`] and a [`Destination`] and answers with an
//! [`Attempt`]: an [`Outcome`] in hookline's own terms (delivered, rejected for good, retry
//! with a class, not sent) and the [`Exchange`] the attempt log shows (for HTTP the status
//! code, response headers and a body excerpt). Each transport is the one place that maps
//! its protocol's answers to outcomes (HTTP: `client.rs`); `deliver.rs` decides retries,
//! windows, circuits and health from the outcome alone. `bus::Router` picks the transport by
//! the destination's scheme: HTTP (`client.rs`), or a message bus (`bus/`).

use std::time::Duration;

pub use super::dialect::Dialect;
pub use super::payload::Message;

/// Where a message goes, as the webhook states it: an `http(s)://` URL today. A transport
/// parses the address itself; an address it cannot use is an outcome, not an error.
#[derive(Debug, Clone, Copy)]
pub struct Destination<'a> {
    /// The webhook's destination, verbatim (it may carry a receiver's secret: never log it).
    pub address: &'a str,
    /// How its answers read: a chat service's, or plain HTTP.
    pub dialect: Dialect,
    /// The client certificate to present (mutual TLS), if the webhook has one.
    pub identity: Option<&'a Identity>,
    /// The OAuth client credentials its bearer token comes from, if it has them.
    pub oauth: Option<&'a super::oauth::Credentials>,
}

/// A client certificate a webhook presents (mutual TLS), compiled once per webhook.
pub struct Identity {
    /// Names this certificate and key (a digest of both): the HTTP transport keeps one
    /// client per identity, so a rotated certificate gets a client of its own.
    pub key: String,
    /// The certificate chain and its private key, PEM, one after the other.
    pub pem: crate::secret::Secret,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").field("key", &self.key).finish()
    }
}

impl Identity {
    /// The identity of a stored certificate and key.
    pub fn of(stored: &crate::store::ClientIdentity) -> Identity {
        use sha2::{Digest, Sha256};
        let pem = format!("{}\n{}", stored.certificate.trim_end(), stored.key.expose());
        let digest = Sha256::digest(pem.as_bytes());
        let key = crate::secret::hex(&digest[..12]);
        Identity {
            key,
            pem: crate::secret::Secret::new(pem),
        }
    }
}

/// One way out of hookline. Never fails: every error is part of the [`Attempt`].
#[async_trait::async_trait]
pub trait Transport: Send + Sync {
    /// Sends `message` to `destination` once, and says what came of it.
    async fn send(&self, destination: Destination<'_>, message: Message) -> Attempt;
}

/// What one send did: the outcome, and what the attempt log records of it.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// What happens next follows from this alone.
    pub outcome: Outcome,
    /// Detail for the attempt log; nothing is decided from it.
    pub exchange: Exchange,
}

/// How a send ended, in hookline's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The destination took the message (HTTP: 2xx).
    Delivered,
    /// The destination will never take this message as it is (HTTP: the final 4xx): the
    /// delivery fails at once, for its owner to fix and redeliver.
    Rejected {
        /// Why the answer is final and what to do, for the attempt's `reason`.
        reason: String,
        /// The destination is gone for good (HTTP 410): the webhook is disabled, for this
        /// reason (the time is added).
        disable: Option<String>,
    },
    /// Worth another try, per the retry schedule.
    Retry {
        /// What kind of trouble, which also tells the endpoint's window about its load.
        class: RetryClass,
        /// What went wrong, as the reason's subject: `HTTP 503`, `timeout`.
        subject: String,
        /// How long the destination asked us to wait (HTTP `Retry-After` on 429/503): it
        /// replaces the scheduled delay and pauses the whole endpoint.
        retry_after: Option<Duration>,
    },
    /// Nothing was sent, and retrying cannot change that (the SSRF guard refused the
    /// address): the delivery fails at once.
    NotSent {
        /// Why it is final and what to do, for the attempt's `reason`.
        reason: String,
    },
}

/// Why a send is worth another try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryClass {
    /// The destination says it has too much (HTTP 429, 503).
    Throttled,
    /// No answer in time.
    Timeout,
    /// No connection (refused, reset, unreachable).
    Connect,
    /// The request failed on the way in another way.
    Request,
    /// The destination failed (HTTP 5xx other than 503).
    ServerError,
    /// The destination answered "not now" (HTTP 408, 409, 423, 425).
    NotNow,
    /// A redirect, which is not followed (HTTP 3xx).
    Redirect,
    /// The destination's address cannot be used as it is.
    InvalidAddress,
    /// Any other answer that is not final.
    Other,
}

impl RetryClass {
    /// Whether this says the endpoint has too much: its window halves.
    pub fn overload(self) -> bool {
        matches!(
            self,
            RetryClass::Throttled | RetryClass::Timeout | RetryClass::Connect
        )
    }
}

/// What the attempt log shows of one send.
#[derive(Debug, Clone, Default)]
pub struct Exchange {
    /// Unix ms when the send started.
    pub started_at: i64,
    /// Time to the end of the (capped) answer, or to the error.
    pub duration: Duration,
    /// The protocol's answer code, if one came: the HTTP status.
    pub status_code: Option<u16>,
    /// The answer's headers as a JSON object.
    pub headers: Option<String>,
    /// The first bytes of the answer's body, lossily decoded.
    pub body: Option<String>,
    /// What failed (connect, timeout, …), never including the address.
    pub error: Option<String>,
    /// The attempt log's `error_class` unless delivered: `http` for an HTTP answer, else
    /// `timeout`, `connect`, `request`, `invalid_url`, `refused`.
    pub error_class: Option<&'static str>,
}
