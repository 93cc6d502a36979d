//! `hookline webhooks create|list|get|update|delete|rotate-secret|test`: gRPC clients of
//! the API. Tables for people, `--output json` for scripts.
//!
//! A webhook's secret is printed by `create` and `rotate-secret` only, on stdout, once;
//! everything else about it goes through the API's own rules (validation happens on the
//! server, so the CLI and other clients can never disagree).

use anyhow::{Context, bail};
use clap::{ArgGroup, Args, Subcommand};
use prost_types::FieldMask;
use serde_json::json;

use super::Output;
use super::client::{Client, ClientArgs};
use super::show::{event_names, health_state, print_webhook, time_text, webhook_json};
use crate::api::convert::{FORMATS, event_type_to_proto, format_to_proto};
use crate::api::proto;
use crate::config::HumanDuration;
use crate::event::EventType;
use crate::secret::Secret;

/// `hookline webhooks …`
#[derive(Debug, Args)]
pub struct WebhooksArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: WebhooksCommand,
}

#[derive(Debug, Subcommand)]
enum WebhooksCommand {
    /// Register a webhook and print its signing secret (shown this once).
    Create(Box<CreateArgs>),
    /// List webhooks: every page, or one page with --page-size.
    List(ListArgs),
    /// Show one webhook.
    Get {
        /// The webhook's id (`wh_…`).
        id: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Change a webhook: only the options given change.
    Update(Box<UpdateArgs>),
    /// Delete a webhook and its secrets; its pending deliveries are not sent.
    Delete {
        /// The webhook's id.
        id: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Make a new signing secret current and print it; the old one stays valid for --grace.
    RotateSecret {
        /// The webhook's id.
        id: String,
        /// How long the previous secret stays valid (default 24h, at most 30d).
        #[arg(long)]
        grace: Option<HumanDuration>,
        /// The new secret (`whsec_…`); generated when not given.
        #[arg(long)]
        secret: Option<Secret>,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Send a `ping` event to the webhook through the normal delivery path.
    Test {
        /// The webhook's id.
        id: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
}

#[derive(Debug, Args)]
struct CreateArgs {
    /// A name for people.
    #[arg(long)]
    name: String,
    /// Where deliveries are POSTed (http or https).
    #[arg(long)]
    url: String,
    /// Namespace (repository prefix); defaults to the token's. Admin tokens must give one ("" = every repository).
    #[arg(long)]
    namespace: Option<String>,
    /// Event type to deliver, repeatable (default: every type but the blob events and
    /// manifest.pushed, which come only when named).
    #[arg(long = "event-type", value_name = "TYPE", value_parser = parse_event_type)]
    event_types: Vec<i32>,
    /// Repository glob inside the namespace, repeatable (`acme/*`, `acme/tools/**`).
    #[arg(long = "repository", value_name = "GLOB")]
    repositories: Vec<String>,
    /// Tag glob, repeatable (`v*`); when given, only tagged events whose tag matches.
    #[arg(long = "tag", value_name = "GLOB")]
    tags: Vec<String>,
    /// Payload format: hookline, cloudevents, dockerhub, harbor, distribution.
    #[arg(long, default_value = "hookline", value_parser = parse_format)]
    format: i32,
    /// Custom header sent with every delivery, repeatable.
    #[arg(long = "header", value_name = "NAME=VALUE", value_parser = parse_header)]
    headers: Vec<(String, String)>,
    /// Deliver one repository:tag's events one at a time, in order.
    #[arg(long)]
    ordered: bool,
    /// Also sign GitHub-style in this header (`X-Signature`, `X-Hub-Signature-256`): `sha256=<hex>`.
    #[arg(long, value_name = "NAME")]
    signature_header: Option<String>,
    /// dockerhub format: whether `repo_name` starts with the registry host (default: yes, unless Docker Hub).
    #[arg(long, value_name = "BOOL")]
    include_host_in_repo_name: Option<bool>,
    /// harbor format: deliver deletes too, as DELETE_ARTIFACT.
    #[arg(long)]
    harbor_deletes: bool,
    /// At most this many requests in flight to it at once (a ceiling for its adaptive window).
    #[arg(long, value_name = "N")]
    max_concurrency: Option<i32>,
    /// At most this many deliveries per second to it (0.5: one every two seconds).
    #[arg(long, value_name = "PER_SECOND")]
    rate_limit: Option<f64>,
    /// Create it disabled.
    #[arg(long)]
    disabled: bool,
    /// Signing secret (`whsec_…`); generated when not given.
    #[arg(long)]
    secret: Option<Secret>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

#[derive(Debug, Args)]
struct ListArgs {
    /// Only this namespace and those below it.
    #[arg(long)]
    namespace: Option<String>,
    /// Only enabled (true) or disabled (false) webhooks.
    #[arg(long, value_name = "BOOL")]
    enabled: Option<bool>,
    /// Only names containing this text.
    #[arg(long)]
    name_contains: Option<String>,
    /// Only URLs containing this text.
    #[arg(long)]
    url_contains: Option<String>,
    /// Fetch one page of this size (1–500) and print the next page's token.
    #[arg(long)]
    page_size: Option<i32>,
    /// Continue from this page token.
    #[arg(long)]
    page_token: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("state").args(["enable", "disable"])))]
struct UpdateArgs {
    /// The webhook's id.
    id: String,
    /// New name.
    #[arg(long)]
    name: Option<String>,
    /// New URL.
    #[arg(long)]
    url: Option<String>,
    /// Replace the event types, repeatable.
    #[arg(long = "event-type", value_name = "TYPE", value_parser = parse_event_type)]
    event_types: Vec<i32>,
    /// Clear the event types (every non-blob type).
    #[arg(long, conflicts_with = "event_types")]
    no_event_types: bool,
    /// Replace the repository globs, repeatable.
    #[arg(long = "repository", value_name = "GLOB")]
    repositories: Vec<String>,
    /// Clear the repository globs (the whole namespace).
    #[arg(long, conflicts_with = "repositories")]
    no_repositories: bool,
    /// Replace the tag globs, repeatable.
    #[arg(long = "tag", value_name = "GLOB")]
    tags: Vec<String>,
    /// Clear the tag globs (any tag or none).
    #[arg(long, conflicts_with = "tags")]
    no_tags: bool,
    /// New payload format.
    #[arg(long, value_parser = parse_format)]
    format: Option<i32>,
    /// Replace the custom headers, repeatable.
    #[arg(long = "header", value_name = "NAME=VALUE", value_parser = parse_header)]
    headers: Vec<(String, String)>,
    /// Remove every custom header.
    #[arg(long, conflicts_with = "headers")]
    no_headers: bool,
    /// Ordered delivery on or off.
    #[arg(long, value_name = "BOOL")]
    ordered: Option<bool>,
    /// Also sign GitHub-style in this header (`X-Signature`, `X-Hub-Signature-256`).
    #[arg(long, value_name = "NAME")]
    signature_header: Option<String>,
    /// Stop sending the GitHub-style signature header.
    #[arg(long, conflicts_with = "signature_header")]
    no_signature_header: bool,
    /// dockerhub format: whether `repo_name` starts with the registry host.
    #[arg(long, value_name = "BOOL")]
    include_host_in_repo_name: Option<bool>,
    /// harbor format: deliver deletes too (true) or pushes only (false).
    #[arg(long, value_name = "BOOL")]
    harbor_deletes: Option<bool>,
    /// At most this many requests in flight to it at once.
    #[arg(long, value_name = "N")]
    max_concurrency: Option<i32>,
    /// Remove the ceiling on requests in flight (the adaptive window decides alone).
    #[arg(long, conflicts_with = "max_concurrency")]
    no_max_concurrency: bool,
    /// At most this many deliveries per second to it.
    #[arg(long, value_name = "PER_SECOND")]
    rate_limit: Option<f64>,
    /// Remove the rate limit.
    #[arg(long, conflicts_with = "rate_limit")]
    no_rate_limit: bool,
    /// Enable (clears the reason hookline disabled it for).
    #[arg(long)]
    enable: bool,
    /// Disable.
    #[arg(long)]
    disable: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

pub(super) fn parse_event_type(name: &str) -> Result<i32, String> {
    EventType::parse(name)
        .map(|kind| event_type_to_proto(kind) as i32)
        .ok_or_else(|| {
            let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
            format!("unknown event type; known: {}", known.join(", "))
        })
}

fn parse_format(name: &str) -> Result<i32, String> {
    FORMATS
        .contains(&name)
        .then(|| format_to_proto(name) as i32)
        .ok_or_else(|| format!("unknown format; known: {}", FORMATS.join(", ")))
}

fn parse_header(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| "expected NAME=VALUE".to_owned())
}

/// Runs a webhooks command against the server.
pub async fn run(args: WebhooksArgs) -> anyhow::Result<()> {
    let c = &args.client;
    let mut client = c.connect().await?;
    match args.command {
        WebhooksCommand::Create(a) => create(c, &mut client, *a).await,
        WebhooksCommand::List(a) => list(c, &mut client, a).await,
        WebhooksCommand::Get { id, output } => {
            let response = client
                .get_webhook(proto::GetWebhookRequest { id: id.clone() })
                .await
                .map_err(|s| c.explain(s, &format!("webhook {id}")))?
                .into_inner();
            let webhook = response.webhook.context("the server sent no webhook")?;
            print_webhook(&webhook, output);
            Ok(())
        }
        WebhooksCommand::Update(a) => update(c, &mut client, *a).await,
        WebhooksCommand::Delete { id, output } => {
            client
                .delete_webhook(proto::DeleteWebhookRequest { id: id.clone() })
                .await
                .map_err(|s| c.explain(s, &format!("webhook {id}")))?;
            match output {
                Output::Json => println!("{}", json!({ "id": id, "deleted": true })),
                Output::Table => println!("deleted {id}"),
            }
            Ok(())
        }
        WebhooksCommand::RotateSecret {
            id,
            grace,
            secret,
            output,
        } => {
            let response = client
                .rotate_webhook_secret(proto::RotateWebhookSecretRequest {
                    id: id.clone(),
                    grace_period: grace.map(|g| prost_types::Duration {
                        seconds: g.0.as_secs().try_into().unwrap_or(i64::MAX),
                        nanos: g.0.subsec_nanos() as i32,
                    }),
                    secret: secret.map(|s| s.expose().to_owned()).unwrap_or_default(),
                })
                .await
                .map_err(|s| c.explain(s, &format!("webhook {id}")))?
                .into_inner();
            let until = time_text(response.previous_secret_expires_at.as_ref());
            match output {
                Output::Json => println!(
                    "{}",
                    json!({ "id": id, "secret": response.secret, "previous_secret_expires_at": until })
                ),
                Output::Table => {
                    println!("{}", response.secret);
                    eprintln!(
                        "new secret for {id}; the previous one stays valid until {until}. Store it now, it is not shown again"
                    );
                }
            }
            Ok(())
        }
        WebhooksCommand::Test { id, output } => {
            let response = client
                .test_webhook(proto::TestWebhookRequest { id: id.clone() })
                .await
                .map_err(|s| c.explain(s, &format!("webhook {id}")))?
                .into_inner();
            match output {
                Output::Json => println!(
                    "{}",
                    json!({ "id": id, "event_id": response.event_id, "delivery_id": response.delivery_id })
                ),
                Output::Table => println!(
                    "ping queued for {id}: delivery {} (the receiver sees it as the webhook-id header)",
                    response.delivery_id
                ),
            }
            Ok(())
        }
    }
}

async fn create(c: &ClientArgs, client: &mut Client, a: CreateArgs) -> anyhow::Result<()> {
    let request = proto::CreateWebhookRequest {
        webhook: Some(proto::Webhook {
            namespace: a.namespace,
            name: a.name,
            url: a.url,
            event_types: a.event_types,
            repositories: a.repositories,
            tags: a.tags,
            payload_format: a.format,
            headers: a.headers.into_iter().collect(),
            ordered: a.ordered,
            enabled: Some(!a.disabled),
            max_concurrency: a.max_concurrency,
            rate_limit: a.rate_limit,
            signature_header: a.signature_header.unwrap_or_default(),
            payload_options: Some(proto::PayloadOptions {
                include_host_in_repo_name: a.include_host_in_repo_name,
                harbor_deletes: a.harbor_deletes,
            }),
            ..Default::default()
        }),
        secret: a.secret.map(|s| s.expose().to_owned()).unwrap_or_default(),
    };
    let response = client
        .create_webhook(request)
        .await
        .map_err(|s| c.explain(s, "webhook"))?
        .into_inner();
    let webhook = response.webhook.context("the server sent no webhook")?;
    match a.output {
        Output::Json => println!(
            "{}",
            json!({ "webhook": webhook_json(&webhook), "secret": response.secret })
        ),
        Output::Table => {
            print_webhook(&webhook, Output::Table);
            println!("{:<16}{}", "secret", response.secret);
            eprintln!(
                "created {}; store the secret now, it is not shown again",
                webhook.id
            );
        }
    }
    Ok(())
}

async fn list(c: &ClientArgs, client: &mut Client, a: ListArgs) -> anyhow::Result<()> {
    let one_page = a.page_size.is_some() || a.page_token.is_some();
    let mut request = proto::ListWebhooksRequest {
        page_size: a.page_size.unwrap_or(if one_page { 0 } else { 500 }),
        page_token: a.page_token.unwrap_or_default(),
        namespace: a.namespace.unwrap_or_default(),
        enabled: a.enabled,
        name_contains: a.name_contains.unwrap_or_default(),
        url_contains: a.url_contains.unwrap_or_default(),
    };
    let mut webhooks = Vec::new();
    let next = loop {
        let page = client
            .list_webhooks(request.clone())
            .await
            .map_err(|s| c.explain(s, "page"))?
            .into_inner();
        webhooks.extend(page.webhooks);
        if one_page || page.next_page_token.is_empty() {
            break page.next_page_token;
        }
        request.page_token = page.next_page_token;
    };
    match a.output {
        Output::Json => println!(
            "{}",
            json!({
                "webhooks": webhooks.iter().map(webhook_json).collect::<Vec<_>>(),
                "next_page_token": next,
            })
        ),
        Output::Table => {
            println!(
                "{:<35}  {:<16}  {:<24}  {:<8}  {:<12}  {:>7}  {:>6}  {:<24}  URL",
                "ID", "NAMESPACE", "NAME", "ENABLED", "HEALTH", "PENDING", "FAILED", "EVENTS"
            );
            for w in &webhooks {
                let events = event_names(&w.event_types);
                let count = |n: Option<i64>| n.map_or_else(|| "-".to_owned(), |n| n.to_string());
                println!(
                    "{:<35}  {:<16}  {:<24}  {:<8}  {:<12}  {:>7}  {:>6}  {:<24}  {}",
                    w.id,
                    w.namespace.as_deref().unwrap_or_default(),
                    w.name,
                    if w.enabled.unwrap_or(true) {
                        "yes"
                    } else {
                        "no"
                    },
                    health_state(w.health.as_ref()),
                    count(w.health.as_ref().map(|h| h.pending)),
                    count(w.health.as_ref().map(|h| h.failed)),
                    if events.is_empty() {
                        "(default)".to_owned()
                    } else {
                        events.join(",")
                    },
                    w.url
                );
            }
            if !next.is_empty() {
                eprintln!("more: --page-token {next}");
            }
        }
    }
    Ok(())
}

async fn update(c: &ClientArgs, client: &mut Client, a: UpdateArgs) -> anyhow::Result<()> {
    let mut paths = Vec::new();
    let mut webhook = proto::Webhook {
        id: a.id.clone(),
        ..Default::default()
    };
    if let Some(name) = a.name {
        webhook.name = name;
        paths.push("name");
    }
    if let Some(url) = a.url {
        webhook.url = url;
        paths.push("url");
    }
    if !a.event_types.is_empty() || a.no_event_types {
        webhook.event_types = a.event_types;
        paths.push("event_types");
    }
    if !a.repositories.is_empty() || a.no_repositories {
        webhook.repositories = a.repositories;
        paths.push("repositories");
    }
    if !a.tags.is_empty() || a.no_tags {
        webhook.tags = a.tags;
        paths.push("tags");
    }
    if let Some(format) = a.format {
        webhook.payload_format = format;
        paths.push("payload_format");
    }
    if !a.headers.is_empty() || a.no_headers {
        webhook.headers = a.headers.into_iter().collect();
        paths.push("headers");
    }
    if let Some(ordered) = a.ordered {
        webhook.ordered = ordered;
        paths.push("ordered");
    }
    if a.enable || a.disable {
        webhook.enabled = Some(a.enable);
        paths.push("enabled");
    }
    if a.signature_header.is_some() || a.no_signature_header {
        webhook.signature_header = a.signature_header.unwrap_or_default();
        paths.push("signature_header");
    }
    if a.max_concurrency.is_some() || a.no_max_concurrency {
        webhook.max_concurrency = a.max_concurrency;
        paths.push("max_concurrency");
    }
    if a.rate_limit.is_some() || a.no_rate_limit {
        webhook.rate_limit = a.rate_limit;
        paths.push("rate_limit");
    }
    if a.include_host_in_repo_name.is_some() || a.harbor_deletes.is_some() {
        // The options travel as one message: start from the stored ones.
        let current = client
            .get_webhook(proto::GetWebhookRequest { id: a.id.clone() })
            .await
            .map_err(|s| c.explain(s, &format!("webhook {}", a.id)))?
            .into_inner()
            .webhook
            .and_then(|w| w.payload_options)
            .unwrap_or_default();
        webhook.payload_options = Some(proto::PayloadOptions {
            include_host_in_repo_name: a
                .include_host_in_repo_name
                .or(current.include_host_in_repo_name),
            harbor_deletes: a.harbor_deletes.unwrap_or(current.harbor_deletes),
        });
        paths.push("payload_options");
    }
    if paths.is_empty() {
        bail!(
            "nothing to change: give at least one option (see `hookline webhooks update --help`)"
        );
    }
    let response = client
        .update_webhook(proto::UpdateWebhookRequest {
            webhook: Some(webhook),
            update_mask: Some(FieldMask {
                paths: paths.into_iter().map(str::to_owned).collect(),
            }),
        })
        .await
        .map_err(|s| c.explain(s, &format!("webhook {}", a.id)))?
        .into_inner();
    let webhook = response.webhook.context("the server sent no webhook")?;
    print_webhook(&webhook, a.output);
    Ok(())
}
