//! Tenancy and tokens through the real server: a namespace token sees its namespace and
//! those below it, every call on anything else answers NOT_FOUND, and only live API
//! tokens are accepted.

use hookline::api::proto::{
    self, CreateWebhookRequest, DeleteWebhookRequest, ListWebhooksRequest,
    RotateWebhookSecretRequest, TestWebhookRequest, UpdateWebhookRequest,
};
use hookline::store::TokenKind;
use tonic::Code;

use super::{create, get, hook, ids, list_all, mask};
use crate::harness::api::expect_code;
use crate::harness::server::{TestServer, with_api};
use crate::store_test;

store_test!(
    a_tenant_never_sees_another_namespace,
    async |db: &TestDb| {
        let server = TestServer::start(db, with_api).await;
        let (_, acme) = server.token(TokenKind::Namespace, "acme").await;
        let (_, tools) = server.token(TokenKind::Namespace, "acme/tools").await;
        let (_, other) = server.token(TokenKind::Namespace, "other").await;
        let (_, admin) = server.token(TokenKind::Admin, "").await;
        let mut acme_api = server.api_client(Some(&acme)).await;
        let mut tools_api = server.api_client(Some(&tools)).await;
        let mut other_api = server.api_client(Some(&other)).await;
        let mut admin_api = server.api_client(Some(&admin)).await;

        let (a, _) = create(&mut acme_api, hook("a", "http://127.0.0.1:9/")).await;
        let (t, _) = create(
            &mut acme_api,
            proto::Webhook {
                namespace: Some("acme/tools".into()),
                repositories: vec!["acme/tools/*".into()],
                ..hook("t", "http://127.0.0.1:9/")
            },
        )
        .await;
        assert_eq!(
            t.namespace.as_deref(),
            Some("acme/tools"),
            "a namespace below the token's"
        );
        let (o, _) = create(&mut other_api, hook("o", "http://127.0.0.1:9/")).await;

        // Every RPC on another tenant's webhook answers exactly as for an id that does not exist.
        let missing = hookline::ids::new_id("wh");
        let mut other_again = server.api_client(Some(&other)).await;
        for (api, id) in [
            (&mut other_api, &a.id),
            (&mut tools_api, &a.id),
            (&mut other_again, &missing),
        ] {
            let mut messages = Vec::new();
            messages.push(
                expect_code(api.get_webhook(get(id)).await, Code::NotFound)
                    .message()
                    .to_owned(),
            );
            let update = UpdateWebhookRequest {
                webhook: Some(proto::Webhook {
                    id: id.clone(),
                    name: "taken".into(),
                    ..Default::default()
                }),
                update_mask: mask(&["name"]),
            };
            messages.push(
                expect_code(api.update_webhook(update).await, Code::NotFound)
                    .message()
                    .to_owned(),
            );
            let rotate = RotateWebhookSecretRequest {
                id: id.clone(),
                ..Default::default()
            };
            messages.push(
                expect_code(api.rotate_webhook_secret(rotate).await, Code::NotFound)
                    .message()
                    .to_owned(),
            );
            messages.push(
                expect_code(
                    api.test_webhook(TestWebhookRequest { id: id.clone() })
                        .await,
                    Code::NotFound,
                )
                .message()
                .to_owned(),
            );
            messages.push(
                expect_code(
                    api.delete_webhook(DeleteWebhookRequest { id: id.clone() })
                        .await,
                    Code::NotFound,
                )
                .message()
                .to_owned(),
            );
            assert!(
                messages.iter().all(|m| m == "webhook not found"),
                "{messages:?}"
            );
        }
        // Nothing was changed by those calls.
        let still = acme_api
            .get_webhook(get(&a.id))
            .await
            .expect("get")
            .into_inner()
            .webhook;
        assert_eq!(still, Some(a.clone()));
        let secrets = server
            .store
            .enabled_webhooks(hookline::store::now_ms())
            .await
            .expect("enabled");
        assert!(
            secrets.iter().all(|w| w.secrets.len() == 1),
            "no rotation happened"
        );
        assert!(
            server
                .store
                .recent_events(10)
                .await
                .expect("events")
                .is_empty(),
            "no ping was queued"
        );

        assert_eq!(ids(&list_all(&mut acme_api, 10).await), ids([&a, &t]));
        assert_eq!(ids(&list_all(&mut tools_api, 10).await), ids([&t]));
        assert_eq!(ids(&list_all(&mut other_api, 10).await), ids([&o]));
        assert_eq!(ids(&list_all(&mut admin_api, 10).await), ids([&a, &t, &o]));
        tools_api.get_webhook(get(&t.id)).await.expect("its own");
        acme_api
            .get_webhook(get(&t.id))
            .await
            .expect("below its namespace");
        let filtered = |namespace: &str| ListWebhooksRequest {
            namespace: namespace.into(),
            ..Default::default()
        };
        let foreign = acme_api
            .list_webhooks(filtered("other"))
            .await
            .expect("list")
            .into_inner();
        assert!(
            foreign.webhooks.is_empty(),
            "filtering on a foreign namespace shows nothing"
        );
        let sub = acme_api
            .list_webhooks(filtered("acme/tools"))
            .await
            .expect("list")
            .into_inner();
        assert_eq!(ids(&sub.webhooks), ids([&t]));
        let wider = tools_api
            .list_webhooks(filtered("acme"))
            .await
            .expect("list")
            .into_inner();
        assert_eq!(
            ids(&wider.webhooks),
            ids([&t]),
            "a wider filter stays within the token"
        );

        // Admins name the namespace; "" is every repository, and only admins see it.
        let (global, _) = create(
            &mut admin_api,
            proto::Webhook {
                namespace: Some(String::new()),
                ..hook("all", "http://127.0.0.1:9/")
            },
        )
        .await;
        assert_eq!(global.namespace.as_deref(), Some(""));
        expect_code(acme_api.get_webhook(get(&global.id)).await, Code::NotFound);
        admin_api
            .get_webhook(get(&a.id))
            .await
            .expect("admins see every namespace");
        server.stop().await;
    }
);

store_test!(only_live_api_tokens_are_accepted, async |db: &TestDb| {
    let server = TestServer::start(db, with_api).await;
    let (token_id, token) = server.token(TokenKind::Namespace, "acme").await;
    let (_, registry) = server.token(TokenKind::Registry, "main").await;
    let list = || ListWebhooksRequest::default();
    let mut anonymous = server.api_client(None).await;
    let status = expect_code(anonymous.list_webhooks(list()).await, Code::Unauthenticated);
    assert!(
        status.message().contains("hookline tokens create"),
        "{status:?}"
    );
    expect_code(
        anonymous.get_webhook(get("wh_x")).await,
        Code::Unauthenticated,
    );
    for bad in ["hl_0123456789abcdef", &registry] {
        let mut api = server.api_client(Some(bad)).await;
        expect_code(api.list_webhooks(list()).await, Code::Unauthenticated);
    }
    let mut api = server.api_client(Some(&token)).await;
    api.list_webhooks(list())
        .await
        .expect("a live namespace token works");
    assert!(
        server
            .store
            .revoke_token(&token_id, hookline::store::now_ms())
            .await
            .expect("revoke")
    );
    let status = expect_code(api.list_webhooks(list()).await, Code::Unauthenticated);
    assert!(
        !status.message().contains(&token),
        "the token is never echoed"
    );
    expect_code(
        api.create_webhook(CreateWebhookRequest {
            webhook: Some(hook("x", "http://127.0.0.1:9/")),
            secret: String::new(),
        })
        .await,
        Code::Unauthenticated,
    );
    server.stop().await;
});
