//! The secrets already stored, against the keys: `serve` checks at start that its keys
//! open every one (refusing, with the key id it lacks, if not) and seals what is still
//! plaintext (a database from before sealing); `hookline keys rewrap` re-seals under the
//! newest key what an older one sealed. Written once for both databases.
//!
//! In batches of rows by id, each batch one short write transaction whose updates are
//! compare-and-set on the old value, so a webhook changed meanwhile keeps its change and
//! the pass can run while hookline serves, as often as wanted.

use async_trait::async_trait;

use super::StoreError;
use super::log::LogStore;
use super::sql::Sql;
use crate::seal::{Keyring, place};

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SealReport {
    /// Plaintext values sealed.
    pub sealed: u64,
    /// Values re-sealed under the newest key.
    pub resealed: u64,
    /// Values left as they were (already under the newest key, or plaintext that is no
    /// credential: an ordinary URL).
    pub unchanged: u64,
}

/// Every stored secret, by table, column, and whether the column holds some plain values
/// (a URL is sealed only if it is a credential).
const COLUMNS: [(&str, &str); 6] = [
    ("webhook_secrets", "secret"),
    ("webhooks", "headers"),
    ("webhooks", "url"),
    ("webhooks", "client_key"),
    ("webhooks", "oauth_client_secret"),
    ("tokens", "registry_password"),
];

/// The stored secrets, checked and sealed.
#[async_trait]
pub trait Sealing {
    /// Checks that the keys open every stored secret (an error names a missing key),
    /// seals plaintext ones, and with `rewrap` re-seals those under older keys; `batch`
    /// rows per transaction.
    async fn seal_stored(&self, rewrap: bool, batch: i64) -> Result<SealReport, StoreError>;
}

#[async_trait]
impl<B: LogStore> Sealing for B {
    async fn seal_stored(&self, rewrap: bool, batch: i64) -> Result<SealReport, StoreError> {
        let mut report = SealReport::default();
        for (table, column) in COLUMNS {
            let mut after = String::new();
            loop {
                // `format` decides whether a plaintext URL is a credential.
                let format = if table == "webhooks" { "format" } else { "''" };
                let sql = Sql::new(format!(
                    "SELECT id, {column}, {format} FROM {table} \
                     WHERE id > $1 AND {column} IS NOT NULL ORDER BY id LIMIT $2"
                ))
                .arg(after.as_str())
                .arg(batch);
                let rows: Vec<(String, String, String)> = self.reads().fetch_all(&sql).await?;
                let Some((last, _, _)) = rows.last() else {
                    break;
                };
                after = last.clone();
                let mut updates = Vec::new();
                for (id, stored, format) in rows {
                    match reseal(self.keys(), table, column, &id, &stored, &format, rewrap)? {
                        Some(new) => updates.push((id, stored, new)),
                        None => report.unchanged += 1,
                    }
                }
                if updates.is_empty() {
                    continue;
                }
                let mut tx = self.write().await?;
                for (id, old, new) in &updates {
                    let sql = Sql::new(format!(
                        "UPDATE {table} SET {column} = $1 WHERE id = $2 AND {column} = $3"
                    ))
                    .arg(new.as_str())
                    .arg(id.as_str())
                    .arg(old.as_str());
                    if tx.execute(&sql).await? == 1 {
                        if crate::seal::is_sealed(old) {
                            report.resealed += 1;
                        } else {
                            report.sealed += 1;
                        }
                    }
                }
                tx.commit().await?;
            }
        }
        Ok(report)
    }
}

/// The value to store instead of `stored`, if it must change: plaintext sealed (unless it
/// is a URL that is no credential), and with `rewrap` one under an older key sealed anew.
/// A value under a key the keyring lacks is an error naming it.
fn reseal(
    keys: &Keyring,
    table: &str,
    column: &str,
    id: &str,
    stored: &str,
    format: &str,
    rewrap: bool,
) -> Result<Option<String>, StoreError> {
    let stale = keys.stale(stored)?;
    let sealed = crate::seal::is_sealed(stored);
    let wanted = if sealed {
        stale && rewrap
    } else {
        column != "url" || crate::store::url_is_credential(format, stored)
    };
    if !wanted {
        return Ok(None);
    }
    let place = place(&format!("{table}.{column}"), id);
    let plain = keys.open(&place, stored)?;
    Ok(Some(keys.seal(&place, &plain)?))
}
