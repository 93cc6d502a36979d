//! `hookline deliveries list|get|redeliver|tail`: gRPC clients of `DeliveryService` for
//! the delivery log, one delivery's attempts, sending one again, and the live tail.
//!
//! `get` shows the last response's headers and body, which is what someone debugging a
//! receiver needs first. JSON uses names, never enum numbers. `tail` runs until Ctrl-C or
//! the end of the stream; a stream the server ends with an error exits non-zero.
//! `events.rs` reuses the filters and the deliveries table defined here.

use std::io::Write;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use prost_types::Timestamp;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::Output;
use super::client::{ClientArgs, DeliveryClient};
use super::show::{
    age_text, code_text, duration_text, parse_time, target_text, text_json, time_json, time_text,
};
use super::webhooks::parse_event_type;
use crate::api::proto;

/// Characters of a response body shown in the table view (JSON has all the server kept).
const BODY_SHOWN: usize = 2000;

/// `hookline deliveries …`
#[derive(Debug, Args)]
pub struct DeliveriesArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: DeliveriesCommand,
}

#[derive(Debug, Subcommand)]
enum DeliveriesCommand {
    /// List deliveries, newest first: the last 50 (--limit N), every one (--all), or one page (--page-size).
    List(ListArgs),
    /// Show one delivery, its attempts and the last response.
    Get {
        /// The delivery's id (`dlv_…`).
        id: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Send a delivery again (same webhook-id, same body); a retry due later is made due now.
    Redeliver {
        /// The delivery's id.
        id: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Print every attempt as it is made, until Ctrl-C.
    Tail {
        /// Only this webhook's attempts (default: every webhook your token sees).
        #[arg(long, value_name = "ID")]
        webhook: Option<String>,
        /// Output format (json: one object per line).
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
}

/// Where a delivery stands, as `--status` takes it.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Status {
    /// Queued, not yet attempted.
    Pending,
    /// Failed, another attempt scheduled.
    Retrying,
    /// The receiver answered 2xx.
    Succeeded,
    /// Given up; redeliver or replay to try again.
    Failed,
}

impl Status {
    fn to_proto(self) -> proto::DeliveryStatus {
        match self {
            Status::Pending => proto::DeliveryStatus::Pending,
            Status::Retrying => proto::DeliveryStatus::Retrying,
            Status::Succeeded => proto::DeliveryStatus::Succeeded,
            Status::Failed => proto::DeliveryStatus::Failed,
        }
    }
}

/// A delivery status's name (`retrying`) for tables and JSON.
pub(super) fn status_name(value: i32) -> &'static str {
    match proto::DeliveryStatus::try_from(value) {
        Ok(proto::DeliveryStatus::Pending) => "pending",
        Ok(proto::DeliveryStatus::Retrying) => "retrying",
        Ok(proto::DeliveryStatus::Succeeded) => "succeeded",
        Ok(proto::DeliveryStatus::Failed) => "failed",
        _ => "unknown",
    }
}

/// The filters and paging that `deliveries list` and `events list` share.
#[derive(Debug, Args)]
pub(super) struct Filters {
    /// Only events of this type, repeatable.
    #[arg(long = "event-type", value_name = "TYPE", value_parser = parse_event_type)]
    pub event_types: Vec<i32>,
    /// Only repositories matching this glob (`acme/*`, `acme/**`).
    #[arg(long, value_name = "GLOB")]
    pub repository: Option<String>,
    /// From this time on: a duration ago (`1h`, `2d`) or an RFC 3339 time.
    #[arg(long, value_name = "WHEN", value_parser = parse_time)]
    pub since: Option<Timestamp>,
    /// Before this time: a duration ago (`10m`) or an RFC 3339 time.
    #[arg(long, value_name = "WHEN", value_parser = parse_time)]
    pub until: Option<Timestamp>,
    /// Show at most this many, newest first (the log may hold millions); see --all.
    #[arg(long, default_value_t = 50, conflicts_with = "all")]
    pub limit: usize,
    /// Follow every page to the end of the log.
    #[arg(long)]
    pub all: bool,
    /// Fetch one page of this size (1–500) and print the next page's token.
    #[arg(long)]
    pub page_size: Option<i32>,
    /// Continue from this page token.
    #[arg(long)]
    pub page_token: Option<String>,
}

/// The largest page a list asks for when it follows pages.
const LARGEST_PAGE: usize = 500;

impl Filters {
    /// Whether to fetch one page only (the caller asked for paging).
    pub fn one_page(&self) -> bool {
        self.page_size.is_some() || self.page_token.is_some()
    }

    /// The page size to ask for, having `have` rows already: the caller's page, or what
    /// is left of `--limit`, or the largest page with `--all`.
    pub fn page_size(&self, have: usize) -> i32 {
        if self.one_page() {
            return self.page_size.unwrap_or(0);
        }
        let left = if self.all {
            LARGEST_PAGE
        } else {
            self.limit.saturating_sub(have).clamp(1, LARGEST_PAGE)
        };
        i32::try_from(left).unwrap_or(1)
    }

    /// Whether to stop after a page, having `have` rows and `next` as the next page token.
    pub fn done(&self, have: usize, next: &str) -> bool {
        next.is_empty() || self.one_page() || (!self.all && have >= self.limit)
    }
}

#[derive(Debug, Args)]
struct ListArgs {
    /// Only this webhook's deliveries.
    #[arg(long, value_name = "ID")]
    webhook: Option<String>,
    /// Only deliveries in this state, repeatable.
    #[arg(long = "status", value_enum)]
    statuses: Vec<Status>,
    #[command(flatten)]
    filters: Filters,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

/// Runs a deliveries command. `shutdown` ends `tail` (Ctrl-C).
pub async fn run(args: DeliveriesArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let c = &args.client;
    match args.command {
        DeliveriesCommand::List(a) => list(c, &mut c.deliveries().await?, a).await,
        DeliveriesCommand::Get { id, output } => {
            let response = c
                .deliveries()
                .await?
                .get_delivery(proto::GetDeliveryRequest { id: id.clone() })
                .await
                .map_err(|s| c.explain(s, &format!("delivery {id}")))?
                .into_inner();
            let delivery = response.delivery.context("the server sent no delivery")?;
            print_delivery(&delivery, &response.attempts, output);
            Ok(())
        }
        DeliveriesCommand::Redeliver { id, output } => {
            let response = c
                .deliveries()
                .await?
                .redeliver_delivery(proto::RedeliverDeliveryRequest { id: id.clone() })
                .await
                .map_err(|s| c.explain(s, &format!("delivery {id}")))?
                .into_inner();
            use proto::redeliver_delivery_response::Result as R;
            let (result, text) = match R::try_from(response.result) {
                Ok(R::Queued) => (
                    "queued",
                    "queued again, due now with a fresh retry schedule",
                ),
                Ok(R::Expedited) => ("expedited", "expedited: a retry was due later; now"),
                Ok(R::InFlight) => ("in_flight", "in flight right now: nothing changed"),
                _ => ("unknown", "the server answered with an unknown result"),
            };
            let held = response.held_until.as_ref();
            match output {
                Output::Json => println!(
                    "{}",
                    json!({
                        "id": id,
                        "result": result,
                        "held_until": time_json(held),
                        "delivery": response.delivery.as_ref().map(delivery_json),
                    })
                ),
                Output::Table => match held {
                    Some(until) => println!(
                        "{id}: {text}; but the webhook's circuit is open (its receiver kept failing): it goes out at {}",
                        time_text(Some(until))
                    ),
                    None => println!("{id}: {text}"),
                },
            }
            Ok(())
        }
        DeliveriesCommand::Tail { webhook, output } => tail(c, webhook, output, shutdown).await,
    }
}

async fn list(c: &ClientArgs, client: &mut DeliveryClient, a: ListArgs) -> anyhow::Result<()> {
    let f = &a.filters;
    let mut request = proto::ListDeliveriesRequest {
        page_size: f.page_size(0),
        page_token: f.page_token.clone().unwrap_or_default(),
        webhook_id: a.webhook.clone().unwrap_or_default(),
        statuses: a.statuses.iter().map(|s| s.to_proto() as i32).collect(),
        event_types: f.event_types.clone(),
        repository: f.repository.clone().unwrap_or_default(),
        since: f.since,
        until: f.until,
    };
    let what = a
        .webhook
        .as_ref()
        .map_or_else(|| "page".to_owned(), |id| format!("webhook {id}"));
    let mut deliveries = Vec::new();
    let next = loop {
        let page = client
            .list_deliveries(request.clone())
            .await
            .map_err(|s| c.explain(s, &what))?
            .into_inner();
        deliveries.extend(page.deliveries);
        if f.done(deliveries.len(), &page.next_page_token) {
            break page.next_page_token;
        }
        request.page_token = page.next_page_token;
        request.page_size = f.page_size(deliveries.len());
    };
    match a.output {
        Output::Json => println!(
            "{}",
            Value::Array(deliveries.iter().map(delivery_json).collect())
        ),
        Output::Table => print_deliveries(&deliveries),
    }
    if !next.is_empty() {
        eprintln!("more: --page-token {next}");
    }
    Ok(())
}

/// A delivery as JSON for scripts.
pub(super) fn delivery_json(d: &proto::Delivery) -> Value {
    json!({
        "id": d.id,
        "webhook_id": d.webhook_id,
        "event_id": d.event_id,
        "event_type": text_json(&d.event_type),
        "repository": text_json(&d.repository),
        "tag": text_json(&d.tag),
        "digest": text_json(&d.digest),
        "status": status_name(d.status),
        "attempts": d.attempts,
        "next_attempt_at": time_json(d.next_attempt_at.as_ref()),
        "last_status_code": (d.last_status_code != 0).then_some(d.last_status_code),
        "last_error": text_json(&d.last_error),
        "last_duration_ms": (d.last_attempt_at.is_some()).then_some(d.last_duration_ms),
        "last_attempt_at": time_json(d.last_attempt_at.as_ref()),
        "created_at": time_json(d.created_at.as_ref()),
        "updated_at": time_json(d.updated_at.as_ref()),
    })
}

/// An attempt as JSON for scripts, with the response as the server kept it.
fn attempt_json(a: &proto::Attempt) -> Value {
    let headers: std::collections::BTreeMap<&String, &String> = a.response_headers.iter().collect();
    json!({
        "id": a.id,
        "number": a.number,
        "started_at": time_json(a.started_at.as_ref()),
        "duration_ms": a.duration_ms,
        "status_code": (a.status_code != 0).then_some(a.status_code),
        "outcome": a.outcome,
        "error_class": text_json(&a.error_class),
        "error": text_json(&a.error),
        "reason": text_json(&a.reason),
        "response_headers": headers,
        "response_body": a.response_body,
        "next_attempt_at": time_json(a.next_attempt_at.as_ref()),
    })
}

/// The deliveries table of `deliveries list` and `events get`.
pub(super) fn print_deliveries(deliveries: &[proto::Delivery]) {
    println!(
        "{:<40}  {:<35}  {:<40}  {:<9}  {:>4}  {:>8}  {:>8}  AGE",
        "ID", "WEBHOOK", "EVENT", "STATUS", "CODE", "DURATION", "ATTEMPTS"
    );
    for d in deliveries {
        println!(
            "{:<40}  {:<35}  {:<40}  {:<9}  {:>4}  {:>8}  {:>8}  {}",
            d.id,
            d.webhook_id,
            event_text(d),
            status_name(d.status),
            code_text(d.last_status_code),
            if d.last_attempt_at.is_some() {
                duration_text(d.last_duration_ms)
            } else {
                "-".to_owned()
            },
            d.attempts,
            age_text(d.created_at.as_ref()),
        );
    }
}

/// `image.pushed acme/app:1.0`, or a note when the event was pruned (retention).
fn event_text(d: &proto::Delivery) -> String {
    if d.event_type.is_empty() {
        "event no longer stored".to_owned()
    } else {
        format!("{} {}", d.event_type, target_text(&d.repository, &d.tag))
    }
}

fn print_delivery(d: &proto::Delivery, attempts: &[proto::Attempt], output: Output) {
    if output == Output::Json {
        // `attempts` is the list here (as people read it), so the count gets its own name.
        let mut shown = delivery_json(d);
        shown["attempt_count"] = json!(d.attempts);
        shown["attempts"] = attempts.iter().map(attempt_json).collect();
        println!("{shown}");
        return;
    }
    let rows = [
        ("id", d.id.clone()),
        ("webhook", d.webhook_id.clone()),
        ("event", format!("{} ({})", d.event_id, event_text(d))),
        ("status", status_name(d.status).to_owned()),
        ("attempts", d.attempts.to_string()),
        ("next attempt", time_text(d.next_attempt_at.as_ref())),
        ("last error", d.last_error.clone()),
        ("created", time_text(d.created_at.as_ref())),
        ("updated", time_text(d.updated_at.as_ref())),
    ];
    for (key, value) in rows {
        if !value.is_empty() {
            println!("{key:<16}{value}");
        }
    }
    if attempts.is_empty() {
        println!("\nno attempts yet");
        return;
    }
    println!(
        "\n{:>3}  {:<24}  {:>8}  {:>4}  {:<9}  {:<11}  REASON",
        "#", "STARTED", "DURATION", "CODE", "OUTCOME", "ERROR CLASS"
    );
    for a in attempts {
        println!(
            "{:>3}  {:<24}  {:>8}  {:>4}  {:<9}  {:<11}  {}",
            a.number,
            time_text(a.started_at.as_ref()),
            duration_text(a.duration_ms),
            code_text(a.status_code),
            a.outcome,
            if a.error_class.is_empty() {
                "-"
            } else {
                &a.error_class
            },
            if a.error.is_empty() || a.reason.contains(&a.error) {
                a.reason.clone()
            } else {
                format!("{} ({})", a.reason, a.error)
            },
        );
    }
    if let Some(last) = attempts.last() {
        print_response(last);
    }
}

/// The last attempt's response: headers, then the start of the body.
fn print_response(a: &proto::Attempt) {
    if a.status_code == 0 {
        return;
    }
    println!("\nresponse to attempt {} ({}):", a.number, a.status_code);
    let mut headers: Vec<_> = a.response_headers.iter().collect();
    headers.sort();
    for (name, value) in headers {
        println!("  {name}: {value}");
    }
    if a.response_body.is_empty() {
        println!("  (empty body)");
        return;
    }
    let shown: String = a.response_body.chars().take(BODY_SHOWN).collect();
    println!();
    for line in shown.lines() {
        println!("  {line}");
    }
    if shown.len() < a.response_body.len() {
        println!(
            "  … {} more bytes (--output json shows them)",
            a.response_body.len() - shown.len()
        );
    }
}

/// `deliveries tail`: one line per attempt until Ctrl-C, the end of the stream, or an error.
async fn tail(
    c: &ClientArgs,
    webhook: Option<String>,
    output: Output,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let what = webhook
        .as_ref()
        .map_or_else(|| "live tail".to_owned(), |id| format!("webhook {id}"));
    let mut stream = c
        .tail()
        .await?
        .watch_deliveries(proto::WatchDeliveriesRequest {
            webhook_id: webhook.clone().unwrap_or_default(),
        })
        .await
        .map_err(|s| c.explain(s, &what))?
        .into_inner();
    // The server subscribed before answering: from here on no attempt is missed. Tests
    // and scripts wait for this line on stderr before they make the first attempt.
    eprintln!(
        "watching attempts of {} (Ctrl-C to stop)",
        webhook.as_deref().unwrap_or("every webhook")
    );
    loop {
        let message = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            message = stream.message() => message,
        };
        let m = match message {
            Ok(Some(m)) => m,
            Ok(None) => return Ok(()),
            Err(status) => return Err(c.explain(status, &what)),
        };
        let line = match output {
            Output::Json => tail_json(&m).to_string(),
            Output::Table => tail_text(&m),
        };
        // Flushed per line so a pipe (`| jq`, a test) sees each attempt as it happens;
        // a closed pipe ends the tail quietly like `head` expects.
        let mut stdout = std::io::stdout().lock();
        if writeln!(stdout, "{line}")
            .and_then(|()| stdout.flush())
            .is_err()
        {
            return Ok(());
        }
    }
}

fn tail_json(m: &proto::WatchDeliveriesResponse) -> Value {
    json!({
        "delivery_id": m.delivery_id,
        "webhook_id": m.webhook_id,
        "event_id": m.event_id,
        "event_type": text_json(&m.event_type),
        "repository": text_json(&m.repository),
        "tag": text_json(&m.tag),
        "delivery_status": status_name(m.delivery_status),
        "attempt": m.attempt.as_ref().map(attempt_json),
    })
}

fn tail_text(m: &proto::WatchDeliveriesResponse) -> String {
    let a = m.attempt.clone().unwrap_or_default();
    let mut line = format!(
        "{}  {}  {}  {} {}  {}  {}  {}",
        time_text(a.started_at.as_ref()),
        m.delivery_id,
        m.webhook_id,
        m.event_type,
        target_text(&m.repository, &m.tag),
        a.outcome,
        code_text(a.status_code),
        duration_text(a.duration_ms),
    );
    if a.outcome != "succeeded" && !a.reason.is_empty() {
        line.push_str("  ");
        line.push_str(&a.reason);
    }
    line
}
