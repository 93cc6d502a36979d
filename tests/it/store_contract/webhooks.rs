//! The storage contract for webhook management, on SQLite and PostgreSQL alike:
//! listing with namespace visibility and keyset pagination, compare-and-set updates,
//! deletes, secret rotation and addressed (ping) events.

use std::time::Duration;

use hookline::event::EventType;
use hookline::ids::new_id;
use hookline::secret::Secret;
use hookline::store::{NewDelivery, Store, Webhook, WebhookQuery, WebhookSecret};

use super::{T0, claim, event, webhook};
use crate::store_test;

async fn add(store: &Store, namespace: &str, name: &str, url: &str) -> Webhook {
    let (mut wh, secret) = webhook(namespace, url);
    wh.name = name.into();
    store.insert_webhook(&wh, &secret).await.expect("insert");
    wh
}

fn query(within: Option<&str>) -> WebhookQuery {
    WebhookQuery {
        within: within.map(Into::into),
        limit: 100,
        ..Default::default()
    }
}

async fn namespaces(store: &Store, q: &WebhookQuery) -> Vec<String> {
    let mut found: Vec<String> = store
        .list_webhooks(q)
        .await
        .expect("list")
        .into_iter()
        .map(|w| w.namespace)
        .collect();
    found.sort();
    found
}

fn secret(value: &str, at: i64) -> WebhookSecret {
    WebhookSecret {
        id: new_id("whs"),
        secret: Secret::new(value),
        created_at: at,
        expires_at: None,
    }
}

store_test!(
    listing_sees_a_namespace_and_below_only,
    async |db: &TestDb| {
        let store = db.store().await;
        for ns in ["acme", "acme/tools", "acmecorp", "ac_e", "ac%", "other", ""] {
            add(&store, ns, ns, "http://127.0.0.1:9/").await;
        }
        assert_eq!(
            namespaces(&store, &query(Some("acme"))).await,
            ["acme", "acme/tools"]
        );
        assert_eq!(
            namespaces(&store, &query(Some("acme/tools"))).await,
            ["acme/tools"]
        );
        // `_` and `%` are LIKE wildcards: they must match only themselves.
        assert_eq!(namespaces(&store, &query(Some("ac_e"))).await, ["ac_e"]);
        assert_eq!(namespaces(&store, &query(Some("ac%"))).await, ["ac%"]);
        assert!(namespaces(&store, &query(Some("acm"))).await.is_empty());
        assert_eq!(namespaces(&store, &query(None)).await.len(), 7);
        store.close().await;
    }
);

store_test!(listing_filters_combine, async |db: &TestDb| {
    let store = db.store().await;
    add(&store, "acme", "Deploy prod", "https://deploy.example/hook").await;
    let staging = add(&store, "acme", "deploy staging", "https://stage.example/x").await;
    add(&store, "acme", "audit", "https://audit.example/deploy").await;
    store
        .disable_webhook(&staging.id, "test", T0 + 1)
        .await
        .expect("disable");
    let names = |q: WebhookQuery| {
        let store = store.clone();
        async move {
            let mut names: Vec<String> = store
                .list_webhooks(&q)
                .await
                .expect("list")
                .into_iter()
                .map(|w| w.name)
                .collect();
            names.sort();
            names
        }
    };
    let name_contains = |s: &str| WebhookQuery {
        name_contains: Some(s.into()),
        ..query(Some("acme"))
    };
    assert_eq!(
        names(name_contains("DEPLOY")).await,
        ["Deploy prod", "deploy staging"],
        "name filter ignores case"
    );
    assert_eq!(
        names(WebhookQuery {
            enabled: Some(true),
            ..name_contains("deploy")
        })
        .await,
        ["Deploy prod"]
    );
    assert_eq!(
        names(WebhookQuery {
            enabled: Some(false),
            ..query(None)
        })
        .await,
        ["deploy staging"]
    );
    assert_eq!(
        names(WebhookQuery {
            url_contains: Some("deploy".into()),
            ..query(None)
        })
        .await,
        ["Deploy prod", "audit"]
    );
    // A chat webhook's URL is a credential: searching never matches it.
    assert!(
        names(WebhookQuery {
            url_contains: Some("deploy".into()),
            secret_url_formats: vec!["hookline".into(), "slack".into()],
            ..query(None)
        })
        .await
        .is_empty()
    );
    store.close().await;
});

store_test!(
    keyset_pages_return_each_webhook_once,
    async |db: &TestDb| {
        let store = db.store().await;
        let mut created = Vec::new();
        for i in 0..23 {
            created.push(
                add(&store, "acme", &format!("w{i}"), "http://127.0.0.1:9/")
                    .await
                    .id,
            );
        }
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = store
                .list_webhooks(&WebhookQuery {
                    after_id: after.clone(),
                    limit: 5,
                    ..query(Some("acme"))
                })
                .await
                .expect("page");
            assert!(page.len() <= 5);
            if page.is_empty() {
                break;
            }
            after = page.last().map(|w| w.id.clone());
            seen.extend(page.into_iter().map(|w| w.id));
        }
        assert_eq!(seen, created, "every webhook once, in creation order");
        store.close().await;
    }
);

store_test!(updates_are_compare_and_set, async |db: &TestDb| {
    let store = db.store().await;
    let original = add(&store, "acme", "before", "http://127.0.0.1:9/").await;
    let r0 = store.webhooks_revision().await.expect("revision");
    let mut changed = original.clone();
    changed.name = "after".into();
    changed.tags = vec!["v*".into()];
    changed.updated_at = T0 + 10;
    assert!(
        store
            .update_webhook(&changed, original.updated_at)
            .await
            .expect("update")
    );
    assert_eq!(
        store.get_webhook(&original.id).await.expect("get"),
        Some(changed.clone())
    );
    assert!(store.webhooks_revision().await.expect("revision") > r0);
    // A writer holding the old version loses, and nothing changes.
    let mut stale = original.clone();
    stale.name = "stale".into();
    stale.updated_at = T0 + 11;
    assert!(
        !store
            .update_webhook(&stale, original.updated_at)
            .await
            .expect("update")
    );
    assert_eq!(
        store.get_webhook(&original.id).await.expect("get"),
        Some(changed.clone())
    );
    let mut missing = changed.clone();
    missing.id = new_id("wh");
    assert!(
        !store
            .update_webhook(&missing, changed.updated_at)
            .await
            .expect("update")
    );
    store.close().await;
});

store_test!(
    re_enabling_clears_the_failure_record,
    async |db: &TestDb| {
        let store = db.store().await;
        let wh = add(&store, "acme", "x", "http://127.0.0.1:9/").await;
        store
            .set_failing_since(&wh.id, Some(T0 + 1))
            .await
            .expect("failing");
        store
            .disable_webhook(&wh.id, "failing for 3 days", T0 + 2)
            .await
            .expect("disable");
        let disabled = store
            .get_webhook(&wh.id)
            .await
            .expect("get")
            .expect("exists");
        let mut enabled = disabled.clone();
        enabled.enabled = true;
        enabled.disabled_reason = None;
        enabled.updated_at = T0 + 3;
        assert!(
            store
                .update_webhook(&enabled, disabled.updated_at)
                .await
                .expect("update")
        );
        let stored = store
            .get_webhook(&wh.id)
            .await
            .expect("get")
            .expect("exists");
        assert!(stored.enabled);
        assert_eq!((stored.disabled_reason, stored.failing_since), (None, None));
        assert_eq!(store.enabled_webhooks(T0).await.expect("enabled").len(), 1);
        store.close().await;
    }
);

store_test!(deleting_removes_webhook_and_secrets, async |db: &TestDb| {
    let store = db.store().await;
    let gone = add(&store, "acme", "gone", "http://127.0.0.1:9/").await;
    let kept = add(&store, "acme", "kept", "http://127.0.0.1:9/").await;
    let r0 = store.webhooks_revision().await.expect("revision");
    assert!(store.delete_webhook(&gone.id).await.expect("delete"));
    assert!(store.webhooks_revision().await.expect("revision") > r0);
    assert_eq!(store.get_webhook(&gone.id).await.expect("get"), None);
    assert!(
        !store.delete_webhook(&gone.id).await.expect("delete"),
        "already gone"
    );
    let enabled = store.enabled_webhooks(T0).await.expect("enabled");
    assert_eq!(enabled.len(), 1);
    assert_eq!(enabled[0].webhook.id, kept.id);
    assert_eq!(enabled[0].secrets.len(), 1, "the other's secret is kept");
    store.close().await;
});

store_test!(
    a_rotated_secret_stays_valid_for_its_grace_period,
    async |db: &TestDb| {
        let store = db.store().await;
        let wh = add(&store, "acme", "x", "http://127.0.0.1:9/").await;
        let old = store.enabled_webhooks(T0).await.expect("enabled")[0].secrets[0].clone();
        let r0 = store.webhooks_revision().await.expect("revision");
        let new = secret("whsec_bmV3bmV3bmV3bmV3bmV3bmV3bmV3bmV3", T0 + 100);
        assert!(
            store
                .rotate_secret(&wh.id, &new, T0 + 1_000)
                .await
                .expect("rotate")
        );
        assert!(store.webhooks_revision().await.expect("revision") > r0);
        let values = |at: i64| {
            let store = store.clone();
            async move {
                store.enabled_webhooks(at).await.expect("enabled")[0]
                    .secrets
                    .iter()
                    .map(|s| (s.secret.expose().to_owned(), s.expires_at))
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            values(T0 + 500).await,
            [
                (new.secret.expose().to_owned(), None),
                (old.secret.expose().to_owned(), Some(T0 + 1_000))
            ],
            "current first, then the previous one until its grace ends"
        );
        assert_eq!(
            values(T0 + 1_000).await,
            [(new.secret.expose().to_owned(), None)]
        );
        // Rotating again later: the expired secret is dropped, the current one gets a grace.
        let newer = secret("whsec_bmV3ZXJuZXdlcm5ld2VybmV3ZXJuZXdlcm5l", T0 + 2_000);
        assert!(
            store
                .rotate_secret(&wh.id, &newer, T0 + 3_000)
                .await
                .expect("rotate")
        );
        assert_eq!(
            values(T0 + 2_500).await,
            [
                (newer.secret.expose().to_owned(), None),
                (new.secret.expose().to_owned(), Some(T0 + 3_000))
            ]
        );
        let missing = secret("whsec_bWlzc2luZ21pc3NpbmdtaXNzaW5n", T0);
        assert!(
            !store
                .rotate_secret("wh_missing", &missing, T0)
                .await
                .expect("rotate")
        );
        store.close().await;
    }
);

store_test!(
    an_addressed_event_is_queued_already_fanned_out,
    async |db: &TestDb| {
        let store = db.store().await;
        let mut waiter = store.wake().waiter();
        let mut ping = event("hookline", &new_id("ping"), "acme", None);
        ping.kind = EventType::Ping;
        let delivery = NewDelivery {
            id: new_id("dlv"),
            event_id: ping.id.clone(),
            webhook_id: "wh_1".into(),
            namespace: "acme".into(),
            ordering_key: None,
        };
        store
            .insert_fanned_out(&ping, std::slice::from_ref(&delivery), T0)
            .await
            .expect("insert");
        assert!(
            waiter.wait(Duration::from_secs(5)).await,
            "dispatchers are woken"
        );
        let plan = |_: &hookline::event::Event| -> Vec<NewDelivery> {
            panic!("an addressed event is never planned")
        };
        let report = store
            .fan_out(10, T0, store.webhooks_revision().await.expect("rev"), &plan)
            .await
            .expect("fan out");
        assert_eq!(report.events, 0);
        let claimed = store.claim_due(&claim(T0, 10)).await.expect("claim");
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].lease.delivery_id, delivery.id);
        let body = claimed[0].event_body.as_deref().expect("event body");
        assert_eq!(hookline::store::decode_event(body).expect("decodes"), ping);
        store.close().await;
    }
);
