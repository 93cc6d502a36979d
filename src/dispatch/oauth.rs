//! OAuth 2.0 client credentials (RFC 6749 §4.4) for receivers that want a bearer token:
//! hookline asks the webhook's token endpoint for a token, keeps it until shortly before it
//! expires, and sends it as `Authorization: Bearer`. The HTTP transport (`client.rs`) asks
//! [`Tokens`] for one before each request and, when the receiver answers 401, forgets it
//! and fetches a new one once before the attempt counts.
//!
//! One fetch per webhook's credentials at a time: concurrent deliveries wait for the one in
//! flight (a lock per credentials), so a burst asks the endpoint once. The token endpoint
//! is reached like a receiver (the SSRF guard, the egress proxy), its answer read under the
//! same bounds; its refusals are attempts of class `oauth` with the endpoint's words.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::secret::Secret;
use crate::store::OAuthClient;

/// How long a token is kept when the endpoint says nothing of its lifetime.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(60);
/// A token is renewed this long before it expires, at most (a quarter of a short one).
const MARGIN: Duration = Duration::from_secs(30);

/// One webhook's client credentials, compiled once: what a token request sends.
pub struct Credentials {
    /// Names these credentials (a digest of all of them): the cache's key.
    key: String,
    /// The token endpoint.
    pub token_url: String,
    /// `Basic …` of the client id and secret (RFC 6749 §2.3.1).
    pub authorization: Secret,
    /// `grant_type=client_credentials[&scope=…]`.
    pub form: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("token_url", &self.token_url)
            .finish()
    }
}

impl Credentials {
    /// The credentials a stored webhook names.
    pub fn of(client: &OAuthClient) -> Credentials {
        let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let pair = format!(
            "{}:{}",
            encode(&client.client_id),
            encode(client.client_secret.expose())
        );
        let basic = base64::engine::general_purpose::STANDARD.encode(pair);
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "client_credentials");
        if !client.scopes.is_empty() {
            form.append_pair("scope", &client.scopes.join(" "));
        }
        let form = form.finish();
        let digest = Sha256::new()
            .chain_update(client.token_url.as_bytes())
            .chain_update([0])
            .chain_update(basic.as_bytes())
            .chain_update([0])
            .chain_update(form.as_bytes())
            .finalize();
        Credentials {
            key: crate::secret::hex(&digest[..12]),
            token_url: client.token_url.clone(),
            authorization: Secret::new(format!("Basic {basic}")),
            form,
        }
    }
}

/// A token and until when it is used.
#[derive(Clone)]
struct Token {
    value: Secret,
    fresh_until: Instant,
}

/// Tokens by credentials, each behind its own lock so one fetch serves every waiter.
#[derive(Default)]
pub struct Tokens {
    slots: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Token>>>>>,
}

/// Why no token could be had, for the attempt.
#[derive(Debug)]
pub enum Refusal {
    /// The endpoint refused the credentials (400, 401, 403): final until the owner fixes them.
    Final(String),
    /// Anything else: retried.
    Retry(String),
}

impl Tokens {
    fn slot(&self, credentials: &Credentials) -> Arc<tokio::sync::Mutex<Option<Token>>> {
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        slots.entry(credentials.key.clone()).or_default().clone()
    }

    /// A fresh token for `credentials`: the kept one, or one `fetch` gets (`fetch` posts the
    /// form and answers the status and body).
    pub async fn get<F, Fut>(&self, credentials: &Credentials, fetch: F) -> Result<Secret, Refusal>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(u16, Vec<u8>), String>>,
    {
        let slot = self.slot(credentials);
        let mut kept = slot.lock().await;
        if let Some(token) = kept.as_ref().filter(|t| Instant::now() < t.fresh_until) {
            return Ok(token.value.clone());
        }
        let (status, body) = fetch()
            .await
            .map_err(|e| Refusal::Retry(format!("the token endpoint: {e}")))?;
        let token = read(status, &body)?;
        let value = token.value.clone();
        *kept = Some(token);
        Ok(value)
    }

    /// Forgets `token` (the receiver refused it), unless a newer one replaced it already.
    pub async fn forget(&self, credentials: &Credentials, token: &Secret) {
        let slot = self.slot(credentials);
        let mut kept = slot.lock().await;
        if kept.as_ref().is_some_and(|t| &t.value == token) {
            *kept = None;
        }
    }
}

#[derive(serde::Deserialize)]
struct Answer {
    access_token: Option<String>,
    expires_in: Option<f64>,
    error: Option<String>,
    error_description: Option<String>,
}

/// The token in a token endpoint's answer, or why there is none.
fn read(status: u16, body: &[u8]) -> Result<Token, Refusal> {
    let answer: Option<Answer> = serde_json::from_slice(body).ok();
    if !(200..300).contains(&status) {
        let said = answer
            .and_then(|a| {
                a.error.map(|e| match a.error_description {
                    Some(d) => format!(": {e} ({d})"),
                    None => format!(": {e}"),
                })
            })
            .unwrap_or_default();
        let text = format!("the token endpoint answered HTTP {status}{said}");
        return Err(if matches!(status, 400 | 401 | 403) {
            Refusal::Final(format!(
                "{text}: it refuses the webhook's client credentials; fix the webhook's oauth, then redeliver"
            ))
        } else {
            Refusal::Retry(text)
        });
    }
    let answer = answer.ok_or_else(|| {
        Refusal::Retry("the token endpoint's answer is not JSON with an access_token".into())
    })?;
    let value = answer
        .access_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Refusal::Retry("the token endpoint's answer has no access_token".into()))?;
    let lifetime = answer
        .expires_in
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(|s| Duration::from_secs_f64(s.min(86_400.0 * 365.0)))
        .unwrap_or(DEFAULT_LIFETIME);
    let margin = MARGIN.min(lifetime / 4);
    Ok(Token {
        value: Secret::new(value),
        fresh_until: Instant::now() + lifetime - margin,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(scopes: &[&str]) -> OAuthClient {
        OAuthClient {
            token_url: "https://idp.example/token".into(),
            client_id: "hook line".into(),
            client_secret: Secret::new("s3:cret"),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn the_request_follows_rfc_6749() {
        let c = Credentials::of(&client(&["deploy:write", "read"]));
        assert_eq!(
            c.form,
            "grant_type=client_credentials&scope=deploy%3Awrite+read"
        );
        // §2.3.1: each form-encoded before Basic.
        assert_eq!(
            c.authorization.expose(),
            "Basic aG9vaytsaW5lOnMzJTNBY3JldA=="
        );
        assert!(!format!("{c:?}").contains("Basic"));
        assert_ne!(c.key, Credentials::of(&client(&[])).key);
    }

    #[test]
    fn answers_are_read() {
        let token = read(
            200,
            br#"{"access_token":"t1","token_type":"Bearer","expires_in":3600}"#,
        )
        .expect("a token");
        assert_eq!(token.value.expose(), "t1");
        let left = token.fresh_until - Instant::now();
        assert!(left > Duration::from_secs(3500) && left <= Duration::from_secs(3570));
        let short = read(200, br#"{"access_token":"t2","expires_in":2}"#).expect("token");
        assert!(short.fresh_until - Instant::now() <= Duration::from_millis(1500));
        let refused = read(401, br#"{"error":"invalid_client"}"#)
            .err()
            .expect("refused");
        assert!(matches!(&refused, Refusal::Final(r) if r.contains("invalid_client")));
        assert!(matches!(read(500, b"oops"), Err(Refusal::Retry(r)) if r.contains("500")));
        assert!(matches!(read(200, b"{}"), Err(Refusal::Retry(_))));
    }
}
