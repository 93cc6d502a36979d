//! What an image is, from its manifests and configs (pure): the parsing of the registry's
//! JSON into the [`Enrichment`](crate::enrichment::Enrichment) a payload carries.
//!
//! Nothing here does I/O: `client.rs` fetches bytes, `mod.rs` walks an index; this file
//! says what the bytes mean, which platforms and standard OCI labels and annotations they
//! name, and how big the image is. Everything taken from a manifest is bounded (label
//! count and length) because registries store whatever a client pushed.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::enrichment::{Facts, PlatformImage, Reason};

/// Label and annotation keys kept: the OCI standard ones (`org.opencontainers.image.*`).
const OCI_PREFIX: &str = "org.opencontainers.image.";
/// Most labels, and separately annotations, kept per image.
const MAX_KEYS: usize = 32;
/// Longest label or annotation value kept, in bytes (longer ones are left out).
const MAX_VALUE: usize = 1024;

/// A content descriptor (`mediaType`, `digest`, `size`, optional `platform`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct Descriptor {
    #[serde(default, rename = "mediaType")]
    pub media_type: Option<String>,
    pub digest: String,
    #[serde(default)]
    pub size: i64,
    #[serde(default)]
    pub platform: Option<Platform>,
}

/// An index entry's or a config's platform.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct Platform {
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

impl Platform {
    /// `os/architecture[/variant]`; None when either is missing or `unknown` (attestation
    /// manifests in buildx indexes say `unknown/unknown`).
    pub(crate) fn name(&self) -> Option<String> {
        let known = |s: &str| !s.is_empty() && s != "unknown";
        if !known(&self.os) || !known(&self.architecture) {
            return None;
        }
        Some(match self.variant.as_deref().filter(|v| !v.is_empty()) {
            Some(variant) => format!("{}/{}/{variant}", self.os, self.architecture),
            None => format!("{}/{}", self.os, self.architecture),
        })
    }
}

/// A pushed manifest: an index (manifest list) or a single image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Manifest {
    /// OCI image index or Docker manifest list.
    Index {
        children: Vec<Descriptor>,
        annotations: BTreeMap<String, String>,
    },
    /// OCI image manifest or Docker image manifest v2.
    Image {
        config: Descriptor,
        layers: Vec<Descriptor>,
        annotations: BTreeMap<String, String>,
    },
}

#[derive(Deserialize)]
struct RawManifest {
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    #[serde(default)]
    annotations: BTreeMap<String, serde_json::Value>,
}

/// Parses a manifest or index; schema 1 and anything else is [`Reason::Invalid`].
pub(crate) fn parse_manifest(bytes: &[u8]) -> Result<Manifest, Reason> {
    let raw: RawManifest = serde_json::from_slice(bytes).map_err(|_| Reason::Invalid)?;
    let annotations = standard(raw.annotations);
    match (raw.manifests, raw.config) {
        (Some(children), None) => Ok(Manifest::Index {
            children,
            annotations,
        }),
        (None, Some(config)) => Ok(Manifest::Image {
            config,
            layers: raw.layers,
            annotations,
        }),
        _ => Err(Reason::Invalid),
    }
}

/// What a config blob says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Config {
    pub platform: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub created: Option<String>,
}

#[derive(Deserialize)]
struct RawConfig {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    variant: Option<String>,
    #[serde(default)]
    created: Option<String>,
    #[serde(default)]
    config: Option<RawRuntime>,
}

#[derive(Deserialize)]
struct RawRuntime {
    #[serde(default, rename = "Labels")]
    labels: Option<BTreeMap<String, serde_json::Value>>,
}

/// Parses an image config blob.
pub(crate) fn parse_config(bytes: &[u8]) -> Result<Config, Reason> {
    let raw: RawConfig = serde_json::from_slice(bytes).map_err(|_| Reason::Invalid)?;
    let platform = Platform {
        os: raw.os,
        architecture: raw.architecture,
        variant: raw.variant,
    };
    Ok(Config {
        platform: platform.name(),
        labels: standard(raw.config.and_then(|c| c.labels).unwrap_or_default()),
        created: raw.created,
    })
}

/// The `org.opencontainers.image.*` string entries, bounded.
fn standard(map: BTreeMap<String, serde_json::Value>) -> BTreeMap<String, String> {
    map.into_iter()
        .filter(|(k, _)| k.starts_with(OCI_PREFIX) && k.len() <= 128)
        .filter_map(|(k, v)| match v {
            serde_json::Value::String(s) if s.len() <= MAX_VALUE => Some((k, s)),
            _ => None,
        })
        .take(MAX_KEYS)
        .collect()
}

/// One image read: its manifest digest and size, its descriptor's platform (for an
/// index child), its config descriptor and parsed config, and its layers.
pub(crate) struct Read {
    pub digest: String,
    pub manifest_size: i64,
    pub listed_platform: Option<String>,
    pub config: Descriptor,
    pub parsed: Config,
    pub layers: Vec<Descriptor>,
}

/// The facts of a push: `top` is the pushed manifest's annotations and size, `images` the
/// images read (one for a single image), `skipped` index entries not read (attestations),
/// counted in the size only. `single` says the push was one image, not an index.
pub(crate) fn facts(
    annotations: BTreeMap<String, String>,
    top_size: i64,
    single: bool,
    images: &[Read],
    skipped: &[Descriptor],
) -> Facts {
    let mut seen = std::collections::HashSet::new();
    let mut total = if single { 0 } else { top_size.max(0) };
    let mut count = |d: &str, size: i64| {
        if seen.insert(d.to_owned()) {
            total += size.max(0);
        }
    };
    let mut platforms: Vec<String> = Vec::new();
    let mut labels = BTreeMap::new();
    let mut manifests = Vec::new();
    for image in images {
        count(&image.digest, image.manifest_size);
        count(&image.config.digest, image.config.size);
        for layer in &image.layers {
            count(&layer.digest, layer.size);
        }
        let platform = image
            .listed_platform
            .clone()
            .or_else(|| image.parsed.platform.clone());
        if let Some(p) = &platform
            && !platforms.contains(p)
        {
            platforms.push(p.clone());
        }
        for (k, v) in &image.parsed.labels {
            labels.entry(k.clone()).or_insert_with(|| v.clone());
        }
        if !single {
            let size = image.manifest_size.max(0)
                + image.config.size.max(0)
                + image.layers.iter().map(|l| l.size.max(0)).sum::<i64>();
            manifests.push(PlatformImage {
                digest: image.digest.clone(),
                platform,
                config_digest: image.config.digest.clone(),
                size,
            });
        }
    }
    for d in skipped {
        count(&d.digest, d.size);
    }
    let key = |name: &str| {
        let full = format!("{OCI_PREFIX}{name}");
        annotations
            .get(&full)
            .or_else(|| labels.get(&full))
            .cloned()
    };
    Facts {
        platforms,
        config_digest: match images {
            [only] if single => Some(only.config.digest.clone()),
            _ => None,
        },
        manifests,
        total_size: total,
        source: key("source"),
        revision: key("revision"),
        version: key("version"),
        created: key("created").or_else(|| images.first().and_then(|i| i.parsed.created.clone())),
        title: key("title"),
        labels,
        annotations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enrichment::Enrichment;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    #[test]
    fn platform_names() {
        let p = |os: &str, arch: &str, variant: Option<&str>| Platform {
            os: os.into(),
            architecture: arch.into(),
            variant: variant.map(str::to_owned),
        };
        assert_eq!(
            p("linux", "amd64", None).name().as_deref(),
            Some("linux/amd64")
        );
        assert_eq!(
            p("linux", "arm", Some("v7")).name().as_deref(),
            Some("linux/arm/v7")
        );
        assert_eq!(
            p("linux", "arm64", Some("")).name().as_deref(),
            Some("linux/arm64")
        );
        assert_eq!(p("unknown", "unknown", None).name(), None);
        assert_eq!(p("", "amd64", None).name(), None);
    }

    #[test]
    fn indexes_images_and_the_rest() {
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{D1}","size":5,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}}],"annotations":{{"org.opencontainers.image.version":"2.0","com.example.x":"y"}}}}"#
        );
        match parse_manifest(index.as_bytes()) {
            Ok(Manifest::Index {
                children,
                annotations,
            }) => {
                assert_eq!(children.len(), 1);
                assert_eq!(
                    children[0]
                        .platform
                        .as_ref()
                        .and_then(Platform::name)
                        .as_deref(),
                    Some("linux/arm64/v8")
                );
                assert_eq!(
                    annotations.into_iter().collect::<Vec<_>>(),
                    vec![("org.opencontainers.image.version".into(), "2.0".into())]
                );
            }
            other => panic!("{other:?}"),
        }
        let image = format!(
            r#"{{"schemaVersion":2,"config":{{"digest":"{D1}","size":3}},"layers":[{{"digest":"{D2}","size":7}}]}}"#
        );
        assert!(matches!(
            parse_manifest(image.as_bytes()),
            Ok(Manifest::Image { .. })
        ));
        assert_eq!(
            parse_manifest(b"{\"schemaVersion\":1}"),
            Err(Reason::Invalid)
        );
        assert_eq!(parse_manifest(b"not json"), Err(Reason::Invalid));
    }

    #[test]
    fn config_labels_are_the_standard_ones_bounded() {
        let long = "x".repeat(MAX_VALUE + 1);
        let config = format!(
            r#"{{"os":"linux","architecture":"amd64","created":"2026-12-01T00:00:00Z","config":{{"Labels":{{"org.opencontainers.image.revision":"abc123","org.opencontainers.image.title":"{long}","maintainer":"me","org.opencontainers.image.source":7}}}}}}"#
        );
        let c = parse_config(config.as_bytes()).expect("config");
        assert_eq!(c.platform.as_deref(), Some("linux/amd64"));
        assert_eq!(c.created.as_deref(), Some("2026-12-01T00:00:00Z"));
        assert_eq!(
            c.labels.into_iter().collect::<Vec<_>>(),
            vec![("org.opencontainers.image.revision".into(), "abc123".into())]
        );
        let many: BTreeMap<String, serde_json::Value> = (0..100)
            .map(|i| (format!("{OCI_PREFIX}k{i:03}"), serde_json::json!("v")))
            .collect();
        assert_eq!(standard(many).len(), MAX_KEYS);
        assert_eq!(parse_config(b"{}").expect("empty config").platform, None);
    }

    fn read(digest: &str, platform: &str, config: &str, revision: &str, layer: &str) -> Read {
        Read {
            digest: digest.into(),
            manifest_size: 100,
            listed_platform: Some(platform.into()),
            config: Descriptor {
                media_type: None,
                digest: config.into(),
                size: 10,
                platform: None,
            },
            parsed: Config {
                platform: None,
                labels: [(format!("{OCI_PREFIX}revision"), revision.to_owned())].into(),
                created: Some("2026-12-01T00:00:00Z".into()),
            },
            layers: vec![Descriptor {
                media_type: None,
                digest: layer.into(),
                size: 1000,
                platform: None,
            }],
        }
    }

    #[test]
    fn an_index_counts_shared_blobs_once_and_annotations_win_over_labels() {
        let images = [
            read(
                "sha256:a",
                "linux/amd64",
                "sha256:ca",
                "abc123",
                "sha256:shared",
            ),
            read(
                "sha256:b",
                "linux/arm64",
                "sha256:cb",
                "zzz",
                "sha256:shared",
            ),
        ];
        let annotations: BTreeMap<String, String> =
            [(format!("{OCI_PREFIX}version"), "2.0".to_owned())].into();
        let f = facts(annotations, 50, false, &images, &[]);
        assert_eq!(f.platforms, ["linux/amd64", "linux/arm64"]);
        assert_eq!(f.total_size, 50 + 100 + 10 + 1000 + 100 + 10);
        assert_eq!(f.revision.as_deref(), Some("abc123"), "first image's label");
        assert_eq!(f.version.as_deref(), Some("2.0"));
        assert_eq!(f.created.as_deref(), Some("2026-12-01T00:00:00Z"));
        assert_eq!(f.config_digest, None);
        assert_eq!(f.manifests.len(), 2);
        assert_eq!(f.manifests[1].config_digest, "sha256:cb");
        assert_eq!(f.manifests[1].size, 1110);
    }

    #[test]
    fn a_single_image_names_its_config() {
        let images = [read(
            "sha256:a",
            "linux/amd64",
            "sha256:ca",
            "abc",
            "sha256:l",
        )];
        let f = facts(BTreeMap::new(), 100, true, &images, &[]);
        assert_eq!(f.config_digest.as_deref(), Some("sha256:ca"));
        assert!(f.manifests.is_empty());
        assert_eq!(f.total_size, 1110);
    }

    #[test]
    fn stored_shapes_round_trip() {
        let unavailable = Enrichment::Unavailable {
            reason: Reason::Timeout,
        };
        let text = serde_json::to_string(&unavailable).expect("json");
        assert_eq!(text, r#"{"status":"unavailable","reason":"timeout"}"#);
        let images = [read(
            "sha256:a",
            "linux/amd64",
            "sha256:ca",
            "abc",
            "sha256:l",
        )];
        let complete =
            Enrichment::Complete(Box::new(facts(BTreeMap::new(), 1, true, &images, &[])));
        let text = serde_json::to_string(&complete).expect("json");
        assert!(
            text.starts_with(r#"{"status":"complete","platforms":["linux/amd64"]"#),
            "{text}"
        );
        let back: Enrichment = serde_json::from_str(&text).expect("decodes");
        assert_eq!(back, complete);
    }
}
