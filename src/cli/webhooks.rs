//! `hookline webhooks create|list|get|update|delete|rotate-secret|test`: gRPC clients of
//! the API. Tables for people, `--output json` for scripts.
//!
//! A webhook's secret is printed by `create` and `rotate-secret` only, on stdout, once;
//! everything else about it goes through the API's own rules (validation happens on the
//! server, so the CLI and other clients can never disagree). The arguments are declared
//! in `webhooks/args.rs`; this file makes the calls, and `show.rs` shows a webhook.

mod args;

use anyhow::{Context, bail};
use clap::Args;
use prost_types::FieldMask;
use serde_json::json;

use super::Output;
use super::client::{Client, ClientArgs};
use super::listing::{LARGEST_PAGE, Paging, collect};
use super::show::{print_webhook, print_webhooks, time_text, webhook_json};
use crate::api::proto;
use args::{CreateArgs, ListArgs, UpdateArgs, WebhooksCommand};

pub(super) use args::parse_event_type;

/// `hookline webhooks …`
#[derive(Debug, Args)]
pub struct WebhooksArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: WebhooksCommand,
}

/// Runs a webhooks command against the server.
pub async fn run(args: WebhooksArgs) -> anyhow::Result<()> {
    let c = &args.client;
    let mut client = c.connect().await?;
    match args.command {
        WebhooksCommand::Create(a) => create(c, &mut client, *a).await,
        WebhooksCommand::List(a) => list(c, &mut client, a).await,
        WebhooksCommand::Get { id, output } => {
            let request = proto::GetWebhookRequest { id: id.clone() };
            let response = c.answer(client.get_webhook(request).await, &format!("webhook {id}"))?;
            let webhook = response.webhook.context("the server sent no webhook")?;
            print_webhook(&webhook, output);
            Ok(())
        }
        WebhooksCommand::Update(a) => update(c, &mut client, *a).await,
        WebhooksCommand::Delete { id, output } => {
            let request = proto::DeleteWebhookRequest { id: id.clone() };
            c.answer(
                client.delete_webhook(request).await,
                &format!("webhook {id}"),
            )?;
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
            let request = proto::RotateWebhookSecretRequest {
                id: id.clone(),
                grace_period: grace.map(|g| prost_types::Duration {
                    seconds: g.0.as_secs().try_into().unwrap_or(i64::MAX),
                    nanos: g.0.subsec_nanos() as i32,
                }),
                secret: secret.map(|s| s.expose().to_owned()).unwrap_or_default(),
            };
            let answer = client.rotate_webhook_secret(request).await;
            let response = c.answer(answer, &format!("webhook {id}"))?;
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
        WebhooksCommand::Preview {
            id,
            event,
            event_type,
            output,
        } => {
            let request = proto::PreviewPayloadRequest {
                id: id.clone(),
                event_id: event.unwrap_or_default(),
                event_type: event_type.unwrap_or_default(),
                ..Default::default()
            };
            let answer = client.preview_payload(request).await;
            let response = c.answer(answer, &format!("webhook {id}"))?;
            let mut headers: Vec<(&String, &String)> = response.headers.iter().collect();
            headers.sort();
            match output {
                Output::Json => println!(
                    "{}",
                    json!({
                        "id": id,
                        "event_id": response.event_id,
                        "content_type": response.content_type,
                        "headers": response.headers,
                        "body": response.body,
                    })
                ),
                Output::Table => {
                    println!("Content-Type: {}", response.content_type);
                    for (name, value) in headers {
                        println!("{name}: {value}");
                    }
                    println!("\n{}", response.body);
                }
            }
            Ok(())
        }
        WebhooksCommand::Test { id, output } => {
            let request = proto::TestWebhookRequest { id: id.clone() };
            let response =
                c.answer(client.test_webhook(request).await, &format!("webhook {id}"))?;
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
    let client_cert = a.client_cert.read()?.unwrap_or_default();
    let request = proto::CreateWebhookRequest {
        webhook: Some(proto::Webhook {
            namespace: a.namespace,
            name: a.name,
            url: a.url,
            event_types: a.event_types,
            repositories: a.repositories,
            tags: a.tags,
            payload_format: a.format.unwrap_or(if a.template.any() {
                proto::PayloadFormat::Template as i32
            } else {
                proto::PayloadFormat::Hookline as i32
            }),
            plain_headers: a.plain_headers.iter().map(|(k, _)| k.clone()).collect(),
            headers: a.headers.into_iter().chain(a.plain_headers).collect(),
            ordered: a.ordered,
            enabled: Some(!a.disabled),
            max_concurrency: a.max_concurrency,
            rate_limit: a.rate_limit,
            client_certificate: client_cert.0,
            client_key: client_cert.1,
            oauth: a.oauth.read()?,
            signature_header: a.signature_header.unwrap_or_default(),
            payload_options: Some(proto::PayloadOptions {
                include_host_in_repo_name: a.include_host_in_repo_name,
                harbor_deletes: a.harbor_deletes,
                chat_link: a.chat.chat_link.unwrap_or_default(),
                chat_mention: a.chat.chat_mention.unwrap_or_default(),
                template: a.template.read()?.unwrap_or_default(),
                template_content_type: a.template.content_type.clone().unwrap_or_default(),
                preset: a.template.preset.clone().unwrap_or_default(),
            }),
            ..Default::default()
        }),
        secret: a.secret.map(|s| s.expose().to_owned()).unwrap_or_default(),
    };
    let needs = a
        .template
        .preset
        .as_deref()
        .and_then(crate::dispatch::payload::template::presets::find)
        .map(|p| p.needs);
    let response = c.answer(client.create_webhook(request).await, "webhook")?;
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
            if let Some(needs) = needs {
                eprintln!("this preset needs {needs}");
            }
        }
    }
    Ok(())
}

impl Paging for ListArgs {
    fn first_token(&self) -> String {
        self.page_token.clone().unwrap_or_default()
    }

    /// The caller's page, else the largest (a list shows every webhook).
    fn page_size(&self, _have: usize) -> i32 {
        let one_page = self.page_size.is_some() || self.page_token.is_some();
        let largest = i32::try_from(LARGEST_PAGE).unwrap_or(i32::MAX);
        self.page_size.unwrap_or(if one_page { 0 } else { largest })
    }

    fn done(&self, _have: usize, next: &str) -> bool {
        self.page_size.is_some() || self.page_token.is_some() || next.is_empty()
    }
}

async fn list(c: &ClientArgs, client: &mut Client, a: ListArgs) -> anyhow::Result<()> {
    let base = proto::ListWebhooksRequest {
        namespace: a.namespace.clone().unwrap_or_default(),
        enabled: a.enabled,
        name_contains: a.name_contains.clone().unwrap_or_default(),
        url_contains: a.url_contains.clone().unwrap_or_default(),
        ..Default::default()
    };
    let (webhooks, next) = collect(&a, async |page_token, page_size| {
        let request = proto::ListWebhooksRequest {
            page_token,
            page_size,
            ..base.clone()
        };
        let page = c.answer(client.list_webhooks(request).await, "page")?;
        Ok((page.webhooks, page.next_page_token))
    })
    .await?;
    match a.output {
        Output::Json => println!(
            "{}",
            json!({
                "webhooks": webhooks.iter().map(webhook_json).collect::<Vec<_>>(),
                "next_page_token": next,
            })
        ),
        Output::Table => {
            print_webhooks(&webhooks);
            super::listing::print_more(&next);
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
    if !a.headers.is_empty() || !a.plain_headers.is_empty() || a.no_headers {
        webhook.plain_headers = a.plain_headers.iter().map(|(k, _)| k.clone()).collect();
        webhook.headers = a.headers.into_iter().chain(a.plain_headers).collect();
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
    if let Some((certificate, key)) = a.client_cert.read()? {
        (webhook.client_certificate, webhook.client_key) = (certificate, key);
        paths.push("client_certificate");
    } else if a.no_client_cert {
        paths.push("client_certificate");
    }
    if let Some(oauth) = a.oauth.read()? {
        webhook.oauth = Some(oauth);
        paths.push("oauth");
    } else if a.no_oauth {
        paths.push("oauth");
    }
    if a.include_host_in_repo_name.is_some()
        || a.harbor_deletes.is_some()
        || a.chat.chat_link.is_some()
        || a.chat.chat_mention.is_some()
        || a.template.any()
    {
        // The options travel as one message: start from the stored ones.
        let request = proto::GetWebhookRequest { id: a.id.clone() };
        let answer = client.get_webhook(request).await;
        let current = c
            .answer(answer, &format!("webhook {}", a.id))?
            .webhook
            .and_then(|w| w.payload_options)
            .unwrap_or_default();
        webhook.payload_options = Some(proto::PayloadOptions {
            include_host_in_repo_name: a
                .include_host_in_repo_name
                .or(current.include_host_in_repo_name),
            harbor_deletes: a.harbor_deletes.unwrap_or(current.harbor_deletes),
            chat_link: a.chat.chat_link.unwrap_or(current.chat_link),
            chat_mention: a.chat.chat_mention.unwrap_or(current.chat_mention),
            template: a.template.read()?.unwrap_or(current.template),
            template_content_type: a
                .template
                .content_type
                .clone()
                .unwrap_or(current.template_content_type),
            preset: a.template.preset.clone().unwrap_or_default(),
        });
        paths.push("payload_options");
    }
    if paths.is_empty() {
        bail!(
            "nothing to change: give at least one option (see `hookline webhooks update --help`)"
        );
    }
    let request = proto::UpdateWebhookRequest {
        webhook: Some(webhook),
        update_mask: Some(FieldMask {
            paths: paths.into_iter().map(str::to_owned).collect(),
        }),
    };
    let answer = client.update_webhook(request).await;
    let response = c.answer(answer, &format!("webhook {}", a.id))?;
    let webhook = response.webhook.context("the server sent no webhook")?;
    print_webhook(&webhook, a.output);
    Ok(())
}
