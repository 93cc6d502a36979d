//! Registry-native events against a real distribution registry, on both backends: a
//! multi-platform push (`skopeo copy --all` of an OCI index) is one `image.pushed` for a
//! default webhook, the platform manifests reach only a webhook that asks for
//! `manifest.pushed`, and a tag pushed again names the digest it replaced (or says that
//! nothing changed).

use std::time::Duration;

use hookline::store::Webhook;

use crate::harness::receiver::{Received, Receiver};
use crate::harness::registry::Registry;
use crate::harness::server::{REGISTRY_TOKEN, TestServer};
use crate::store_contract::webhook;
use crate::store_test;

const WAIT: Duration = Duration::from_secs(30);
const PLATFORMS: [(&str, &str); 2] = [("linux", "amd64"), ("linux", "arm64")];

/// Adds a webhook for `acme/*` to `url`; returns its id.
async fn add_webhook(server: &TestServer, url: &str, tweak: impl FnOnce(&mut Webhook)) -> String {
    let (mut hook, secret) = webhook("acme", url);
    tweak(&mut hook);
    server
        .store
        .insert_webhook(&hook, &secret)
        .await
        .expect("insert webhook");
    hook.id
}

/// The event types and digests of what a receiver got, in arrival order.
fn seen(received: &[Received]) -> Vec<(String, String)> {
    received
        .iter()
        .map(|r| {
            let body = r.json();
            (
                body["type"].as_str().unwrap_or_default().to_owned(),
                body["digest"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

store_test!(
    a_multi_platform_push_is_one_event_that_names_the_digest_it_replaced,
    async |db: &TestDb| {
        let server = TestServer::start(db, |c| {
            c.dispatch.poll_interval = Duration::from_millis(100);
        })
        .await;
        let default_hook = Receiver::start().await;
        let every_manifest = Receiver::start().await;
        let default_id = add_webhook(&server, &default_hook.url(), |_| {}).await;
        add_webhook(&server, &every_manifest.url(), |w| {
            w.event_types = vec!["image.pushed".into(), "manifest.pushed".into()];
        })
        .await;
        let registry = Registry::start(&server.notify_url(), REGISTRY_TOKEN).await;

        let (index, platforms) = registry
            .push_multi_platform("acme/multi", "v2", &PLATFORMS, "abc123")
            .await;
        // The opt-in webhook gets both platform manifests, then the tagged index.
        let all = every_manifest.wait_for(3, WAIT).await;
        let mut expected: Vec<(String, String)> = platforms
            .iter()
            .map(|d| ("manifest.pushed".to_owned(), d.clone()))
            .collect();
        expected.push(("image.pushed".to_owned(), index.clone()));
        let mut got = seen(&all);
        got.sort();
        expected.sort();
        assert_eq!(got, expected, "{}", registry.log_tail());

        // The default webhook: exactly one event for the whole push. Its deliveries were
        // created with the opt-in one's, by the same fan-out of the same events.
        let one = default_hook.wait_for(1, WAIT).await;
        let events = server.store.recent_events(50).await.expect("events");
        let mut default_deliveries = 0;
        for event in &events {
            let deliveries = server
                .store
                .deliveries_for_event(&event.id)
                .await
                .expect("deliveries");
            let to_default = deliveries
                .iter()
                .filter(|d| d.webhook_id == default_id)
                .count();
            let (to_default_wanted, total_wanted) = match event.kind.as_str() {
                "image.pushed" => (1, 2),
                "manifest.pushed" => (0, 1),
                _ => (0, 0),
            };
            assert_eq!(
                (to_default, deliveries.len()),
                (to_default_wanted, total_wanted),
                "{event:?}"
            );
            default_deliveries += to_default;
        }
        assert_eq!(default_deliveries, 1, "one event for the default webhook");
        let first = one[0].json();
        assert_eq!(first["type"], "image.pushed");
        assert_eq!(first["tag"], "v2");
        assert_eq!(first["digest"], index.as_str());
        assert!(first["previous_digest"].is_null(), "{first}");
        assert_eq!(first["changed"], true);

        // A new build under the same tag names the index it replaced.
        let (rebuilt, _) = registry
            .push_multi_platform("acme/multi", "v2", &PLATFORMS, "def456")
            .await;
        assert_ne!(rebuilt, index);
        let two = default_hook.wait_for(2, WAIT).await;
        let second = two[1].json();
        assert_eq!(second["digest"], rebuilt.as_str());
        assert_eq!(second["previous_digest"], index.as_str(), "{second}");
        assert_eq!(second["changed"], true);

        // The same build pushed again: delivered, and flagged as changing nothing.
        let (again, _) = registry
            .push_multi_platform("acme/multi", "v2", &PLATFORMS, "def456")
            .await;
        assert_eq!(again, rebuilt, "the same build has the same digest");
        let three = default_hook.wait_for(3, WAIT).await;
        let third = three[2].json();
        assert_eq!(third["digest"], rebuilt.as_str());
        assert_eq!(third["previous_digest"], rebuilt.as_str());
        assert_eq!(third["changed"], false, "{third}");
        server.stop().await;
    }
);
