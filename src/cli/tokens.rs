//! `hookline tokens create|list|revoke`: the operator's bootstrap, straight on the database.
//!
//! A token is printed once, at creation, and only its SHA-256 hash is stored.

use anyhow::bail;
use clap::{ArgGroup, Subcommand};

use super::Output;
use crate::secret::{Secret, generate_token, hash_token};
use crate::store::{NewToken, RegistryAccess, Store, TokenKind, now_ms};

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Create a token and print it once.
    #[command(group(ArgGroup::new("kind").required(true).args(["registry", "namespace", "admin"])))]
    Create {
        /// A token for a registry to send notifications with; NAME identifies the registry.
        #[arg(long, value_name = "NAME")]
        registry: Option<String>,
        /// With --registry: the registry's base URL (such as https://registry.example:5000),
        /// where hookline reads pushed manifests to enrich `image.pushed` events.
        #[arg(long, value_name = "URL", requires = "registry")]
        registry_url: Option<String>,
        /// With --registry-url: a read-only user name for reading the registry.
        #[arg(long, value_name = "USER", requires = "registry_url")]
        registry_username: Option<String>,
        /// With --registry-username: a file holding its password (one line). Sealed in the
        /// database like webhook secrets; use a read-only account all the same.
        #[arg(long, value_name = "FILE", requires = "registry_username")]
        registry_password_file: Option<std::path::PathBuf>,
        /// An API token confined to one namespace (a repository prefix such as `acme`).
        #[arg(long, value_name = "NAMESPACE")]
        namespace: Option<String>,
        /// An API token that sees every namespace.
        #[arg(long)]
        admin: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// List tokens (never the tokens themselves).
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Revoke a token by id; it stops working at once (registry tokens within 5 s).
    Revoke {
        /// The token's id (`tok_…`, see `tokens list`).
        id: String,
    },
}

pub async fn run(command: TokensCommand, store: &Store) -> anyhow::Result<()> {
    match command {
        TokensCommand::Create {
            registry,
            registry_url,
            registry_username,
            registry_password_file,
            namespace,
            admin,
            output,
        } => {
            let (kind, subject) = match (registry, namespace, admin) {
                (Some(name), _, _) => (TokenKind::Registry, checked_name(&name, "--registry")?),
                (_, Some(ns), _) => (TokenKind::Namespace, checked_namespace(&ns)?),
                _ => (TokenKind::Admin, String::new()),
            };
            let access = registry_access(
                registry_url,
                registry_username,
                registry_password_file.as_deref(),
            )?;
            let token = generate_token();
            let record = NewToken {
                id: crate::ids::new_id("tok"),
                kind,
                subject,
                hash: hash_token(token.expose()),
                created_at: now_ms(),
                registry: access,
            };
            store.insert_token(&record).await?;
            match output {
                Output::Json => println!(
                    "{}",
                    serde_json::json!({
                        "id": record.id, "kind": kind.as_str(), "subject": record.subject, "token": token.expose(),
                        "registry_url": record.registry.as_ref().map(|r| &r.url),
                        "registry_credentials": record.registry.as_ref().is_some_and(|r| r.username.is_some()),
                    })
                ),
                Output::Table => {
                    println!("{}", token.expose());
                    eprintln!(
                        "created {} token {}{}; store it now, it is not shown again",
                        kind.as_str(),
                        record.id,
                        if record.subject.is_empty() {
                            String::new()
                        } else {
                            format!(" for `{}`", record.subject)
                        }
                    );
                }
            }
            Ok(())
        }
        TokensCommand::List { output } => {
            let tokens = store.list_tokens().await?;
            match output {
                Output::Json => {
                    let list: Vec<_> = tokens
                        .iter()
                        .map(|t| {
                            serde_json::json!({
                                "id": t.id, "kind": t.kind, "subject": t.subject,
                                "created_at": t.created_at, "revoked_at": t.revoked_at,
                                "registry_url": t.registry_url,
                                "registry_credentials": t.registry_credentials,
                            })
                        })
                        .collect();
                    println!("{}", serde_json::Value::Array(list));
                }
                Output::Table => {
                    println!(
                        "{:<36}  {:<9}  {:<24}  {:<10}  REGISTRY",
                        "ID", "KIND", "SUBJECT", "STATE"
                    );
                    for t in &tokens {
                        let state = if t.revoked_at.is_some() {
                            "revoked"
                        } else {
                            "active"
                        };
                        // The URL and whether credentials are stored; never the credentials.
                        let registry = match (&t.registry_url, t.registry_credentials) {
                            (Some(url), true) => format!("{url} (with credentials)"),
                            (Some(url), false) => format!("{url} (anonymous)"),
                            (None, _) => "-".to_owned(),
                        };
                        println!(
                            "{:<36}  {:<9}  {:<24}  {:<10}  {registry}",
                            t.id, t.kind, t.subject, state
                        );
                    }
                }
            }
            Ok(())
        }
        TokensCommand::Revoke { id } => {
            if store.revoke_token(&id, now_ms()).await? {
                println!("revoked {id}");
                Ok(())
            } else {
                bail!("no active token has id `{id}`; see `hookline tokens list`")
            }
        }
    }
}

/// The registry access of `tokens create --registry-url …`: a checked URL, and the password
/// read from its file (whose content never appears in an error).
fn registry_access(
    url: Option<String>,
    username: Option<String>,
    password_file: Option<&std::path::Path>,
) -> anyhow::Result<Option<RegistryAccess>> {
    let Some(url) = url else {
        return Ok(None);
    };
    let url = match crate::registry::check_base_url(&url) {
        Ok(url) => url,
        Err(reason) => bail!("--registry-url: {reason}"),
    };
    let password = match (&username, password_file) {
        (Some(_), Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                anyhow::anyhow!(
                    "--registry-password-file: cannot read {}: {e}",
                    path.display()
                )
            })?;
            let password = text.trim_end_matches(['\r', '\n']);
            if password.is_empty() {
                bail!("--registry-password-file: {} is empty", path.display());
            }
            Some(Secret::new(password))
        }
        (Some(_), None) => bail!(
            "--registry-username needs --registry-password-file (a file holding the password)"
        ),
        (None, _) => None,
    };
    Ok(Some(RegistryAccess {
        url,
        username,
        password,
    }))
}

/// A registry name: 1–64 of `a-z 0-9 . _ -`.
fn checked_name(name: &str, flag: &str) -> anyhow::Result<String> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if !ok {
        bail!("{flag} must be 1 to 64 characters of a-z, 0-9, '.', '_' or '-' (got `{name}`)");
    }
    Ok(name.to_owned())
}

/// A namespace: a repository path prefix such as `acme` or `acme/tools`.
fn checked_namespace(ns: &str) -> anyhow::Result<String> {
    let ok = (1..=255).contains(&ns.len())
        && ns.split('/').all(|c| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        });
    if !ok {
        bail!(
            "--namespace must be a repository path prefix like `acme` or `acme/tools` (lowercase, no leading or trailing `/`; got `{ns}`)"
        );
    }
    Ok(ns.to_owned())
}
