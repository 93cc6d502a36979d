//! How hookline shows things to people, shared by the CLI and the web console: times,
//! ages, durations, status codes, `repository:tag`, and enum numbers as names.

use crate::api::convert::{event_type_from_proto, unix_ms};

pub(crate) fn event_names(values: &[i32]) -> Vec<String> {
    values
        .iter()
        .map(|v| event_type_from_proto(*v).map_or_else(|| v.to_string(), |t| t.as_str().to_owned()))
        .collect()
}

pub(crate) fn format_name(value: i32) -> &'static str {
    crate::api::convert::format_from_proto(value).unwrap_or("unknown")
}

pub(crate) fn time_text(t: Option<&prost_types::Timestamp>) -> String {
    t.map(|t| crate::dispatch::payload::rfc3339(unix_ms(t)))
        .unwrap_or_default()
}

/// `--since`/`--until`: a duration ago (`1h`, `30m`, `2d`) or an RFC 3339 time.
pub(crate) fn parse_time(text: &str) -> Result<prost_types::Timestamp, String> {
    use time::format_description::well_known::Rfc3339;
    let at = match humantime::parse_duration(text) {
        Ok(ago) => time::OffsetDateTime::now_utc() - ago,
        Err(_) => time::OffsetDateTime::parse(text, &Rfc3339).map_err(|_| {
            "expected a duration ago like `1h`, `30m`, `2d`, or an RFC 3339 time like \
             `2026-11-25T01:00:00Z`"
                .to_owned()
        })?,
    };
    Ok(prost_types::Timestamp {
        seconds: at.unix_timestamp(),
        nanos: at.nanosecond() as i32,
    })
}

/// How long ago, for people: `12s`, `3m`, `2h`, `4d` ("-" when unset).
pub(crate) fn age_text(t: Option<&prost_types::Timestamp>) -> String {
    let Some(t) = t else {
        return "-".to_owned();
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let secs = (now - t.seconds).max(0);
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86400 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86400),
    }
}

/// Milliseconds for people: `12ms`, `1.5s`.
pub(crate) fn duration_text(ms: i64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else {
        format!("{:.1}s", ms as f64 / 1000.0)
    }
}

/// An HTTP status code for people ("-" when there was no response).
pub(crate) fn code_text(code: i32) -> String {
    if code == 0 {
        "-".to_owned()
    } else {
        code.to_string()
    }
}

/// `repository:tag`, or the repository alone for untagged events.
pub(crate) fn target_text(repository: &str, tag: &str) -> String {
    if tag.is_empty() {
        repository.to_owned()
    } else {
        format!("{repository}:{tag}")
    }
}
