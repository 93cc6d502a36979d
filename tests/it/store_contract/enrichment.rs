//! Enrichment storage on both backends: registry sources come from live registry tokens
//! with a URL (the newest last), credentials included, never listed; an event's enrichment
//! is stored once, and a second writer gets the first one back.

use hookline::event::Event;
use hookline::ids::new_id;
use hookline::secret::Secret;
use hookline::store::{NewToken, RegistryAccess, TokenKind};

use super::{T0, event};
use crate::store_test;

fn registry_token(subject: &str, at: i64, access: Option<RegistryAccess>) -> NewToken {
    NewToken {
        id: new_id("tok"),
        kind: TokenKind::Registry,
        subject: subject.into(),
        hash: hookline::secret::hash_token(hookline::secret::generate_token().expose()),
        created_at: at,
        registry: access,
    }
}

store_test!(
    registry_sources_are_live_tokens_with_a_url,
    async |db: &TestDb| {
        let store = db.store().await;
        let with_credentials = RegistryAccess {
            url: "https://registry.example".into(),
            username: Some("reader".into()),
            password: Some(Secret::new("s3cret-password")),
        };
        let anonymous = RegistryAccess {
            url: "http://127.0.0.1:5000".into(),
            username: None,
            password: None,
        };
        store
            .insert_token(&registry_token("hub", T0, Some(anonymous.clone())))
            .await
            .expect("insert");
        store
            .insert_token(&registry_token(
                "hub",
                T0 + 1,
                Some(with_credentials.clone()),
            ))
            .await
            .expect("insert");
        store
            .insert_token(&registry_token("plain", T0, None))
            .await
            .expect("insert");
        let revoked = registry_token("gone", T0, Some(anonymous.clone()));
        store.insert_token(&revoked).await.expect("insert");
        assert!(store.revoke_token(&revoked.id, T0).await.expect("revoke"));

        let sources = store.registry_sources().await.expect("sources");
        let got: Vec<(&str, &RegistryAccess)> = sources
            .iter()
            .map(|s| (s.source.as_str(), &s.access))
            .collect();
        assert_eq!(
            got,
            [("hub", &anonymous), ("hub", &with_credentials)],
            "oldest first, so the newest wins when keyed by source"
        );

        let listed = store.list_tokens().await.expect("list");
        let hub: Vec<_> = listed.iter().filter(|t| t.subject == "hub").collect();
        assert_eq!(hub.len(), 2);
        assert!(hub.iter().all(|t| t.registry_url.is_some()));
        assert_eq!(
            hub.iter().filter(|t| t.registry_credentials).count(),
            1,
            "whether credentials are stored, never what they are"
        );
        let plain = listed.iter().find(|t| t.subject == "plain").expect("plain");
        assert_eq!(
            (plain.registry_url.as_deref(), plain.registry_credentials),
            (None, false)
        );
        store.close().await;
    }
);

store_test!(an_events_enrichment_is_stored_once, async |db: &TestDb| {
    let store = db.store().await;
    let e: Event = event("default", "r-enrich", "acme/app", Some("v1"));
    store
        .insert_events(std::slice::from_ref(&e))
        .await
        .expect("insert");
    assert_eq!(store.event_enrichment(&e.id).await.expect("read"), None);

    let first = r#"{"status":"unavailable","reason":"timeout"}"#;
    let second = r#"{"status":"complete"}"#;
    assert_eq!(
        store
            .record_enrichment(&e.id, first)
            .await
            .expect("record")
            .as_deref(),
        Some(first)
    );
    // A second writer (another webhook's delivery, another replica) gets the first back.
    assert_eq!(
        store
            .record_enrichment(&e.id, second)
            .await
            .expect("record")
            .as_deref(),
        Some(first)
    );
    assert_eq!(
        store
            .event_enrichment(&e.id)
            .await
            .expect("read")
            .as_deref(),
        Some(first)
    );
    // The stored body is untouched: enrichment is a column of its own.
    let stored = store
        .get_events(std::slice::from_ref(&e.id))
        .await
        .expect("get");
    assert_eq!(stored[0].enrichment, None);
    assert_eq!(
        store
            .record_enrichment("evt_missing", first)
            .await
            .expect("record"),
        None,
        "an event that is gone"
    );
    store.close().await;
});
