//! Every DeliveryService RPC with another namespace's token and ids answers NOT_FOUND,
//! exactly like an id that does not exist; listings never show another tenant's rows.

use std::time::Duration;

use hookline::api::proto::{
    DeliveryStatus, GetDeliveryRequest, GetEventRequest, GetWebhookStatsRequest,
    ListDeliveriesRequest, ListEventsRequest, RedeliverDeliveryRequest, ReplayWebhookRequest,
    WatchDeliveriesRequest,
};
use hookline::store::TokenKind;
use tonic::Code;

use super::{since, wait_status};
use crate::api::{create, hook};
use crate::harness::api::expect_code;
use crate::harness::envelopes::push;
use crate::harness::receiver::Receiver;
use crate::harness::server::{TestServer, with_api};
use crate::store_test;

store_test!(
    another_tenant_gets_not_found_from_every_delivery_rpc,
    async |db: &TestDb| {
        let server = TestServer::start(db, with_api).await;
        let receiver = Receiver::start().await;
        let (_, acme_token) = server.token(TokenKind::Namespace, "acme").await;
        let (_, other_token) = server.token(TokenKind::Namespace, "acmecorp").await;
        let mut acme_webhooks = server.api_client(Some(&acme_token)).await;
        let mut acme = server.deliveries_client(Some(&acme_token)).await;
        let mut other = server.deliveries_client(Some(&other_token)).await;
        let (webhook, _) = create(&mut acme_webhooks, hook("a", &receiver.url())).await;
        server.notify_ok(&push("acme/app", "1")).await;
        let done = wait_status(&mut acme, &webhook.id, DeliveryStatus::Succeeded, 1).await;
        let (delivery_id, event_id) = (done[0].id.clone(), done[0].event_id.clone());

        let not_found = |code: Code| assert_eq!(code, Code::NotFound);
        let e = expect_code(
            other
                .get_event(GetEventRequest {
                    id: event_id.clone(),
                })
                .await,
            Code::NotFound,
        );
        let missing = expect_code(
            other
                .get_event(GetEventRequest {
                    id: "evt_nope".into(),
                })
                .await,
            Code::NotFound,
        );
        assert_eq!(
            e.message(),
            missing.message(),
            "indistinguishable from absent"
        );
        let stats = expect_code(
            other
                .get_webhook_stats(GetWebhookStatsRequest {
                    webhook_id: webhook.id.clone(),
                    ..Default::default()
                })
                .await,
            Code::NotFound,
        );
        assert!(stats.message().contains("webhook"), "{}", stats.message());
        let d = expect_code(
            other
                .get_delivery(GetDeliveryRequest {
                    id: delivery_id.clone(),
                })
                .await,
            Code::NotFound,
        );
        let missing = expect_code(
            other
                .get_delivery(GetDeliveryRequest {
                    id: "dlv_nope".into(),
                })
                .await,
            Code::NotFound,
        );
        assert_eq!(d.message(), missing.message());
        not_found(
            other
                .redeliver_delivery(RedeliverDeliveryRequest {
                    id: delivery_id.clone(),
                })
                .await
                .expect_err("redeliver")
                .code(),
        );
        not_found(
            other
                .replay_webhook(ReplayWebhookRequest {
                    webhook_id: webhook.id.clone(),
                    since: since(0),
                    ..Default::default()
                })
                .await
                .expect_err("replay")
                .code(),
        );
        not_found(
            other
                .list_deliveries(ListDeliveriesRequest {
                    webhook_id: webhook.id.clone(),
                    ..Default::default()
                })
                .await
                .expect_err("list by webhook")
                .code(),
        );
        not_found(
            other
                .watch_deliveries(WatchDeliveriesRequest {
                    webhook_id: webhook.id.clone(),
                })
                .await
                .expect_err("watch")
                .code(),
        );
        // Listings: nothing of acme's.
        let events = other
            .list_events(ListEventsRequest::default())
            .await
            .expect("list events")
            .into_inner()
            .events;
        assert!(events.is_empty(), "{events:?}");
        let deliveries = other
            .list_deliveries(ListDeliveriesRequest::default())
            .await
            .expect("list deliveries")
            .into_inner()
            .deliveries;
        assert!(deliveries.is_empty(), "{deliveries:?}");
        // Nothing changed: the delivery was not redelivered.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(receiver.received().len(), 1);
        // Its owner sees it all.
        acme.get_event(GetEventRequest { id: event_id })
            .await
            .expect("owner gets the event");
        server.stop().await;
    }
);

store_test!(bad_input_names_the_field, async |db: &TestDb| {
    let server = TestServer::start(db, with_api).await;
    let (_, token) = server.token(TokenKind::Namespace, "acme").await;
    let mut api = server.deliveries_client(Some(&token)).await;
    let fields = |status: tonic::Status| crate::harness::api::violated_fields(&status);
    let status = expect_code(
        api.list_deliveries(ListDeliveriesRequest {
            page_size: 100_000,
            page_token: "garbage".into(),
            statuses: vec![99],
            repository: "acme/[".into(),
            since: since(2000),
            until: since(1000),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(
        fields(status),
        [
            "page_size",
            "page_token",
            "repository",
            "until",
            "statuses[0]"
        ]
    );
    let status = expect_code(
        api.replay_webhook(ReplayWebhookRequest {
            webhook_id: "wh_x".into(),
            request_id: "has spaces".into(),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(fields(status), ["since", "request_id"]);
    let status = expect_code(
        api.replay_webhook(ReplayWebhookRequest {
            webhook_id: "wh_x".into(),
            since: since(hookline::store::now_ms() + 3_600_000),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(fields(status), ["since"], "a window starting in the future");
    let status = expect_code(
        api.get_delivery(GetDeliveryRequest::default()).await,
        Code::InvalidArgument,
    );
    assert_eq!(fields(status), ["id"]);
    server.stop().await;
});
