//! Tokens and registry sources: what a token grants (`TokenKind`), a token to store and
//! one as listed, and how hookline reads a registry source's registry to enrich its events
//! (`RegistrySource`, with `RegistryAccess` from `crate::enrichment`). Plain data; a token's secret is never here, only
//! its hash.

pub use crate::enrichment::RegistryAccess;

/// What a token lets its bearer do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A registry posting notifications to the ingest endpoint.
    Registry,
    /// An API client confined to one namespace.
    Namespace,
    /// An API client that sees every namespace.
    Admin,
}

impl TokenKind {
    /// The name stored in the `tokens.kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Registry => "registry",
            TokenKind::Namespace => "namespace",
            TokenKind::Admin => "admin",
        }
    }

    /// Parses a stored kind.
    pub fn parse(s: &str) -> Option<TokenKind> {
        match s {
            "registry" => Some(TokenKind::Registry),
            "namespace" => Some(TokenKind::Namespace),
            "admin" => Some(TokenKind::Admin),
            _ => None,
        }
    }
}

/// A token to store. The token itself is never stored, only its hash.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// Public id, used to list and revoke it.
    pub id: String,
    /// What it grants.
    pub kind: TokenKind,
    /// Registry name, namespace, or empty for admin.
    pub subject: String,
    /// SHA-256 of the token, hex.
    pub hash: String,
    /// Creation time.
    pub created_at: i64,
    /// For a registry token: how hookline reads that registry to enrich its events.
    pub registry: Option<RegistryAccess>,
}

/// A registry source (a registry token's name) with the access hookline has to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrySource {
    /// The source name, as `events.source`.
    pub source: String,
    /// How to read it.
    pub access: RegistryAccess,
}

/// A stored token, without its hash.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TokenRecord {
    /// Public id.
    pub id: String,
    /// `registry`, `namespace` or `admin`.
    pub kind: String,
    /// Registry name, namespace, or empty for admin.
    pub subject: String,
    /// Creation time.
    pub created_at: i64,
    /// When it was revoked, if it was.
    pub revoked_at: Option<i64>,
    /// The registry's base URL, for a registry token that has one (listings only).
    #[sqlx(default)]
    pub registry_url: Option<String>,
    /// Whether registry credentials are stored (never the credentials; listings only).
    #[sqlx(default)]
    pub registry_credentials: bool,
}
