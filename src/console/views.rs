//! The layout every console page shares, and the small pieces pages repeat: status
//! badges, times people can read, the CSRF field, notices after an action.

use maud::{DOCTYPE, Markup, html};

use super::BASE;
use super::session::{CSRF_FIELD, Session};
use crate::api::proto::{self, DeliveryStatus};
use crate::present::{age_text, time_text};

/// Which section of the navigation a page belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Webhooks,
    Deliveries,
}

/// A full page: head, navigation (when signed in), an optional notice, the content.
pub(crate) fn layout(
    title: &str,
    session: Option<&Session>,
    section: Option<Section>,
    notice: Option<&Notice>,
    content: Markup,
) -> Markup {
    let nav = |to: Section, label: &str, path: &str| {
        html! {
            a href=(format!("{BASE}{path}")) aria-current=[(section == Some(to)).then_some("page")] { (label) }
        }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " · hookline" }
                link rel="stylesheet" href=(format!("{BASE}/assets/console.css"));
                link rel="icon" type="image/svg+xml" href=(format!("{BASE}/assets/icon.svg"));
                script src=(format!("{BASE}/assets/console.js")) defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href=(format!("{BASE}/webhooks")) {
                        img src=(format!("{BASE}/assets/icon.svg")) alt="" width="22" height="22";
                        span { "hookline" }
                    }
                    @if let Some(session) = session {
                        nav aria-label="Main" {
                            (nav(Section::Webhooks, "Webhooks", "/webhooks"))
                            (nav(Section::Deliveries, "Deliveries", "/deliveries"))
                        }
                        div.who {
                            span.scope {
                                @match &session.namespace {
                                    Some(ns) => { "namespace " strong { (ns) } }
                                    None => { strong { "admin" } " (every namespace)" }
                                }
                            }
                            form method="post" action=(format!("{BASE}/sign-out")) {
                                (csrf_field(session))
                                button.link type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main id="main" tabindex="-1" {
                    @if let Some(notice) = notice {
                        div class=(format!("notice {}", notice.kind)) role="status" { (notice.text) }
                    }
                    (content)
                }
            }
        }
    }
}

/// The hidden CSRF field every state-changing form carries.
pub(crate) fn csrf_field(session: &Session) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(session.csrf); }
}

/// A message at the top of a page after an action.
pub(crate) struct Notice {
    /// `ok`, `warn` or `error`: the colour.
    pub kind: &'static str,
    pub text: String,
}

impl Notice {
    pub(crate) fn ok(text: impl Into<String>) -> Notice {
        Notice {
            kind: "ok",
            text: text.into(),
        }
    }
    pub(crate) fn warn(text: impl Into<String>) -> Notice {
        Notice {
            kind: "warn",
            text: text.into(),
        }
    }
    pub(crate) fn error(text: impl Into<String>) -> Notice {
        Notice {
            kind: "error",
            text: text.into(),
        }
    }
}

/// The notice a redirect after an action asks for (`?done=…&n=…`): fixed texts only, so
/// a crafted link cannot put words on the page.
pub(crate) fn notice_for(done: &str, n: i64) -> Option<Notice> {
    let text = match done {
        "created" => "Webhook created.".to_owned(),
        "saved" => "Changes saved.".to_owned(),
        "enabled" => "Webhook enabled: deliveries flow again.".to_owned(),
        "disabled" => "Webhook disabled: nothing is sent until it is enabled.".to_owned(),
        "deleted" => "Webhook deleted.".to_owned(),
        "tested" => "Test ping queued: it appears below when it is sent.".to_owned(),
        "redelivered" => "Redelivery queued: the new attempt appears below.".to_owned(),
        "expedited" => "The waiting retry was made due now.".to_owned(),
        "in_flight" => "An attempt is in flight right now; nothing more was queued.".to_owned(),
        "replayed" => format!(
            "Replay queued {n} deliver{}.",
            if n == 1 { "y" } else { "ies" }
        ),
        "replayed_more" => format!(
            "Replay queued {n} deliveries, the most one request may; replay again from the last \
             one to queue the rest."
        ),
        _ => return None,
    };
    Some(Notice::ok(text))
}

/// A page saying why something could not be shown or done.
pub(crate) fn error_page(title: &str, message: &str) -> Markup {
    layout(
        title,
        None,
        None,
        None,
        html! {
            section.panel.narrow {
                h1 { (title) }
                p { (message) }
                p { a href=(format!("{BASE}/webhooks")) { "Back to the webhooks" } }
            }
        },
    )
}

/// The sign-in page.
pub(crate) fn sign_in(next: &str, csrf: &str, error: Option<&str>) -> Markup {
    let notice = error.map(Notice::error);
    layout(
        "Sign in",
        None,
        None,
        notice.as_ref(),
        html! {
            section.panel.narrow {
                h1 { "Sign in" }
                p.muted {
                    "Use an API token: a namespace token shows that namespace's webhooks, an admin "
                    "token every namespace's. An operator makes one with "
                    code { "hookline tokens create --namespace NS" } "."
                }
                form method="post" action=(format!("{BASE}/sign-in")) {
                    input type="hidden" name=(CSRF_FIELD) value=(csrf);
                    input type="hidden" name="next" value=(next);
                    div.field {
                        label for="token" { "API token" }
                        input #token type="password" name="token" autocomplete="current-password"
                            required autofocus spellcheck="false" placeholder="hl_…";
                    }
                    button.primary type="submit" { "Sign in" }
                }
            }
        },
    )
}

/// A delivery status as the badge people see.
pub(crate) fn status_badge(status: i32) -> Markup {
    let (class, text) = status_words(status);
    html! { span class=(format!("badge {class}")) { (text) } }
}

/// A delivery status's class and word.
pub(crate) fn status_words(status: i32) -> (&'static str, &'static str) {
    match DeliveryStatus::try_from(status).unwrap_or(DeliveryStatus::Unspecified) {
        DeliveryStatus::Succeeded => ("ok", "succeeded"),
        DeliveryStatus::Failed => ("bad", "failed"),
        DeliveryStatus::Retrying => ("warn", "retrying"),
        DeliveryStatus::Pending => ("info", "pending"),
        DeliveryStatus::Unspecified => ("info", "unknown"),
    }
}

/// An attempt's outcome as a badge.
pub(crate) fn outcome_badge(outcome: &str) -> Markup {
    let class = match outcome {
        "succeeded" => "ok",
        "retry" => "warn",
        _ => "bad",
    };
    html! { span class=(format!("badge {class}")) { (outcome) } }
}

/// A time as "3m ago", with the exact time for hover and machines ("never" when unset).
pub(crate) fn when(t: Option<&prost_types::Timestamp>) -> Markup {
    match t {
        None => html! { span.muted { "never" } },
        Some(_) => {
            let exact = time_text(t);
            html! { time datetime=(exact) title=(exact) { (age_text(t)) " ago" } }
        }
    }
}

/// A time in the future as "in 3m" (or "now" when already due).
pub(crate) fn until(t: Option<&prost_types::Timestamp>) -> Markup {
    let Some(t) = t else {
        return html! { span.muted { "-" } };
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let exact = time_text(Some(t));
    let secs = t.seconds - now;
    let text = match secs {
        ..=0 => "now".to_owned(),
        1..60 => format!("in {secs}s"),
        60..3600 => format!("in {}m", secs / 60),
        _ => format!("in {}h", secs / 3600),
    };
    html! { time datetime=(exact) title=(exact) { (text) } }
}

/// Percent-encodes a query value.
pub(crate) fn query_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `repository:tag` as code.
pub(crate) fn target(repository: &str, tag: &str) -> Markup {
    html! { code.target { (crate::present::target_text(repository, tag)) } }
}

/// An event type number as its name.
pub(crate) fn event_type_name(value: i32) -> String {
    crate::present::event_names(&[value])
        .pop()
        .unwrap_or_default()
}

/// The webhook's name, or its id when it has none.
pub(crate) fn webhook_title(w: &proto::Webhook) -> &str {
    if w.name.is_empty() { &w.id } else { &w.name }
}
