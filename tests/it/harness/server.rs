//! A real hookline server in the test process, on 127.0.0.1:0.
//!
//! `TestServer::start(&db, |config| …)` runs `server::start` with the test's database,
//! a registry token, and any config tweaks; `stop()` cancels it and waits for a clean exit.
//! Every listener binds port 0; add the api role with [`with_api`] and talk to it with
//! `api_client(token)` after minting a token with `token(kind, subject)`.

use std::net::SocketAddr;

use hookline::config::{CommonSettings, Config, Role, ServeSettings};
use hookline::store::{NewToken, Store, TokenKind};
use tokio_util::sync::CancellationToken;

use super::db::TestDb;

/// The registry token every test server accepts (as `HOOKLINE_REGISTRY_TOKEN`).
pub const REGISTRY_TOKEN: &str = "test-registry-token-0123456789";

/// A running server.
pub struct TestServer {
    /// Ingest address.
    pub ingest: SocketAddr,
    /// gRPC API address, when the api role runs.
    pub api: Option<SocketAddr>,
    /// The server's own store handle.
    pub store: Store,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), hookline::server::RunError>>,
    http: reqwest::Client,
}

/// Configuration for tests: the database, port 0, every role unless changed.
pub fn test_config(db_url: &str) -> Config {
    let common = CommonSettings {
        db: Some(db_url.into()),
        ..Default::default()
    };
    let serve = ServeSettings {
        ingest_addr: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        api_addr: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        roles: Some(vec![Role::Ingest, Role::Dispatcher]),
        registry_token: Some(REGISTRY_TOKEN.parse().expect("token")),
        // Receivers listen on loopback, which the SSRF guard refuses unless allow-listed.
        allow_cidrs: Some(vec!["127.0.0.0/8".parse().expect("cidr")]),
        // Tests create hundreds of webhooks in a burst; tests/it/safety.rs checks the limit.
        api_rate_limit: Some(100_000),
        api_rate_burst: Some(100_000),
        ..Default::default()
    };
    let mut config = Config::resolve(common, serve).expect("test config is valid");
    // SQLite finds the test key beside its database (`TestDb`); PostgreSQL is given it.
    if !db_url.starts_with("sqlite://") {
        config.secret_keys = hookline::config::SecretKeys::Given(super::db::test_keys());
    }
    // Names resolve without DNS: `localhost` as usual, any other name to 127.0.0.1.
    config.ssrf = config
        .ssrf
        .with_lookup(std::sync::Arc::new(super::resolver::Names::default()));
    config
}

/// Config tweak: also run the gRPC API.
pub fn with_api(config: &mut Config) {
    if !config.roles.contains(&Role::Api) {
        config.roles.push(Role::Api);
    }
}

impl TestServer {
    /// Starts a server on `db` with `tweak` applied to the test configuration.
    pub async fn start(db: &TestDb, tweak: impl FnOnce(&mut Config)) -> TestServer {
        Self::start_url(&db.url, tweak).await
    }

    /// Starts a server on a database URL (e.g. through a proxy).
    pub async fn start_url(db_url: &str, tweak: impl FnOnce(&mut Config)) -> TestServer {
        // Logs show up in a failing test's output (filter with HOOKLINE_TEST_LOG).
        let filter = std::env::var("HOOKLINE_TEST_LOG").unwrap_or_else(|_| "info".into());
        let _ = hookline::telemetry::init(hookline::config::LogFormat::Text, &filter, None);
        let mut config = test_config(db_url);
        tweak(&mut config);
        let shutdown = CancellationToken::new();
        let running = hookline::server::start(&config, shutdown.clone())
            .await
            .expect("server starts");
        let ingest = running.ingest_addr.expect("ingest runs");
        let api = running.api_addr;
        let store = running.store.clone();
        let token = shutdown.clone();
        let task = tokio::spawn(async move { running.wait(token).await });
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("http client");
        TestServer {
            ingest,
            api,
            store,
            shutdown,
            task,
            http,
        }
    }

    /// `http://127.0.0.1:PORT/v1/notify`.
    pub fn notify_url(&self) -> String {
        format!("http://{}/v1/notify", self.ingest)
    }

    /// POSTs a notify body with a content type and an optional bearer token.
    pub async fn notify(
        &self,
        body: impl Into<reqwest::Body>,
        content_type: &str,
        token: Option<&str>,
    ) -> (u16, serde_json::Value) {
        self.try_notify(body, content_type, token)
            .await
            .expect("notify request")
    }

    /// [`TestServer::notify`], with a failed request as an error.
    pub async fn try_notify(
        &self,
        body: impl Into<reqwest::Body>,
        content_type: &str,
        token: Option<&str>,
    ) -> Result<(u16, serde_json::Value), reqwest::Error> {
        let mut request = self
            .http
            .post(self.notify_url())
            .header("content-type", content_type)
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        Ok((status, json))
    }

    /// POSTs a v1 envelope with the test registry token.
    pub async fn notify_ok(&self, body: &str) -> serde_json::Value {
        let (status, json) = self
            .notify(
                body.to_owned(),
                "application/vnd.docker.distribution.events.v1+json",
                Some(REGISTRY_TOKEN),
            )
            .await;
        assert_eq!(status, 200, "notify answered {status}: {json}");
        json
    }

    /// GET a path on the ingest address.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let response = self
            .http
            .get(format!("http://{}{path}", self.ingest))
            .send()
            .await
            .expect("GET");
        (
            response.status().as_u16(),
            response.text().await.unwrap_or_default(),
        )
    }

    /// Creates an API (or registry) token straight in the store, as `hookline tokens
    /// create` does; returns (token id, token).
    pub async fn token(&self, kind: TokenKind, subject: &str) -> (String, String) {
        let token = hookline::secret::generate_token();
        let record = NewToken {
            id: hookline::ids::new_id("tok"),
            kind,
            subject: subject.into(),
            hash: hookline::secret::hash_token(token.expose()),
            created_at: hookline::store::now_ms(),
            registry: None,
        };
        self.store
            .insert_token(&record)
            .await
            .expect("insert token");
        (record.id, token.expose().to_owned())
    }

    /// `http://127.0.0.1:PORT` of the API.
    pub fn api_url(&self) -> String {
        format!(
            "http://{}",
            self.api.expect("the api role runs (use with_api)")
        )
    }

    /// A webhooks client sending `authorization: Bearer <token>` (none if `token` is None).
    pub async fn api_client(&self, token: Option<&str>) -> super::api::Client {
        super::api::client(&self.api_url(), token).await
    }

    /// A deliveries client sending `authorization: Bearer <token>`.
    pub async fn deliveries_client(&self, token: Option<&str>) -> super::api::Deliveries {
        super::api::deliveries(&self.api_url(), token).await
    }

    /// Cancels the server and waits for every role to stop.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(std::time::Duration::from_secs(30), self.task)
            .await
            .expect("server stops within 30 s")
            .expect("server task")
            .expect("server stops cleanly");
    }
}
