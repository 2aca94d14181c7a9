//! Portico's persistent store.
//!
//! One [`Store`] over SQLite (the embedded default, a file under the data
//! directory) or PostgreSQL (shared by a cluster), with one code path for
//! both: sqlx's `Any` driver runs the same SQL text on either database, and
//! only the migrations are written per dialect. See `docs/store.md` and
//! `docs/adr/0003-store.md`.
//!
//! What it keeps:
//!
//! - the configuration entities ([`Kind`]: APIs, products, developers,
//!   apps) as JSON documents in the configuration file's shape, each with a
//!   revision for optimistic concurrency ([`Expect`]);
//! - API specs with a SHA-256 content hash and their version history;
//! - subscriptions of apps to products, with a status;
//! - API keys and admin tokens, as SHA-256 digests only; the plain text is
//!   made here and returned once ([`Secret`]);
//! - users and their roles;
//! - the audit log: every change writes its record in the same transaction.
//!
//! Every transaction that changes what a snapshot is built from bumps one
//! store-wide counter ([`Store::config_version`]); on PostgreSQL it also
//! sends `NOTIFY portico_config` ([`Store::listen`]). [`Store::export`]
//! returns every entity as one document the configuration compiler reads.

mod apply;
mod audit;
mod credentials;
mod db;
mod entities;
mod error;
mod export;
mod owned;
mod secret;
mod subscriptions;
mod users;
mod version;

pub use apply::{Action, ApplyOptions, Change, Diff, Prune};
pub use audit::{Actor, AuditRecord, Outcome};
pub use credentials::{AdminToken, ApiKey, IssuedKey, IssuedToken, Principal};
pub use db::{Backend, Store};
pub use entities::{Entity, Expect, Kind, Listing, Page, SpecVersion};
pub use error::Error;
pub use export::Export;
pub use secret::Secret;
pub use subscriptions::{Status, Subscription};
pub use users::{Role, User};
pub use version::ConfigListener;

/// Milliseconds since the Unix epoch, the store's one time format.
pub type Millis = i64;

/// The current time in milliseconds since the Unix epoch.
pub fn now_millis() -> Millis {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
