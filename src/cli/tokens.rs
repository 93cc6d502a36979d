//! `hookline tokens create|list|revoke`: the operator's bootstrap, straight on the database.
//!
//! A token is printed once, at creation, and only its SHA-256 hash is stored.

use anyhow::bail;
use clap::{ArgGroup, Subcommand};

use super::Output;
use crate::secret::{generate_token, hash_token};
use crate::store::{NewToken, Store, TokenKind, now_ms};

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Create a token and print it once.
    #[command(group(ArgGroup::new("kind").required(true).args(["registry", "namespace", "admin"])))]
    Create {
        /// A token for a registry to send notifications with; NAME identifies the registry.
        #[arg(long, value_name = "NAME")]
        registry: Option<String>,
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
            namespace,
            admin,
            output,
        } => {
            let (kind, subject) = match (registry, namespace, admin) {
                (Some(name), _, _) => (TokenKind::Registry, checked_name(&name, "--registry")?),
                (_, Some(ns), _) => (TokenKind::Namespace, checked_namespace(&ns)?),
                _ => (TokenKind::Admin, String::new()),
            };
            let token = generate_token();
            let record = NewToken {
                id: crate::ids::new_id("tok"),
                kind,
                subject,
                hash: hash_token(token.expose()),
                created_at: now_ms(),
            };
            store.insert_token(&record).await?;
            match output {
                Output::Json => println!(
                    "{}",
                    serde_json::json!({
                        "id": record.id, "kind": kind.as_str(), "subject": record.subject, "token": token.expose()
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
                                "created_at": t.created_at, "revoked_at": t.revoked_at
                            })
                        })
                        .collect();
                    println!("{}", serde_json::Value::Array(list));
                }
                Output::Table => {
                    println!(
                        "{:<36}  {:<9}  {:<24}  {:<10}",
                        "ID", "KIND", "SUBJECT", "STATE"
                    );
                    for t in &tokens {
                        let state = if t.revoked_at.is_some() {
                            "revoked"
                        } else {
                            "active"
                        };
                        println!(
                            "{:<36}  {:<9}  {:<24}  {:<10}",
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
