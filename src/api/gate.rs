//! The door every RPC of both services goes through: authenticate, count the call against
//! its token's rate, and load a webhook only if the caller sees its namespace.

use tonic::{Request, Status};

use super::auth::{Caller, authenticate};
use super::error::{Violations, webhook_not_found};
use crate::ratelimit::Limiter;
use crate::store::{Store, Webhook};

/// Shared by `WebhookService` and `DeliveryService`, so a token's rate counts both.
pub(crate) struct Gate {
    pub(crate) store: Store,
    /// Calls per API token.
    limiter: Limiter,
}

impl Gate {
    pub(crate) fn new(store: Store, limiter: Limiter) -> Gate {
        Gate { store, limiter }
    }

    /// Authenticates the call, then counts it against its token's rate.
    pub(crate) async fn caller<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        let caller = authenticate(&self.store, request).await?;
        self.limiter
            .check(caller.token_id())
            .map_err(super::error::rate_limited)?;
        Ok(caller)
    }

    /// The webhook with this id if the caller sees it; NOT_FOUND alike for "absent"
    /// and "someone else's". `field` names the request field holding the id.
    pub(crate) async fn webhook(
        &self,
        caller: &Caller,
        field: &str,
        id: &str,
    ) -> Result<Webhook, Status> {
        if id.is_empty() {
            return Err(Violations::one(field, "required"));
        }
        match self.store.get_webhook(id).await? {
            Some(webhook) if caller.sees(&webhook.namespace) => Ok(webhook),
            _ => Err(webhook_not_found()),
        }
    }
}
