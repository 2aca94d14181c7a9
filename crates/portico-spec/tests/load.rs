//! Loading whole documents: the fixtures, broken references, cycles, and a
//! large generated spec.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use http::Method;
use portico_spec::{
    LoadOptions, OpenApiVersion, ParameterIn, SecurityScheme, Spec, SpecErrors, Style, load_file,
    load_str,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn errors(r: Result<Spec, SpecErrors>) -> SpecErrors {
    match r {
        Ok(_) => panic!("the spec loaded"),
        Err(e) => e,
    }
}

/// Loads `text` with no directory (no file references).
fn inline(text: &str) -> Result<Spec, SpecErrors> {
    load_str(text, LoadOptions::default())
}

#[test]
fn petstore_3_0_with_file_references() {
    let spec = load_file(&fixture("petstore-3.0.yaml")).unwrap();
    assert_eq!(spec.version, OpenApiVersion::V3_0);
    assert_eq!(spec.title, "Pet shop");
    assert_eq!(spec.servers[0].url, "https://eu.shop.example/pets/v1");
    assert_eq!(spec.servers[0].base_path, "/pets/v1");
    let ops: Vec<(&str, Method, Option<&str>)> = spec
        .operations
        .iter()
        .map(|o| (o.path.as_str(), o.method.clone(), o.operation_id.as_deref()))
        .collect();
    assert_eq!(
        ops,
        [
            ("/pets", Method::GET, Some("listPets")),
            ("/pets", Method::POST, Some("createPet")),
            ("/pets/{petId}", Method::GET, Some("showPet")),
            ("/pets/{petId}", Method::DELETE, Some("deletePet")),
        ]
    );

    let list = spec.operation("listPets").unwrap();
    assert_eq!(list.pointer, "/paths/~1pets/get");
    let limit = &list.parameters[0];
    assert_eq!(
        (limit.name.as_str(), limit.location),
        ("limit", ParameterIn::Query)
    );
    assert_eq!(
        (limit.style, limit.explode, limit.required),
        (Style::Form, true, false)
    );
    assert_eq!(limit.schema.as_ref().unwrap().0["maximum"], 100);
    let tags = &list.parameters[1];
    assert_eq!((tags.style, tags.explode), (Style::Form, false));
    // The array items reference the shared Pet schema by key.
    let ok = &list.responses[0];
    assert_eq!(ok.status, "200");
    let schema = &ok.content[0].schema.as_ref().unwrap().0;
    assert_eq!(schema["items"]["$ref"], "#/components/schemas/Pet");
    assert_eq!(ok.content[0].example.as_ref().unwrap()[0]["name"], "Rex");
    // A response from another file, whose own references are relative to it.
    let problem = &list.responses[1];
    assert_eq!(problem.status, "default");
    assert_eq!(problem.content[0].content_type, "application/problem+json");
    let key = "shared/errors.yaml#/components/schemas/Problem";
    assert_eq!(problem.content[0].schema.as_ref().unwrap().0["$ref"], key);
    assert_eq!(
        spec.schemas[key].0["properties"]["errors"]["items"]["$ref"], "#/components/schemas/Pet",
        "a reference back into the root document gets the root's key"
    );

    let create = spec.operation("createPet").unwrap();
    let body = create.request_body.as_ref().unwrap();
    assert!(body.required);
    assert_eq!(
        body.content[0].schema.as_ref().unwrap().0["$ref"],
        "#/components/schemas/NewPet"
    );
    assert_eq!(create.responses[0].content[0].examples[0].0, "rex");
    let security = spec.security_of(create);
    assert_eq!(security.len(), 2);
    assert_eq!(
        security[1].schemes,
        [("oauth".to_owned(), vec!["pets:write".to_owned()])]
    );
    assert_eq!(spec.security_of(list)[0].schemes[0].0, "keyAuth");

    // Path-level parameters reach every operation; the operation's own come first.
    let delete = spec.operation("deletePet").unwrap();
    assert!(delete.deprecated);
    let names: Vec<_> = delete
        .parameters
        .iter()
        .map(|p| (p.name.as_str(), p.location))
        .collect();
    assert_eq!(
        names,
        [
            ("x-reason", ParameterIn::Header),
            ("petId", ParameterIn::Path)
        ]
    );
    assert!(delete.parameters[1].required);
    assert_eq!(delete.parameters[1].style, Style::Simple);

    // Recursive schemas are kept once each.
    assert_eq!(
        spec.schemas["#/components/schemas/Pet"].0["allOf"][1]["properties"]["litter"]["items"]["$ref"],
        "#/components/schemas/Pet"
    );
    assert!(matches!(
        spec.security_schemes["oauth"],
        SecurityScheme::OAuth2 { ref flows } if flows[0].scopes == ["pets:read", "pets:write"]
    ));
}

#[test]
fn library_3_1_json() {
    let spec = load_file(&fixture("library-3.1.json")).unwrap();
    assert_eq!(spec.version, OpenApiVersion::V3_1);
    assert_eq!(spec.servers[0].base_path, "/library");
    assert_eq!(spec.operations.len(), 3, "webhooks are not operations");
    let chapter = spec.operation("chapter").unwrap();
    assert_eq!(chapter.path, "/books/{isbn}/chapters/{n}");
    assert_eq!(chapter.parameters.len(), 2);
    let filter = &spec.operation("listBooks").unwrap().parameters[0];
    assert_eq!((filter.style, filter.explode), (Style::DeepObject, true));
    let book = &spec.schemas["#/components/schemas/Book"].0;
    assert_eq!(
        book["properties"]["$ref"]["type"], "string",
        "a property named $ref is not a reference"
    );
    assert_eq!(
        book["properties"]["series"]["$ref"],
        "#/components/schemas/Book"
    );
    assert_eq!(
        book["properties"]["series"]["description"],
        "3.1 allows siblings"
    );
    assert_eq!(
        spec.security_schemes["bearer"],
        SecurityScheme::Http {
            scheme: "bearer".into(),
            bearer_format: Some("JWT".into())
        }
    );
}

const HEAD: &str = "openapi: 3.0.3\ninfo: { title: t, version: '1' }\n";

#[test]
fn missing_local_target_names_the_pointer() {
    let text = format!(
        "{HEAD}paths:\n  /a:\n    get:\n      responses:\n        '200':\n          description: ok\n          content:\n            application/json:\n              schema: {{ $ref: '#/components/schemas/Nope' }}\n"
    );
    let e = errors(inline(&text));
    assert_eq!(e.0.len(), 1, "{e}");
    assert_eq!(
        e.0[0].pointer,
        "/paths/~1a/get/responses/200/content/application~1json/schema/$ref"
    );
    assert!(
        e.0[0]
            .message
            .contains("`#/components/schemas/Nope` does not exist"),
        "{e}"
    );
    assert_eq!(e.0[0].file, None);
}

#[test]
fn remote_references_are_refused() {
    let text = format!(
        "{HEAD}paths:\n  /a:\n    get:\n      responses:\n        '200': {{ $ref: 'https://example.com/r.yaml#/x' }}\n"
    );
    let e = errors(inline(&text));
    assert!(e.0[0].message.contains("remote reference"), "{e}");
    assert_eq!(e.0[0].pointer, "/paths/~1a/get/responses/200/$ref");
}

#[test]
fn file_references_need_a_directory_and_a_file() {
    let text = format!(
        "{HEAD}paths:\n  /a:\n    get:\n      responses:\n        '200': {{ $ref: 'other.yaml#/x' }}\n"
    );
    let e = errors(inline(&text));
    assert!(e.0[0].message.contains("no directory"), "{e}");

    let dir = tempfile::tempdir().unwrap();
    let e = errors(load_str(
        &text,
        LoadOptions {
            base_dir: Some(dir.path().to_owned()),
            ..LoadOptions::default()
        },
    ));
    assert!(e.0[0].message.contains("cannot read `other.yaml`"), "{e}");

    std::fs::write(
        dir.path().join("other.yaml"),
        "x: { description: ok }\ny: [1\n",
    )
    .unwrap();
    let e = errors(load_str(
        &text,
        LoadOptions {
            base_dir: Some(dir.path().to_owned()),
            ..LoadOptions::default()
        },
    ));
    assert!(e.0[0].message.contains("not valid YAML"), "{e}");
}

#[test]
fn errors_inside_referenced_files_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("parts")).unwrap();
    std::fs::write(
        dir.path().join("parts/params.yaml"),
        "Limit: { name: limit, in: body }\n",
    )
    .unwrap();
    let text = format!(
        "{HEAD}paths:\n  /a:\n    get:\n      parameters: [{{ $ref: 'parts/params.yaml#/Limit' }}]\n      responses: {{}}\n"
    );
    let e = errors(load_str(
        &text,
        LoadOptions {
            base_dir: Some(dir.path().to_owned()),
            ..LoadOptions::default()
        },
    ));
    assert_eq!(e.0[0].file.as_deref(), Some("parts/params.yaml"), "{e}");
    assert_eq!(e.0[0].pointer, "/Limit/in");
    assert_eq!(
        e.to_string(),
        format!("parts/params.yaml#/Limit/in: {}", e.0[0].message)
    );
}

#[test]
fn reference_cycles_outside_schemas_are_errors() {
    let text = format!(
        "{HEAD}paths:\n  /a:\n    get:\n      responses:\n        '200': {{ $ref: '#/components/responses/A' }}\ncomponents:\n  responses:\n    A: {{ $ref: '#/components/responses/B' }}\n    B: {{ $ref: '#/components/responses/A' }}\n"
    );
    let e = errors(inline(&text));
    assert!(e.0[0].message.contains("reference cycle"), "{e}");
}

#[test]
fn recursive_schemas_across_files_load() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tree.yaml"),
        "Node:\n  type: object\n  properties:\n    children: { type: array, items: { $ref: '#/Node' } }\n    root: { $ref: 'spec.yaml#/components/schemas/Root' }\n",
    )
    .unwrap();
    let text = format!(
        "{HEAD}paths: {{}}\ncomponents:\n  schemas:\n    Root: {{ $ref: 'tree.yaml#/Node' }}\n"
    );
    std::fs::write(dir.path().join("spec.yaml"), &text).unwrap();
    let spec = load_file(&dir.path().join("spec.yaml")).unwrap();
    assert_eq!(
        spec.schemas["#/components/schemas/Root"].0["$ref"],
        "tree.yaml#/Node"
    );
    assert_eq!(
        spec.schemas["tree.yaml#/Node"].0["properties"]["children"]["items"]["$ref"],
        "tree.yaml#/Node"
    );
    // A reference back into the root by its file name is the root.
    assert_eq!(
        spec.schemas["tree.yaml#/Node"].0["properties"]["root"]["$ref"],
        "#/components/schemas/Root"
    );
    assert!(
        !spec
            .schemas
            .contains_key("spec.yaml#/components/schemas/Root")
    );
}

#[test]
fn document_level_errors() {
    let e = errors(inline("swagger: '2.0'\n"));
    assert!(e.0[0].message.contains("Swagger 2.0"), "{e}");
    let e = errors(inline("openapi: 3.2.0\n"));
    assert!(e.0[0].message.contains("not supported"), "{e}");
    let e = errors(inline("[1, 2]\n"));
    assert!(e.0[0].message.contains("mapping"), "{e}");
    let e = errors(inline(&format!("{HEAD}paths:\n  pets: {{}}\n")));
    assert!(e.0[0].message.contains("must start with `/`"), "{e}");
    // Several errors come back at once.
    let e = errors(inline(&format!(
        "{HEAD}paths:\n  /a/{{id}}:\n    get:\n      operationId: x\n      responses: {{ '200': {{ description: ok }} }}\n  /b:\n    get:\n      operationId: x\n      security: [{{ nope: [] }}]\n      responses: {{ '2X0': {{ description: ok }} }}\n"
    )));
    let messages: Vec<&str> = e.0.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(messages.len(), 4, "{e}");
    assert!(
        messages.iter().any(|m| m.contains("path parameter `id`")),
        "{e}"
    );
    assert!(
        messages.iter().any(|m| m.contains("`nope` is not defined")),
        "{e}"
    );
    assert!(
        messages.iter().any(|m| m.contains("`2X0` is not a status")),
        "{e}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("operationId `x` is used")),
        "{e}"
    );
}

/// A spec with `paths` paths of four operations each, as JSON or YAML.
pub fn large_spec(paths: usize, json: bool) -> String {
    let mut out = String::new();
    if json {
        out.push_str(r#"{"openapi":"3.1.0","info":{"title":"large","version":"1"},"paths":{"#);
        for i in 0..paths {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(
                out,
                r##""/resource{i}/{{id}}":{{"parameters":[{{"name":"id","in":"path","required":true,"schema":{{"type":"integer"}}}}],"get":{{"operationId":"get{i}","responses":{{"200":{{"description":"ok","content":{{"application/json":{{"schema":{{"$ref":"#/components/schemas/Item"}}}}}}}}}}}},"put":{{"operationId":"put{i}","requestBody":{{"content":{{"application/json":{{"schema":{{"$ref":"#/components/schemas/Item"}}}}}}}},"responses":{{"204":{{"description":"done"}}}}}},"delete":{{"operationId":"delete{i}","responses":{{"204":{{"description":"gone"}}}}}},"patch":{{"operationId":"patch{i}","parameters":[{{"name":"dry","in":"query","schema":{{"type":"boolean"}}}}],"responses":{{"200":{{"description":"ok"}}}}}}}}"##
            );
        }
        out.push_str(r##"},"components":{"schemas":{"Item":{"type":"object","properties":{"id":{"type":"integer"},"name":{"type":"string"},"children":{"type":"array","items":{"$ref":"#/components/schemas/Item"}}}}}}}"##);
    } else {
        out.push_str("openapi: 3.0.3\ninfo: { title: large, version: '1' }\npaths:\n");
        for i in 0..paths {
            let _ = write!(
                out,
                "  /resource{i}/{{id}}:\n    parameters:\n      - {{ name: id, in: path, required: true, schema: {{ type: integer }} }}\n    get:\n      operationId: get{i}\n      responses:\n        200:\n          description: ok\n          content:\n            application/json:\n              schema: {{ $ref: '#/components/schemas/Item' }}\n    put:\n      operationId: put{i}\n      requestBody:\n        content:\n          application/json:\n            schema: {{ $ref: '#/components/schemas/Item' }}\n      responses: {{ 204: {{ description: done }} }}\n    delete:\n      operationId: delete{i}\n      responses: {{ 204: {{ description: gone }} }}\n    patch:\n      operationId: patch{i}\n      parameters: [{{ name: dry, in: query, schema: {{ type: boolean }} }}]\n      responses: {{ 200: {{ description: ok }} }}\n"
            );
        }
        out.push_str("components:\n  schemas:\n    Item:\n      type: object\n      properties:\n        id: { type: integer }\n        children: { type: array, items: { $ref: '#/components/schemas/Item' } }\n");
    }
    out
}

#[test]
fn a_spec_over_one_mebibyte_loads() {
    for json in [true, false] {
        let text = large_spec(2000, json);
        assert!(text.len() > 1024 * 1024, "{} bytes", text.len());
        let spec = inline(&text).unwrap();
        assert_eq!(spec.operations.len(), 8000);
        assert_eq!(
            spec.operation("patch1999").unwrap().path,
            "/resource1999/{id}"
        );
    }
}

/// `cargo test -p portico-spec --release --test load -- --ignored --nocapture`
#[test]
#[ignore = "a timing printout, not a check"]
fn large_spec_load_time() {
    for (paths, json) in [(2000, true), (2000, false), (10_000, true)] {
        let text = large_spec(paths, json);
        let runs = 5;
        let start = Instant::now();
        for _ in 0..runs {
            let spec = inline(&text).unwrap();
            assert_eq!(spec.operations.len(), paths * 4);
        }
        let each = start.elapsed() / runs;
        println!(
            "{} {:.2} MiB, {} operations: {:?} per load",
            if json { "JSON" } else { "YAML" },
            text.len() as f64 / 1024.0 / 1024.0,
            paths * 4,
            each
        );
    }
}
