//! The chat formats, checked by the vendors' own code (`harness::vendor`: Slack's SDK
//! models, the Adaptive Card schema, Google's Chat API types, Discord's and Mattermost's
//! documented limits): every fixture event, with and without the owner's link and
//! mention, and oversized inputs. Then end to end through a real server on both backends:
//! receivers on 127.0.0.1 answering as each service documents (Slack's error codes,
//! Discord's 429 with `retry_after`, Teams' 202), what the log says of each, and a chat
//! webhook's URL shown redacted after creation and kept whole for delivery.

use std::time::Duration;

use hookline::api::proto::{
    self, DeliveryStatus, GetDeliveryRequest, GetWebhookRequest, ListWebhooksRequest,
    TestWebhookRequest, UpdateWebhookRequest,
};
use hookline::dispatch::payload::{Format, render};
use hookline::enrichment::{Enrichment, Facts};
use hookline::event::Event;
use hookline::store::{PayloadOptions, TokenKind};
use tonic::Code;

use super::{fast, fixtures};
use crate::api::{create, mask};
use crate::deliveries::wait_status;
use crate::harness::api::{expect_code, violated_fields};
use crate::harness::envelopes::push;
use crate::harness::receiver::{Receiver, Reply};
use crate::harness::server::TestServer;
use crate::harness::vendor::check_chat;
use crate::store_test;

const CHAT: [Format; 5] = [
    Format::Slack,
    Format::MsTeams,
    Format::Discord,
    Format::GoogleChat,
    Format::Mattermost,
];

fn owner_options() -> PayloadOptions {
    PayloadOptions {
        chat_link: Some("https://registry.example/ui/{repository}/tags/{tag}".into()),
        chat_mention: Some("<!here> @channel <users/all>".into()),
        ..PayloadOptions::default()
    }
}

fn check(format: Format, options: &PayloadOptions, event: &Event, what: &str) {
    let message = render(format, options, event);
    assert_eq!(
        message.content_type, "application/json",
        "{format:?} {what}"
    );
    if let Err(problems) = check_chat(format.as_str(), &message.body) {
        panic!(
            "{format:?} {what}: the vendor's checker refused\n{problems}\n{}",
            String::from_utf8_lossy(&message.body)
        );
    }
}

/// Every fixture, and a ping, with and without the owner's options, in one format.
fn every_fixture_passes(format: Format) {
    let mut events: Vec<(String, Event)> =
        fixtures().into_iter().map(|f| (f.name, f.event)).collect();
    let mut ping = events[0].1.clone();
    ping.kind = hookline::event::EventType::Ping;
    events.push(("ping".into(), ping));
    for (name, event) in &events {
        check(format, &PayloadOptions::default(), event, name);
        check(format, &owner_options(), event, name);
    }
}

#[test]
fn slack_bodies_pass_slacks_sdk() {
    every_fixture_passes(Format::Slack);
}

#[test]
fn teams_cards_pass_the_adaptive_card_schema() {
    every_fixture_passes(Format::MsTeams);
}

#[test]
fn discord_bodies_pass_discords_limits() {
    every_fixture_passes(Format::Discord);
}

#[test]
fn google_chat_bodies_parse_as_googles_message() {
    every_fixture_passes(Format::GoogleChat);
}

#[test]
fn mattermost_bodies_pass_its_attachment_rules() {
    every_fixture_passes(Format::Mattermost);
}

#[test]
fn oversized_inputs_still_make_valid_messages() {
    let mut e = fixtures()
        .into_iter()
        .find(|f| f.event.tag.is_some())
        .expect("a tag push")
        .event;
    e.tag = Some("t".repeat(10 * 1024));
    e.actor = Some("<@everyone> ".repeat(1000));
    e.registry_host = Some("r".repeat(5000));
    e.enrichment = Some(Enrichment::Complete(Box::new(Facts {
        platforms: (0..200).map(|i| format!("linux/arch-{i}")).collect(),
        revision: Some("v".repeat(5000)),
        ..Facts::default()
    })));
    let mut options = owner_options();
    options.chat_mention = Some("m".repeat(10_000));
    options.chat_link = Some("https://ui.example/{tag}".into());
    for format in CHAT {
        check(format, &options, &e, "oversized");
    }
}

fn chat_hook(name: &str, url: &str, format: proto::PayloadFormat) -> proto::Webhook {
    proto::Webhook {
        payload_format: format as i32,
        ..crate::api::hook(name, url)
    }
}

store_test!(
    chat_services_answers_are_read_as_each_documents,
    async |db: &TestDb| {
        let server = TestServer::start(db, fast).await;
        let (_, token) = server.token(TokenKind::Namespace, "acme").await;
        let mut webhooks = server.api_client(Some(&token)).await;
        let mut deliveries = server.deliveries_client(Some(&token)).await;
        let attempts = async |api: &mut crate::harness::api::Deliveries, id: &str| {
            api.get_delivery(GetDeliveryRequest { id: id.into() })
                .await
                .expect("get delivery")
                .into_inner()
                .attempts
        };

        // Slack: `invalid_payload` is final, quoted; a revoked URL disables the webhook.
        let slack = Receiver::start().await;
        slack.script([Reply::status(400).body("invalid_payload")]);
        let (refused, _) = create(
            &mut webhooks,
            chat_hook("slack", &slack.url(), proto::PayloadFormat::Slack),
        )
        .await;
        let revoked = Receiver::start().await;
        revoked.set_default(Reply::status(404).body("no_service"));
        let (gone, _) = create(
            &mut webhooks,
            chat_hook("revoked", &revoked.url(), proto::PayloadFormat::Slack),
        )
        .await;
        // Discord: a 429 waits as long as its body says; Teams: 202 is success.
        let discord = Receiver::start().await;
        discord.script([Reply::status(429).header("retry-after", "1").body(
            r#"{"message": "You are being rate limited.", "retry_after": 1.5, "global": false}"#,
        )]);
        discord.set_default(Reply::status(204));
        let (paused, _) = create(
            &mut webhooks,
            chat_hook("discord", &discord.url(), proto::PayloadFormat::Discord),
        )
        .await;
        let teams = Receiver::start().await;
        teams.set_default(Reply::status(202));
        let (accepted, _) = create(
            &mut webhooks,
            chat_hook("teams", &teams.url(), proto::PayloadFormat::Msteams),
        )
        .await;

        server.notify_ok(&push("acme/app", "1.4")).await;

        let failed = wait_status(&mut deliveries, &refused.id, DeliveryStatus::Failed, 1).await;
        let log = attempts(&mut deliveries, &failed[0].id).await;
        assert_eq!(log.len(), 1, "final at once");
        assert_eq!(
            log[0].reason,
            "Slack answered HTTP 400 `invalid_payload`, which is final: fix the webhook and redeliver"
        );
        assert_eq!(log[0].response_body, "invalid_payload");
        let body = &slack.received()[0];
        assert_eq!(body.header("content-type"), "application/json");
        assert!(!body.header("webhook-signature").is_empty(), "signed");
        check_chat("slack", &body.body).expect("what Slack got passes its SDK");

        let failed = wait_status(&mut deliveries, &gone.id, DeliveryStatus::Failed, 1).await;
        let log = attempts(&mut deliveries, &failed[0].id).await;
        assert!(log[0].reason.contains("`no_service`"), "{}", log[0].reason);
        let shown = webhooks
            .get_webhook(GetWebhookRequest {
                id: gone.id.clone(),
            })
            .await
            .expect("get")
            .into_inner()
            .webhook
            .expect("webhook");
        assert_eq!(shown.enabled, Some(false));
        assert!(
            shown
                .disabled_reason
                .contains("Slack answered `no_service`: the webhook URL no longer works"),
            "{}",
            shown.disabled_reason
        );

        let done = wait_status(&mut deliveries, &paused.id, DeliveryStatus::Succeeded, 1).await;
        let got = discord.received();
        assert_eq!(got.len(), 2);
        let waited = got[1].at - got[0].at;
        assert!(waited >= Duration::from_millis(1500), "waited {waited:?}");
        let log = attempts(&mut deliveries, &done[0].id).await;
        assert_eq!(log[0].status_code, 429);
        check_chat("discord", &got[1].body).expect("what Discord got passes its limits");

        let done = wait_status(&mut deliveries, &accepted.id, DeliveryStatus::Succeeded, 1).await;
        assert_eq!(done[0].attempts, 1, "202 is success");
        check_chat("msteams", &teams.received()[0].body).expect("a valid card");
        server.stop().await;
    }
);

store_test!(
    a_chat_webhooks_url_is_shown_redacted_and_kept_whole,
    async |db: &TestDb| {
        let server = TestServer::start(db, fast).await;
        let (_, token) = server.token(TokenKind::Namespace, "acme").await;
        let mut api = server.api_client(Some(&token)).await;
        let receiver = Receiver::start().await;
        let url = format!("{}/services/T0/B0/credential", receiver.url());
        let (created, _) = create(
            &mut api,
            proto::Webhook {
                payload_options: Some(proto::PayloadOptions {
                    chat_link: "https://ui.example/{repository}".into(),
                    chat_mention: "<!here>".into(),
                    ..Default::default()
                }),
                ..chat_hook("chat", &url, proto::PayloadFormat::Slack)
            },
        )
        .await;
        assert_eq!(created.url, url, "create shows it once");
        let redacted = "http://127.0.0.1/…redacted";
        let got = api
            .get_webhook(GetWebhookRequest {
                id: created.id.clone(),
            })
            .await
            .expect("get")
            .into_inner()
            .webhook
            .expect("webhook");
        assert_eq!(got.url, redacted);
        assert_eq!(
            got.payload_options
                .as_ref()
                .map(|o| o.chat_mention.as_str()),
            Some("<!here>")
        );
        let listed = |url_contains: &str| ListWebhooksRequest {
            url_contains: url_contains.into(),
            ..Default::default()
        };
        let all = api
            .list_webhooks(listed(""))
            .await
            .expect("list")
            .into_inner();
        assert_eq!(all.webhooks[0].url, redacted);
        let found = api
            .list_webhooks(listed("credential"))
            .await
            .expect("list")
            .into_inner();
        assert!(found.webhooks.is_empty(), "a search cannot guess the URL");

        // Saving what was shown is refused; an update without the URL keeps it whole.
        let status = expect_code(
            api.update_webhook(UpdateWebhookRequest {
                webhook: Some(got.clone()),
                update_mask: mask(&["url"]),
            })
            .await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&status), ["webhook.url"]);
        api.update_webhook(UpdateWebhookRequest {
            webhook: Some(proto::Webhook {
                name: "renamed".into(),
                ..got.clone()
            }),
            update_mask: mask(&["name", "payload_options"]),
        })
        .await
        .expect("update");
        api.test_webhook(TestWebhookRequest {
            id: created.id.clone(),
        })
        .await
        .expect("ping");
        let pinged = receiver.wait_for(1, Duration::from_secs(10)).await;
        assert!(
            pinged[0].uri.ends_with("/services/T0/B0/credential"),
            "{}",
            pinged[0].uri
        );
        check_chat("slack", &pinged[0].body).expect("a ping is a valid message");

        // A link template that cannot work is refused where the owner can fix it.
        let status = expect_code(
            api.update_webhook(UpdateWebhookRequest {
                webhook: Some(proto::Webhook {
                    payload_options: Some(proto::PayloadOptions {
                        chat_link: "https://ui.example/{image}".into(),
                        ..Default::default()
                    }),
                    ..got
                }),
                update_mask: mask(&["payload_options"]),
            })
            .await,
            Code::InvalidArgument,
        );
        assert_eq!(
            violated_fields(&status),
            ["webhook.payload_options.chat_link"]
        );
        server.stop().await;
    }
);
