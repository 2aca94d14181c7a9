//! Every configuration entity as one document in the configuration file's
//! shape, read in one consistent transaction: what the configuration
//! compiler builds a snapshot from, and what `portico export` prints.
//!
//! API keys leave the store only as digests: each app's active keys (not
//! revoked, not expired at the time of the export) are listed under
//! `api_key_hashes`, which the compiler reads beside `api_keys`.

use std::collections::HashMap;

use serde_json::{Map, Value};
use sqlx::Row as _;

use crate::entities::{Kind, Page, list_in};
use crate::{Error, Millis, Store, now_millis};

/// The store's entities at one configuration version.
#[derive(Clone, Debug, PartialEq)]
pub struct Export {
    /// The configuration version the document reflects.
    pub version: i64,
    /// `{ apis, products, developers, apps }`, each a list of documents in
    /// name order.
    pub document: Value,
    /// The earliest moment a listed key expires. A snapshot built from this
    /// export lets that key in until it is rebuilt: the control plane
    /// rebuilds at this time, although the version has not changed.
    pub next_expiry: Option<Millis>,
}

impl Export {
    /// The document as text the configuration compiler reads (JSON is
    /// YAML 1.2).
    pub fn to_config_text(&self) -> String {
        self.document.to_string()
    }
}

impl Store {
    /// Reads every entity at one consistent configuration version.
    pub async fn export(&self) -> Result<Export, Error> {
        let now = now_millis();
        let mut tx = self.begin_read().await?;
        let version: i64 = sqlx::query("SELECT version FROM config_version WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?
            .try_get("version")?;
        let mut document = Map::new();
        for kind in Kind::ALL {
            let mut items = Vec::new();
            let mut page = Page::first(Page::MAX_LIMIT);
            loop {
                let listing = list_in(&mut tx, kind, &page, None).await?;
                items.extend(listing.items.into_iter().map(|e| e.document));
                match listing.next {
                    Some(next) => page.after = Some(next),
                    None => break,
                }
            }
            document.insert(kind.section().to_owned(), Value::Array(items));
        }
        let rows = sqlx::query(
            "SELECT app_name, digest FROM api_keys \
             WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $1) \
             ORDER BY app_name, digest",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        let mut by_app: HashMap<String, Vec<Value>> = HashMap::new();
        for r in &rows {
            by_app
                .entry(r.try_get("app_name")?)
                .or_default()
                .push(Value::String(r.try_get("digest")?));
        }
        if let Some(Value::Array(apps)) = document.get_mut("apps") {
            for app in apps.iter_mut() {
                let name = app.get("name").and_then(Value::as_str).unwrap_or_default();
                if let Some(hashes) = by_app.remove(name)
                    && let Value::Object(map) = app
                {
                    map.insert("api_key_hashes".into(), Value::Array(hashes));
                }
            }
        }
        let next_expiry: Option<Millis> = sqlx::query(
            "SELECT MIN(expires_at) AS next FROM api_keys WHERE revoked_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .fetch_one(&mut *tx)
        .await?
        .try_get("next")?;
        tx.commit().await?;
        Ok(Export {
            version,
            document: Value::Object(document),
            next_expiry,
        })
    }
}
