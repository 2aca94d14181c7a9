use std::path::Path;

use serde_json::json;

use super::*;

const SPEC: &str = "openapi: 3.0.3\ninfo: { title: Orders, version: '1' }\npaths:\n  /orders:\n    get:\n      responses: { '200': { description: ok } }\n";

fn write_spec(dir: &Path) {
    std::fs::write(dir.join("orders.yaml"), SPEC).unwrap();
}

const FILE: &str = r#"
server:
  proxy: { listen: "127.0.0.1:0" }
apis:
  - name: orders
    base_path: /orders
    spec: orders.yaml
    upstream: { targets: ["http://127.0.0.1:9"] }
    policies:
      - api_key: {}
      - rate_limit: { limit: 100, window: 1m, by: app }
products:
  - { name: basic, apis: [orders] }
developers:
  - { email: dev@example.com, name: Dev }
apps:
  - { name: one, developer: dev@example.com, products: [basic], api_keys: ["key-0001-abcdefgh"] }
"#;

#[test]
fn documents_hold_the_entities_with_the_spec_text_inlined() {
    let dir = tempfile::tempdir().unwrap();
    write_spec(dir.path());
    let docs = entity_documents(FILE, dir.path()).unwrap();
    assert_eq!(docs["apis"][0]["spec"], json!(SPEC));
    assert_eq!(
        docs["apis"][0]["policies"][1]["rate_limit"]["limit"],
        json!(100)
    );
    assert_eq!(docs["apps"][0]["api_keys"], json!(["key-0001-abcdefgh"]));
    assert_eq!(docs["developers"][0]["email"], json!("dev@example.com"));
    // Node settings are not entities.
    assert!(docs.get("server").is_none());
}

#[test]
fn an_invalid_file_yields_no_documents() {
    let dir = tempfile::tempdir().unwrap();
    let err = entity_documents("apis: [{ name: x }]", dir.path()).unwrap_err();
    assert!(err.iter().any(|d| d.path.starts_with("apis[0]")), "{err}");
}

#[test]
fn a_missing_spec_file_is_an_error_at_the_spec_key() {
    let dir = tempfile::tempdir().unwrap();
    let err = entity_documents(FILE, dir.path()).unwrap_err();
    assert!(err.iter().any(|d| d.path == "apis[0].spec"), "{err}");
}

#[test]
fn the_documents_compile_to_the_same_configuration_as_the_file() {
    let dir = tempfile::tempdir().unwrap();
    write_spec(dir.path());
    let from_file = crate::compile_in(FILE, dir.path()).unwrap();
    let docs = entity_documents(FILE, dir.path()).unwrap();
    // The spec is text now, so compile from elsewhere: nothing is read.
    let elsewhere = tempfile::tempdir().unwrap();
    let merged = compile_with(FILE, elsewhere.path(), &docs).unwrap();
    assert_eq!(merged.node, from_file.node);
    assert_eq!(merged.snapshot.apis.len(), 1);
    assert_eq!(merged.snapshot.products.len(), 1);
    assert_eq!(merged.snapshot.consumers.apps.len(), 1);
}

#[test]
fn entities_from_elsewhere_replace_the_files_own() {
    let base = "server: { proxy: { listen: \"127.0.0.1:0\" } }\napis:\n  - { name: from-file, base_path: /f, upstream: { targets: [\"http://127.0.0.1:9\"] } }\n";
    let entities = json!({
        "apis": [
            { "name": "a", "base_path": "/a", "upstream": { "targets": ["http://127.0.0.1:9"] } },
            { "name": "b", "base_path": "/b", "upstream": { "targets": ["http://127.0.0.1:9"] } }
        ],
        "products": [], "developers": [], "apps": []
    });
    let c = compile_with(base, Path::new("."), &entities).unwrap();
    let names: Vec<_> = c.snapshot.apis.iter().map(|a| a.name.to_string()).collect();
    assert_eq!(names, ["a", "b"]);
}

#[test]
fn errors_in_entities_name_the_key_but_no_line() {
    let entities = json!({
        "apis": [{ "name": "a", "base_path": "/a", "upstream": { "targets": [] }, "colour": "red" }]
    });
    let err = compile_with("", Path::new("."), &entities).unwrap_err();
    assert!(!err.is_empty());
    for d in err.iter() {
        assert!(d.path.starts_with("apis[0]"), "{d}");
        assert_eq!(d.line, None);
    }
}

#[test]
fn a_spec_given_as_text_is_loaded_not_opened() {
    let entities = json!({
        "apis": [{ "name": "a", "base_path": "/a", "spec": SPEC,
                   "upstream": { "targets": ["http://127.0.0.1:9"] } }]
    });
    let empty = tempfile::tempdir().unwrap();
    let c = compile_with("", empty.path(), &entities).unwrap();
    assert!(c.snapshot.apis[0].operations.is_some());
}

#[test]
fn secrets_are_hashed_the_same_way_every_time() {
    let file = r#"
apis:
  - { name: a, base_path: /a, upstream: { targets: ["http://127.0.0.1:9"] }, policies: [{ basic_auth: {} }] }
developers:
  - { email: dev@example.com, name: Dev }
apps:
  - name: one
    developer: dev@example.com
    basic_auth: [{ username: alice, password: "correct horse" }]
    oauth_clients: [{ client_id: one, client_secret: "s3cret-s3cret" }]
"#;
    let dir = tempfile::tempdir().unwrap();
    let first = entity_documents(file, dir.path()).unwrap();
    let second = entity_documents(file, dir.path()).unwrap();
    assert_eq!(first, second, "seeding the same file twice must be a no-op");
    let app = &first["apps"][0];
    assert!(app["basic_auth"][0].get("password").is_none());
    assert!(
        app["basic_auth"][0]["password_hash"]
            .as_str()
            .unwrap()
            .starts_with("$argon2")
    );
    assert!(app["oauth_clients"][0].get("client_secret").is_none());
    let digest: String = {
        use sha2::Digest as _;
        sha2::Sha256::digest(b"s3cret-s3cret")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    assert_eq!(app["oauth_clients"][0]["client_secret_hash"], json!(digest));
    // The hashed documents compile, and the password still verifies.
    let compiled = compile_with("", dir.path(), &first).unwrap();
    assert_eq!(compiled.snapshot.consumers.apps.len(), 1);
}
