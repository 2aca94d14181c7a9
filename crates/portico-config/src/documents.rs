//! The configuration file's entities as JSON documents, and compiling a
//! node's settings together with entities that come from elsewhere.
//!
//! The control plane keeps entities in the store as documents in the
//! file's shape. A node's snapshot is built from two sources: its own
//! settings (`server`, `storage`, `redis`, ...) from the file it was started
//! with, and the entities from the store. [`entity_documents`] turns a
//! file's entity sections into the documents the store keeps (seeding,
//! `portico apply`); [`compile_with`] builds a snapshot from the two.

use std::path::Path;

use serde_json::{Map, Number, Value};
use serde_saphyr::{Location, Spanned};
use sha2::{Digest, Sha256};

use crate::compile::{Compiled, compile_node};
use crate::yaml::{Node, parse};
use crate::{Diagnostic, Diagnostics};

/// The sections of the file that hold entities, in the order the store
/// needs them created (an app names its developer and products).
pub const ENTITY_SECTIONS: [&str; 4] = ["apis", "products", "developers", "apps"];

/// The entity sections of a configuration file, as one document
/// `{apis, products, developers, apps}` of JSON values in the file's shape.
///
/// The file is compiled first, so documents are only produced from a valid
/// configuration. An API's `spec` becomes the spec's text: a file it names
/// is read (relative to `dir`), and a spec written inline as a mapping is
/// written out as JSON. Plain `api_keys` stay as written: the store turns
/// them into digests.
pub fn entity_documents(text: &str, dir: &Path) -> Result<Value, Diagnostics> {
    crate::compile_in(text, dir)?;
    let root = parse(text).map_err(|d| Diagnostics(vec![d]))?;
    let mut out = Map::new();
    for section in ENTITY_SECTIONS {
        out.insert(section.to_owned(), Value::Array(Vec::new()));
    }
    let Node::Map(entries) = root.value else {
        return Ok(Value::Object(out));
    };
    let mut errors = Vec::new();
    for (key, value) in entries {
        if !ENTITY_SECTIONS.contains(&key.value.as_str()) {
            continue;
        }
        let mut items = match to_json(value.value) {
            Value::Array(items) => items,
            _ => Vec::new(),
        };
        if key.value == "apps" {
            for (i, app) in items.iter_mut().enumerate() {
                if let Err(message) = hash_secrets(app) {
                    errors.push(Diagnostic::new(format!("apps[{i}]"), message, None));
                }
            }
        }
        if key.value == "apis" {
            for (i, api) in items.iter_mut().enumerate() {
                if let Err(message) = inline_spec(api, dir) {
                    errors.push(Diagnostic::new(format!("apis[{i}].spec"), message, None));
                }
            }
        }
        out.insert(key.value, Value::Array(items));
    }
    if errors.is_empty() {
        Ok(Value::Object(out))
    } else {
        Err(Diagnostics(errors))
    }
}

/// Replaces a spec file path or inline mapping by the spec's text.
fn inline_spec(api: &mut Value, dir: &Path) -> Result<(), String> {
    let Some(spec) = api.get_mut("spec") else {
        return Ok(());
    };
    let text = match spec {
        Value::String(s) if is_spec_text(s) => return Ok(()),
        Value::String(file) => {
            let path = dir.join(&*file);
            std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read spec `{}`: {e}", path.display()))?
        }
        Value::Object(_) => serde_json::to_string_pretty(spec).map_err(|e| e.to_string())?,
        _ => return Ok(()),
    };
    *spec = Value::String(text);
    Ok(())
}

/// Replaces an app's plain-text secrets by the hashes the store keeps:
/// OAuth client secrets by their SHA-256, basic-auth passwords by argon2
/// hashes. The argon2 salt is derived from the app, the user and the
/// password, so the same file gives the same document and seeding it again
/// changes nothing; it is still unique to each credential.
fn hash_secrets(app: &mut Value) -> Result<(), String> {
    let name = app
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if let Some(Value::Array(clients)) = app.get_mut("oauth_clients") {
        for client in clients.iter_mut().filter_map(Value::as_object_mut) {
            if let Some(Value::String(secret)) = client.remove("client_secret") {
                let digest = Sha256::digest(secret.as_bytes());
                client.insert("client_secret_hash".into(), Value::String(hex(&digest)));
            }
        }
    }
    if let Some(Value::Array(users)) = app.get_mut("basic_auth") {
        for user in users.iter_mut().filter_map(Value::as_object_mut) {
            let Some(Value::String(password)) = user.remove("password") else {
                continue;
            };
            let username = user
                .get("username")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let mut salt = Sha256::new();
            for part in ["portico basic_auth", &name, username, &password] {
                salt.update(part.as_bytes());
                salt.update([0]);
            }
            let salt = salt.finalize();
            let hash =
                portico_policies::basic_auth::hash_password_with_salt(&password, &salt[..16])?;
            user.insert("password_hash".into(), Value::String(hash));
        }
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Whether a `spec` string is the document itself rather than a file path:
/// a path never spans lines, and a one-line JSON document starts with `{`.
pub(crate) fn is_spec_text(s: &str) -> bool {
    s.contains('\n') || s.trim_start().starts_with('{')
}

/// Compiles the node settings of `base` (a configuration file's text; its
/// entity sections are ignored) with the entities of `entities`, a document
/// `{apis, products, developers, apps}` such as the store's export.
///
/// Diagnostics about entities name the key path (`apis[2].upstream`) but
/// no line: the documents have no file.
pub fn compile_with(base: &str, dir: &Path, entities: &Value) -> Result<Compiled, Diagnostics> {
    let base = parse(base).map_err(|d| Diagnostics(vec![d]))?;
    let mut merged: Vec<(Spanned<String>, Spanned<Node>)> = match base.value {
        Node::Map(entries) => entries
            .into_iter()
            .filter(|(k, _)| !ENTITY_SECTIONS.contains(&k.value.as_str()))
            .collect(),
        _ => Vec::new(),
    };
    if let Value::Object(sections) = entities {
        for section in ENTITY_SECTIONS {
            if let Some(value) = sections.get(section) {
                merged.push((spanned(section.to_owned()), from_json(value)));
            }
        }
    }
    let root = spanned(Node::Map(merged));
    compile_node(&root, dir).map_err(|Diagnostics(mut errors)| {
        for d in &mut errors {
            if ENTITY_SECTIONS.iter().any(|s| d.path.starts_with(s)) {
                d.line = None;
                d.column = None;
            }
        }
        Diagnostics(errors)
    })
}

fn spanned<T>(value: T) -> Spanned<T> {
    Spanned {
        value,
        referenced: Location::UNKNOWN,
        defined: Location::UNKNOWN,
    }
}

fn from_json(value: &Value) -> Spanned<Node> {
    spanned(match value {
        Value::Null => Node::Null,
        Value::Bool(b) => Node::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Node::Int(i128::from(i)),
            (None, Some(u)) => Node::Int(i128::from(u)),
            _ => Node::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Node::Str(s.clone()),
        Value::Array(items) => Node::Seq(items.iter().map(from_json).collect()),
        Value::Object(map) => Node::Map(
            map.iter()
                .map(|(k, v)| (spanned(k.clone()), from_json(v)))
                .collect(),
        ),
    })
}

fn to_json(node: Node) -> Value {
    match node {
        Node::Null => Value::Null,
        Node::Bool(b) => Value::Bool(b),
        Node::Int(i) => i64::try_from(i)
            .map(Value::from)
            .or_else(|_| u64::try_from(i).map(Value::from))
            .unwrap_or_else(|_| Value::String(i.to_string())),
        Node::Float(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
        Node::Str(s) => Value::String(s),
        Node::Seq(items) => Value::Array(items.into_iter().map(|n| to_json(n.value)).collect()),
        Node::Map(entries) => Value::Object(
            entries
                .into_iter()
                .map(|(k, v)| (k.value, to_json(v.value)))
                .collect(),
        ),
    }
}

#[cfg(test)]
#[path = "documents_tests.rs"]
mod tests;
