//! The gRPC client side of the CLI: `--server` and `--token`, the connection, and the
//! translation of a failed call into an error that says what to do next.
//!
//! The token travels as a [`Secret`] and only ever leaves it as the `authorization`
//! metadata value; neither the token nor a webhook secret appears in an error here.

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use clap::Args;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};

use crate::api::proto::delivery_service_client::DeliveryServiceClient;
use crate::api::proto::webhook_service_client::WebhookServiceClient;
use crate::secret::Secret;

/// How long to wait for the TCP/HTTP2 connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one call may take (not the live tail, which runs until stopped).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the API is and who we are. Accepted before or after the subcommand.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// URL of hookline's gRPC API (`hookline serve` with the api role).
    #[arg(
        long,
        env = "HOOKLINE_SERVER",
        default_value = "http://127.0.0.1:50051",
        global = true
    )]
    pub server: String,
    /// API token (`hookline tokens create --namespace NS` or `--admin`).
    #[arg(long, env = "HOOKLINE_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<Secret>,
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
        let endpoint = Endpoint::from_shared(url.clone())
            .ok()
            .filter(|_| url.starts_with("http://"))
            .with_context(|| {
                format!("--server must be an http:// URL like http://127.0.0.1:50051 (got `{url}`)")
            })?
            .connect_timeout(CONNECT_TIMEOUT);
        let channel = endpoint.connect().await.map_err(|error| {
            anyhow!(
                "cannot reach hookline at {url}: is `hookline serve` running with the api role? ({})",
                root_cause(&error)
            )
        })?;
        Ok((channel, Bearer { value, timeout }))
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

/// The innermost cause of an error, which is where "Connection refused" lives.
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}
