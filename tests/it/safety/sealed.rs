//! Secrets sealed at rest (`seal.rs`): a set of distinctive secrets (signing secrets
//! before and after a rotation, a custom header value, a broker's password, a chat
//! webhook's URL, a registry password, a client certificate's key, an OAuth client
//! secret) is nowhere in the SQLite file, its WAL, a `hookline backup` copy or a
//! `pg_dump`; a rotation of the key re-sealed by `keys rewrap` during a load loses no
//! signature (each delivery verified with the standardwebhooks library); a start without
//! the key that sealed refuses, naming it; a database from before sealing is sealed at
//! start and keeps delivering.

use std::sync::Arc;
use std::time::Duration;

use hookline::api::proto::{self, CreateWebhookRequest, RotateWebhookSecretRequest};
use hookline::config::SecretKeys;
use hookline::seal::{Keyring, generate, key_id};
use hookline::store::{NewToken, RegistryAccess, TokenKind};
use tokio_util::sync::CancellationToken;

use super::push;
use crate::api::hook;
use crate::harness::db::{Raw, TestDb};
use crate::harness::receiver::Receiver;
use crate::harness::server::{TestServer, test_config, with_api};
use crate::store_test;

/// `whsec_` + base64 of 32 distinctive bytes, before and after a rotation.
const FIRST_SECRET: &str = "whsec_U0VBTEVELWZpcnN0LXNpZ25pbmcta2V5LTAxMjM0NTY=";
const SECOND_SECRET: &str = "whsec_U0VBTEVELXNlY29uZC1zaWduaW5nLWtleS0wMTIzNDU=";
const HEADER_VALUE: &str = "Bearer hdr-SEALED-7f3a91";
const BUS_PASSWORD: &str = "busSEALEDpw91c";
const CHAT_SECRET: &str = "chatSEALED4e2b8";
const REGISTRY_PASSWORD: &str = "regSEALEDpw55d";
const OAUTH_SECRET: &str = "oauthSEALEDcs3f1";

/// Every distinctive secret, to look for.
const SECRETS: [&str; 7] = [
    OAUTH_SECRET,
    FIRST_SECRET,
    SECOND_SECRET,
    HEADER_VALUE,
    BUS_PASSWORD,
    CHAT_SECRET,
    REGISTRY_PASSWORD,
];

/// Panics if `haystack` (`what`) holds any of the secrets or `more`; checks it holds
/// sealed values.
fn assert_sealed(what: &str, haystack: &[u8], more: &[&str]) {
    let text = String::from_utf8_lossy(haystack);
    for secret in SECRETS.iter().chain(more) {
        assert!(
            !text.contains(secret),
            "{what} holds `{secret}` in the clear"
        );
        // Their base64, as a signing secret's key would be kept, is absent too.
        let inner = secret.trim_start_matches("whsec_");
        assert!(!text.contains(inner), "{what} holds `{inner}`");
    }
    assert!(
        text.contains(hookline::seal::PREFIX),
        "{what} holds no sealed value: scanned the wrong thing?"
    );
}

/// Creates a webhook with a chosen secret and a custom header; returns its id.
async fn create_with(
    api: &mut crate::harness::api::Client,
    webhook: proto::Webhook,
    secret: &str,
) -> String {
    api.create_webhook(CreateWebhookRequest {
        webhook: Some(webhook),
        secret: secret.into(),
    })
    .await
    .expect("create")
    .into_inner()
    .webhook
    .expect("webhook")
    .id
}

store_test!(
    no_stored_secret_is_readable_in_the_database_its_wal_a_backup_or_a_dump,
    async |db: &TestDb| {
        let receiver = Receiver::start().await;
        let server = TestServer::start(db, with_api).await;
        let (_, token) = server.token(TokenKind::Namespace, "acme").await;
        let mut api = server.api_client(Some(&token)).await;

        let mut deploy = hook("deploy", &receiver.url());
        deploy
            .headers
            .insert("Authorization".into(), HEADER_VALUE.into());
        let id = create_with(&mut api, deploy, FIRST_SECRET).await;
        api.rotate_webhook_secret(RotateWebhookSecretRequest {
            id: id.clone(),
            secret: SECOND_SECRET.into(),
            ..Default::default()
        })
        .await
        .expect("rotate");
        let bus = format!("redis://app:{BUS_PASSWORD}@127.0.0.1:6379/0?stream=images");
        create_with(&mut api, hook("bus", &bus), "").await;
        let chat = format!("https://hooks.slack.com/services/T000/B000/{CHAT_SECRET}");
        let mut slack = hook("chat", &chat);
        slack.payload_format = proto::PayloadFormat::Slack as i32;
        create_with(&mut api, slack, "").await;
        // A client certificate's private key; a line of its base64 is what to look for.
        let leaf = crate::harness::tls::TestCa::new().leaf();
        let mut mtls = hook("mtls", "https://localhost:1/hook");
        mtls.client_certificate = leaf.cert_pem.clone();
        mtls.client_key = leaf.key_pem.clone();
        mtls.oauth = Some(proto::OAuthClientCredentials {
            token_url: "http://127.0.0.1:1/token".into(),
            client_id: "deployer".into(),
            client_secret: OAUTH_SECRET.into(),
            scopes: Vec::new(),
        });
        create_with(&mut api, mtls, "").await;
        let key_line = leaf
            .key_pem
            .lines()
            .nth(1)
            .expect("a base64 line")
            .to_owned();
        let more = [key_line.as_str()];
        server
            .store
            .insert_token(&NewToken {
                id: hookline::ids::new_id("tok"),
                kind: TokenKind::Registry,
                subject: "registry-a".into(),
                hash: hookline::secret::hash_token("not-used"),
                created_at: hookline::store::now_ms(),
                registry: Some(RegistryAccess {
                    url: "http://127.0.0.1:1".into(),
                    username: Some("reader".into()),
                    password: Some(hookline::secret::Secret::new(REGISTRY_PASSWORD)),
                }),
            })
            .await
            .expect("registry token");

        // Used: the delivery is signed with the current secret and carries the header.
        server.notify_ok(&push("acme/app", "1.4")).await;
        let got = receiver.wait_for(1, Duration::from_secs(20)).await;
        assert!(
            got[0].signed_with(SECOND_SECRET),
            "signed with the current secret"
        );
        assert!(
            got[0].signed_with(FIRST_SECRET),
            "and the previous one, until it expires"
        );
        assert_eq!(got[0].header("authorization"), HEADER_VALUE);

        match db.backend {
            Backend::Sqlite => {
                let file = db.url.trim_start_matches("sqlite://").to_owned();
                let wal = std::fs::read(format!("{file}-wal")).unwrap_or_default();
                let mut both = std::fs::read(&file).expect("database file");
                both.extend_from_slice(&wal);
                assert_sealed("the SQLite file and its WAL", &both, &more);
                let copy = tempfile::tempdir().expect("dir");
                let path = copy.path().join("copy.db");
                hookline::store::backup::backup(&db.url, &path)
                    .await
                    .expect("backup");
                assert_sealed(
                    "a hookline backup",
                    &std::fs::read(&path).expect("copy"),
                    &more,
                );
            }
            Backend::Postgres => {
                let dump = std::process::Command::new("pg_dump")
                    .arg(&db.url)
                    .output()
                    .expect("pg_dump (apt-get install postgresql-client)");
                assert!(
                    dump.status.success(),
                    "{}",
                    String::from_utf8_lossy(&dump.stderr)
                );
                assert_sealed("pg_dump", &dump.stdout, &more);
            }
        }
        server.stop().await;
    }
);

/// A keyring of `keys`, newest first, as a server's configuration.
fn keyring(keys: &[&str]) -> Arc<Keyring> {
    Arc::new(Keyring::parse(&keys.join(",")).expect("keys"))
}

/// The id of a base64 key.
fn id_of(key: &str) -> String {
    let keys = keyring(&[key]);
    keys.current().expect("a key").to_owned()
}

/// Starts hookline on `db` with `keys`; the start-up error if it refuses.
async fn start_with(db: &TestDb, keys: Arc<Keyring>) -> Result<(), String> {
    let mut config = test_config(&db.url);
    config.secret_keys = SecretKeys::Given(keys);
    let shutdown = CancellationToken::new();
    let started = hookline::server::start(&config, shutdown.clone()).await;
    shutdown.cancel();
    match started {
        Ok(running) => running.wait(shutdown).await.map_err(|e| e.to_string()),
        Err(error) => Err(error.to_string()),
    }
}

store_test!(
    a_key_rotation_rewrapped_during_a_load_keeps_every_delivery_signed,
    async |db: &TestDb| {
        const EVENTS: usize = 60;
        let (old, new) = (generate(), generate());
        let receiver = Receiver::start().await;
        let with_keys = |keys: Arc<Keyring>| {
            move |c: &mut hookline::config::Config| {
                with_api(c);
                c.secret_keys = SecretKeys::Given(keys);
            }
        };

        // Webhooks made under the old key.
        let server = TestServer::start(db, with_keys(keyring(&[&old]))).await;
        let (_, token) = server.token(TokenKind::Namespace, "acme").await;
        let mut api = server.api_client(Some(&token)).await;
        let mut secrets = Vec::new();
        for i in 0..3 {
            let mut webhook = hook(&format!("hook{i}"), &receiver.url());
            webhook.headers.insert("X-Team".into(), format!("team-{i}"));
            let (w, secret) = crate::api::create(&mut api, webhook).await;
            secrets.push((w.id, secret));
        }
        server.stop().await;

        // The new key first, the old one still there to read; a load, and the rewrap
        // while it runs.
        let rotated = keyring(&[&new, &old]);
        let server = TestServer::start(db, with_keys(rotated)).await;
        let load = async {
            for i in 0..EVENTS {
                server.notify_ok(&push("acme/app", &format!("1.{i}"))).await;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        let url = db.url.clone();
        let keys = format!("{new},{old}");
        let rewrap = tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_hookline"))
                .args(["keys", "rewrap", "--db", &url, "--secret-key", &keys])
                .output()
                .expect("keys rewrap")
        });
        let (_, rewrap) = tokio::join!(load, rewrap);
        let rewrap = rewrap.expect("rewrap task");
        let said = String::from_utf8_lossy(&rewrap.stdout).into_owned();
        assert!(
            rewrap.status.success(),
            "{said}{}",
            String::from_utf8_lossy(&rewrap.stderr)
        );
        // Three secrets, three header maps; nothing plaintext left to seal.
        assert!(said.starts_with("re-sealed 6 secrets"), "{said}");
        let got = receiver.wait_for(3 * EVENTS, Duration::from_secs(60)).await;
        for delivery in &got {
            let hook = delivery.header("x-team");
            let i: usize = hook.trim_start_matches("team-").parse().expect("x-team");
            // The standardwebhooks library's own verification, as a receiver's.
            crate::buses::verify_signed(&secrets[i].1, &delivery.body, |name| {
                delivery.header(name)
            });
        }
        server.stop().await;

        // Nothing needs the old key any more: the new one alone serves and signs.
        start_with(db, keyring(&[&new]))
            .await
            .expect("the new key alone opens everything");
        // Without the new key, start-up refuses, naming it; never sends unsigned.
        let error = start_with(db, keyring(&[&old])).await.expect_err("refused");
        assert!(error.contains(&id_of(&new)), "{error}");
        let error = start_with(db, keyring(&[&generate()]))
            .await
            .expect_err("refused");
        assert!(error.contains(&id_of(&new)), "{error}");
        assert_eq!(id_of(&new), key_id(&raw(&new)));
    }
);

/// A base64 key's bytes.
fn raw(key: &str) -> [u8; 32] {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(key)
        .expect("base64");
    bytes.try_into().expect("32 bytes")
}

store_test!(
    a_database_from_before_sealing_is_sealed_at_start_and_keeps_delivering,
    async |db: &TestDb| {
        let receiver = Receiver::start().await;
        let server = TestServer::start(db, with_api).await;
        let (_, token) = server.token(TokenKind::Namespace, "acme").await;
        let mut api = server.api_client(Some(&token)).await;
        let id = create_with(&mut api, hook("deploy", &receiver.url()), FIRST_SECRET).await;
        server.stop().await;

        // As a hookline before sealing stored them: in the clear.
        let headers = format!("{{\"Authorization\":\"{HEADER_VALUE}\"}}");
        let raw = Raw::open(db).await;
        raw.execute(
            "UPDATE webhook_secrets SET secret = $1 WHERE webhook_id = $2",
            &[FIRST_SECRET, &id],
        )
        .await;
        raw.execute(
            "UPDATE webhooks SET headers = $1 WHERE id = $2",
            &[&headers, &id],
        )
        .await;

        let server = TestServer::start(db, |_| {}).await;
        let stored = raw
            .strings("SELECT secret FROM webhook_secrets UNION ALL SELECT headers FROM webhooks")
            .await;
        assert!(!stored.is_empty());
        for value in &stored {
            assert!(
                value.starts_with(hookline::seal::PREFIX),
                "sealed at start: {value}"
            );
        }
        server.notify_ok(&push("acme/app", "2.0")).await;
        let got = receiver.wait_for(1, Duration::from_secs(20)).await;
        assert!(got[0].signed_with(FIRST_SECRET));
        assert_eq!(got[0].header("authorization"), HEADER_VALUE);
        server.stop().await;
    }
);
