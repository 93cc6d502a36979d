//! Who is calling: bearer tokens and the namespace they confine the caller to.
//!
//! Every RPC starts with [`authenticate`]: the `authorization: Bearer <token>` metadata is
//! hashed and looked up among live `namespace` and `admin` tokens, on every call (no
//! cache), so a revoked token stops working at once. Registry tokens are not API tokens.
//! The resulting [`Caller`] answers "may I see this namespace?"; callers of it turn a
//! "no" into NOT_FOUND, never PERMISSION_DENIED.

use tonic::{Request, Status};

use crate::secret::hash_token;
use crate::store::{Store, TokenKind};

/// An authenticated API client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Caller {
    /// Sees every namespace.
    Admin {
        /// The token's public id, for logs.
        token_id: String,
    },
    /// Sees one namespace and the namespaces below it.
    Namespace {
        /// The token's public id, for logs.
        token_id: String,
        /// The namespace, e.g. `acme`.
        namespace: String,
    },
}

impl Caller {
    /// The token's public id (never the token).
    pub(crate) fn token_id(&self) -> &str {
        match self {
            Caller::Admin { token_id } | Caller::Namespace { token_id, .. } => token_id,
        }
    }

    /// The namespace the caller is confined to; None for admin.
    pub(crate) fn scope(&self) -> Option<&str> {
        match self {
            Caller::Admin { .. } => None,
            Caller::Namespace { namespace, .. } => Some(namespace),
        }
    }

    /// Whether the caller may see and change webhooks of `namespace`.
    pub(crate) fn sees(&self, namespace: &str) -> bool {
        match self.scope() {
            None => true,
            Some(scope) => within(scope, namespace),
        }
    }
}

/// Whether `path` is `namespace` itself or lies below it at a `/` (`acme` holds
/// `acme/tools` but not `acmecorp`); `""` holds everything.
pub(crate) fn within(namespace: &str, path: &str) -> bool {
    namespace.is_empty()
        || path
            .strip_prefix(namespace)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Set by the web console on the requests it hands the services in-process for a
/// signed-in browser: the hash of the API token the session signed in with. Only server
/// code can put it there (request extensions are Rust values, never read off the wire).
#[derive(Debug, Clone)]
pub(crate) struct SessionToken(pub(crate) String);

/// Authenticates a request by its bearer token (or the console session's token).
pub(crate) async fn authenticate<T>(store: &Store, request: &Request<T>) -> Result<Caller, Status> {
    if let Some(SessionToken(hash)) = request.extensions().get::<SessionToken>() {
        return caller_for_hash(store, hash).await;
    }
    let Some(value) = request.metadata().get("authorization") else {
        return Err(Status::unauthenticated(
            "missing `authorization: Bearer <token>`; an operator creates tokens with \
             `hookline tokens create --namespace NS`",
        ));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            Status::unauthenticated("the authorization metadata must be `Bearer <token>`")
        })?;
    caller_for_hash(store, &hash_token(token)).await
}

/// The caller a live API token (given by its hash) stands for: on every call, so a
/// revoked token stops working at once.
pub(crate) async fn caller_for_hash(store: &Store, hash: &str) -> Result<Caller, Status> {
    let refused = || Status::unauthenticated("the token is unknown or revoked");
    let record = store.find_token(hash).await?.ok_or_else(refused)?;
    match TokenKind::parse(&record.kind) {
        Some(TokenKind::Admin) => Ok(Caller::Admin {
            token_id: record.id,
        }),
        Some(TokenKind::Namespace) => Ok(Caller::Namespace {
            token_id: record.id,
            namespace: record.subject,
        }),
        Some(TokenKind::Registry) => Err(Status::unauthenticated(
            "a registry token cannot call the API; use a `--namespace` or `--admin` token",
        )),
        None => Err(refused()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_hold_their_subpaths_only() {
        assert!(within("acme", "acme"));
        assert!(within("acme", "acme/tools"));
        assert!(within("acme", "acme/tools/app"));
        assert!(!within("acme", "acmecorp"));
        assert!(!within("acme", "acmecorp/app"));
        assert!(!within("acme/tools", "acme"));
        assert!(!within("acme", ""));
        assert!(within("", "anything"));
        assert!(within("", ""));
    }

    #[test]
    fn admins_see_everything_tenants_their_subtree() {
        let admin = Caller::Admin {
            token_id: "tok_a".into(),
        };
        let acme = Caller::Namespace {
            token_id: "tok_b".into(),
            namespace: "acme".into(),
        };
        assert!(admin.sees("") && admin.sees("other"));
        assert!(acme.sees("acme/tools"));
        assert!(!acme.sees("") && !acme.sees("acmecorp") && !acme.sees("other"));
    }
}
