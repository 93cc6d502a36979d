//! gRPC clients for the api role: webhooks with a bearer token, health, reflection, and
//! helpers to read a failed call's status.

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

/// The fields named by a status's `google.rpc.BadRequest` detail.
pub fn violated_fields(status: &Status) -> Vec<String> {
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}
