//! Making the store match a desired set of entities in one transaction:
//! `portico apply`, the admin API's `POST /admin/v1/apply`, and the seeding
//! of the store from a node's configuration file.
//!
//! The desired state is a document `{apis, products, developers, apps}` in
//! the configuration file's shape. Each entity is compared with the stored
//! one; only those that differ are written, so applying the same file twice
//! changes nothing, bumps no revision and writes no audit record. What is
//! deleted is chosen by [`Prune`].

use std::collections::{BTreeSet, HashMap, HashSet};

use serde::Serialize;
use serde_json::{Map, Value};
use sqlx::{Any, Row as _, Transaction};

use crate::audit::Actor;
use crate::entities::{self, Entity, Expect, Kind, Page, list_in};
use crate::{Error, Store, secret, version};

/// Which stored entities that the desired state does not list are deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Prune {
    /// None: the desired state only creates and updates.
    None,
    /// Every one: the store ends up holding exactly the desired state.
    All,
    /// Those that an earlier apply with the same source put there. The
    /// desired state's entities are then recorded as that source's. This is
    /// how a node's configuration file seeds the store: removing an API from
    /// the file removes it from the store, while entities made through the
    /// admin API stay.
    Source(String),
}

/// How to apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApplyOptions {
    pub prune: Prune,
    /// Compute the changes, then roll back.
    pub dry_run: bool,
}

/// What an apply changes, or would change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Delete,
}

/// One entity's change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    pub action: Action,
    /// `api`, `product`, `developer` or `app`.
    pub kind: &'static str,
    pub name: String,
}

/// The changes of one apply, creations and updates first (developers,
/// APIs, products, apps), then deletions (apps, products, APIs,
/// developers): the order they were made in.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Diff {
    pub changes: Vec<Change>,
    /// The configuration version after the commit; `None` for a dry run or
    /// when nothing changed.
    pub version: Option<i64>,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// Creation order: an app names its developer and products, a product its
/// APIs.
const CREATE_ORDER: [Kind; 4] = [Kind::Developer, Kind::Api, Kind::Product, Kind::App];

impl Store {
    /// Makes the store match `desired` in one transaction, audited as
    /// `actor`. Every entity's document is checked as [`Store::put`] checks
    /// it; the first error rolls everything back. The configuration
    /// compiler should have accepted `desired` (with the entities that stay)
    /// before this is called.
    pub async fn apply(
        &self,
        actor: &Actor,
        desired: &Value,
        options: &ApplyOptions,
    ) -> Result<Diff, Error> {
        let desired = Desired::read(desired)?;
        let mut tx = self.begin().await?;
        let mut diff = Diff::default();
        let mut stored: HashMap<Kind, HashMap<String, Entity>> = HashMap::new();
        for kind in Kind::ALL {
            stored.insert(kind, list_all(&mut tx, kind).await?);
        }
        let owned = match &options.prune {
            Prune::Source(source) => Some(seeded(&mut tx, source).await?),
            _ => None,
        };

        for kind in CREATE_ORDER {
            let current = &stored[&kind];
            for (name, doc) in desired.of(kind) {
                let action = match current.get(name) {
                    None => Action::Create,
                    Some(entity) => {
                        if same(kind, &entity.document, doc)
                            && !needs_keys(&mut tx, name, doc).await?
                        {
                            continue;
                        }
                        Action::Update
                    }
                };
                entities::put_in(
                    &mut tx,
                    actor,
                    kind,
                    name,
                    Value::Object(doc.clone()),
                    Expect::Any,
                )
                .await?;
                diff.changes.push(Change {
                    action,
                    kind: kind.noun(),
                    name: name.clone(),
                });
            }
        }

        for kind in CREATE_ORDER.iter().rev().copied() {
            let wanted: HashSet<&str> = desired.of(kind).iter().map(|(n, _)| n.as_str()).collect();
            let mut doomed: Vec<&String> = stored[&kind]
                .keys()
                .filter(|name| !wanted.contains(name.as_str()))
                .filter(|name| match (&options.prune, &owned) {
                    (Prune::All, _) => true,
                    (Prune::Source(_), Some(owned)) => {
                        owned.contains(&(kind.noun().to_owned(), (*name).clone()))
                    }
                    _ => false,
                })
                .collect();
            doomed.sort();
            for name in doomed {
                entities::delete_in(&mut tx, actor, kind, name, Expect::Any).await?;
                diff.changes.push(Change {
                    action: Action::Delete,
                    kind: kind.noun(),
                    name: name.clone(),
                });
            }
        }

        if let (Prune::Source(source), Some(owned)) = (&options.prune, &owned) {
            record_seeded(&mut tx, source, owned, &desired).await?;
        }
        if options.dry_run {
            tx.rollback().await?;
            return Ok(diff);
        }
        if !diff.is_empty() {
            diff.version = Some(version::bump(&mut tx, self.backend).await?);
        }
        tx.commit().await?;
        Ok(diff)
    }
}

/// A desired entity: its normalised name and its document.
type Named = (String, Map<String, Value>);

/// The desired documents per kind.
struct Desired {
    by_kind: HashMap<Kind, Vec<Named>>,
}

impl Desired {
    fn read(document: &Value) -> Result<Self, Error> {
        let Value::Object(sections) = document else {
            return Err(Error::Invalid {
                kind: "configuration",
                detail: "the desired state must be an object {apis, products, developers, apps}"
                    .into(),
            });
        };
        if let Some(other) = sections
            .keys()
            .find(|k| !Kind::ALL.iter().any(|kind| kind.section() == k.as_str()))
        {
            return Err(Error::Invalid {
                kind: "configuration",
                detail: format!(
                    "unknown section `{other}`, expected apis, products, developers or apps"
                ),
            });
        }
        let mut by_kind = HashMap::new();
        for kind in Kind::ALL {
            let items = match sections.get(kind.section()) {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(items)) => items.clone(),
                Some(_) => {
                    return Err(Error::invalid(
                        kind,
                        format!("`{}` must be a list", kind.section()),
                    ));
                }
            };
            let mut seen = HashSet::new();
            let mut docs = Vec::with_capacity(items.len());
            for item in items {
                let Value::Object(doc) = item else {
                    return Err(Error::invalid(kind, "each entity must be an object"));
                };
                let Some(Value::String(name)) = doc.get(kind.key()) else {
                    return Err(Error::invalid(
                        kind,
                        format!("every {} needs `{}`", kind.noun(), kind.key()),
                    ));
                };
                let name = kind.normalise(name);
                if !seen.insert(name.clone()) {
                    return Err(Error::invalid(kind, format!("`{name}` is listed twice")));
                }
                docs.push((name, doc));
            }
            by_kind.insert(kind, docs);
        }
        Ok(Self { by_kind })
    }

    fn of(&self, kind: Kind) -> &[Named] {
        self.by_kind.get(&kind).map_or(&[], Vec::as_slice)
    }
}

async fn list_all(
    tx: &mut Transaction<'static, Any>,
    kind: Kind,
) -> Result<HashMap<String, Entity>, Error> {
    let mut out = HashMap::new();
    let mut page = Page::first(Page::MAX_LIMIT);
    loop {
        let listing = list_in(tx, kind, &page, None).await?;
        out.extend(listing.items.into_iter().map(|e| (e.name.clone(), e)));
        match listing.next {
            Some(next) => page.after = Some(next),
            None => return Ok(out),
        }
    }
}

/// Whether the stored document already says what the desired one says.
/// Keys are compared separately ([`needs_keys`]); an app's products are a
/// set; an empty list of products is no products; specs are compared as
/// documents, not as text.
fn same(kind: Kind, stored: &Value, desired: &Map<String, Value>) -> bool {
    let Value::Object(stored) = stored else {
        return false;
    };
    comparable(kind, stored) == comparable(kind, desired)
}

fn comparable(kind: Kind, doc: &Map<String, Value>) -> Map<String, Value> {
    let mut doc = doc.clone();
    if let Some(Value::String(name)) = doc.get(kind.key()) {
        let name = kind.normalise(name);
        doc.insert(kind.key().to_owned(), Value::String(name));
    }
    // A spec is kept as text: the same document written as YAML or as JSON
    // (an export writes it back inline) is the same spec.
    if kind == Kind::Api
        && let Some(Value::String(text)) = doc.get("spec")
        && let Ok(parsed) = portico_spec::parse_text(text)
    {
        doc.insert("spec".into(), parsed);
    }
    if kind == Kind::App {
        doc.remove("api_keys");
        doc.remove("api_key_hashes");
        if let Some(Value::String(d)) = doc.get("developer") {
            let d = d.to_ascii_lowercase();
            doc.insert("developer".into(), Value::String(d));
        }
        let products: BTreeSet<String> = doc
            .remove("products")
            .and_then(|p| match p {
                Value::Array(items) => Some(items),
                _ => None,
            })
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| p.as_str().map(str::to_owned))
            .collect();
        if !products.is_empty() {
            doc.insert(
                "products".into(),
                Value::Array(products.into_iter().map(Value::String).collect()),
            );
        }
    }
    doc.retain(|_, v| !v.is_null());
    doc
}

/// Whether an app document lists a key (plain or as a digest) that the
/// store does not hold yet.
async fn needs_keys(
    tx: &mut Transaction<'static, Any>,
    app: &str,
    doc: &Map<String, Value>,
) -> Result<bool, Error> {
    let plain = doc
        .get("api_keys")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(secret::sha256_hex);
    let hashes = doc
        .get("api_key_hashes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_ascii_lowercase);
    for digest in plain.chain(hashes) {
        let row = sqlx::query("SELECT app_name FROM api_keys WHERE digest = $1")
            .bind(&digest)
            .fetch_optional(&mut **tx)
            .await?;
        match row {
            None => return Ok(true),
            // Owned by another app: let `put` refuse it.
            Some(r) if r.try_get::<String, _>(0)? != app => return Ok(true),
            Some(_) => {}
        }
    }
    Ok(false)
}

/// `(kind noun, name)` of what `source` seeded.
async fn seeded(
    tx: &mut Transaction<'static, Any>,
    source: &str,
) -> Result<HashSet<(String, String)>, Error> {
    let rows = sqlx::query("SELECT kind, name FROM seeded_entities WHERE source = $1")
        .bind(source)
        .fetch_all(&mut **tx)
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("kind")?, r.try_get("name")?)))
        .collect()
}

/// Records the desired entities as `source`'s, writing only the difference.
async fn record_seeded(
    tx: &mut Transaction<'static, Any>,
    source: &str,
    before: &HashSet<(String, String)>,
    desired: &Desired,
) -> Result<(), Error> {
    let mut now = HashSet::new();
    for kind in Kind::ALL {
        for (name, _) in desired.of(kind) {
            now.insert((kind.noun().to_owned(), name.clone()));
        }
    }
    for (kind, name) in before.difference(&now) {
        sqlx::query("DELETE FROM seeded_entities WHERE source = $1 AND kind = $2 AND name = $3")
            .bind(source)
            .bind(kind)
            .bind(name)
            .execute(&mut **tx)
            .await?;
    }
    for (kind, name) in now.difference(before) {
        sqlx::query("INSERT INTO seeded_entities (source, kind, name) VALUES ($1, $2, $3)")
            .bind(source)
            .bind(kind)
            .bind(name)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
