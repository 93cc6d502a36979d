//! Signing in and out, and the guard every other page passes.
//!
//! Signing in takes an API token (namespace or admin) in a form and checks it exactly as
//! an API call would. The browser then holds only a random session id, in an HttpOnly,
//! SameSite=Strict cookie scoped to the console; the database holds its hash, the token's
//! hash and a CSRF token. Every request re-checks the token (a revoked token ends its
//! sessions at once); every form that changes something carries the CSRF token, and a
//! request whose `Origin` is another site's is refused before that.

use axum::extract::{FromRequest, FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use rand::RngCore;
use serde::Deserialize;

use super::{BASE, Console, Failure, Page, page, views};
use crate::api::auth::caller_for_hash;
use crate::secret::{constant_time_eq, hash_token, hex};
use crate::store::{SessionRecord, now_ms};

/// The session cookie's name.
const COOKIE: &str = "hookline_session";
/// The sign-in form's own CSRF cookie (there is no session yet to hold one).
const SIGN_IN_COOKIE: &str = "hookline_sign_in";
/// How long a sign-in lasts.
pub(crate) const SESSION_TTL_MS: i64 = 8 * 3_600_000;
/// The form field that carries the CSRF token.
pub(crate) const CSRF_FIELD: &str = "csrf";

/// A signed-in browser, as every page sees it.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// Hash of the session id (the database key).
    id_hash: String,
    /// Hash of the API token it signed in with.
    pub(crate) token_hash: String,
    /// What forms must carry.
    pub(crate) csrf: String,
    /// Who: `acme` for a namespace token, empty for admin.
    pub(crate) namespace: Option<String>,
}

impl Session {
    /// Refuses a state-changing request without this session's CSRF token in `form`.
    pub(crate) fn check_csrf(&self, form: &[(String, String)]) -> Result<(), Failure> {
        let given = field(form, CSRF_FIELD);
        if given.is_empty() || !constant_time_eq(given.as_bytes(), self.csrf.as_bytes()) {
            return Err(Failure::Forbidden(
                "This form is missing its security token or it has expired. Go back, reload \
                 the page and try again."
                    .into(),
            ));
        }
        Ok(())
    }
}

/// A form posted by a signed-in session, its CSRF token checked (after the session's own
/// `Origin` check): what every state-changing page takes, so none can forget the check.
pub(crate) struct Posted {
    pub(crate) session: Session,
    /// The form's fields, in the order sent (read them with [`field`]).
    pub(crate) fields: Vec<(String, String)>,
}

impl FromRequest<Console> for Posted {
    type Rejection = Response;

    async fn from_request(request: Request, console: &Console) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let session = Session::from_request_parts(&mut parts, console)
            .await
            .map_err(IntoResponse::into_response)?;
        let axum::Form(fields) = axum::Form::<Vec<(String, String)>>::from_request(
            Request::from_parts(parts, body),
            console,
        )
        .await
        .map_err(IntoResponse::into_response)?;
        session
            .check_csrf(&fields)
            .map_err(IntoResponse::into_response)?;
        Ok(Posted { session, fields })
    }
}

/// The first value of a form field ("" when absent).
pub(crate) fn field<'a>(form: &'a [(String, String)], name: &str) -> &'a str {
    form.iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

/// A random 32-byte value, hex.
fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex(&bytes)
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, for the console's paths only, and
/// Secure when the browser reached us over HTTPS.
fn set_cookie(name: &str, value: &str, max_age_secs: i64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{name}={value}; Path={BASE}/; Max-Age={max_age_secs}; HttpOnly; SameSite=Strict{secure}"
    )
}

/// Whether the browser speaks HTTPS to us: through a TLS-terminating proxy that says so
/// (`X-Forwarded-Proto: https`). A client faking it only makes its own cookie stricter.
fn over_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// Refuses a request that says it comes from another site (`Origin`, sent by browsers
/// with every POST): the CSRF token is the main guard, this one costs nothing. The origin
/// must name the host the browser asked for: `Host`, or `X-Forwarded-Host` behind a proxy
/// that rewrites `Host`.
fn check_origin(parts: &Parts) -> Result<(), Failure> {
    let Some(origin) = parts.headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, host)| host);
    let hosts = [header::HOST.as_str(), "x-forwarded-host"]
        .into_iter()
        .filter_map(|name| parts.headers.get(name))
        .filter_map(|v| v.to_str().ok());
    let same = origin_host.is_some_and(|o| hosts.into_iter().any(|h| !h.is_empty() && h == o));
    if same {
        Ok(())
    } else {
        Err(Failure::Forbidden(
            "This request came from another site and was refused.".into(),
        ))
    }
}

impl FromRequestParts<Console> for Session {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Self, Failure> {
        let next = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .filter(|_| parts.method == axum::http::Method::GET)
            .unwrap_or_default();
        if parts.method != axum::http::Method::GET {
            check_origin(parts)?;
        }
        let sign_in = || Failure::SignIn { next: next.clone() };
        let id = cookie(&parts.headers, COOKIE).ok_or_else(sign_in)?;
        let id_hash = hash_token(id);
        let record = console
            .store
            .session(&id_hash, now_ms())
            .await
            .map_err(|e| Failure::Api(e.into()))?
            .ok_or_else(sign_in)?;
        let caller = match caller_for_hash(&console.store, &record.token_hash).await {
            Ok(caller) => caller,
            Err(status) if status.code() == tonic::Code::Unauthenticated => {
                // The token was revoked: the session goes with it.
                let _ = console.store.delete_session(&id_hash).await;
                return Err(sign_in());
            }
            Err(status) => return Err(Failure::Api(status)),
        };
        Ok(Session {
            id_hash,
            token_hash: record.token_hash,
            csrf: record.csrf,
            namespace: caller.scope().map(str::to_owned),
        })
    }
}

#[derive(Deserialize)]
pub(crate) struct SignInQuery {
    #[serde(default)]
    next: String,
}

/// Only a path of this console may be the place to go back to after signing in.
fn safe_next(next: &str) -> String {
    let inside =
        next.starts_with(&format!("{BASE}/")) && !next.contains("//") && !next.contains('\\');
    if inside {
        next.to_owned()
    } else {
        format!("{BASE}/webhooks")
    }
}

/// The sign-in form, with a fresh CSRF cookie of its own.
pub(crate) async fn sign_in_page(headers: HeaderMap, Query(query): Query<SignInQuery>) -> Response {
    sign_in_form(&headers, &query.next, None, StatusCode::OK)
}

fn sign_in_form(
    headers: &HeaderMap,
    next: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let csrf = random_hex();
    let mut response = page(status, views::sign_in(&safe_next(next), &csrf, error));
    if let Ok(value) = set_cookie(SIGN_IN_COOKIE, &csrf, 3600, over_https(headers)).parse() {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// Checks the token as an API call would, then starts a session.
pub(crate) async fn sign_in(
    State(console): State<Console>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Page {
    let next = field(&form, "next");
    let expected = cookie(&headers, SIGN_IN_COOKIE).unwrap_or_default();
    let given = field(&form, CSRF_FIELD);
    if expected.is_empty() || !constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        return Ok(sign_in_form(
            &headers,
            next,
            Some("The sign-in form expired. Please try again."),
            StatusCode::FORBIDDEN,
        ));
    }
    let token = field(&form, "token").trim();
    if token.is_empty() {
        return Ok(sign_in_form(
            &headers,
            next,
            Some("Enter an API token."),
            StatusCode::UNPROCESSABLE_ENTITY,
        ));
    }
    let token_hash = hash_token(token);
    let caller = match caller_for_hash(&console.store, &token_hash).await {
        Ok(caller) => caller,
        Err(status) if status.code() == tonic::Code::Unauthenticated => {
            tracing::info!("console sign-in refused");
            return Ok(sign_in_form(
                &headers,
                next,
                Some(
                    "That token is unknown, revoked, or a registry token. Use a namespace or \
                     admin token (`hookline tokens create --namespace NS`).",
                ),
                StatusCode::UNAUTHORIZED,
            ));
        }
        Err(status) => return Err(Failure::Api(status)),
    };
    let id = random_hex();
    let now = now_ms();
    let store = &console.store;
    let failed = |e: crate::store::StoreError| Failure::Api(e.into());
    store.prune_sessions(now).await.map_err(failed)?;
    store
        .create_session(
            &hash_token(&id),
            &SessionRecord {
                token_hash,
                csrf: random_hex(),
                expires_at: now + SESSION_TTL_MS,
            },
            now,
        )
        .await
        .map_err(failed)?;
    tracing::info!(token_id = %caller.token_id(), "console sign-in");
    let mut response = Redirect::to(&safe_next(next)).into_response();
    let secure = over_https(&headers);
    let cookies = [
        set_cookie(COOKIE, &id, SESSION_TTL_MS / 1000, secure),
        set_cookie(SIGN_IN_COOKIE, "", 0, secure),
    ];
    for value in cookies {
        if let Ok(value) = value.parse() {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    Ok(response)
}

/// Ends the session, here and in the database.
pub(crate) async fn sign_out(
    State(console): State<Console>,
    headers: HeaderMap,
    Posted { session, .. }: Posted,
) -> Page {
    console
        .store
        .delete_session(&session.id_hash)
        .await
        .map_err(|e| Failure::Api(e.into()))?;
    let mut response = Redirect::to(&format!("{BASE}/sign-in")).into_response();
    if let Ok(value) = set_cookie(COOKIE, "", 0, over_https(&headers)).parse() {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    Ok(response)
}

#[cfg(test)]
impl Session {
    /// A session for rendering tests (no database behind it).
    pub(crate) fn for_test(namespace: Option<&str>) -> Session {
        Session {
            id_hash: "id".into(),
            token_hash: "token".into(),
            csrf: "csrf-token".into(),
            namespace: namespace.map(str::to_owned),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_console_paths_are_places_to_go_back_to() {
        assert_eq!(
            safe_next("/console/deliveries?x=1"),
            "/console/deliveries?x=1"
        );
        for bad in [
            "https://evil.example/",
            "//evil.example/console/",
            "/console//evil",
            "/other",
            "",
        ] {
            assert_eq!(safe_next(bad), "/console/webhooks", "{bad}");
        }
    }

    #[test]
    fn forms_must_come_from_the_host_the_browser_asked_for() {
        let parts = |headers: &[(&str, &str)]| {
            let mut request = axum::http::Request::post("/console/webhooks");
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            request.body(()).unwrap().into_parts().0
        };
        let host = ("host", "hooks.example:50051");
        assert!(
            check_origin(&parts(&[host])).is_ok(),
            "no Origin: the CSRF token decides"
        );
        assert!(check_origin(&parts(&[host, ("origin", "http://hooks.example:50051")])).is_ok());
        for evil in [
            "https://evil.example",
            "null",
            "http://hooks.example:50051.evil",
        ] {
            assert!(
                check_origin(&parts(&[host, ("origin", evil)])).is_err(),
                "{evil}"
            );
        }
        // Behind a proxy that rewrites Host.
        let proxied = [
            ("host", "127.0.0.1:50051"),
            ("x-forwarded-host", "hooks.example"),
            ("origin", "https://hooks.example"),
        ];
        assert!(check_origin(&parts(&proxied)).is_ok());
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "a=1; hookline_session=abc; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&headers, COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, "missing"), None);
    }
}
