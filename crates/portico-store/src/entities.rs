//! The configuration entities: APIs, products, developers and apps, each a
//! JSON document in the configuration file's shape with a revision.
//!
//! Three kinds keep part of their document elsewhere, so that it has rows
//! and constraints of its own, and put it back when read:
//!
//! - an API's `spec` (the spec text) lives in `api_specs` with its SHA-256
//!   and a version per distinct content;
//! - an app's `products` are its approved subscriptions;
//! - an app's `api_keys` (plain keys, as the file may list them) are turned
//!   into stored digests when written and are never read back; its
//!   `api_key_hashes` (as [`Store::export`] writes them) are stored as they
//!   are, so an export can be applied to another store.

use serde_json::{Map, Value};
use sqlx::{Any, AnyConnection, Row as _, Transaction};

use crate::audit::{self, Actor};
use crate::{Error, Millis, Store, credentials, now_millis, secret, subscriptions, version};

/// The kinds of configuration entity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Api,
    Product,
    Developer,
    App,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Api, Kind::Product, Kind::Developer, Kind::App];

    /// The singular noun used in messages and audit records.
    pub fn noun(self) -> &'static str {
        match self {
            Kind::Api => "api",
            Kind::Product => "product",
            Kind::Developer => "developer",
            Kind::App => "app",
        }
    }

    /// The configuration file's section, and the admin API's path segment.
    pub fn section(self) -> &'static str {
        match self {
            Kind::Api => "apis",
            Kind::Product => "products",
            Kind::Developer => "developers",
            Kind::App => "apps",
        }
    }

    /// The document key that names the entity.
    pub fn key(self) -> &'static str {
        match self {
            Kind::Developer => "email",
            _ => "name",
        }
    }

    fn table(self) -> &'static str {
        self.section()
    }

    /// The name in its stored form: e-mails are compared lower-cased.
    pub fn normalise(self, name: &str) -> String {
        match self {
            Kind::Developer => name.to_ascii_lowercase(),
            _ => name.to_owned(),
        }
    }
}

/// What a change expects of the entity's current state: the admin API's
/// `If-Match` / `If-None-Match: *`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Whatever is there (create or replace).
    Any,
    /// The entity must not exist yet.
    Absent,
    /// The entity must exist at exactly this revision.
    Revision(i64),
}

impl Expect {
    pub(crate) fn check(
        self,
        kind: &'static str,
        name: &str,
        current: Option<i64>,
    ) -> Result<(), Error> {
        match (self, current) {
            (Expect::Any, _) | (Expect::Absent, None) => Ok(()),
            (Expect::Absent, Some(_)) => Err(Error::AlreadyExists {
                kind,
                name: name.to_owned(),
            }),
            (Expect::Revision(expected), current) if current != Some(expected) => {
                Err(Error::RevisionMismatch {
                    kind,
                    name: name.to_owned(),
                    expected,
                    current,
                })
            }
            (Expect::Revision(_), _) => Ok(()),
        }
    }
}

/// One page of a listing: at most `limit` items after the cursor `after`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    pub limit: u32,
    /// The `next` of the previous page; `None` for the first.
    pub after: Option<String>,
}

impl Page {
    pub const DEFAULT_LIMIT: u32 = 100;
    pub const MAX_LIMIT: u32 = 1000;

    pub fn first(limit: u32) -> Self {
        Self { limit, after: None }
    }

    /// The limit within 1..=1000.
    pub(crate) fn limit(&self) -> i64 {
        i64::from(self.limit.clamp(1, Self::MAX_LIMIT))
    }
}

impl Default for Page {
    fn default() -> Self {
        Self::first(Self::DEFAULT_LIMIT)
    }
}

/// A page of results in a stable order, with the cursor of the next page
/// when there is one.
#[derive(Clone, Debug, PartialEq)]
pub struct Listing<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

impl<T> Listing<T> {
    /// `items` was fetched with `limit + 1` rows: the extra one only says
    /// that another page exists.
    pub(crate) fn cut(mut items: Vec<T>, limit: i64, cursor: impl Fn(&T) -> String) -> Self {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(cursor)
        } else {
            None
        };
        Listing { items, next }
    }
}

/// A stored entity.
#[derive(Clone, Debug, PartialEq)]
pub struct Entity {
    pub kind: Kind,
    pub name: String,
    /// The document in the configuration file's shape.
    pub document: Value,
    /// Starts at 1 and grows by one with every change: the ETag.
    pub revision: i64,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// The parts of an app document kept outside the document column.
#[derive(Default)]
struct AppParts {
    developer: String,
    products: Vec<String>,
    api_keys: Vec<String>,
    api_key_hashes: Vec<String>,
}

impl Store {
    /// Creates or replaces an entity. `name` is the entity's name (the path
    /// segment of the admin API); the document's own `name` (`email` for
    /// developers) must match it or is filled in from it.
    ///
    /// The store checks what it needs to keep the document (its shape, the
    /// name, references it holds as rows); the configuration compiler
    /// checks the rest, before the admin API calls this.
    pub async fn put(
        &self,
        actor: &Actor,
        kind: Kind,
        name: &str,
        document: Value,
        expect: Expect,
    ) -> Result<Entity, Error> {
        let mut tx = self.begin().await?;
        let after = put_in(&mut tx, actor, kind, name, document, expect).await?;
        version::bump(&mut tx, self.backend).await?;
        tx.commit().await?;
        Ok(after)
    }

    /// The entity called `name`, if it exists.
    pub async fn get(&self, kind: Kind, name: &str) -> Result<Option<Entity>, Error> {
        let mut conn = self.pool.acquire().await?;
        get_in(&mut conn, kind, &kind.normalise(name)).await
    }

    /// Deletes an entity. A developer that still owns apps, or a product
    /// that apps subscribe to, is in use and stays. An API's spec history
    /// goes with it; an app's keys and subscriptions too.
    pub async fn delete(
        &self,
        actor: &Actor,
        kind: Kind,
        name: &str,
        expect: Expect,
    ) -> Result<(), Error> {
        let mut tx = self.begin().await?;
        delete_in(&mut tx, actor, kind, name, expect).await?;
        version::bump(&mut tx, self.backend).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Entities of one kind in name order, a page at a time.
    pub async fn list(&self, kind: Kind, page: &Page) -> Result<Listing<Entity>, Error> {
        let mut conn = self.pool.acquire().await?;
        list_in(&mut conn, kind, page, None).await
    }

    /// An API's spec history, newest first: `(version, sha256, created_at,
    /// created_by)`. The text of one version comes from [`Store::api_spec`].
    pub async fn api_spec_history(&self, api: &str) -> Result<Vec<SpecVersion>, Error> {
        let rows = sqlx::query(
            "SELECT version, sha256, created_at, created_by FROM api_specs \
             WHERE api_name = $1 ORDER BY version DESC",
        )
        .bind(api)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SpecVersion {
                    version: r.try_get("version")?,
                    sha256: r.try_get("sha256")?,
                    created_at: r.try_get("created_at")?,
                    created_by: r.try_get("created_by")?,
                })
            })
            .collect()
    }

    /// The text of one version of an API's spec.
    pub async fn api_spec(&self, api: &str, version: i64) -> Result<Option<String>, Error> {
        let row = sqlx::query("SELECT spec FROM api_specs WHERE api_name = $1 AND version = $2")
            .bind(api)
            .bind(version)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("spec")).transpose()?)
    }
}

/// One version of an API's spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecVersion {
    pub version: i64,
    /// Lower-case hex SHA-256 of the spec text.
    pub sha256: String,
    pub created_at: Millis,
    pub created_by: String,
}

/// [`Store::put`] inside the caller's transaction; the caller bumps the
/// configuration version.
pub(crate) async fn put_in(
    tx: &mut Transaction<'static, Any>,
    actor: &Actor,
    kind: Kind,
    name: &str,
    document: Value,
    expect: Expect,
) -> Result<Entity, Error> {
    let name = kind.normalise(name);
    let mut doc = normalise_document(kind, &name, document)?;
    let spec = match kind {
        Kind::Api => take_spec(&mut doc)?,
        _ => None,
    };
    let app = match kind {
        Kind::App => Some(take_app_parts(&mut doc)?),
        _ => None,
    };
    let doc_text = Value::Object(doc).to_string();

    let before = get_in(tx, kind, &name).await?;
    expect.check(kind.noun(), &name, before.as_ref().map(|e| e.revision))?;
    let now = now_millis();
    let table = kind.table();
    let key = kind.key();
    let developer = app.as_ref().map(|a| a.developer.clone());
    let sql = match (&before, developer.is_some()) {
        (None, false) => format!(
            "INSERT INTO {table} ({key}, document, revision, created_at, updated_at) \
                 VALUES ($1, $2, 1, $3, $3)"
        ),
        (None, true) => format!(
            "INSERT INTO {table} ({key}, document, revision, created_at, updated_at, developer) \
                 VALUES ($1, $2, 1, $3, $3, $4)"
        ),
        (Some(_), false) => format!(
            "UPDATE {table} SET document = $2, revision = revision + 1, updated_at = $3 \
                 WHERE {key} = $1 AND revision = $4"
        ),
        (Some(_), true) => format!(
            "UPDATE {table} SET document = $2, revision = revision + 1, updated_at = $3, \
                 developer = $5 WHERE {key} = $1 AND revision = $4"
        ),
    };
    let mut query = sqlx::query(&sql).bind(&name).bind(&doc_text).bind(now);
    if let Some(b) = &before {
        query = query.bind(b.revision);
    }
    if let Some(d) = &developer {
        query = query.bind(d.clone());
    }
    let result = query.execute(&mut **tx).await;
    match result {
        Ok(r) if r.rows_affected() == 1 => {}
        // Another writer got there between our read and our write.
        Ok(_) => {
            return Err(Error::RevisionMismatch {
                kind: kind.noun(),
                name,
                expected: before.map_or(0, |b| b.revision),
                current: None,
            });
        }
        Err(e) if Error::is_unique(&e) => {
            return Err(Error::AlreadyExists {
                kind: kind.noun(),
                name,
            });
        }
        Err(e) if Error::is_foreign_key(&e) => {
            return Err(Error::invalid(
                kind,
                format!("unknown developer `{}`", developer.unwrap_or_default()),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    if let Some(text) = spec.as_deref() {
        set_spec(tx, actor, &name, text, now).await?;
    } else if kind == Kind::Api {
        sqlx::query("UPDATE apis SET spec_version = NULL WHERE name = $1")
            .bind(&name)
            .execute(&mut **tx)
            .await?;
    }
    if let Some(app) = &app {
        subscriptions::set_approved(tx, &name, &app.products, now).await?;
        for key in &app.api_keys {
            credentials::import_plain_key(tx, &name, key, now).await?;
        }
        for digest in &app.api_key_hashes {
            credentials::import_digest(tx, &name, digest, now).await?;
        }
    }
    let after = get_in(tx, kind, &name)
        .await?
        .ok_or_else(|| Error::not_found(kind.noun(), &name))?;
    let imported = app
        .as_ref()
        .map_or(0, |a| a.api_keys.len() + a.api_key_hashes.len());
    let detail = (imported > 0).then(|| format!("{imported} API key(s) imported"));
    audit::write(
        tx,
        actor,
        "put",
        kind.noun(),
        &name,
        before.as_ref().map(audit_view).as_ref(),
        Some(&audit_view(&after)),
        detail.as_deref(),
    )
    .await?;
    Ok(after)
}

/// [`Store::delete`] inside the caller's transaction; the caller bumps the
/// configuration version.
pub(crate) async fn delete_in(
    tx: &mut Transaction<'static, Any>,
    actor: &Actor,
    kind: Kind,
    name: &str,
    expect: Expect,
) -> Result<(), Error> {
    let name = kind.normalise(name);
    if expect == Expect::Absent {
        return Err(Error::invalid(
            kind,
            "a deletion cannot expect the entity to be absent",
        ));
    }
    let Some(before) = get_in(tx, kind, &name).await? else {
        return match expect {
            Expect::Revision(expected) => Err(Error::RevisionMismatch {
                kind: kind.noun(),
                name,
                expected,
                current: None,
            }),
            _ => Err(Error::not_found(kind.noun(), &name)),
        };
    };
    expect.check(kind.noun(), &name, Some(before.revision))?;
    let result = sqlx::query(&format!(
        "DELETE FROM {} WHERE {} = $1 AND revision = $2",
        kind.table(),
        kind.key()
    ))
    .bind(&name)
    .bind(before.revision)
    .execute(&mut **tx)
    .await;
    match result {
        Ok(r) if r.rows_affected() == 1 => {}
        Ok(_) => {
            return Err(Error::RevisionMismatch {
                kind: kind.noun(),
                name,
                expected: before.revision,
                current: None,
            });
        }
        Err(e) if Error::is_foreign_key(&e) => {
            let detail = match kind {
                Kind::Developer => "apps still belong to the developer",
                Kind::Product => "apps still subscribe to the product",
                _ => "other entities refer to it",
            };
            return Err(Error::InUse {
                kind: kind.noun(),
                name,
                detail: detail.into(),
            });
        }
        Err(e) => return Err(e.into()),
    }
    audit::write(
        tx,
        actor,
        "delete",
        kind.noun(),
        &name,
        Some(&audit_view(&before)),
        None,
        None,
    )
    .await?;
    Ok(())
}

/// Lists a page of `kind`; with `developer`, only the apps of that
/// developer (an e-mail, compared lower-cased; apps only).
pub(crate) async fn list_in(
    conn: &mut AnyConnection,
    kind: Kind,
    page: &Page,
    developer: Option<&str>,
) -> Result<Listing<Entity>, Error> {
    debug_assert!(developer.is_none() || kind == Kind::App);
    let limit = page.limit();
    let key = kind.key();
    let table = kind.table();
    // One query for the page (with the current spec joined in), and one for
    // the apps' subscriptions: an export of thousands of entities is a few
    // round trips, not one per entity.
    let (spec_col, spec_join) = if kind == Kind::Api {
        (
            ", s.spec",
            " LEFT JOIN api_specs s ON s.api_name = e.name AND s.version = e.spec_version",
        )
    } else {
        ("", "")
    };
    let owner = if developer.is_some() {
        " AND e.developer = $3"
    } else {
        ""
    };
    let query = format!(
        "SELECT e.{key} AS entity_key, e.document, e.revision, e.created_at, e.updated_at{spec_col} \
         FROM {table} e{spec_join} WHERE e.{key} > $1{owner} ORDER BY e.{key} LIMIT $2"
    );
    let mut query = sqlx::query(&query)
        .bind(page.after.clone().unwrap_or_default())
        .bind(limit + 1);
    if let Some(developer) = developer {
        query = query.bind(developer.to_ascii_lowercase());
    }
    let rows = query.fetch_all(&mut *conn).await?;
    let mut items = Vec::with_capacity(rows.len());
    for row in &rows {
        let name: String = row.try_get("entity_key")?;
        let text: String = row.try_get("document")?;
        let mut document: Value = serde_json::from_str(&text).map_err(|e| Error::Corrupt {
            kind: kind.noun(),
            name: name.clone(),
            detail: e.to_string(),
        })?;
        if kind == Kind::Api {
            let spec: Option<String> = row.try_get("spec")?;
            if let Some(spec) = spec {
                insert_key(&mut document, "spec", Value::String(spec));
            }
        }
        items.push(Entity {
            kind,
            name,
            document,
            revision: row.try_get("revision")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        });
    }
    if kind == Kind::App
        && let (Some(first), Some(last)) = (items.first(), items.last())
    {
        let subs = sqlx::query(
            "SELECT app_name, product_name FROM subscriptions \
             WHERE app_name >= $1 AND app_name <= $2 AND status = 'approved' \
             ORDER BY app_name, product_name",
        )
        .bind(first.name.clone())
        .bind(last.name.clone())
        .fetch_all(&mut *conn)
        .await?;
        let mut by_app: std::collections::HashMap<String, Vec<Value>> = Default::default();
        for r in &subs {
            by_app
                .entry(r.try_get("app_name")?)
                .or_default()
                .push(Value::String(r.try_get("product_name")?));
        }
        for e in &mut items {
            if let Some(products) = by_app.remove(&e.name) {
                insert_key(&mut e.document, "products", Value::Array(products));
            }
        }
    }
    Ok(Listing::cut(items, limit, |e| e.name.clone()))
}

/// Reads one entity through `conn`, with the parts kept outside its
/// document put back.
pub(crate) async fn get_in(
    conn: &mut AnyConnection,
    kind: Kind,
    name: &str,
) -> Result<Option<Entity>, Error> {
    let spec_col = if kind == Kind::Api {
        ", spec_version"
    } else {
        ""
    };
    let Some(row) = sqlx::query(&format!(
        "SELECT document, revision, created_at, updated_at{spec_col} FROM {} WHERE {} = $1",
        kind.table(),
        kind.key()
    ))
    .bind(name)
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(None);
    };
    let text: String = row.try_get("document")?;
    let mut document: Value = serde_json::from_str(&text).map_err(|e| Error::Corrupt {
        kind: kind.noun(),
        name: name.to_owned(),
        detail: e.to_string(),
    })?;
    match kind {
        Kind::Api => {
            let version: Option<i64> = row.try_get("spec_version")?;
            if let Some(v) = version {
                let spec =
                    sqlx::query("SELECT spec FROM api_specs WHERE api_name = $1 AND version = $2")
                        .bind(name)
                        .bind(v)
                        .fetch_one(&mut *conn)
                        .await?;
                let text: String = spec.try_get("spec")?;
                insert_key(&mut document, "spec", Value::String(text));
            }
        }
        Kind::App => {
            let products = subscriptions::approved_products(conn, name).await?;
            if !products.is_empty() {
                insert_key(
                    &mut document,
                    "products",
                    Value::Array(products.into_iter().map(Value::String).collect()),
                );
            }
        }
        Kind::Product | Kind::Developer => {}
    }
    Ok(Some(Entity {
        kind,
        name: name.to_owned(),
        document,
        revision: row.try_get("revision")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    }))
}

fn insert_key(doc: &mut Value, key: &str, value: Value) {
    if let Value::Object(map) = doc {
        map.insert(key.to_owned(), value);
    }
}

/// The document as the audit log keeps it: an API's spec text is replaced
/// by its SHA-256, so the log does not copy every spec.
fn audit_view(e: &Entity) -> Value {
    let mut doc = e.document.clone();
    if let Value::Object(map) = &mut doc
        && let Some(Value::String(spec)) = map.get("spec")
    {
        let hash = format!("sha256:{}", secret::sha256_hex(spec));
        map.insert("spec".into(), Value::String(hash));
    }
    doc
}

/// Checks the document's shape and name, and normalises the name.
fn normalise_document(
    kind: Kind,
    name: &str,
    document: Value,
) -> Result<Map<String, Value>, Error> {
    let Value::Object(mut doc) = document else {
        return Err(Error::invalid(kind, "the document must be a JSON object"));
    };
    let valid = match kind {
        Kind::Developer => is_plausible_email(name),
        _ => is_entity_name(name),
    };
    if !valid {
        return Err(Error::invalid(
            kind,
            format!("`{name}` is not a valid {} name", kind.noun()),
        ));
    }
    let key = kind.key();
    match doc.get(key) {
        None => {
            doc.insert(key.to_owned(), Value::String(name.to_owned()));
        }
        Some(Value::String(n)) if kind.normalise(n) == name => {
            doc.insert(key.to_owned(), Value::String(name.to_owned()));
        }
        Some(other) => {
            return Err(Error::invalid(
                kind,
                format!("the document's `{key}` is {other}, not `{name}`"),
            ));
        }
    }
    Ok(doc)
}

/// `[a-z0-9][a-z0-9-]*`, 1 to 63 characters, as the configuration file.
fn is_entity_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

fn is_plausible_email(s: &str) -> bool {
    s.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && domain.contains('.') && !domain.contains('@')
    }) && s.bytes().all(|c| c.is_ascii_graphic())
}

/// Takes the spec text out of an API document.
fn take_spec(doc: &mut Map<String, Value>) -> Result<Option<String>, Error> {
    match doc.remove("spec") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if !text.trim().is_empty() => Ok(Some(text)),
        Some(_) => Err(Error::invalid(
            Kind::Api,
            "`spec` must be the spec's text (a file path is resolved by the client, not the store)",
        )),
    }
}

/// Takes an app's developer, products and plain API keys out of its
/// document, and refuses plain-text secrets the store has no hashed place
/// for.
fn take_app_parts(doc: &mut Map<String, Value>) -> Result<AppParts, Error> {
    let mut parts = AppParts::default();
    match doc.get("developer") {
        Some(Value::String(d)) => {
            parts.developer = d.to_ascii_lowercase();
            doc.insert("developer".into(), Value::String(parts.developer.clone()));
        }
        _ => {
            return Err(Error::invalid(
                Kind::App,
                "`developer` (an e-mail address) is required",
            ));
        }
    }
    parts.products = string_list(doc.remove("products"), "products")?;
    parts.products.sort();
    parts.products.dedup();
    parts.api_keys = string_list(doc.remove("api_keys"), "api_keys")?;
    parts.api_key_hashes = string_list(doc.remove("api_key_hashes"), "api_key_hashes")?
        .into_iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    let has = |section: &str, field: &str| {
        doc.get(section)
            .and_then(Value::as_array)
            .is_some_and(|items| items.iter().any(|i| i.get(field).is_some()))
    };
    if has("oauth_clients", "client_secret") {
        return Err(Error::invalid(
            Kind::App,
            "`oauth_clients[].client_secret` would be stored in plain text; the store does not keep OAuth client secrets yet",
        ));
    }
    if has("basic_auth", "password") {
        return Err(Error::invalid(
            Kind::App,
            "`basic_auth[].password` would be stored in plain text; give `password_hash` (argon2) instead",
        ));
    }
    Ok(parts)
}

fn string_list(value: Option<Value>, key: &str) -> Result<Vec<String>, Error> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                other => Err(Error::invalid(
                    Kind::App,
                    format!("`{key}` holds {other}, not a string"),
                )),
            })
            .collect(),
        Some(other) => Err(Error::invalid(
            Kind::App,
            format!("`{key}` must be a list, not {other}"),
        )),
    }
}

/// Records `text` as the API's current spec: a new version when its content
/// differs from every earlier one's newest, else the newest again.
async fn set_spec(
    conn: &mut AnyConnection,
    actor: &Actor,
    api: &str,
    text: &str,
    now: Millis,
) -> Result<(), Error> {
    let hash = secret::sha256_hex(text);
    let latest = sqlx::query(
        "SELECT version, sha256 FROM api_specs WHERE api_name = $1 ORDER BY version DESC LIMIT 1",
    )
    .bind(api)
    .fetch_optional(&mut *conn)
    .await?;
    let (latest_version, latest_hash) = match &latest {
        Some(r) => (
            r.try_get::<i64, _>("version")?,
            Some(r.try_get::<String, _>("sha256")?),
        ),
        None => (0, None),
    };
    let version = if latest_hash.as_deref() == Some(hash.as_str()) {
        latest_version
    } else {
        let v = latest_version + 1;
        sqlx::query(
            "INSERT INTO api_specs (api_name, version, sha256, spec, created_at, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(api)
        .bind(v)
        .bind(&hash)
        .bind(text)
        .bind(now)
        .bind(actor.0.as_str())
        .execute(&mut *conn)
        .await?;
        v
    };
    sqlx::query("UPDATE apis SET spec_version = $1 WHERE name = $2")
        .bind(version)
        .bind(api)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_configuration_file() {
        assert!(is_entity_name("orders-v1"));
        assert!(!is_entity_name("Orders"));
        assert!(!is_entity_name("-x"));
        assert!(!is_entity_name(""));
        assert!(is_plausible_email("dev@example.com"));
        assert!(!is_plausible_email("dev@localhost"));
        assert!(!is_plausible_email("a b@example.com"));
    }

    #[test]
    fn expectations() {
        assert!(Expect::Any.check("api", "a", None).is_ok());
        assert!(matches!(
            Expect::Absent.check("api", "a", Some(1)),
            Err(Error::AlreadyExists { .. })
        ));
        assert!(Expect::Revision(2).check("api", "a", Some(2)).is_ok());
        assert!(matches!(
            Expect::Revision(2).check("api", "a", Some(3)),
            Err(Error::RevisionMismatch {
                expected: 2,
                current: Some(3),
                ..
            })
        ));
    }

    #[test]
    fn listings_cut_at_the_limit() {
        let l = Listing::cut(vec![1, 2, 3], 2, ToString::to_string);
        assert_eq!(l.items, vec![1, 2]);
        assert_eq!(l.next.as_deref(), Some("2"));
        let l = Listing::cut(vec![1, 2], 2, ToString::to_string);
        assert_eq!(l.next, None);
    }
}
