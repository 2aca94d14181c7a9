//! The store-wide change counter, and its announcement on PostgreSQL.
//!
//! Every transaction that changes what a snapshot is built from (APIs,
//! products, developers, apps, subscriptions, API keys) calls [`bump`]
//! before it commits. Nodes poll [`Store::config_version`]; on PostgreSQL
//! the same transaction runs `pg_notify('portico_config', version)`, which
//! PostgreSQL delivers only if and when the transaction commits, so a
//! listener never hears of a version that was rolled back.

use sqlx::postgres::PgListener;
use sqlx::{Any, Row as _, Transaction};

use crate::{Backend, Error, Store};

/// The channel the store notifies on.
pub const CHANNEL: &str = "portico_config";

/// Increments the counter inside `tx`, announces the new value on
/// PostgreSQL, and returns it.
pub(crate) async fn bump(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
) -> Result<i64, Error> {
    let row = sqlx::query(
        "UPDATE config_version SET version = version + 1 WHERE id = 1 RETURNING version",
    )
    .fetch_one(&mut **tx)
    .await?;
    let version: i64 = row.try_get("version")?;
    if backend == Backend::Postgres {
        // `pg_notify` returns void, which the Any driver cannot decode; the
        // sub-select keeps it out of the result.
        sqlx::query("SELECT 1 AS sent FROM (SELECT pg_notify($1, $2)) AS n")
            .bind(CHANNEL)
            .bind(version.to_string())
            .execute(&mut **tx)
            .await?;
    }
    Ok(version)
}

impl Store {
    /// The store-wide change counter: it grows with every committed change
    /// to the entities a snapshot is built from.
    pub async fn config_version(&self) -> Result<i64, Error> {
        let row = sqlx::query("SELECT version FROM config_version WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("version")?)
    }

    /// Listens for new versions (PostgreSQL only; SQLite has only the poll).
    /// Connects a dedicated connection that runs `LISTEN portico_config`.
    pub async fn listen(&self) -> Result<ConfigListener, Error> {
        if self.backend != Backend::Postgres {
            return Err(Error::Unsupported("listening for changes"));
        }
        let mut listener = PgListener::connect(&self.url).await?;
        listener.listen(CHANNEL).await?;
        Ok(ConfigListener { listener })
    }
}

/// New configuration versions as PostgreSQL announces them.
///
/// A notification can be missed while the connection is down (PgListener
/// reconnects by itself, and notifications sent meanwhile are lost), so the
/// control plane should also poll [`Store::config_version`] now and then.
pub struct ConfigListener {
    listener: PgListener,
}

impl std::fmt::Debug for ConfigListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConfigListener")
    }
}

impl ConfigListener {
    /// Waits for the next announced version. A notification whose payload
    /// is not a number (sent by something other than the store) is skipped.
    pub async fn next(&mut self) -> Result<i64, Error> {
        loop {
            let n = self.listener.recv().await?;
            if let Ok(v) = n.payload().parse() {
                return Ok(v);
            }
        }
    }

    /// The next announced version, or `None` when the connection was lost:
    /// notifications sent meanwhile are gone, so the caller should read
    /// [`Store::config_version`]. The next call reconnects (and fails while
    /// the database cannot be reached).
    pub async fn next_or_gap(&mut self) -> Result<Option<i64>, Error> {
        loop {
            let Some(n) = self.listener.try_recv().await? else {
                return Ok(None);
            };
            if let Ok(v) = n.payload().parse() {
                return Ok(Some(v));
            }
        }
    }
}
