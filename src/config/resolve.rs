//! Resolution: the file named by `--config`, then the environment and flags over it,
//! then the defaults, validated once; the result is a [`Config`].
//!
//! [`Config::resolve`] is the one place where a default is chosen or a value refused
//! (`ConfigError::Invalid` names the option), so every role starts from the same checked
//! settings. The file's keys are checked against `options::all_options`: a typo is an
//! error, not a silently ignored line.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::options::{CommonSettings, HumanDuration, Role, ServeSettings, all_options};
use super::{
    ApiConfig, Config, ConfigError, DEFAULT_RETENTION, DispatchConfig, IngestConfig, RateLimit,
    default_retry_schedule,
};
use crate::enrichment::RegistryAccess;
use crate::secret::Secret;
use crate::ssrf::Guard;
use crate::tls::TlsFiles;

impl Config {
    /// Merges flags/env (`cli`) over the file named by `--config` (if any), then defaults.
    pub fn resolve(common: CommonSettings, serve: ServeSettings) -> Result<Config, ConfigError> {
        let (file_common, file_serve) = match &common.config {
            Some(path) => read_file(path)?,
            None => Default::default(),
        };
        let c = common.or(file_common);
        let s = serve.or(file_serve);
        let d = |v: Option<HumanDuration>, default: Duration| v.map(|h| h.0).unwrap_or(default);
        let request_timeout = d(s.request_timeout, Duration::from_secs(15));
        let tls = match (s.tls_cert, s.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            (cert, _) => {
                let (set, unset) = if cert.is_some() {
                    ("tls_cert", "tls_key")
                } else {
                    ("tls_key", "tls_cert")
                };
                return Err(ConfigError::Invalid {
                    option: "tls_cert/tls_key",
                    reason: format!(
                        "{set} is set but {unset} is not: give both (PEM files) for TLS, or neither for plaintext"
                    ),
                });
            }
        };
        let default_registry = registry_access(
            s.registry_url,
            s.registry_username,
            s.registry_password_file.as_deref(),
        )?;
        let config = Config {
            db: c.db.unwrap_or_else(|| "sqlite://hookline.db".into()),
            db_max_connections: s.db_max_connections.unwrap_or(8),
            log_format: c.log_format.unwrap_or_default(),
            log_level: c.log_level.unwrap_or_else(|| "info".into()),
            roles: s
                .roles
                .unwrap_or_else(|| vec![Role::Api, Role::Ingest, Role::Dispatcher]),
            ingest: IngestConfig {
                addr: s
                    .ingest_addr
                    .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
                registry_token: s.registry_token.filter(|t| !t.expose().is_empty()),
                max_body_bytes: s.max_body_bytes.unwrap_or(1024 * 1024),
                max_events_per_envelope: s.max_events_per_envelope.unwrap_or(1000),
                commit_timeout: d(s.commit_timeout, Duration::from_millis(800)),
                rate_limit: RateLimit {
                    per_second: s.ingest_rate_limit.unwrap_or(1000),
                    burst: s.ingest_rate_burst.unwrap_or(5000),
                },
            },
            api_addr: s
                .api_addr
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 50051))),
            admin_addr: s.admin_addr,
            tls,
            dispatch: DispatchConfig {
                poll_interval: d(s.poll_interval, Duration::from_secs(1)),
                max_in_flight: s.max_in_flight.unwrap_or(256),
                max_per_endpoint: s
                    .max_per_endpoint
                    .unwrap_or_else(|| s.max_in_flight.unwrap_or(256)),
                connect_timeout: d(s.connect_timeout, Duration::from_secs(5)),
                request_timeout,
                destination_roots: destination_roots(s.destination_ca_file.as_deref())?,
                egress_proxy: s
                    .egress_proxy
                    .filter(|p| !p.expose().is_empty())
                    .map(|p| {
                        super::EgressProxy::parse(p.expose())
                            .map(std::sync::Arc::new)
                            .map_err(|reason| ConfigError::Invalid {
                                option: "egress_proxy",
                                reason,
                            })
                    })
                    .transpose()?,
                response_body_limit: s.response_body_limit.unwrap_or(16 * 1024),
                retry_schedule: s
                    .retry_schedule
                    .map(|v| v.into_iter().map(|h| h.0).collect())
                    .unwrap_or_else(default_retry_schedule),
                retry_after_max: d(s.retry_after_max, Duration::from_secs(3600)),
                circuit_threshold: s.circuit_threshold.unwrap_or(5),
                circuit_cooldown: d(s.circuit_cooldown, Duration::from_secs(30)),
                disable_after: d(s.disable_after, Duration::from_secs(3 * 24 * 3600)),
                lease: d(s.lease, Duration::from_secs(30)),
                shutdown_grace: d(s.shutdown_grace, Duration::from_secs(10)),
                enrichment_timeout: d(s.enrichment_timeout, Duration::from_secs(1)),
                default_registry,
            },
            api: ApiConfig {
                max_webhooks_per_namespace: s.max_webhooks_per_namespace.unwrap_or(1000),
                max_filters_per_webhook: s.max_filters_per_webhook.unwrap_or(50),
                max_custom_headers: s.max_custom_headers.unwrap_or(20),
                max_page_size: s.max_page_size.unwrap_or(500),
                max_message_bytes: s.api_max_message_bytes.unwrap_or(256 * 1024),
                max_replay: s.max_replay.unwrap_or(10_000),
                max_watchers: s.max_watchers.unwrap_or(64),
                rate_limit: RateLimit {
                    per_second: s.api_rate_limit.unwrap_or(50),
                    burst: s.api_rate_burst.unwrap_or(100),
                },
            },
            ssrf: Guard::new(s.allow_cidrs.unwrap_or_default()),
            retention: d(s.retention, DEFAULT_RETENTION),
            secret_keys: super::keys::resolve(
                c.secret_key_file.as_deref(),
                c.secret_key.as_ref().filter(|k| !k.expose().is_empty()),
            )?,
            traces: super::traces::resolve(super::traces::TraceOptions {
                endpoint: s.otlp_endpoint,
                protocol: s.otlp_protocol,
                service_name: s.trace_service_name,
                sampler: s.trace_sampler,
                sampler_arg: s.trace_sampler_arg,
                resource_attributes: s.trace_resource_attributes,
            })?,
        };
        config.validate()?;
        Ok(config)
    }

    /// Configuration for commands that only need the database and logging.
    pub fn common(common: CommonSettings) -> Result<Config, ConfigError> {
        Config::resolve(common, ServeSettings::default())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |option, reason: &str| {
            Err(ConfigError::Invalid {
                option,
                reason: reason.into(),
            })
        };
        if self.roles.is_empty() {
            return invalid("roles", "name at least one of api, ingest, dispatcher");
        }
        if self.ingest.max_body_bytes == 0 {
            return invalid("max_body_bytes", "must be at least 1");
        }
        if self.ingest.max_events_per_envelope == 0 {
            return invalid("max_events_per_envelope", "must be at least 1");
        }
        let d = &self.dispatch;
        if d.max_in_flight == 0 || d.max_per_endpoint == 0 {
            return invalid("max_in_flight/max_per_endpoint", "must be at least 1");
        }
        if self.ingest.commit_timeout.is_zero() {
            return invalid("commit_timeout", "must be positive");
        }
        if d.poll_interval.is_zero() {
            return invalid("poll_interval", "must be positive");
        }
        if d.enrichment_timeout.is_zero() || d.enrichment_timeout > Duration::from_secs(60) {
            return invalid("enrichment_timeout", "must be between 1ms and 60s");
        }
        if d.lease < Duration::from_secs(1) {
            return invalid("lease", "must be at least 1s");
        }
        if d.request_timeout.is_zero() || d.connect_timeout.is_zero() {
            return invalid("request_timeout/connect_timeout", "must be positive");
        }
        if self.db_max_connections == 0 {
            return invalid("db_max_connections", "must be at least 1");
        }
        if self.retention < Duration::from_secs(1) {
            return invalid("retention", "must be at least 1s");
        }
        if self.api.max_replay == 0 || self.api.max_watchers == 0 {
            return invalid("max_replay/max_watchers", "must be at least 1");
        }
        let a = &self.api;
        if a.max_webhooks_per_namespace == 0
            || a.max_filters_per_webhook == 0
            || a.max_custom_headers == 0
            || a.max_page_size == 0
        {
            return invalid(
                "max_webhooks_per_namespace/max_filters_per_webhook/max_custom_headers/max_page_size",
                "must be at least 1",
            );
        }
        if a.max_message_bytes < 1024 {
            return invalid("api_max_message_bytes", "must be at least 1024");
        }
        for (option, rate) in [
            ("api_rate_burst", a.rate_limit),
            ("ingest_rate_burst", self.ingest.rate_limit),
        ] {
            if rate.per_second > 0 && rate.burst == 0 {
                return invalid(option, "must be at least 1 when the rate limit is on");
            }
        }
        Ok(())
    }
}

/// The certificates of `destination_ca_file`, if set: at least one, all parseable.
fn destination_roots(
    path: Option<&Path>,
) -> Result<Vec<tokio_rustls::rustls::pki_types::CertificateDer<'static>>, ConfigError> {
    use tokio_rustls::rustls::pki_types::CertificateDer;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    let Some(path) = path else {
        return Ok(Vec::new());
    };
    let invalid = |reason: String| ConfigError::Invalid {
        option: "destination_ca_file",
        reason,
    };
    let roots = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| invalid(format!("{}: {e}", path.display())))?;
    if roots.is_empty() {
        return Err(invalid(format!(
            "{}: no PEM certificate in it",
            path.display()
        )));
    }
    Ok(roots)
}

/// The environment token's registry access from its three options: a checked URL, and
/// credentials only with it (both or neither). The password file's content never appears
/// in an error.
fn registry_access(
    url: Option<String>,
    username: Option<String>,
    password_file: Option<&Path>,
) -> Result<Option<RegistryAccess>, ConfigError> {
    let invalid = |option, reason: String| ConfigError::Invalid { option, reason };
    let Some(url) = url.filter(|u| !u.is_empty()) else {
        if username.is_some() || password_file.is_some() {
            return Err(invalid(
                "registry_username/registry_password_file",
                "set registry_url too: they are the credentials for reading it".into(),
            ));
        }
        return Ok(None);
    };
    let url = crate::enrichment::check_base_url(&url).map_err(|e| invalid("registry_url", e))?;
    let password = match password_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                invalid(
                    "registry_password_file",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            Some(Secret::new(text.trim_end_matches(['\r', '\n'])))
        }
        None => None,
    };
    if username.is_some() != password.is_some() {
        return Err(invalid(
            "registry_username/registry_password_file",
            "give both (a read-only account) or neither (anonymous reads)".into(),
        ));
    }
    Ok(Some(RegistryAccess {
        url,
        username,
        password,
    }))
}

fn read_file(path: &Path) -> Result<(CommonSettings, ServeSettings), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let parse_err = |source| ConfigError::Parse {
        path: path.to_owned(),
        source,
    };
    let table: toml::Table = toml::from_str(&text).map_err(parse_err)?;
    let known: Vec<String> = all_options()
        .into_iter()
        .map(|(key, _, _)| key)
        .filter(|k| k != "config")
        .collect();
    if let Some(key) = table.keys().find(|k| !known.contains(k)) {
        return Err(ConfigError::UnknownKey {
            path: path.to_owned(),
            key: key.clone(),
            known: known.join(", "),
        });
    }
    let common = toml::from_str(&text).map_err(parse_err)?;
    let serve = toml::from_str(&text).map_err(parse_err)?;
    Ok((common, serve))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(f.path(), text).expect("write config");
        f
    }

    #[test]
    fn defaults_need_no_configuration() {
        let c = Config::resolve(CommonSettings::default(), ServeSettings::default())
            .expect("defaults are valid");
        assert_eq!(c.db, "sqlite://hookline.db");
        assert_eq!(c.ingest.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(c.api_addr.to_string(), "127.0.0.1:50051");
        assert_eq!(c.dispatch.poll_interval, Duration::from_secs(1));
        assert_eq!(c.dispatch.retry_schedule.len(), 9);
        assert_eq!(c.roles.len(), 3);
    }

    #[test]
    fn flags_win_over_the_file() {
        let f = file(
            "db = \"sqlite://from-file.db\"\npoll_interval = \"250ms\"\nroles = [\"ingest\"]\n",
        );
        let common = CommonSettings {
            config: Some(f.path().to_owned()),
            db: Some("sqlite://from-flag.db".into()),
            ..Default::default()
        };
        let c = Config::resolve(common, ServeSettings::default()).expect("valid");
        assert_eq!(c.db, "sqlite://from-flag.db");
        assert_eq!(c.dispatch.poll_interval, Duration::from_millis(250));
        assert_eq!(c.roles, vec![Role::Ingest]);
    }

    #[test]
    fn destination_ca_file_must_hold_certificates() {
        let serve = |path: &std::path::Path| ServeSettings {
            destination_ca_file: Some(path.to_owned()),
            ..Default::default()
        };
        let missing = std::path::Path::new("/nonexistent/ca.pem");
        let empty = file("not a certificate\n");
        for path in [missing, empty.path()] {
            let error = Config::resolve(CommonSettings::default(), serve(path))
                .expect_err("refused")
                .to_string();
            assert!(error.contains("destination_ca_file"), "{error}");
        }
        let c = Config::resolve(CommonSettings::default(), ServeSettings::default())
            .expect("defaults are valid");
        assert!(c.dispatch.destination_roots.is_empty(), "web PKI only");
    }

    #[test]
    fn tls_needs_both_files_or_neither() {
        let c = Config::resolve(CommonSettings::default(), ServeSettings::default())
            .expect("defaults are valid");
        assert_eq!(c.tls, None, "plaintext by default");
        let f = file("tls_cert = \"/etc/hookline/cert.pem\"\n");
        let common = CommonSettings {
            config: Some(f.path().to_owned()),
            ..Default::default()
        };
        let err = Config::resolve(common.clone(), ServeSettings::default())
            .expect_err("a certificate without its key");
        assert!(
            err.to_string()
                .contains("tls_cert is set but tls_key is not"),
            "{err}"
        );
        let serve = ServeSettings {
            tls_key: Some("/etc/hookline/key.pem".into()),
            ..Default::default()
        };
        let c = Config::resolve(common, serve).expect("file and flag together");
        assert_eq!(
            c.tls,
            Some(TlsFiles {
                cert: "/etc/hookline/cert.pem".into(),
                key: "/etc/hookline/key.pem".into(),
            })
        );
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let f = file("pol_interval = \"1s\"\n");
        let common = CommonSettings {
            config: Some(f.path().to_owned()),
            ..Default::default()
        };
        let err = Config::resolve(common, ServeSettings::default()).expect_err("typo refused");
        assert!(err.to_string().contains("pol_interval"), "{err}");
    }

    #[test]
    fn no_destination_is_allow_listed_unless_configured() {
        let loopback = "127.0.0.1".parse().expect("ip");
        let c = Config::resolve(CommonSettings::default(), ServeSettings::default())
            .expect("defaults are valid");
        assert!(c.ssrf.allowed().is_empty());
        assert!(
            c.ssrf.check(loopback, None).is_err(),
            "loopback refused by default"
        );
        let f = file("allow_cidrs = [\"127.0.0.0/8\", \"10.1.2.3\"]\n");
        let common = CommonSettings {
            config: Some(f.path().to_owned()),
            ..Default::default()
        };
        let c = Config::resolve(common, ServeSettings::default()).expect("valid");
        assert_eq!(c.ssrf.allowed().len(), 2);
        assert!(c.ssrf.check(loopback, None).is_ok());
        assert!(c.ssrf.check("10.1.2.4".parse().expect("ip"), None).is_err());
        let f = file("allow_cidrs = [\"localhost\"]\n");
        let common = CommonSettings {
            config: Some(f.path().to_owned()),
            ..Default::default()
        };
        let err = Config::resolve(common, ServeSettings::default()).expect_err("not a CIDR");
        assert!(
            err.to_string().contains("`localhost` is not an IP address"),
            "{err}"
        );
    }
}
