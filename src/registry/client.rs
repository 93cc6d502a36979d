//! Reads manifests and blobs from the operator's registry, honouring its auth.
//!
//! One [`Session`] per enrichment run: it builds every URL from the operator's base URL,
//! the event's repository and a checked digest (never from anything else an event says),
//! answers a `401` once per run (the distribution token flow, or basic credentials), keeps
//! the resulting `Authorization` for the run's later requests, caps every body it reads,
//! and checks that what it read has the digest it asked for. Credentials and tokens live in
//! header values marked sensitive and are never logged or put in an error.

use base64::Engine;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue, WWW_AUTHENTICATE};
use sha2::Digest;

use super::auth::{self, Challenge};
use crate::enrichment::{Reason, RegistryAccess};

/// Largest manifest, config or token answer read, in bytes.
pub(crate) const MAX_BYTES: usize = 4 * 1024 * 1024;
/// Largest token service answer read, in bytes.
const MAX_TOKEN_BYTES: usize = 64 * 1024;

/// Manifest media types we read: OCI and Docker v2, images and indexes.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// The HTTP client for registries: our reqwest (rustls with ring), no proxy from the
/// environment, a few redirects (blob stores redirect to object storage; reqwest drops
/// `Authorization` when a redirect leaves the host), and a hard cap on each request that
/// holds even when a delivery stopped waiting (`enrichment_timeout`).
pub(crate) fn build_client(timeout: std::time::Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::limited(3))
        .connect_timeout(timeout.min(std::time::Duration::from_secs(5)))
        .timeout(timeout.max(std::time::Duration::from_secs(10)))
        .user_agent(concat!("hookline/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Why a read failed: the reason a payload shows, and a detail for the log (a status code
/// or a transport error's kind; never a header value).
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub reason: Reason,
    pub detail: String,
}

impl Failure {
    fn new(reason: Reason, detail: impl Into<String>) -> Failure {
        Failure {
            reason,
            detail: detail.into(),
        }
    }

    fn transport(what: &str, e: reqwest::Error) -> Failure {
        let reason = if e.is_timeout() {
            Reason::Timeout
        } else if e.is_connect() {
            Reason::Unreachable
        } else {
            Reason::RegistryError
        };
        // reqwest's message names the URL (ours, no credentials in it) and the cause.
        Failure::new(reason, format!("{what}: {}", e.without_url()))
    }
}

/// Reads of one repository of one registry, for one enrichment run.
pub(crate) struct Session<'a> {
    http: &'a reqwest::Client,
    access: &'a RegistryAccess,
    repository: &'a str,
    authorization: Option<HeaderValue>,
    /// Only one 401 is answered per run: a second means the credentials do not do.
    challenged: bool,
}

impl<'a> Session<'a> {
    /// A session on `repository` (checked by the caller) at the operator's base URL.
    pub(crate) fn new(
        http: &'a reqwest::Client,
        access: &'a RegistryAccess,
        repository: &'a str,
    ) -> Session<'a> {
        Session {
            http,
            access,
            repository,
            authorization: None,
            challenged: false,
        }
    }

    /// The manifest `digest` (checked by the caller).
    pub(crate) async fn manifest(&mut self, digest: &str) -> Result<Vec<u8>, Failure> {
        self.read("manifests", digest, Some(MANIFEST_ACCEPT)).await
    }

    /// The blob `digest` (a config).
    pub(crate) async fn blob(&mut self, digest: &str) -> Result<Vec<u8>, Failure> {
        self.read("blobs", digest, None).await
    }

    async fn read(
        &mut self,
        kind: &str,
        digest: &str,
        accept: Option<&'static str>,
    ) -> Result<Vec<u8>, Failure> {
        let url = format!("{}/v2/{}/{kind}/{digest}", self.access.url, self.repository);
        let mut response = self.get(&url, accept).await?;
        if response.status() == reqwest::StatusCode::UNAUTHORIZED && !self.challenged {
            self.challenged = true;
            let challenge = response
                .headers()
                .get_all(WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(auth::parse);
            self.authorization = Some(self.answer(challenge).await?);
            response = self.get(&url, accept).await?;
        }
        match response.status().as_u16() {
            200 => {}
            401 | 403 => {
                return Err(Failure::new(
                    Reason::Refused,
                    format!("{kind}: HTTP {}", response.status()),
                ));
            }
            404 => return Err(Failure::new(Reason::NotFound, format!("{kind}: HTTP 404"))),
            code => {
                return Err(Failure::new(
                    Reason::RegistryError,
                    format!("{kind}: HTTP {code}"),
                ));
            }
        }
        let body = capped(response, MAX_BYTES, kind).await?;
        if !digest_matches(digest, &body) {
            return Err(Failure::new(
                Reason::Invalid,
                format!("{kind}: the content does not match its digest"),
            ));
        }
        Ok(body)
    }

    async fn get(
        &self,
        url: &str,
        accept: Option<&'static str>,
    ) -> Result<reqwest::Response, Failure> {
        let mut request = self.http.get(url);
        if let Some(accept) = accept {
            request = request.header(ACCEPT, accept);
        }
        if let Some(authorization) = &self.authorization {
            request = request.header(AUTHORIZATION, authorization.clone());
        }
        request
            .send()
            .await
            .map_err(|e| Failure::transport("registry", e))
    }

    /// The `Authorization` that answers `challenge`.
    async fn answer(&self, challenge: Option<Challenge>) -> Result<HeaderValue, Failure> {
        match challenge {
            Some(Challenge::Basic) => self.basic().ok_or_else(|| {
                Failure::new(
                    Reason::Refused,
                    "basic auth asked for and no credentials configured",
                )
            }),
            Some(Challenge::Bearer {
                realm,
                service,
                scope,
            }) => self.token(&realm, service, scope).await,
            None => Err(Failure::new(
                Reason::Refused,
                "HTTP 401 without a challenge we speak",
            )),
        }
    }

    fn basic(&self) -> Option<HeaderValue> {
        let user = self.access.username.as_deref()?;
        let password = self.access.password.as_ref()?;
        let encoded = base64::engine::general_purpose::STANDARD
            .encode(format!("{user}:{}", password.expose()));
        sensitive(&format!("Basic {encoded}"))
    }

    /// The distribution token flow: GET the realm (named by our registry's challenge, not
    /// by an event) with `service` and `scope`, with basic credentials if configured.
    async fn token(
        &self,
        realm: &str,
        service: Option<String>,
        scope: Option<String>,
    ) -> Result<HeaderValue, Failure> {
        let mut url = reqwest::Url::parse(realm)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| {
                Failure::new(
                    Reason::RegistryError,
                    "the token realm is not an http(s) URL",
                )
            })?;
        let scope = scope.unwrap_or_else(|| format!("repository:{}:pull", self.repository));
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = &service {
                query.append_pair("service", service);
            }
            query.append_pair("scope", &scope);
        }
        let mut request = self.http.get(url);
        if let Some(basic) = self.basic() {
            request = request.header(AUTHORIZATION, basic);
        }
        let response = request
            .send()
            .await
            .map_err(|e| Failure::transport("token service", e))?;
        match response.status().as_u16() {
            200 => {}
            401 | 403 => {
                return Err(Failure::new(
                    Reason::Refused,
                    format!("token service: HTTP {}", response.status()),
                ));
            }
            code => {
                return Err(Failure::new(
                    Reason::RegistryError,
                    format!("token service: HTTP {code}"),
                ));
            }
        }
        #[derive(serde::Deserialize)]
        struct TokenAnswer {
            #[serde(default)]
            token: Option<String>,
            #[serde(default)]
            access_token: Option<String>,
        }
        let body = capped(response, MAX_TOKEN_BYTES, "token service").await?;
        let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|_| {
            Failure::new(Reason::RegistryError, "token service: not a token answer")
        })?;
        let token = answer
            .token
            .or(answer.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Failure::new(Reason::RegistryError, "token service: no token"))?;
        sensitive(&format!("Bearer {token}"))
            .ok_or_else(|| Failure::new(Reason::RegistryError, "token service: unusable token"))
    }
}

/// A header value hidden from `Debug` output.
fn sensitive(value: &str) -> Option<HeaderValue> {
    let mut value = HeaderValue::from_str(value).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// The body, read no further than `limit` bytes.
async fn capped(
    mut response: reqwest::Response,
    limit: usize,
    what: &str,
) -> Result<Vec<u8>, Failure> {
    let too_large = || {
        Failure::new(
            Reason::Invalid,
            format!("{what}: larger than {limit} bytes"),
        )
    };
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| Failure::transport(what, e))?
    {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Whether `body` has `digest` (sha256 or sha512; the caller checked the format).
fn digest_matches(digest: &str, body: &[u8]) -> bool {
    let hex = |bytes: &[u8]| crate::secret::hex(bytes);
    match digest.split_once(':') {
        Some(("sha256", want)) => hex(&sha2::Sha256::digest(body)) == want,
        Some(("sha512", want)) => hex(&sha2::Sha512::digest(body)) == want,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_checked() {
        let body = b"{}";
        let good = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
        assert!(digest_matches(good, body));
        assert!(!digest_matches(good, b"{ }"));
        assert!(!digest_matches("md5:abc", body));
    }

    #[test]
    fn credentials_stay_out_of_debug_output() {
        let v = sensitive("Bearer very-secret-token").expect("header");
        assert!(!format!("{v:?}").contains("very-secret-token"));
    }
}
