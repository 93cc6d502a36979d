//! Request templates: the owner writes the body and the values of custom headers in Jinja
//! syntax, rendered by minijinja for each event, and may set the body's (fixed) content
//! type.
//!
//! The template sees the fields of the `hookline` payload (docs/templates.md has the
//! table), plus `event`, the whole of it. It runs sandboxed: no loader (so no include,
//! import or extends), strict undefined values (a field the event lacks is an error, not
//! an empty string), fuel for [`FUEL`] steps, output capped at [`BODY_MAX`], and
//! `guard.rs` refuses at compile time every construct whose memory could grow without
//! bound. A render either yields the whole body or an error; never a part of one.

mod guard;
pub mod presets;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io;

use minijinja::machinery::{WhitespaceConfig, parse};
use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Kwargs, StringInput, Value};
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};

use super::chat::short_digest;
use super::{JSON, hookline};
use crate::event::Event;

/// The longest template source (body or header value), in bytes.
pub const SOURCE_MAX: usize = 16 * 1024;
/// The longest rendered body, in bytes.
pub const BODY_MAX: usize = 256 * 1024;
/// The longest result of `tojson`, `join` or `urlencode`, in bytes.
pub const VALUE_MAX: usize = 64 * 1024;
/// The longest rendered header value, in bytes.
pub const HEADER_MAX: usize = 8 * 1024;
/// Steps one render may take: far more than any real template needs, and a loop
/// without end stops within milliseconds.
pub const FUEL: u64 = 100_000;

/// Which part of a template a problem is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// The body's template.
    Body,
    /// The content type.
    ContentType,
    /// A custom header's value, by the header's name.
    Header(String),
}

/// Why a template cannot be used, or could not render one event: for the owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    /// Where.
    pub part: Part,
    /// What is wrong, with its line and column when it has a place.
    pub message: String,
}

impl std::fmt::Display for TemplateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.part {
            Part::Body => write!(f, "the template: {}", self.message),
            Part::ContentType => write!(f, "the template's content type: {}", self.message),
            Part::Header(name) => write!(f, "header {name}: {}", self.message),
        }
    }
}

/// A compiled template: ready to render any event.
pub struct Template {
    env: Environment<'static>,
    content_type: String,
    /// The custom headers, in order; each value is a template named `header:NAME`.
    headers: Vec<String>,
}

/// One rendered request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The body's content type.
    pub content_type: String,
    /// The body, whole.
    pub body: Vec<u8>,
    /// The custom headers, their values rendered.
    pub headers: Vec<(String, String)>,
}

impl Template {
    /// Compiles the body, the content type (default `application/json`) and the custom
    /// headers' values.
    pub fn compile(
        body: &str,
        content_type: Option<&str>,
        headers: &BTreeMap<String, String>,
    ) -> Result<Template, TemplateError> {
        let content_type = match content_type.map(str::trim) {
            None | Some("") => JSON.to_owned(),
            Some(text) => check_content_type(text).map_err(|message| TemplateError {
                part: Part::ContentType,
                message,
            })?,
        };
        let mut env = environment();
        add(&mut env, "body", body, Part::Body)?;
        for (name, value) in headers {
            add(
                &mut env,
                &format!("header:{name}"),
                value,
                Part::Header(name.clone()),
            )?;
        }
        Ok(Template {
            env,
            content_type,
            headers: headers.keys().cloned().collect(),
        })
    }

    /// Whether the body must be JSON (checked after every render).
    pub fn is_json(&self) -> bool {
        is_json(&self.content_type)
    }

    /// Renders one event: the whole request, or why not.
    pub fn render(&self, event: &Event) -> Result<Rendered, TemplateError> {
        let context = context(event);
        let body = self.run("body", &context, BODY_MAX, Part::Body)?;
        if self.is_json()
            && let Err(error) = serde_json::from_slice::<serde::de::IgnoredAny>(&body)
        {
            return Err(TemplateError {
                part: Part::Body,
                message: format!(
                    "the rendered body is not JSON, as its content type says (line {}, column {}: {})",
                    error.line(),
                    error.column(),
                    serde_json_reason(&error)
                ),
            });
        }
        let mut headers = Vec::with_capacity(self.headers.len());
        for name in &self.headers {
            let part = Part::Header(name.clone());
            let value = self.run(
                &format!("header:{name}"),
                &context,
                HEADER_MAX,
                part.clone(),
            )?;
            let value = String::from_utf8(value).map_err(|_| TemplateError {
                part: part.clone(),
                message: "the rendered value is not UTF-8".into(),
            })?;
            if value.chars().any(|c| c.is_control() && c != '\t') {
                return Err(TemplateError {
                    part,
                    message: "the rendered value contains a line break or control character".into(),
                });
            }
            headers.push((name.clone(), value));
        }
        Ok(Rendered {
            content_type: self.content_type.clone(),
            body,
            headers,
        })
    }

    fn run(
        &self,
        name: &str,
        context: &Value,
        max: usize,
        part: Part,
    ) -> Result<Vec<u8>, TemplateError> {
        let template = self.env.get_template(name).map_err(|e| TemplateError {
            part: part.clone(),
            message: describe(&e, None),
        })?;
        let mut out = Capped {
            bytes: Vec::new(),
            max,
            over: false,
        };
        match template.render_captured_to(context, &mut out) {
            Ok(_) => Ok(out.bytes),
            Err(_) if out.over => Err(TemplateError {
                part,
                message: format!("the rendered text is longer than {} KiB", max / 1024),
            }),
            Err(e) => Err(TemplateError {
                part,
                message: describe(&e, template.source().into()),
            }),
        }
    }
}

/// What a template sees: the `hookline` payload's fields, and all of them as `event`.
pub(crate) fn context(event: &Event) -> Value {
    let mut fields = hookline::render(event);
    if let Some(map) = fields.as_object_mut() {
        let whole = serde_json::Value::Object(map.clone());
        map.insert("event".into(), whole);
    }
    Value::from_serialize(&fields)
}

/// The sandbox every template runs in.
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    env.set_recursion_limit(64);
    env.set_keep_trailing_newline(true);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.add_filter("short_digest", |digest: Cow<'_, str>| short_digest(&digest));
    // minijinja's filters take an undefined value quietly (`tojson` makes it null); here
    // a name the event lacks is an error wherever it is used, as strictness promises.
    env.add_filter(
        "tojson",
        |value: &Value, indent: Option<Value>, kwargs: Kwargs| {
            defined(value)?;
            capped(minijinja::filters::tojson(value, indent, kwargs)?.to_string())
        },
    );
    env.add_filter(
        "join",
        |state: &minijinja::State, value: &Value, joiner: Option<StringInput<'_>>| {
            defined(value)?;
            capped(minijinja::filters::join(state, value, joiner)?.to_string())
        },
    );
    env.add_filter("urlencode", |value: &Value| {
        defined(value)?;
        capped(minijinja::filters::urlencode(value)?)
    });
    env
}

/// An undefined value is refused, as printing one is.
fn defined(value: &Value) -> Result<(), minijinja::Error> {
    if value.is_undefined() {
        return Err(minijinja::Error::new(
            ErrorKind::UndefinedError,
            "a value the event does not have",
        ));
    }
    Ok(())
}

/// A filter's result, refused past [`VALUE_MAX`].
fn capped(text: String) -> Result<Value, minijinja::Error> {
    if text.len() > VALUE_MAX {
        return Err(minijinja::Error::new(
            ErrorKind::InvalidOperation,
            format!("a filter's result is longer than {} KiB", VALUE_MAX / 1024),
        ));
    }
    Ok(Value::from(text))
}

/// Parses, guards and adds one template to `env`.
fn add(
    env: &mut Environment<'static>,
    name: &str,
    source: &str,
    part: Part,
) -> Result<(), TemplateError> {
    let error = |message: String| TemplateError {
        part: part.clone(),
        message,
    };
    if source.len() > SOURCE_MAX {
        return Err(error(format!(
            "at most {} KiB of template",
            SOURCE_MAX / 1024
        )));
    }
    let parsed = parse(source, name, SyntaxConfig, WhitespaceConfig::default())
        .map_err(|e| error(describe(&e, Some(source))))?;
    guard::check(&parsed).map_err(|refused| {
        error(format!(
            "line {}, column {}: {} is not allowed in a template",
            refused.line, refused.column, refused.what
        ))
    })?;
    env.add_template_owned(name.to_owned(), source.to_owned())
        .map_err(|e| error(describe(&e, Some(source))))
}

/// A minijinja error for the owner: where, then what.
fn describe(e: &minijinja::Error, source: Option<&str>) -> String {
    let what = match e.kind() {
        ErrorKind::OutOfFuel => format!("the template runs too long (more than {FUEL} steps)"),
        kind => match e.detail() {
            Some(detail) => format!("{kind}: {detail}"),
            None => kind.to_string(),
        },
    };
    let column = e.range().zip(source).and_then(|(range, source)| {
        let before = source.get(..range.start)?;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Some(before[line_start..].chars().count() + 1)
    });
    match (e.line(), column) {
        (Some(line), Some(column)) => format!("line {line}, column {column}: {what}"),
        (Some(line), None) => format!("line {line}: {what}"),
        _ => what,
    }
}

fn serde_json_reason(e: &serde_json::Error) -> String {
    // serde_json's Display ends with " at line L column C", which is said already.
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(cut) => text[..cut].to_owned(),
        None => text,
    }
}

/// Whether a content type's body is JSON: `application/json` or `…+json`.
pub fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence.ends_with("+json")
}

/// A media type as `type/subtype[; parameters]`, in header-safe characters.
fn check_content_type(text: &str) -> Result<String, String> {
    let essence = text.split(';').next().unwrap_or_default().trim();
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    let valid = matches!(essence.split_once('/'), Some((kind, sub)) if token(kind) && token(sub));
    if !valid || text.len() > 200 || text.chars().any(|c| c.is_control()) {
        return Err(format!(
            "`{}` is not a media type such as application/json",
            super::chat::clip(text, 60)
        ));
    }
    Ok(text.to_owned())
}

/// The rendered output, refused past its cap.
struct Capped {
    bytes: Vec<u8>,
    max: usize,
    over: bool,
}

impl io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.bytes.len() + buf.len() > self.max {
            self.over = true;
            return Err(io::Error::other("output over its cap"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
