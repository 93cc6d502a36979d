//! Custom headers: their names and values, and which values are not secret (plain: the
//! API shows them; every other value it shows redacted).

use std::collections::HashMap;

use axum::http::{HeaderName, HeaderValue};

use super::{MAX_HEADER_NAME, MAX_HEADER_VALUE, MAX_HEADERS_BYTES, RESERVED_HEADERS, Violations};
use crate::api::convert::REDACTED;

/// Names and values: at most `max`, within the byte bounds, valid, not set by hookline,
/// and never the redacted stand-in (which only an update may send, for a stored value).
pub(super) fn check(map: &HashMap<String, String>, max: usize, v: &mut Violations) {
    if map.len() > max {
        return v.add(
            "webhook.headers",
            format!("at most {max} headers (got {})", map.len()),
        );
    }
    let total: usize = map.iter().map(|(k, v)| k.len() + v.len()).sum();
    if total > MAX_HEADERS_BYTES {
        return v.add(
            "webhook.headers",
            format!("at most {MAX_HEADERS_BYTES} bytes of names and values together (got {total})"),
        );
    }
    let mut names: Vec<&String> = map.keys().collect();
    names.sort();
    for name in names {
        let value = &map[name];
        let field = format!("webhook.headers[{name:?}]");
        let lower = name.to_ascii_lowercase();
        if name.len() > MAX_HEADER_NAME {
            v.add(
                "webhook.headers",
                format!("a header name is longer than {MAX_HEADER_NAME} bytes"),
            );
        } else if HeaderName::from_bytes(name.as_bytes()).is_err() {
            v.add(
                field,
                "not a valid header name (letters, digits and !#$%&'*+-.^_`|~ only)",
            );
        } else if RESERVED_HEADERS.contains(&lower.as_str()) || lower.starts_with("webhook-") {
            v.add(
                field,
                "set by hookline or hop-by-hop (host, content-*, connection, te, upgrade, \
                 proxy-*, webhook-*, …); it cannot be set",
            );
        } else if value.len() > MAX_HEADER_VALUE {
            v.add(
                field,
                format!("value is longer than {MAX_HEADER_VALUE} bytes"),
            );
        } else if value == REDACTED {
            v.add(
                field,
                format!("give the value: `{REDACTED}` stands for a stored value, in an update"),
            );
        } else if HeaderValue::from_str(value).is_err() || value.chars().any(char::is_control) {
            v.add(
                field,
                "value must be visible ASCII or spaces, without control characters",
            );
        }
    }
}

/// The plain headers' names: each one of `map`'s (any case), as the map spells it.
pub(super) fn plain(
    names: &[String],
    map: &HashMap<String, String>,
    v: &mut Violations,
) -> Vec<String> {
    let mut plain = Vec::new();
    for (i, name) in names.iter().enumerate() {
        match map.keys().find(|k| k.eq_ignore_ascii_case(name)) {
            Some(key) if !plain.contains(key) => plain.push(key.clone()),
            Some(_) => {}
            None => v.add(
                format!("webhook.plain_headers[{i}]"),
                format!("`{name}` is not one of the webhook's headers"),
            ),
        }
    }
    plain.sort();
    plain
}
