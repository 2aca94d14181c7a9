//! `upstream: { mock: true }`: what is prepared, and every refusal with its
//! key and line.

use portico_model::mock::{Declared, Preferences};

use crate::compile;

const SPEC: &str = "
      openapi: 3.1.0
      info: { title: t, version: '1' }
      paths:
        /books/{id}:
          parameters: [{ name: id, in: path, required: true, schema: { type: integer } }]
          get:
            operationId: getBook
            responses:
              '404':
                description: missing
                content:
                  application/problem+json:
                    schema: { type: object, required: [status], properties: { status: { type: integer, const: 404 } } }
              '200':
                description: ok
                content:
                  application/json:
                    schema: { $ref: '#/components/schemas/Book' }
                    examples:
                      dune: { value: { id: 1, title: Dune } }
                      emma: { value: { id: 2, title: Emma } }
                  text/plain:
                    example: Dune
        /books:
          post:
            responses:
              '201':
                description: made
                content:
                  application/json:
                    schema: { $ref: '#/components/schemas/Book' }
              '204': { description: nothing }
      components:
        schemas:
          Book:
            type: object
            required: [id, title]
            properties:
              id: { type: integer, minimum: 1 }
              title: { type: string }
              secret: { type: string, writeOnly: true }
";

fn yaml(upstream: &str, extra: &str) -> String {
    format!(
        "apis:\n  - name: books\n    base_path: /books\n    spec:{SPEC}    upstream: {upstream}\n{extra}"
    )
}

fn errors(yaml: &str) -> Vec<String> {
    match compile(yaml) {
        Ok(_) => panic!("configuration was accepted:\n{yaml}"),
        Err(d) => d.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn answers_are_prepared_from_examples_and_schemas() {
    let c = compile(&yaml("{ mock: true }", "")).unwrap();
    let api = &c.snapshot.apis[0];
    assert!(api.upstream.targets.is_empty());
    let table = api.mock.as_ref().unwrap();
    // Operations are in template order: `/books` before `/books/{id}`.
    let get = table.get(1).unwrap();
    let ok = &get.responses[get.default.unwrap()];
    assert_eq!(ok.declared, Declared::Code(200), "the 200, not the 404");
    let json = &ok.representations[0];
    let names: Vec<_> = json.examples.iter().map(|e| e.name.as_deref()).collect();
    assert_eq!(names, [Some("dune"), Some("emma")]);
    assert_eq!(&json.examples[0].body[..], br#"{"id":1,"title":"Dune"}"#);
    assert_eq!(
        json.generated.as_deref(),
        Some(&br#"{"id":1,"title":"string"}"#[..])
    );
    let text = &ok.representations[1];
    assert_eq!(&text.examples[0].body[..], b"Dune", "a string as it is");
    let missing = get
        .responses
        .iter()
        .find(|r| r.declared == Declared::Code(404))
        .unwrap();
    assert_eq!(
        &missing.representations[0].examples[0].body[..],
        br#"{"status":404}"#
    );

    let post = table.get(0).unwrap();
    let a = post.select(&Preferences::default(), None).unwrap();
    assert_eq!(a.status, 201);
    assert_eq!(&a.body[..], br#"{"id":1,"title":"string"}"#);
    let prefs = Preferences {
        code: Some(204),
        ..Preferences::default()
    };
    let a = post.select(&prefs, None).unwrap();
    assert_eq!(
        (a.status.as_u16(), a.content_type, a.body.len()),
        (204, None, 0)
    );
}

#[test]
fn a_mock_needs_a_spec_and_nothing_about_targets() {
    let errs = errors("apis:\n  - name: a\n    base_path: /a\n    upstream: { mock: true }\n");
    assert_eq!(
        errs,
        [
            "apis[0].upstream.mock: a mock upstream answers from the API's spec; add a `spec` (or give `targets`) at line 4 column 23"
        ]
    );
    let errs = errors(&yaml(
        "{ mock: true, targets: [\"http://h\"], timeout: 1s }",
        "",
    ));
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
        errs[0].starts_with("apis[0].upstream.targets: `targets` has no effect on a mock upstream"),
        "{errs:?}"
    );
    assert!(
        errs[1].starts_with("apis[0].upstream.timeout: `timeout` has no effect"),
        "{errs:?}"
    );
    let errs = errors(&yaml("{ mock: true }", "    routing: passthrough\n"));
    assert!(
        errs[0].contains("`routing: passthrough` has nothing to pass through to"),
        "{errs:?}"
    );
    let errs = errors(&yaml("{ mock: true }", "    policies: [{ cache: {} }]\n"));
    assert!(
        errs[0].starts_with("apis[0].policies[0]: `cache` has nothing to save"),
        "{errs:?}"
    );
    let errs = errors(&yaml("{ mock: false }", ""));
    assert!(
        errs[0].starts_with("apis[0].upstream: missing field `targets` (an upstream needs targets unless it is `mock: true`)"),
        "{errs:?}"
    );
}
