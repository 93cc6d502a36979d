//! gRPC clients for the api role: webhooks with a bearer token, health, reflection, and
//! helpers to read a failed call's status.

use hookline::api::proto;
use hookline::api::proto::delivery_service_client::DeliveryServiceClient;
use hookline::api::proto::webhook_service_client::WebhookServiceClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;

/// Adds the bearer token, if any.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// The webhooks client tests use.
pub type Client = WebhookServiceClient<InterceptedService<Channel, Bearer>>;

/// The deliveries client tests use.
pub type Deliveries = DeliveryServiceClient<InterceptedService<Channel, Bearer>>;

/// A deliveries client for `url` with an optional token.
pub async fn deliveries(url: &str, token: Option<&str>) -> Deliveries {
    let bearer = Bearer(token.map(|t| format!("Bearer {t}").parse().expect("ascii token")));
    DeliveryServiceClient::with_interceptor(channel(url).await, bearer)
}

/// A connected channel to `url`.
pub async fn channel(url: &str) -> Channel {
    Endpoint::from_shared(url.to_owned())
        .expect("endpoint")
        .connect()
        .await
        .expect("connect to the api")
}

/// A webhooks client for `url` with an optional token.
pub async fn client(url: &str, token: Option<&str>) -> Client {
    let bearer = Bearer(token.map(|t| format!("Bearer {t}").parse().expect("ascii token")));
    WebhookServiceClient::with_interceptor(channel(url).await, bearer)
}

/// Asserts a call failed with `code`; returns the status.
#[track_caller]
pub fn expect_code<T: std::fmt::Debug>(result: Result<T, Status>, code: Code) -> Status {
    match result {
        Ok(value) => panic!("expected {code:?}, got a success: {value:?}"),
        Err(status) => {
            assert_eq!(status.code(), code, "{status:?}");
            status
        }
    }
}

/// Asserts CreateWebhook refuses `webhook` with INVALID_ARGUMENT naming `field`; returns
/// the status's message.
pub async fn refused_naming(api: &mut Client, webhook: proto::Webhook, field: &str) -> String {
    let status = expect_code(
        api.create_webhook(proto::CreateWebhookRequest {
            webhook: Some(webhook),
            secret: String::new(),
        })
        .await,
        Code::InvalidArgument,
    );
    let message = status.message().to_owned();
    assert!(message.contains(field), "{field}: {message}");
    message
}

/// Runs the `hookline` CLI against the API at `api_url` with `token`; panics unless it
/// succeeds; its stdout and stderr together.
pub fn cli_ok(api_url: &str, token: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookline"))
        .args(args)
        .env("HOOKLINE_SERVER", api_url)
        .env("HOOKLINE_TOKEN", token)
        .output()
        .expect("hookline");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{args:?}: {text}");
    text
}

/// The fields named by a status's `google.rpc.BadRequest` detail.
pub fn violated_fields(status: &Status) -> Vec<String> {
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}
