//! The gRPC client side of the CLI: `--server` and `--token`, the connection, and the
//! translation of a failed call into an error that says what to do next.
//!
//! The token travels as a [`Secret`] and only ever leaves it as the `authorization`
//! metadata value; neither the token nor a webhook secret appears in an error here.
//! An `https://` server is verified against the system's CAs, or only `--ca-cert`'s.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use clap::Args;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Request, Status};

use crate::api::proto::delivery_service_client::DeliveryServiceClient;
use crate::api::proto::webhook_service_client::WebhookServiceClient;
use crate::secret::Secret;

/// How long to wait for the TCP/HTTP2 connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one call may take (not the live tail, which runs until stopped).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the API is and who we are. Accepted before or after the subcommand; `--help`
/// lists them under their own heading, after the command's options.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// URL of hookline's gRPC API (`hookline serve` with the api role).
    #[arg(
        long,
        env = "HOOKLINE_SERVER",
        default_value = "http://127.0.0.1:50051",
        global = true,
        help_heading = "Connection"
    )]
    pub server: String,
    /// API token (`hookline tokens create --namespace NS` or `--admin`).
    #[arg(
        long,
        env = "HOOKLINE_TOKEN",
        hide_env_values = true,
        global = true,
        help_heading = "Connection"
    )]
    pub token: Option<Secret>,
    /// PEM file of the CA that signed the server's certificate, for an `https://` --server
    /// with a private CA (default: the system's trusted CAs).
    #[arg(
        long,
        env = "HOOKLINE_CA_CERT",
        global = true,
        help_heading = "Connection"
    )]
    pub ca_cert: Option<PathBuf>,
}

/// Adds `authorization: Bearer <token>` to every call, and the call timeout.
#[derive(Clone)]
pub struct Bearer {
    value: MetadataValue<Ascii>,
    /// `None` for the live tail: a deadline would end a stream meant to run until Ctrl-C.
    timeout: Option<Duration>,
}

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bearer([redacted])")
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request
            .metadata_mut()
            .insert("authorization", self.value.clone());
        if let Some(timeout) = self.timeout {
            request.set_timeout(timeout);
        }
        Ok(request)
    }
}

/// A connected webhooks client.
pub type Client = WebhookServiceClient<InterceptedService<Channel, Bearer>>;
/// A connected deliveries client (events, deliveries, replay, the live tail).
pub type DeliveryClient = DeliveryServiceClient<InterceptedService<Channel, Bearer>>;

/// The server URL with a scheme (`127.0.0.1:50051` means `http://127.0.0.1:50051`).
fn server_url(server: &str) -> String {
    if server.contains("://") {
        server.to_owned()
    } else {
        format!("http://{server}")
    }
}

impl ClientArgs {
    /// Connects to the server, or explains why not.
    pub async fn connect(&self) -> anyhow::Result<Client> {
        let (channel, bearer) = self.channel(Some(CALL_TIMEOUT)).await?;
        Ok(WebhookServiceClient::with_interceptor(channel, bearer))
    }

    /// Connects a deliveries client (events, deliveries, replay).
    pub async fn deliveries(&self) -> anyhow::Result<DeliveryClient> {
        let (channel, bearer) = self.channel(Some(CALL_TIMEOUT)).await?;
        Ok(DeliveryServiceClient::with_interceptor(channel, bearer))
    }

    /// Connects a deliveries client for the live tail: no call deadline.
    pub async fn tail(&self) -> anyhow::Result<DeliveryClient> {
        let (channel, bearer) = self.channel(None).await?;
        Ok(DeliveryServiceClient::with_interceptor(channel, bearer))
    }

    /// The connection and the credentials every call carries.
    async fn channel(&self, timeout: Option<Duration>) -> anyhow::Result<(Channel, Bearer)> {
        let Some(token) = &self.token else {
            bail!(
                "no API token: pass --token or set HOOKLINE_TOKEN (an operator creates one with \
                 `hookline tokens create --namespace NS`)"
            );
        };
        let mut value: MetadataValue<Ascii> = format!("Bearer {}", token.expose())
            .parse()
            .map_err(|_| anyhow!("the token has characters that cannot be sent in a header"))?;
        value.set_sensitive(true);
        let url = server_url(&self.server);
        let https = url.starts_with("https://");
        let endpoint = Endpoint::from_shared(url.clone())
            .ok()
            .filter(|_| https || url.starts_with("http://"))
            .with_context(|| {
                format!(
                    "--server must be an http:// or https:// URL like http://127.0.0.1:50051 (got `{url}`)"
                )
            })?
            .connect_timeout(CONNECT_TIMEOUT);
        let endpoint = if https {
            endpoint
                .tls_config(self.tls()?)
                .with_context(|| format!("cannot set up TLS for {url}"))?
        } else {
            endpoint
        };
        let channel = endpoint.connect().await.map_err(|error| {
            if is_certificate_error(&error) {
                anyhow!(
                    "cannot verify the TLS certificate of hookline at {url} ({}): if a private CA \
                     signed it, pass that CA's PEM file with --ca-cert PATH (or HOOKLINE_CA_CERT)",
                    root_cause(&error)
                )
            } else {
                anyhow!(
                    "cannot reach hookline at {url}: is `hookline serve` running with the api role? ({})",
                    root_cause(&error)
                )
            }
        })?;
        Ok((channel, Bearer { value, timeout }))
    }

    /// How to verify the server: `--ca-cert` alone if given, else the system's CAs.
    fn tls(&self) -> anyhow::Result<ClientTlsConfig> {
        let config = ClientTlsConfig::new().timeout(CONNECT_TIMEOUT);
        let Some(path) = &self.ca_cert else {
            return Ok(config.with_native_roots());
        };
        let pem = std::fs::read(path)
            .with_context(|| format!("cannot read --ca-cert {}", path.display()))?;
        // tonic would skip what it cannot parse and fail later with "unknown issuer".
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("--ca-cert {} is not PEM", path.display()))?;
        if certs.is_empty() {
            bail!(
                "--ca-cert {} holds no PEM certificate (`BEGIN CERTIFICATE`)",
                path.display()
            );
        }
        Ok(config.ca_certificate(Certificate::from_pem(pem)))
    }

    /// The answer of a call, or its failure explained (see [`ClientArgs::explain`]).
    pub fn answer<T>(
        &self,
        result: Result<tonic::Response<T>, Status>,
        what: &str,
    ) -> anyhow::Result<T> {
        result
            .map(tonic::Response::into_inner)
            .map_err(|status| self.explain(status, what))
    }

    /// A failed call as an error that says what to do. `what` names the object (`webhook wh_…`).
    pub fn explain(&self, status: Status, what: &str) -> anyhow::Error {
        let message = status.message();
        match status.code() {
            Code::Unauthenticated => anyhow!(
                "the token was refused ({message}): create one with `hookline tokens create --namespace NS` \
                 and pass it with --token or HOOKLINE_TOKEN"
            ),
            Code::NotFound => {
                // `what` starts with the kind of object ("delivery dlv_…"): point at its listing.
                let list = match what.split(' ').next().unwrap_or_default() {
                    "delivery" => "deliveries",
                    "event" => "events",
                    _ => "webhooks",
                };
                anyhow!(
                    "{what} not found among the {list} your token sees: check the id with `hookline {list} list`"
                )
            }
            Code::InvalidArgument => anyhow!("the server refused the request: {message}"),
            Code::FailedPrecondition | Code::Aborted => anyhow!("{message}"),
            Code::Unavailable => anyhow!(
                "hookline at {} is unavailable ({message}); is `hookline serve` running with the api role? Try again shortly",
                server_url(&self.server)
            ),
            Code::DeadlineExceeded => anyhow!(
                "hookline at {} did not answer within {}s",
                server_url(&self.server),
                CALL_TIMEOUT.as_secs()
            ),
            // The live tail's "read too slowly" and the server's watcher limit say what to do.
            Code::ResourceExhausted => anyhow!("{message}"),
            code => anyhow!("the call failed ({code:?}): {message}"),
        }
    }
}

/// True if the connection failed because the server's certificate was not trusted
/// (unknown CA, wrong name, expired): the case `--ca-cert` is the answer to.
fn is_certificate_error(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        // tokio-rustls wraps rustls' error in an io::Error, whose `source()` skips it.
        let inner = error
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|inner| inner as &(dyn std::error::Error + 'static));
        for candidate in [Some(error), inner].into_iter().flatten() {
            if let Some(rustls::Error::InvalidCertificate(_)) = candidate.downcast_ref() {
                return true;
            }
        }
        cause = error.source();
    }
    false
}

/// The innermost cause of an error, which is where "Connection refused" lives.
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}
