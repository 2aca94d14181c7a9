//! A change is validated whole before it is stored, and answered once it
//! is live: the store's export with the change applied is compiled by the
//! node ([`crate::Plane::check`]); after the commit the handler waits for
//! the node to serve the new version ([`crate::Plane::published`]).
//!
//! The check and the commit are two steps: two concurrent changes that are
//! each valid but not together (one deletes the API the other's product
//! names) can both pass. The node then refuses to build that snapshot and
//! keeps serving the last good one; see `docs/admin-api.md`.

use aws_lc_rs::digest::{SHA256, digest};
use portico_store::Kind;
use serde_json::{Map, Value};

use crate::AdminState;
use crate::problem::ApiError;

/// One entity change.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Change<'a> {
    Put {
        kind: Kind,
        name: &'a str,
        document: &'a Value,
    },
    Delete {
        kind: Kind,
        name: &'a str,
    },
}

/// Compiles the store's entities with `change` applied; every error is a
/// 422 `invalid-configuration`.
pub(crate) async fn validate(state: &AdminState, change: Change<'_>) -> Result<(), ApiError> {
    let export = state.store.export().await?;
    let mut document = export.document;
    if let Change::Delete { kind, name } = change
        && let Some(users) = in_use(&document, kind, name)
    {
        return Err(ApiError::new(
            portico_model::ErrorCode::Conflict,
            format!(
                "The {} `{name}` is in use by {}; change or delete those first.",
                kind.noun(),
                users.join(", ")
            ),
        ));
    }
    apply(&mut document, change);
    state.plane.check(document).await.map_err(ApiError::Invalid)
}

/// Waits until this node serves the store's current version.
pub(crate) async fn publish(state: &AdminState) {
    match state.store.config_version().await {
        Ok(version) => state.plane.published(version).await,
        Err(e) => {
            tracing::warn!(error = %e, "Cannot read the configuration version after a change.")
        }
    }
}

/// The entities that name `name` of `kind`: apps of a developer, apps
/// subscribed to a product, products that include an API.
pub(crate) fn in_use(document: &Value, kind: Kind, name: &str) -> Option<Vec<String>> {
    let name = kind.normalise(name);
    let (section, field) = match kind {
        Kind::Developer => ("apps", "developer"),
        Kind::Product => ("apps", "products"),
        Kind::Api => ("products", "apis"),
        Kind::App => return None,
    };
    let names = |v: &Value| -> bool {
        match v {
            Value::String(s) => kind.normalise(s) == name,
            Value::Array(items) => items
                .iter()
                .any(|i| i.as_str().is_some_and(|s| kind.normalise(s) == name)),
            _ => false,
        }
    };
    let users: Vec<String> = document
        .get(section)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|item| item.get(field).is_some_and(names))
        .map(|item| {
            let n = item.get("name").and_then(Value::as_str).unwrap_or("?");
            format!("{} `{n}`", &section[..section.len() - 1])
        })
        .collect();
    (!users.is_empty()).then_some(users)
}

/// `document` (an export: `{apis, products, developers, apps}`) with the
/// change made to it.
pub(crate) fn apply(document: &mut Value, change: Change<'_>) {
    let (kind, name) = match change {
        Change::Put { kind, name, .. } | Change::Delete { kind, name } => (kind, name),
    };
    let Value::Object(root) = document else {
        return;
    };
    let section = root
        .entry(kind.section())
        .or_insert_with(|| Value::Array(Vec::new()));
    if !section.is_array() {
        *section = Value::Array(Vec::new());
    }
    let Value::Array(items) = section else {
        return;
    };
    let key = kind.key();
    let name = kind.normalise(name);
    let position = items.iter().position(|item| {
        item.get(key)
            .and_then(Value::as_str)
            .is_some_and(|n| kind.normalise(n) == name)
    });
    match change {
        Change::Delete { .. } => {
            if let Some(i) = position {
                items.remove(i);
            }
        }
        Change::Put { document, .. } => {
            let old = position.map(|i| &items[i]);
            let new = as_stored(kind, &name, document, old);
            match position {
                Some(i) => items[i] = new,
                None => items.push(new),
            }
        }
    }
}

/// The document as the store will hold it, in the export's shape: the name
/// filled in; for an app, the developer lower-cased and its keys as
/// digests, with the keys it has already (a PUT never revokes keys).
fn as_stored(kind: Kind, name: &str, document: &Value, old: Option<&Value>) -> Value {
    let Value::Object(doc) = document else {
        // The store refuses it with a clearer message than the compiler.
        return document.clone();
    };
    let mut doc: Map<String, Value> = doc.clone();
    doc.insert(kind.key().to_owned(), Value::String(name.to_owned()));
    if kind == Kind::App {
        if let Some(Value::String(d)) = doc.get("developer") {
            let d = d.to_ascii_lowercase();
            doc.insert("developer".into(), Value::String(d));
        }
        let mut hashes: Vec<String> = Vec::new();
        let mut add = |h: String| {
            if !hashes.contains(&h) {
                hashes.push(h);
            }
        };
        if let Some(Value::Array(old)) = old.and_then(|o| o.get("api_key_hashes")) {
            old.iter()
                .filter_map(Value::as_str)
                .for_each(|h| add(h.to_ascii_lowercase()));
        }
        if let Some(Value::Array(given)) = doc.get("api_key_hashes") {
            given
                .iter()
                .filter_map(Value::as_str)
                .for_each(|h| add(h.to_ascii_lowercase()));
        }
        let plain = match doc.remove("api_keys") {
            Some(Value::Array(keys)) => keys,
            Some(other) => {
                // Not a list: let the compiler name it.
                doc.insert("api_keys".into(), other);
                Vec::new()
            }
            None => Vec::new(),
        };
        for key in plain {
            match key {
                Value::String(k) => add(sha256_hex(&k)),
                other => {
                    doc.insert("api_keys".into(), Value::Array(vec![other]));
                }
            }
        }
        if !hashes.is_empty() {
            doc.insert(
                "api_key_hashes".into(),
                Value::Array(hashes.into_iter().map(Value::String).collect()),
            );
        }
    }
    Value::Object(doc)
}

fn sha256_hex(text: &str) -> String {
    digest(&SHA256, text.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changes_replace_insert_and_remove() {
        let mut doc = json!({
            "apis": [{"name": "a", "base_path": "/a"}],
            "products": [], "developers": [{"email": "dev@example.com"}],
            "apps": [{"name": "x", "developer": "dev@example.com", "api_key_hashes": ["ab"]}],
        });
        let new = json!({"base_path": "/b"});
        apply(
            &mut doc,
            Change::Put {
                kind: Kind::Api,
                name: "a",
                document: &new,
            },
        );
        assert_eq!(doc["apis"], json!([{"name": "a", "base_path": "/b"}]));
        apply(
            &mut doc,
            Change::Put {
                kind: Kind::Api,
                name: "b",
                document: &new,
            },
        );
        assert_eq!(doc["apis"][1]["name"], "b");
        apply(
            &mut doc,
            Change::Delete {
                kind: Kind::Developer,
                name: "DEV@example.com",
            },
        );
        assert_eq!(doc["developers"], json!([]));
        let app = json!({"developer": "Dev@Example.com", "api_keys": ["k"]});
        apply(
            &mut doc,
            Change::Put {
                kind: Kind::App,
                name: "x",
                document: &app,
            },
        );
        assert_eq!(doc["apps"][0]["developer"], "dev@example.com");
        assert_eq!(
            doc["apps"][0]["api_key_hashes"],
            json!(["ab", sha256_hex("k")])
        );
        assert!(doc["apps"][0].get("api_keys").is_none());
    }
}
