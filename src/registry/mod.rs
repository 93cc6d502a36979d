//! Enrichment from the registry: what a pushed image is (platforms, standard OCI labels
//! and annotations, config digests, total size), read through the registry's HTTP API.
//!
//! The dispatcher calls [`Enricher::enrich`] once per delivery, before rendering. It costs
//! nothing for an event whose source has no registry URL (a map lookup: no statement, no
//! allocation). Otherwise the event's stored enrichment is used if there is one; if not,
//! the registry is read (`client.rs`, at the operator's base URL only; results cached by
//! (source, digest) in `cache.rs`, one fetch per key at a time), waiting at most
//! `enrichment_timeout`, and the result, complete or unavailable, is stored on the event
//! once, so every attempt, webhook and replica renders the same bytes. `image.rs` says what
//! the registry's JSON means; `auth.rs` parses its challenges.

mod auth;
mod cache;
mod client;
mod image;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tracing::Instrument;

use tokio_util::sync::CancellationToken;

use crate::config::DispatchConfig;
use crate::enrichment::RegistryAccess;
pub use crate::enrichment::{Enrichment, Facts, PlatformImage, Reason, check_base_url};
use crate::event::{Event, EventType};
use crate::store::Store;
use cache::{Cache, Lookup};
use client::{Failure, Session};
use image::{Descriptor, Manifest, Read};

/// How often registry sources are re-read from the tokens table (a token created or
/// revoked while hookline runs takes effect within this).
const SOURCES_REFRESH: Duration = Duration::from_secs(10);
/// Complete results kept in memory.
const CACHE_CAPACITY: usize = 4096;
/// Most entries of an index read; a larger index is not enriched.
pub const MAX_CHILDREN: usize = 64;
/// The source name of the environment's registry token.
const DEFAULT_SOURCE: &str = "default";

/// Reads registries for the dispatcher. One per dispatcher process.
pub struct Enricher {
    /// Registry access per source name. Empty unless an operator configured one.
    sources: RwLock<HashMap<String, Arc<RegistryAccess>>>,
    /// `HOOKLINE_REGISTRY_URL` and friends, for source `default`; wins over a token's.
    default: Option<Arc<RegistryAccess>>,
    http: reqwest::Client,
    cache: Arc<Cache>,
    timeout: Duration,
}

impl Enricher {
    /// An enricher with the sources the store holds now, re-read every 10 s until
    /// `shutdown`. None if its HTTP client cannot be built (then nothing is enriched).
    pub async fn start(
        store: &Store,
        config: &DispatchConfig,
        shutdown: CancellationToken,
    ) -> Option<Arc<Enricher>> {
        let http = match client::build_client(config.enrichment_timeout) {
            Ok(http) => http,
            Err(error) => {
                tracing::error!(%error, "cannot build the registry client; events are not enriched");
                return None;
            }
        };
        let enricher = Arc::new(Enricher {
            sources: RwLock::new(HashMap::new()),
            default: config.default_registry.clone().map(Arc::new),
            http,
            cache: Arc::new(Cache::new(CACHE_CAPACITY)),
            timeout: config.enrichment_timeout,
        });
        enricher.refresh(store).await;
        let (e, store) = (enricher.clone(), store.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(SOURCES_REFRESH) => e.refresh(&store).await,
                }
            }
        });
        Some(enricher)
    }

    /// Re-reads the registry sources; keeps the old ones if the store fails.
    async fn refresh(&self, store: &Store) {
        let listed = match store.registry_sources().await {
            Ok(listed) => listed,
            Err(error) => {
                tracing::warn!(%error, "cannot read registry sources; keeping the previous ones");
                return;
            }
        };
        let mut sources: HashMap<String, Arc<RegistryAccess>> = listed
            .into_iter()
            .map(|s| (s.source, Arc::new(s.access)))
            .collect();
        if let Some(default) = &self.default {
            sources.insert(DEFAULT_SOURCE.to_owned(), default.clone());
        }
        *self.sources.write().unwrap_or_else(|e| e.into_inner()) = sources;
    }

    /// The registry to read for `event`, if it is enrichable and its source has one.
    fn access(&self, event: &Event) -> Option<Arc<RegistryAccess>> {
        if !matches!(
            event.kind,
            EventType::ImagePushed | EventType::ManifestPushed
        ) || event.digest.is_none()
        {
            return None;
        }
        let sources = self.sources.read().unwrap_or_else(|e| e.into_inner());
        sources.get(event.source.as_str()).cloned()
    }

    /// `event` with its enrichment, if its source has a registry URL: the stored one, else
    /// read now (at most `enrichment_timeout`) and stored, unless another delivery stored
    /// one first, which is then used. Any other event is returned untouched.
    pub async fn enrich(&self, store: &Store, event: Event) -> Event {
        let Some(access) = self.access(&event) else {
            return event;
        };
        let span = tracing::trace_span!(
            target: crate::telemetry::traces::TARGET,
            "enrichment",
            hookline.event.id = %event.id,
            hookline.registry = %event.source,
        );
        self.enrich_from(access, store, event)
            .instrument(span)
            .await
    }

    async fn enrich_from(
        &self,
        access: Arc<RegistryAccess>,
        store: &Store,
        mut event: Event,
    ) -> Event {
        match store.event_enrichment(&event.id).await {
            Ok(Some(stored)) => {
                event.enrichment = Some(decode(&stored));
                return event;
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(event_id = %event.id, %error, "cannot read the stored enrichment")
            }
        }
        let fresh = self.look_up(access, &event).await;
        let text = match serde_json::to_string(&fresh) {
            Ok(text) => text,
            Err(_) => {
                event.enrichment = Some(fresh);
                return event;
            }
        };
        event.enrichment = Some(match store.record_enrichment(&event.id, &text).await {
            Ok(Some(stored)) if stored != text => decode(&stored),
            Ok(_) => fresh,
            Err(error) => {
                // Rendered but not stored: a later attempt may render it differently.
                tracing::warn!(event_id = %event.id, %error, "cannot store the enrichment");
                fresh
            }
        });
        event
    }

    /// Reads (or finds in the cache) what the registry says about the event's image.
    async fn look_up(&self, access: Arc<RegistryAccess>, event: &Event) -> Enrichment {
        let unavailable = |reason| Enrichment::Unavailable { reason };
        let digest = event.digest.as_deref().unwrap_or_default();
        if !valid_digest(digest) || !valid_repository(&event.repository) {
            return unavailable(Reason::Invalid);
        }
        let key = (event.source.clone(), digest.to_owned());
        let mut rx = match self.cache.lookup(&key) {
            Lookup::Hit(facts) => return Enrichment::Complete(Box::new((*facts).clone())),
            Lookup::Wait(rx) => rx,
            Lookup::Lead(tx, rx) => {
                // The read goes on after this delivery stops waiting, so a slow registry
                // still fills the cache for the next event of the same image.
                let (http, cache) = (self.http.clone(), self.cache.clone());
                let repository = event.repository.clone();
                tokio::spawn(async move {
                    let result = read_image(&http, &access, &repository, &key.1).await;
                    let result = match result {
                        Ok(facts) => {
                            metrics::counter!("hookline_enrichment_reads_total", "outcome" => "complete").increment(1);
                            Ok(Arc::new(facts))
                        }
                        Err(Failure { reason, detail }) => {
                            metrics::counter!("hookline_enrichment_reads_total", "outcome" => reason.as_str()).increment(1);
                            tracing::warn!(source = %key.0, %repository, digest = %key.1, reason = reason.as_str(), %detail, "cannot read the image from the registry; delivering without enrichment");
                            Err(reason)
                        }
                    };
                    cache.complete(key, &tx, result);
                });
                rx
            }
        };
        let waited = tokio::time::timeout(self.timeout, async {
            rx.wait_for(Option::is_some).await.map(|v| v.clone())
        })
        .await;
        match waited {
            Ok(Ok(Some(Ok(facts)))) => Enrichment::Complete(Box::new((*facts).clone())),
            Ok(Ok(Some(Err(reason)))) => unavailable(reason),
            Ok(Ok(None) | Err(_)) => unavailable(Reason::RegistryError),
            Err(_) => {
                tracing::debug!(event_id = %event.id, "the registry did not answer in time; delivering without enrichment");
                unavailable(Reason::Timeout)
            }
        }
    }
}

/// A stored enrichment; one this hookline cannot read (written by a newer one) shows as
/// invalid rather than failing the delivery.
fn decode(stored: &str) -> Enrichment {
    serde_json::from_str(stored).unwrap_or(Enrichment::Unavailable {
        reason: Reason::Invalid,
    })
}

/// Reads the manifest `digest` of `repository` and, for an index, each image's manifest
/// and config; for a single image, its config.
async fn read_image(
    http: &reqwest::Client,
    access: &RegistryAccess,
    repository: &str,
    digest: &str,
) -> Result<Facts, Failure> {
    let invalid = |detail: &str| Failure {
        reason: Reason::Invalid,
        detail: detail.to_owned(),
    };
    let mut session = Session::new(http, access, repository);
    let top = session.manifest(digest).await?;
    let top_size = top.len() as i64;
    match image::parse_manifest(&top).map_err(|_| invalid("the manifest is not one we read"))? {
        Manifest::Image {
            config,
            layers,
            annotations,
        } => {
            let read = read_config(&mut session, digest, top_size, None, config, layers).await?;
            Ok(image::facts(annotations, top_size, true, &[read], &[]))
        }
        Manifest::Index {
            children,
            annotations,
        } => {
            if children.len() > MAX_CHILDREN {
                return Err(invalid("the index lists too many manifests"));
            }
            let (mut reads, mut skipped) = (Vec::new(), Vec::<Descriptor>::new());
            for child in children {
                let listed = child.platform.as_ref().map(|p| p.name());
                if let Some(None) = listed {
                    skipped.push(child); // unknown/unknown: an attestation, not an image
                    continue;
                }
                if !valid_digest(&child.digest) {
                    return Err(invalid("an index entry's digest"));
                }
                let bytes = session.manifest(&child.digest).await?;
                let Ok(Manifest::Image { config, layers, .. }) = image::parse_manifest(&bytes)
                else {
                    return Err(invalid("an index entry is not an image manifest"));
                };
                let size = bytes.len() as i64;
                let read = read_config(
                    &mut session,
                    &child.digest,
                    size,
                    listed.flatten(),
                    config,
                    layers,
                )
                .await?;
                reads.push(read);
            }
            Ok(image::facts(annotations, top_size, false, &reads, &skipped))
        }
    }
}

/// Reads one image's config blob.
async fn read_config(
    session: &mut Session<'_>,
    digest: &str,
    manifest_size: i64,
    listed_platform: Option<String>,
    config: Descriptor,
    layers: Vec<Descriptor>,
) -> Result<Read, Failure> {
    let invalid = |detail: &str| Failure {
        reason: Reason::Invalid,
        detail: detail.to_owned(),
    };
    if !valid_digest(&config.digest) {
        return Err(invalid("a config digest"));
    }
    let bytes = session.blob(&config.digest).await?;
    let parsed =
        image::parse_config(&bytes).map_err(|_| invalid("a config is not JSON we read"))?;
    Ok(Read {
        digest: digest.to_owned(),
        manifest_size,
        listed_platform,
        config,
        parsed,
        layers,
    })
}

/// A content digest we build URLs from: `sha256:` and 64, or `sha512:` and 128, lowercase
/// hex digits.
pub fn valid_digest(digest: &str) -> bool {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return false;
    };
    let len = match algorithm {
        "sha256" => 64,
        "sha512" => 128,
        _ => return false,
    };
    let hex_ok = hex
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    hex.len() == len && hex_ok
}

/// A repository path we build URLs from: segments of `a-z 0-9 . _ -` joined by `/`,
/// none empty or made of dots only (no `..` reaching outside `/v2/<repository>/`).
pub fn valid_repository(repository: &str) -> bool {
    (1..=255).contains(&repository.len())
        && repository.split('/').all(|s| {
            !s.is_empty()
                && !s.bytes().all(|b| b == b'.')
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_and_repositories() {
        let hex = "a".repeat(64);
        assert!(valid_digest(&format!("sha256:{hex}")));
        assert!(valid_digest(&format!("sha512:{}", "0".repeat(128))));
        for bad in [
            format!("sha256:{}", "A".repeat(64)),
            format!("sha256:{}", "a".repeat(63)),
            format!("sha256:{}/../x", "a".repeat(60)),
            "sha256".to_owned(),
            format!("md5:{hex}"),
        ] {
            assert!(!valid_digest(&bad), "{bad}");
        }
        assert!(valid_repository("acme/tools/app"));
        assert!(valid_repository("a_b.c-d"));
        for bad in [
            "",
            "acme//app",
            "acme/../x",
            "/acme",
            "acme/",
            "Acme",
            "a?b",
            "a%2e",
        ] {
            assert!(!valid_repository(bad), "{bad}");
        }
    }
}
