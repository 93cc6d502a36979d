//! What enrichment reads and what it learns: pure data, below everything that uses it.
//!
//! [`RegistryAccess`] is where hookline may read a registry (the operator's base URL,
//! checked by [`check_base_url`], never one an event names) and with which credentials;
//! configuration, the tokens table and the registry client all hold it. [`Enrichment`] is
//! what the read found, stored on the event and rendered in payloads. The reading itself
//! is `src/registry/`; parsing the registry's JSON is `registry/image.rs`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// How hookline reads a registry source's registry (`tokens create --registry-url`, or
/// `HOOKLINE_REGISTRY_URL` for the environment's token): the operator's base URL, never one
/// an event names, and optional read-only credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryAccess {
    /// Base URL such as `https://registry.example:5000` (no `/v2/`).
    pub url: String,
    /// Basic credentials for the registry (or its token service), if it needs any.
    pub username: Option<String>,
    /// The password of `username`; redacted in `Debug`.
    pub password: Option<Secret>,
}

/// What the registry said about an event's image, as stored on the event and rendered in
/// the `hookline` and `cloudevents` payloads (`enrichment`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Enrichment {
    /// Every manifest and config was read.
    Complete(Box<Facts>),
    /// The event is delivered without enrichment, for this reason.
    Unavailable {
        /// Why.
        reason: Reason,
    },
}

/// Why an event carries no enrichment (docs/payloads/README.md#enrichment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The registry did not answer within `enrichment_timeout`.
    Timeout,
    /// No connection to the registry.
    Unreachable,
    /// The registry (or its token service) refused the configured credentials (401/403).
    Refused,
    /// The registry does not have the manifest (any more).
    NotFound,
    /// The registry answered with another error.
    RegistryError,
    /// A manifest or config was not what it should be: not JSON we understand, a digest
    /// that does not match, or over a bound (bytes, children).
    Invalid,
}

impl Reason {
    /// The stored name, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Timeout => "timeout",
            Reason::Unreachable => "unreachable",
            Reason::Refused => "refused",
            Reason::NotFound => "not_found",
            Reason::RegistryError => "registry_error",
            Reason::Invalid => "invalid",
        }
    }
}

/// The image, as read from the registry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facts {
    /// `os/architecture[/variant]` of each image, in manifest order, without repeats.
    pub platforms: Vec<String>,
    /// The config blob's digest, for a single image (null for an index: see `manifests`).
    pub config_digest: Option<String>,
    /// For an index: each platform image read (empty for a single image).
    pub manifests: Vec<PlatformImage>,
    /// Bytes of every manifest, config and layer the push references, each blob counted once.
    pub total_size: i64,
    /// `org.opencontainers.image.source`: annotation, else label.
    pub source: Option<String>,
    /// `org.opencontainers.image.revision`.
    pub revision: Option<String>,
    /// `org.opencontainers.image.version`.
    pub version: Option<String>,
    /// `org.opencontainers.image.created` (else the config's `created`).
    pub created: Option<String>,
    /// `org.opencontainers.image.title`.
    pub title: Option<String>,
    /// The `org.opencontainers.image.*` labels of the configs (the first image's value wins).
    pub labels: BTreeMap<String, String>,
    /// The `org.opencontainers.image.*` annotations of the pushed manifest or index.
    pub annotations: BTreeMap<String, String>,
}

/// One image of an index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformImage {
    /// Its manifest's digest.
    pub digest: String,
    /// `os/architecture[/variant]`, if known.
    pub platform: Option<String>,
    /// Its config blob's digest.
    pub config_digest: String,
    /// Bytes of its manifest, config and layers.
    pub size: i64,
}

/// A registry base URL as the operator gave it, checked: http or https, a host, no user
/// name or password (credentials have their own options), no query or fragment, and not
/// ending in `/v2`. Returned without a trailing `/`.
pub fn check_base_url(url: &str) -> Result<String, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| {
        format!("`{url}` is not a URL ({e}); give one like https://registry.example:5000")
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(format!(
            "`{url}` must be an http or https URL with a host, like https://registry.example:5000"
        ));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(
            "the registry URL must not hold credentials: give them as the registry user name and password file".into(),
        );
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(format!("`{url}` must have no query or fragment"));
    }
    let trimmed = parsed.as_str().trim_end_matches('/');
    if trimmed.ends_with("/v2") {
        return Err(format!(
            "`{url}`: give the registry's base URL, without /v2/"
        ));
    }
    Ok(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        assert_eq!(
            check_base_url("https://registry.example:5000/").as_deref(),
            Ok("https://registry.example:5000")
        );
        assert_eq!(
            check_base_url("http://127.0.0.1:5000/mirror").as_deref(),
            Ok("http://127.0.0.1:5000/mirror")
        );
        for bad in [
            "registry.example",
            "ftp://registry.example",
            "https://user:pw@registry.example",
            "https://registry.example/?x=1",
            "https://registry.example/v2/",
        ] {
            assert!(check_base_url(bad).is_err(), "{bad}");
        }
        let err = check_base_url("https://u:hunter2@r.example").expect_err("refused");
        assert!(!err.contains("hunter2"), "{err}");
    }
}
