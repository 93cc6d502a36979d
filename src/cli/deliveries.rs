//! `hookline deliveries list|get|redeliver|tail`: gRPC clients of `DeliveryService` for
//! the delivery log, one delivery's attempts, sending one again, and the live tail.
//!
//! This file holds the arguments and the calls; `deliveries/show.rs` what they print.
//! `tail` runs until Ctrl-C or the end of the stream; a stream the server ends with an
//! error exits non-zero. `events.rs` reuses the deliveries table (the filters are in
//! `listing.rs`).

mod show;

use std::io::Write;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::Output;
use super::client::{ClientArgs, DeliveryClient};
use super::listing::{Filters, collect, print_more};
use crate::api::proto;

pub(super) use show::{delivery_json, print_deliveries};

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
            let request = proto::GetDeliveryRequest { id: id.clone() };
            let answer = c.deliveries().await?.get_delivery(request).await;
            let response = c.answer(answer, &format!("delivery {id}"))?;
            let delivery = response.delivery.context("the server sent no delivery")?;
            show::print_delivery(&delivery, &response.attempts, output);
            Ok(())
        }
        DeliveriesCommand::Redeliver { id, output } => {
            let request = proto::RedeliverDeliveryRequest { id: id.clone() };
            let answer = c.deliveries().await?.redeliver_delivery(request).await;
            let response = c.answer(answer, &format!("delivery {id}"))?;
            show::print_redelivery(&id, &response, output);
            Ok(())
        }
        DeliveriesCommand::Tail { webhook, output } => tail(c, webhook, output, shutdown).await,
    }
}

async fn list(c: &ClientArgs, client: &mut DeliveryClient, a: ListArgs) -> anyhow::Result<()> {
    let base = proto::ListDeliveriesRequest {
        webhook_id: a.webhook.clone().unwrap_or_default(),
        statuses: a.statuses.iter().map(|s| s.to_proto() as i32).collect(),
        event_types: a.filters.event_types.clone(),
        repository: a.filters.repository.clone().unwrap_or_default(),
        since: a.filters.since,
        until: a.filters.until,
        ..Default::default()
    };
    let what = a
        .webhook
        .as_ref()
        .map_or_else(|| "page".to_owned(), |id| format!("webhook {id}"));
    let (deliveries, next) = collect(&a.filters, async |page_token, page_size| {
        let request = proto::ListDeliveriesRequest {
            page_token,
            page_size,
            ..base.clone()
        };
        let page = c.answer(client.list_deliveries(request).await, &what)?;
        Ok((page.deliveries, page.next_page_token))
    })
    .await?;
    match a.output {
        Output::Json => println!(
            "{}",
            Value::Array(deliveries.iter().map(delivery_json).collect())
        ),
        Output::Table => print_deliveries(&deliveries),
    }
    print_more(&next);
    Ok(())
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
    let request = proto::WatchDeliveriesRequest {
        webhook_id: webhook.clone().unwrap_or_default(),
    };
    let mut stream = c.answer(c.tail().await?.watch_deliveries(request).await, &what)?;
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
            Output::Json => show::tail_json(&m).to_string(),
            Output::Table => show::tail_text(&m),
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
