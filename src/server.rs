//! Wires the roles together: opens the store, binds listeners, starts ingest, api (with
//! the console's routes, built here on the API's services) and dispatch, and owns shutdown.
//!
//! [`start`] binds every listener before returning, so callers (tests) learn the real
//! addresses of `127.0.0.1:0` binds. [`Running::wait`] returns once every role stopped
//! after the shutdown token fired. No global state: one process can run many servers.

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Role};
use crate::store::{self, OpenOptions, Store};

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The store could not be opened or migrated.
    #[error("opening the database {url}: {source}")]
    Store {
        /// The database URL, password removed.
        url: String,
        /// The cause.
        #[source]
        source: store::StoreError,
    },
    /// The keys that seal stored secrets are missing or cannot open one (the message says
    /// which key, and how to make one).
    #[error("secret keys: {0}")]
    Keys(String),
    /// A listener could not be bound.
    #[error("binding {role} address {addr}: {source}")]
    Bind {
        /// Which role.
        role: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The TLS certificate or key cannot be used (the error names the file).
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// A role's server failed.
    #[error("{role} stopped with an error: {source}")]
    Role {
        /// Which role.
        role: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// A started server.
pub struct Running {
    /// Where ingest listens, if it runs.
    pub ingest_addr: Option<SocketAddr>,
    /// Where the gRPC API listens, if it runs.
    pub api_addr: Option<SocketAddr>,
    /// Where the admin endpoints listen, if asked for.
    pub admin_addr: Option<SocketAddr>,
    /// The store the roles share.
    pub store: Store,
    tasks: JoinSet<Result<(), RunError>>,
}

/// Rows per transaction of the start-up's sealing pass.
const SEAL_BATCH: i64 = 500;

/// Opens the store (running migrations), binds listeners and starts the configured roles.
pub async fn start(config: &Config, shutdown: CancellationToken) -> Result<Running, RunError> {
    let (keys, made) =
        crate::config::keyring_for(&config.secret_keys, &config.db).map_err(RunError::Keys)?;
    if let Some(file) = made {
        tracing::warn!(
            file = %file.display(),
            "made a new secret key file to seal stored secrets: back it up apart from the database, which is useless without it"
        );
    }
    let mut options = OpenOptions::new(&config.db).with_keys(keys);
    options.max_connections = config.db_max_connections;
    // One `serve` per SQLite file: its dispatcher may then take every lease it finds for a
    // dead process's (`store::Liveness`).
    options.exclusive = true;
    let store = store::open(&options)
        .await
        .map_err(|source| RunError::Store {
            url: store::redact_url(&config.db),
            source,
        })?;
    // Every stored secret must open with these keys (never send unsigned); plaintext ones
    // from before sealing are sealed now.
    let sealed = store
        .backend()
        .seal_stored(false, SEAL_BATCH)
        .await
        .map_err(|error| match error {
            store::StoreError::Sealing(error) => RunError::Keys(error.to_string()),
            source => RunError::Store {
                url: store::redact_url(&config.db),
                source,
            },
        })?;
    if sealed.sealed > 0 {
        tracing::info!(
            sealed = sealed.sealed,
            "sealed stored secrets that were plaintext"
        );
    }
    crate::telemetry::metrics(); // install the recorder before any metric is recorded
    tracing::info!(db = %store::redact_url(&config.db), roles = ?config.roles, "starting hookline");
    // Loaded before anything listens: a bad certificate stops start-up, naming the file.
    let certs = match &config.tls {
        Some(files) => {
            let certs = crate::tls::Certificates::load(files.clone())?;
            tokio::spawn(crate::tls::watch(certs.clone(), shutdown.child_token()));
            Some(certs)
        }
        None => None,
    };
    let tls_config = |alpn| {
        certs
            .as_ref()
            .map(|certs| certs.server_config(alpn))
            .transpose()
    };
    let tls = certs.is_some();
    let mut tasks = JoinSet::new();
    let mut ingest_addr = None;

    // Ingest hands its events' deliveries straight to a dispatcher in the same process.
    let handoff = crate::dispatch::Handoff::default();
    if config.runs(Role::Ingest) {
        let addr = config.ingest.addr;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| RunError::Bind {
                role: "ingest",
                addr,
                source,
            })?;
        let local = listener.local_addr().map_err(|source| RunError::Bind {
            role: "ingest",
            addr,
            source,
        })?;
        ingest_addr = Some(local);
        let tls_config = tls_config(crate::tls::ALPN_HTTP1)?;
        tracing::info!(addr = %local, tls, "ingest listening");
        let state = crate::ingest::IngestState::new(store.clone(), &config.ingest, handoff.clone());
        let token = shutdown.child_token();
        tasks.spawn(async move {
            crate::ingest::serve(listener, tls_config, state, token)
                .await
                .map_err(|source| RunError::Role {
                    role: "ingest",
                    source,
                })
        });
    }
    if config.runs(Role::Dispatcher) || config.runs(Role::Api) {
        // Other replicas' wake-ups (dispatcher) and recorded attempts (the api's live tail).
        store.spawn_remote_wakeups(shutdown.child_token());
    }
    if config.runs(Role::Dispatcher) {
        let store = store.clone();
        let dispatch = config.dispatch.clone();
        let guard = config.ssrf.clone();
        let token = shutdown.child_token();
        tokio::spawn(store::retention::run(
            store.clone(),
            config.retention,
            token.clone(),
        ));
        tasks.spawn(async move {
            crate::dispatch::run(store, dispatch, guard, handoff, token).await;
            Ok(())
        });
    }
    let mut api_addr = None;
    if config.runs(Role::Api) {
        let addr = config.api_addr;
        let bind_error = |source| RunError::Bind {
            role: "api",
            addr,
            source,
        };
        let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
        let local = listener.local_addr().map_err(bind_error)?;
        api_addr = Some(local);
        let tls_config = tls_config(crate::tls::ALPN_H2_HTTP1)?;
        tracing::info!(addr = %local, tls, "api listening (gRPC)");
        let store = store.clone();
        let (limits, guard) = (config.api.clone(), config.ssrf.clone());
        let token = shutdown.child_token();
        // The console sits above the api: it is built here, on the API's own services.
        let console_store = store.clone();
        let console = move |apis: crate::api::Services| {
            crate::console::router(crate::console::Console::new(
                console_store,
                apis.webhooks,
                apis.deliveries,
            ))
        };
        tasks.spawn(async move {
            crate::api::serve(listener, tls_config, store, limits, guard, console, token)
                .await
                .map_err(|source| RunError::Role {
                    role: "api",
                    source,
                })
        });
    }
    let mut admin_addr = None;
    if let Some(addr) = config.admin_addr {
        let bind_error = |source| RunError::Bind {
            role: "admin",
            addr,
            source,
        };
        let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
        let local = listener.local_addr().map_err(bind_error)?;
        admin_addr = Some(local);
        tracing::info!(addr = %local, "admin listening (/healthz, /readyz, /metrics)");
        let (store, token) = (store.clone(), shutdown.child_token());
        tasks.spawn(async move {
            crate::admin::serve(listener, store, token)
                .await
                .map_err(|source| RunError::Role {
                    role: "admin",
                    source,
                })
        });
    }
    Ok(Running {
        ingest_addr,
        api_addr,
        admin_addr,
        store,
        tasks,
    })
}

impl Running {
    /// Waits for every role to stop (after shutdown), then closes the store.
    /// If one role fails, the others are told to stop too.
    pub async fn wait(mut self, shutdown: CancellationToken) -> Result<(), RunError> {
        let mut first_error = None;
        while let Some(joined) = self.tasks.join_next().await {
            let result = joined.unwrap_or_else(|join_error| {
                Err(RunError::Role {
                    role: "task",
                    source: std::io::Error::other(join_error.to_string()),
                })
            });
            if let Err(error) = result {
                tracing::error!(%error, "role failed; shutting down");
                shutdown.cancel();
                first_error.get_or_insert(error);
            }
        }
        self.store.close().await;
        tracing::info!("hookline stopped");
        first_error.map_or(Ok(()), Err)
    }
}

/// Runs the server until `shutdown` fires and every role has stopped.
pub async fn run(config: &Config, shutdown: CancellationToken) -> Result<(), RunError> {
    start(config, shutdown.clone()).await?.wait(shutdown).await
}
