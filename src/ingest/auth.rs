//! Which registry is calling: bearer-token authentication of the notify endpoint.
//!
//! A registry presents `Authorization: Bearer <token>`. The token from the environment
//! (`HOOKLINE_REGISTRY_TOKEN`, source `default`) is compared in constant time; others are
//! looked up by SHA-256 hash among live registry tokens. Positive answers are cached for a
//! few seconds so the hot path costs no database read; a revoked token stops working
//! within that time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;

use super::IngestError;
use crate::secret::{Secret, constant_time_eq, hash_token};
use crate::store::{Store, TokenKind};

/// How long a verified database token is trusted without asking the database again.
const CACHE_TTL: Duration = Duration::from_secs(5);
/// Entries kept at most; the cache is cleared when full (it refills on the next requests).
const CACHE_MAX: usize = 1024;

/// Authenticates registries.
pub struct RegistryAuth {
    env_token: Option<Secret>,
    /// token hash → (source name, verified at)
    cache: Mutex<HashMap<String, (String, Instant)>>,
}

impl RegistryAuth {
    /// An authenticator accepting `env_token` (if any) and registry tokens in the store.
    pub fn new(env_token: Option<Secret>) -> Self {
        RegistryAuth {
            env_token,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The source name of the calling registry, or why it is refused.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        store: &Store,
    ) -> Result<String, IngestError> {
        let token = bearer(headers)?;
        if let Some(expected) = &self.env_token
            && constant_time_eq(token.as_bytes(), expected.expose().as_bytes())
        {
            return Ok("default".into());
        }
        let hash = hash_token(token);
        if let Some(source) = self.cached(&hash) {
            return Ok(source);
        }
        match store.find_token(&hash).await? {
            Some(r) if TokenKind::parse(&r.kind) == Some(TokenKind::Registry) => {
                self.remember(hash, r.subject.clone());
                Ok(r.subject)
            }
            _ => Err(IngestError::Unauthorized(
                "the bearer token is not a valid registry token",
            )),
        }
    }

    fn cached(&self, hash: &str) -> Option<String> {
        let cache = self.cache.lock().ok()?;
        let (source, at) = cache.get(hash)?;
        (at.elapsed() < CACHE_TTL).then(|| source.clone())
    }

    fn remember(&self, hash: String, source: String) {
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
            cache.insert(hash, (source, Instant::now()));
        }
    }
}

/// The token of an `Authorization: Bearer …` header.
fn bearer(headers: &HeaderMap) -> Result<&str, IngestError> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or(IngestError::Unauthorized(
            "missing `Authorization: Bearer <token>` header",
        ))?
        .to_str()
        .map_err(|_| IngestError::Unauthorized("the Authorization header is not valid text"))?;
    let (scheme, token) = value.split_once(' ').ok_or(IngestError::Unauthorized(
        "the Authorization header must be `Bearer <token>`",
    ))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(IngestError::Unauthorized(
            "the Authorization header must be `Bearer <token>`",
        ));
    }
    Ok(token.trim())
}
