//! Errors at the gRPC boundary: the one place where internal errors become `Status`.
//!
//! Store errors are logged here with their cause and answered with a generic message
//! (UNAVAILABLE when the database is down, so clients retry; INTERNAL otherwise).
//! Invalid input becomes INVALID_ARGUMENT with a `google.rpc.BadRequest` detail, one field
//! violation per problem, and a message that starts with the field at fault. Nothing here
//! ever quotes a secret.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

use crate::store::StoreError;

impl From<StoreError> for Status {
    fn from(error: StoreError) -> Status {
        if error.is_unavailable() {
            tracing::warn!(%error, "api: database unavailable");
            Status::unavailable("the database is unavailable; try again shortly")
        } else {
            tracing::error!(%error, "api: storage error");
            Status::internal("internal error; the server log has the details")
        }
    }
}

/// Problems found in one request, each naming its field (`url`, `repositories[2]`).
#[derive(Debug, Default)]
pub(crate) struct Violations(Vec<(String, String)>);

impl Violations {
    /// Records a problem with `field`.
    pub(crate) fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push((field.into(), description.into()));
    }

    /// Ok if nothing was recorded, else the INVALID_ARGUMENT status.
    pub(crate) fn check(self) -> Result<(), Status> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.into_status())
        }
    }

    /// The INVALID_ARGUMENT status: `field: description; field: description`.
    pub(crate) fn into_status(self) -> Status {
        let message = self
            .0
            .iter()
            .map(|(field, description)| format!("{field}: {description}"))
            .collect::<Vec<_>>()
            .join("; ");
        let details = ErrorDetails::with_bad_request(
            self.0
                .into_iter()
                .map(|(field, description)| FieldViolation::new(field, description))
                .collect::<Vec<_>>(),
        );
        Status::with_error_details(Code::InvalidArgument, message, details)
    }

    /// A status for exactly one problem.
    pub(crate) fn one(field: impl Into<String>, description: impl Into<String>) -> Status {
        let mut v = Violations::default();
        v.add(field, description);
        v.into_status()
    }
}

/// RESOURCE_EXHAUSTED for a token over its rate, with a `google.rpc.RetryInfo` detail.
pub(crate) fn rate_limited(limited: crate::ratelimit::Limited) -> Status {
    let details = ErrorDetails::with_retry_info(Some(limited.retry_after));
    Status::with_error_details(Code::ResourceExhausted, limited.to_string(), details)
}

/// NOT_FOUND for a webhook that does not exist or that the caller may not see: the two
/// answers are identical, so a tenant cannot probe for another's ids.
pub(crate) fn webhook_not_found() -> Status {
    Status::not_found("webhook not found")
}

/// FAILED_PRECONDITION for sending through a disabled webhook: why it is disabled, and
/// `then`, what to do about it.
pub(crate) fn webhook_disabled(webhook: &crate::store::Webhook, then: &str) -> Status {
    let why = webhook
        .disabled_reason
        .as_deref()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    Status::failed_precondition(format!("the webhook is disabled{why}; {then}"))
}
