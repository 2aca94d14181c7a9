//! The built-in demo (`portico serve --demo`): a bookstore API under
//! `/demo`, described by an OpenAPI 3.1 document compiled into the binary
//! and answered by the mock upstream, so that a new node answers
//! `curl localhost:8080/demo/books` at once. Its order operations need an
//! API key (security from the spec); the demo app holds [`KEY`].
//!
//! The demo's entities seed the store under a source of their own
//! ([`SOURCE`]): a start with `--demo` creates them, a later start without
//! it deletes them, and the file's entities are never touched by either.

/// The demo API's spec.
pub const SPEC: &str = include_str!("../demo/bookstore.yaml");

/// The demo app's API key. It opens the demo API only.
pub const KEY: &str = "demo-key-0001";

/// The seeding source the store records the demo's entities under.
pub(crate) const SOURCE: &str = "demo";

/// The demo's entities, written as a configuration file's sections.
pub fn config() -> String {
    let spec: String = SPEC
        .lines()
        .map(|l| {
            if l.is_empty() {
                "\n".to_owned()
            } else {
                format!("      {l}\n")
            }
        })
        .collect();
    format!(
        "apis:
  - name: demo
    base_path: /demo
    spec: |
{spec}    upstream: {{ mock: true }}
products:
  - {{ name: demo, apis: [demo], description: The demo bookstore }}
developers:
  - {{ email: demo@portico.invalid, name: Demo developer }}
apps:
  - {{ name: demo-app, developer: demo@portico.invalid, products: [demo], api_keys: [\"{KEY}\"] }}
"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use portico_model::mock::Preferences;

    #[test]
    fn the_demo_compiles_into_a_mock_with_spec_security() {
        let c = portico_config::compile(&config()).expect("the demo compiles");
        let api = &c.snapshot.apis[0];
        assert_eq!(api.base_path, "/demo");
        let mock = api.mock.as_ref().expect("a mock upstream");
        let security = api.security.as_ref().expect("orders need a key");
        let table = api.operations.as_ref().unwrap();
        for op in table.operations() {
            let answer = mock
                .get(op.index)
                .unwrap()
                .select(&Preferences::default(), None)
                .unwrap();
            assert!(answer.status.is_success(), "{}", op.label);
            assert!(!answer.body.is_empty(), "{}", op.label);
            let open = security.requirements(Some(op)).is_open();
            assert_eq!(open, op.path.starts_with("/books"), "{}", op.label);
        }
        assert_eq!(c.snapshot.consumers.apps[0].name, "demo-app");
    }
}
