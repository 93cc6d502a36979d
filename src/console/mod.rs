//! The web console: server-rendered pages at `/console/` on the API port, for people who
//! would rather look than query.
//!
//! It is a client of the API's own service code, in process: every page calls the same
//! `WebhookService` / `DeliveryService` methods a gRPC client does, with the signed-in
//! session's token attached ([`SessionToken`]), so tenancy, validation, limits and errors
//! are the API's, with no second copy of any rule. A gRPC status becomes a page: field
//! violations beside their fields, NOT_FOUND a 404, UNAUTHENTICATED the sign-in page.
//!
//! `session.rs` signs people in and out and guards forms (CSRF: every POST handler takes
//! its `Posted`); `webhooks/` and `deliveries/` are the pages (each folder's `mod.rs` says
//! which file holds what); `live.rs` streams new attempts as server-sent events from the
//! live tail; `views.rs` holds the layout and shared pieces; `chart.rs` draws the SVG
//! chart. Every asset is in the binary (`assets/`): no CDN, no build step, and a
//! Content-Security-Policy that allows nothing but this origin's own files.

mod chart;
mod deliveries;
mod live;
mod session;
mod views;
mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{MethodRouter, get, post};
use maud::Markup;
use tonic::Code;

use crate::api::auth::SessionToken;
use crate::api::deliveries::DeliveryApi;
use crate::api::service::WebhookApi;
use crate::store::Store;
pub(crate) use session::Session;

/// Where the console lives.
pub(crate) const BASE: &str = "/console";

/// What every console handler shares: the store (sessions) and the API's services.
#[derive(Clone)]
pub(crate) struct Console {
    store: Store,
    webhooks: Arc<WebhookApi>,
    deliveries: Arc<DeliveryApi>,
}

impl Console {
    pub(crate) fn new(
        store: Store,
        webhooks: Arc<WebhookApi>,
        deliveries: Arc<DeliveryApi>,
    ) -> Console {
        Console {
            store,
            webhooks,
            deliveries,
        }
    }
}

/// The console's routes under [`BASE`], plus `/` sending browsers there. Unknown paths
/// under [`BASE`] get the console's 404; everything else is left to gRPC's router.
pub(crate) fn router(console: Console) -> Router {
    let home = || async { Redirect::to(&format!("{BASE}/webhooks")) };
    // Every console path under BASE, with what answers its GET and its POST.
    let routes: [(&str, MethodRouter<Console>); 21] = [
        ("", get(home)),
        ("/", get(home)),
        (
            "/sign-in",
            get(session::sign_in_page).post(session::sign_in),
        ),
        ("/sign-out", post(session::sign_out)),
        ("/webhooks", get(webhooks::list).post(webhooks::create)),
        ("/webhooks/new", get(webhooks::new_form)),
        ("/webhooks/preview", post(webhooks::preview_new)),
        ("/webhooks/{id}/preview", post(webhooks::preview_edit)),
        ("/webhooks/{id}", get(webhooks::show)),
        (
            "/webhooks/{id}/edit",
            get(webhooks::edit_form).post(webhooks::update),
        ),
        ("/webhooks/{id}/enabled", post(webhooks::set_enabled)),
        ("/webhooks/{id}/rotate", post(webhooks::rotate)),
        ("/webhooks/{id}/test", post(webhooks::test)),
        (
            "/webhooks/{id}/delete",
            get(webhooks::delete_form).post(webhooks::delete),
        ),
        ("/webhooks/{id}/replay", post(deliveries::replay)),
        ("/deliveries", get(deliveries::list)),
        ("/deliveries/{id}", get(deliveries::show)),
        ("/deliveries/{id}/redeliver", post(deliveries::redeliver)),
        ("/live", get(live::stream)),
        ("/assets/{name}", get(asset)),
        ("/{*rest}", get(not_found).post(not_found)),
    ];
    routes
        .into_iter()
        .fold(Router::new(), |router, (path, methods)| {
            router.route(&format!("{BASE}{path}"), methods)
        })
        .route("/", get(home))
        .with_state(console)
        .layer(axum::middleware::from_fn(security_headers))
}

async fn not_found() -> Failure {
    Failure::NotFound
}

/// The only sources a console page may load anything from: this origin's own assets.
/// Inline scripts and styles are refused, so injected markup could not run or restyle.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Headers on every console response: the CSP, no framing, no sniffing, no referrer to
/// other sites, and
/// pages never cached (they show per-tenant data; assets set their own caching).
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let fixed = [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        // Not `no-referrer`: browsers would then send `Origin: null` with our own forms.
        (header::REFERRER_POLICY, "same-origin"),
        (
            header::HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// The console's own static files, compiled into the binary.
async fn asset(axum::extract::Path(name): axum::extract::Path<String>) -> Response {
    let (body, content_type): (&'static str, &str) = match name.as_str() {
        "console.css" => (
            include_str!("assets/console.css"),
            "text/css; charset=utf-8",
        ),
        "console.js" => (
            include_str!("assets/console.js"),
            "text/javascript; charset=utf-8",
        ),
        "icon.svg" => (include_str!("assets/icon.svg"), "image/svg+xml"),
        _ => return Failure::NotFound.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            // Assets change only with the binary; an hour keeps upgrades visible soon.
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// Why a console request did not get its page.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Not signed in (or the session or its token ended): to the sign-in page, then back.
    SignIn { next: String },
    /// Absent, or another tenant's: the same 404 either way.
    NotFound,
    /// A form without the session's CSRF token, or from another origin.
    Forbidden(String),
    /// Input the API refused, for a page without a form to show it on.
    BadRequest(String),
    /// Any other API status, shown with its message.
    Api(tonic::Status),
}

impl From<tonic::Status> for Failure {
    fn from(status: tonic::Status) -> Failure {
        match status.code() {
            Code::NotFound => Failure::NotFound,
            Code::Unauthenticated => Failure::SignIn {
                next: String::new(),
            },
            Code::InvalidArgument => Failure::BadRequest(status.message().to_owned()),
            _ => Failure::Api(status),
        }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let (status, title, message) = match self {
            Failure::SignIn { next } => {
                let to = if next.is_empty() {
                    format!("{BASE}/sign-in")
                } else {
                    format!("{BASE}/sign-in?next={}", views::query_escape(&next))
                };
                return Redirect::to(&to).into_response();
            }
            Failure::NotFound => (
                StatusCode::NOT_FOUND,
                "Not found",
                "There is nothing here, or it is not yours to see.".to_owned(),
            ),
            Failure::Forbidden(why) => (StatusCode::FORBIDDEN, "Refused", why),
            Failure::BadRequest(why) => (StatusCode::BAD_REQUEST, "Not accepted", why),
            Failure::Api(status) => {
                let http = match status.code() {
                    Code::FailedPrecondition | Code::AlreadyExists | Code::Aborted => {
                        StatusCode::CONFLICT
                    }
                    Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
                    Code::PermissionDenied => StatusCode::FORBIDDEN,
                    Code::Unavailable | Code::DeadlineExceeded => StatusCode::SERVICE_UNAVAILABLE,
                    _ => StatusCode::INTERNAL_SERVER_ERROR,
                };
                let message = if http == StatusCode::INTERNAL_SERVER_ERROR {
                    tracing::error!(code = ?status.code(), message = status.message(), "console request failed");
                    "Something went wrong on the server; the error is in its log.".to_owned()
                } else {
                    status.message().to_owned()
                };
                (http, "Not done", message)
            }
        };
        (status, views::error_page(title, &message)).into_response()
    }
}

/// A page, or why not.
pub(crate) type Page = Result<Response, Failure>;

/// A rendered page with its status.
pub(crate) fn page(status: StatusCode, markup: Markup) -> Response {
    (status, markup).into_response()
}

/// A signed-in page of one section of the navigation, answered 200 OK.
pub(crate) fn shown(
    session: &Session,
    section: views::Section,
    title: &str,
    notice: Option<&views::Notice>,
    content: Markup,
) -> Page {
    let markup = views::layout(title, Some(session), Some(section), notice, content);
    Ok(page(StatusCode::OK, markup))
}

/// Back to a console page after an action (303 See Other); `path` is under [`BASE`].
pub(crate) fn back_to(path: &str) -> Page {
    Ok(Redirect::to(&format!("{BASE}{path}")).into_response())
}

/// A request to the API's services on behalf of a session.
pub(crate) fn call<T>(session: &Session, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .extensions_mut()
        .insert(SessionToken(session.token_hash.clone()));
    request
}
