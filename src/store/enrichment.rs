//! What enrichment needs from the database, written once for both (see `sql.rs`): the
//! registry sources the operator told hookline how to read, and each event's enrichment,
//! stored once so every attempt, webhook and replica renders the same bytes.
//!
//! The registry client and the payload shape live in `crate::registry`; this file only
//! stores and reads the JSON text it produces.

use async_trait::async_trait;

use super::log::LogStore;
use super::sql::Sql;
use super::{RegistryAccess, RegistrySource, StoreError};
use crate::seal::place;
use crate::secret::Secret;

/// Storing what registries said about events.
#[async_trait]
pub trait Enrichments: Send + Sync {
    /// Every live registry token that has a registry URL, oldest first (so a caller keying
    /// them by source keeps the newest).
    async fn registry_sources(&self) -> Result<Vec<RegistrySource>, StoreError>;
    /// The stored enrichment of an event (JSON text); None if not looked up yet, or if the
    /// event is gone.
    async fn event_enrichment(&self, event_id: &str) -> Result<Option<String>, StoreError>;
    /// Stores `enrichment` on the event unless one is stored already, in one statement, and
    /// returns what the event holds afterwards: ours, or the one another delivery or replica
    /// stored first. None if the event is gone.
    async fn record_enrichment(
        &self,
        event_id: &str,
        enrichment: &str,
    ) -> Result<Option<String>, StoreError>;
}

#[derive(sqlx::FromRow)]
struct SourceRow {
    id: String,
    subject: String,
    registry_url: String,
    registry_username: Option<String>,
    registry_password: Option<String>,
}

#[derive(sqlx::FromRow)]
struct EnrichmentRow {
    enrichment: Option<String>,
}

#[async_trait]
impl<B: LogStore> Enrichments for B {
    async fn registry_sources(&self) -> Result<Vec<RegistrySource>, StoreError> {
        let sql = Sql::new(
            "SELECT id, subject, registry_url, registry_username, registry_password FROM tokens \
             WHERE kind = 'registry' AND revoked_at IS NULL AND registry_url IS NOT NULL \
             ORDER BY created_at, id",
        );
        let rows: Vec<SourceRow> = self.reads().fetch_all(&sql).await?;
        let keys = self.keys();
        rows.into_iter()
            .map(|r| {
                let place = place("tokens.registry_password", &r.id);
                let password = r
                    .registry_password
                    .map(|sealed| keys.open(&place, &sealed).map(Secret::new))
                    .transpose()?;
                Ok(RegistrySource {
                    source: r.subject,
                    access: RegistryAccess {
                        url: r.registry_url,
                        username: r.registry_username,
                        password,
                    },
                })
            })
            .collect()
    }

    async fn event_enrichment(&self, event_id: &str) -> Result<Option<String>, StoreError> {
        let mut sql = Sql::new("SELECT enrichment FROM events WHERE id = ");
        let id = sql.bind(event_id);
        sql.push(&id);
        let row: Option<EnrichmentRow> = self.reads().fetch_optional(&sql).await?;
        Ok(row.and_then(|r| r.enrichment))
    }

    async fn record_enrichment(
        &self,
        event_id: &str,
        enrichment: &str,
    ) -> Result<Option<String>, StoreError> {
        // COALESCE keeps a value another writer stored first (PostgreSQL re-evaluates it on
        // the row it waited for), so the first enrichment stored is the one for good.
        let mut sql = Sql::new("UPDATE events SET enrichment = COALESCE(enrichment, ");
        let value = sql.bind(enrichment);
        let id = sql.bind(event_id);
        sql.push(&format!(
            "CAST({value} AS TEXT)) WHERE id = {id} RETURNING enrichment"
        ));
        let mut tx = self.write().await?;
        let row: Option<EnrichmentRow> = tx.fetch_optional(&sql).await?;
        tx.commit().await?;
        Ok(row.and_then(|r| r.enrichment))
    }
}
