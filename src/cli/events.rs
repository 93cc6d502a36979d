//! `hookline events list|get` and `hookline replay`: what the registries sent, and
//! recovery after a receiver's outage. gRPC clients of `DeliveryService`.
//!
//! `replay` is safe to retry: it always sends a request id (generated when not given)
//! and derives one per continuation call (`<id>-2`, `-3`, …), so running the same
//! command again with the same `--request-id` queues nothing twice.

use anyhow::Context;
use clap::{Args, Subcommand};
use prost_types::Timestamp;
use serde_json::{Value, json};

use super::Output;
use super::client::{ClientArgs, DeliveryClient};
use super::deliveries::{delivery_json, print_deliveries};
use super::listing::{Filters, collect, print_more};
use super::show::{age_text, parse_time, target_text, text_json, time_text};
use crate::api::proto;

/// `hookline events …`
#[derive(Debug, Args)]
pub struct EventsArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: EventsCommand,
}

#[derive(Debug, Subcommand)]
enum EventsCommand {
    /// List received events, newest first: the last 50 (--limit N), every one (--all), or one page (--page-size).
    List {
        #[command(flatten)]
        filters: Filters,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Show one event and its deliveries.
    Get {
        /// The event's id (`evt_…`).
        id: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
}

/// `hookline replay …`
#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// The webhook whose events to send again (`wh_…`).
    webhook_id: String,
    /// Window start: a duration ago (`1h`) or an RFC 3339 time.
    #[arg(long, value_name = "WHEN", value_parser = parse_time)]
    since: Timestamp,
    /// Window end (default: now): a duration ago (`10m`) or an RFC 3339 time.
    #[arg(long, value_name = "WHEN", value_parser = parse_time)]
    until: Option<Timestamp>,
    /// Only deliveries that failed (and events the webhook never got).
    #[arg(long)]
    failed_only: bool,
    /// This run's id (1–60 of `A-Za-z0-9._:-`): running again with the same id queues nothing twice.
    #[arg(long, value_name = "ID")]
    request_id: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

/// Runs an events command.
pub async fn run(args: EventsArgs) -> anyhow::Result<()> {
    let c = &args.client;
    let mut client = c.deliveries().await?;
    match args.command {
        EventsCommand::List { filters, output } => list(c, &mut client, &filters, output).await,
        EventsCommand::Get { id, output } => {
            let request = proto::GetEventRequest { id: id.clone() };
            let response = c.answer(client.get_event(request).await, &format!("event {id}"))?;
            let event = response.event.context("the server sent no event")?;
            match output {
                Output::Json => {
                    let mut shown = event_json(&event);
                    shown["deliveries"] = response.deliveries.iter().map(delivery_json).collect();
                    println!("{shown}");
                }
                Output::Table => {
                    let rows = [
                        ("id", event.id.clone()),
                        ("type", event.type_name.clone()),
                        ("repository", event.repository.clone()),
                        ("tag", event.tag.clone()),
                        ("digest", event.digest.clone()),
                        ("source", event.source.clone()),
                        ("received", time_text(event.received_at.as_ref())),
                    ];
                    for (key, value) in rows.into_iter().filter(|(_, v)| !v.is_empty()) {
                        println!("{key:<16}{value}");
                    }
                    if response.deliveries.is_empty() {
                        println!("\nno deliveries (no webhook you see wanted it)");
                    } else {
                        println!();
                        print_deliveries(&response.deliveries);
                    }
                }
            }
            Ok(())
        }
    }
}

async fn list(
    c: &ClientArgs,
    client: &mut DeliveryClient,
    f: &Filters,
    output: Output,
) -> anyhow::Result<()> {
    let base = proto::ListEventsRequest {
        event_types: f.event_types.clone(),
        repository: f.repository.clone().unwrap_or_default(),
        since: f.since,
        until: f.until,
        ..Default::default()
    };
    let (events, next) = collect(f, async |page_token, page_size| {
        let request = proto::ListEventsRequest {
            page_token,
            page_size,
            ..base.clone()
        };
        let page = c.answer(client.list_events(request).await, "page")?;
        Ok((page.events, page.next_page_token))
    })
    .await?;
    match output {
        Output::Json => println!("{}", Value::Array(events.iter().map(event_json).collect())),
        Output::Table => {
            println!(
                "{:<40}  {:<18}  {:<40}  {:<19}  {:<16}  AGE",
                "ID", "TYPE", "REPOSITORY:TAG", "DIGEST", "SOURCE"
            );
            for e in &events {
                println!(
                    "{:<40}  {:<18}  {:<40}  {:<19}  {:<16}  {}",
                    e.id,
                    e.type_name,
                    target_text(&e.repository, &e.tag),
                    short_digest(&e.digest),
                    e.source,
                    age_text(e.received_at.as_ref()),
                );
            }
        }
    }
    print_more(&next);
    Ok(())
}

/// `sha256:ab09df3b0449` (12 hex digits, as `docker images` shows them) or `-`.
fn short_digest(digest: &str) -> String {
    if digest.is_empty() {
        return "-".to_owned();
    }
    match digest.split_once(':') {
        Some((algorithm, hex)) => format!("{algorithm}:{}", &hex[..hex.len().min(12)]),
        None => digest.chars().take(19).collect(),
    }
}

fn event_json(e: &proto::Event) -> Value {
    json!({
        "id": e.id,
        "type": e.type_name,
        "repository": e.repository,
        "tag": text_json(&e.tag),
        "digest": text_json(&e.digest),
        "source": e.source,
        "received_at": time_text(e.received_at.as_ref()),
    })
}

/// `hookline replay`: calls until the window is done; the total and whether the server
/// recognized a repeated request id.
pub async fn replay(args: ReplayArgs) -> anyhow::Result<()> {
    let c = &args.client;
    let mut client = c.deliveries().await?;
    // Always our own id: a CLI run retried after a lost answer then queues nothing twice.
    let base = args
        .request_id
        .unwrap_or_else(|| format!("cli-{}", uuid::Uuid::new_v4()));
    let mut request = proto::ReplayWebhookRequest {
        webhook_id: args.webhook_id.clone(),
        since: Some(args.since),
        until: args.until,
        failed_only: args.failed_only,
        request_id: base.clone(),
        page_token: String::new(),
    };
    let (mut queued, mut request_ids, mut repeated) = (0, Vec::new(), false);
    for call in 2.. {
        let answer = client.replay_webhook(request.clone()).await;
        let response = c.answer(answer, &format!("webhook {}", args.webhook_id))?;
        // A repeated id answers with the first call's count, but queued nothing now.
        if response.repeated {
            repeated = true;
        } else {
            queued += response.queued;
        }
        request_ids.push(response.request_id);
        if response.next_page_token.is_empty() {
            break;
        }
        request.page_token = response.next_page_token;
        request.request_id = format!("{base}-{call}");
    }
    match args.output {
        Output::Json => println!(
            "{}",
            json!({ "queued": queued, "request_ids": request_ids, "repeated": repeated })
        ),
        Output::Table => {
            let noun = if queued == 1 {
                "delivery"
            } else {
                "deliveries"
            };
            println!(
                "queued {queued} {noun} for {} (request id {base})",
                args.webhook_id
            );
            if repeated {
                println!(
                    "request id {base} was used before: what it already queued was not queued again"
                );
            }
        }
    }
    Ok(())
}
