//! Where traces go: the OpenTelemetry options, under the standard `OTEL_…` variables.
//!
//! Off unless an OTLP endpoint is named. The sampler names and the resource attribute
//! syntax are the OpenTelemetry SDK specification's, so an operator's existing settings
//! mean the same here; `telemetry::traces` turns a [`TraceConfig`] into an exporter.

use super::ConfigError;

/// Traces to export over OTLP.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceConfig {
    /// The collector's OTLP/gRPC endpoint, such as `http://otel-collector:4317`.
    pub endpoint: String,
    /// `service.name` of every span.
    pub service_name: String,
    /// Which traces are kept.
    pub sampler: Sampler,
    /// More resource attributes (`deployment.environment=prod`, …), in order.
    pub resource: Vec<(String, String)>,
}

/// Which traces are recorded and exported (OTEL_TRACES_SAMPLER).
#[derive(Debug, Clone, PartialEq)]
pub enum Sampler {
    /// Every trace.
    AlwaysOn,
    /// None.
    AlwaysOff,
    /// This fraction of traces, by trace id, so every process keeps the same ones.
    Ratio(f64),
    /// Follow the caller's decision (a registry's `traceparent`, the event's stored
    /// context); without one, this sampler decides.
    ParentBased(Box<Sampler>),
}

impl Sampler {
    /// Parses a sampler name and its argument, as in the OpenTelemetry SDK specification.
    pub fn parse(name: &str, arg: Option<&str>) -> Result<Sampler, String> {
        let ratio = || -> Result<f64, String> {
            match arg {
                None => Ok(1.0),
                Some(arg) => arg
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|r| (0.0..=1.0).contains(r))
                    .ok_or_else(|| format!("`{arg}` is not a ratio between 0 and 1")),
            }
        };
        let parent = |root| Ok(Sampler::ParentBased(Box::new(root)));
        match name.trim() {
            "always_on" => Ok(Sampler::AlwaysOn),
            "always_off" => Ok(Sampler::AlwaysOff),
            "traceidratio" => Ok(Sampler::Ratio(ratio()?)),
            "parentbased_always_on" => parent(Sampler::AlwaysOn),
            "parentbased_always_off" => parent(Sampler::AlwaysOff),
            "parentbased_traceidratio" => parent(Sampler::Ratio(ratio()?)),
            other => Err(format!(
                "unknown sampler `{other}`: use always_on, always_off, traceidratio, \
                 parentbased_always_on (the default), parentbased_always_off or parentbased_traceidratio"
            )),
        }
    }
}

/// The options as given (file, environment or flags), each optional.
pub(super) struct TraceOptions {
    pub endpoint: Option<String>,
    pub protocol: Option<String>,
    pub service_name: Option<String>,
    pub sampler: Option<String>,
    pub sampler_arg: Option<String>,
    pub resource_attributes: Option<String>,
}

/// The trace settings, or `None` when no endpoint is named (traces off).
pub(super) fn resolve(options: TraceOptions) -> Result<Option<TraceConfig>, ConfigError> {
    let invalid = |option, reason: String| ConfigError::Invalid { option, reason };
    let Some(endpoint) = options.endpoint.filter(|e| !e.trim().is_empty()) else {
        return Ok(None);
    };
    let endpoint = endpoint.trim().to_owned();
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        return Err(invalid(
            "otlp_endpoint",
            format!(
                "`{endpoint}` is not an http:// or https:// URL (the collector's OTLP/gRPC port, usually 4317)"
            ),
        ));
    }
    if let Some(protocol) = options.protocol.filter(|p| !p.trim().is_empty())
        && protocol.trim() != "grpc"
    {
        return Err(invalid(
            "otlp_protocol",
            format!(
                "`{protocol}`: hookline exports OTLP over gRPC only; set `grpc` and point otlp_endpoint at the collector's gRPC port (4317)"
            ),
        ));
    }
    let sampler = Sampler::parse(
        options
            .sampler
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or("parentbased_always_on"),
        options
            .sampler_arg
            .as_deref()
            .filter(|a| !a.trim().is_empty()),
    )
    .map_err(|reason| invalid("trace_sampler", reason))?;
    let resource = resource_attributes(options.resource_attributes.as_deref().unwrap_or(""))
        .map_err(|reason| invalid("trace_resource_attributes", reason))?;
    Ok(Some(TraceConfig {
        endpoint,
        service_name: options
            .service_name
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| "hookline".into()),
        sampler,
        resource,
    }))
}

/// `key=value,key=value`, values percent-decoded (the W3C Baggage syntax the
/// specification gives OTEL_RESOURCE_ATTRIBUTES).
fn resource_attributes(text: &str) -> Result<Vec<(String, String)>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("`{pair}` is not key=value"))?;
            let key = key.trim();
            if key.is_empty() {
                return Err(format!("`{pair}` has no key"));
            }
            let value = percent_encoding::percent_decode_str(value.trim())
                .decode_utf8()
                .map_err(|_| format!("the value of `{key}` is not UTF-8 once decoded"))?;
            Ok((key.to_owned(), value.into_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(endpoint: &str) -> TraceOptions {
        TraceOptions {
            endpoint: Some(endpoint.into()),
            protocol: None,
            service_name: None,
            sampler: None,
            sampler_arg: None,
            resource_attributes: None,
        }
    }

    #[test]
    fn no_endpoint_means_no_traces() {
        assert_eq!(resolve(options("")).unwrap(), None);
        let none = TraceOptions {
            endpoint: None,
            ..options("")
        };
        assert_eq!(resolve(none).unwrap(), None);
    }

    #[test]
    fn defaults_follow_the_specification() {
        let config = resolve(options("http://collector:4317")).unwrap().unwrap();
        assert_eq!(config.service_name, "hookline");
        assert_eq!(
            config.sampler,
            Sampler::ParentBased(Box::new(Sampler::AlwaysOn))
        );
        assert!(config.resource.is_empty());
    }

    #[test]
    fn samplers_parse_with_their_ratio() {
        assert_eq!(
            Sampler::parse("parentbased_traceidratio", Some("0.25")).unwrap(),
            Sampler::ParentBased(Box::new(Sampler::Ratio(0.25)))
        );
        assert_eq!(
            Sampler::parse("traceidratio", None).unwrap(),
            Sampler::Ratio(1.0)
        );
        assert!(Sampler::parse("traceidratio", Some("2")).is_err());
        assert!(
            Sampler::parse("sometimes", None)
                .unwrap_err()
                .contains("always_on")
        );
    }

    #[test]
    fn bad_values_name_their_option() {
        let http = TraceOptions {
            protocol: Some("http/protobuf".into()),
            ..options("http://collector:4318")
        };
        assert!(matches!(
            resolve(http),
            Err(ConfigError::Invalid {
                option: "otlp_protocol",
                ..
            })
        ));
        assert!(matches!(
            resolve(options("collector:4317")),
            Err(ConfigError::Invalid {
                option: "otlp_endpoint",
                ..
            })
        ));
        let attributes = TraceOptions {
            resource_attributes: Some("team".into()),
            ..options("http://collector:4317")
        };
        assert!(matches!(
            resolve(attributes),
            Err(ConfigError::Invalid {
                option: "trace_resource_attributes",
                ..
            })
        ));
    }

    #[test]
    fn resource_attributes_are_decoded_pairs() {
        assert_eq!(
            resource_attributes(" deployment.environment=prod , team=a%20b,").unwrap(),
            vec![
                ("deployment.environment".to_owned(), "prod".to_owned()),
                ("team".to_owned(), "a b".to_owned()),
            ]
        );
    }
}
