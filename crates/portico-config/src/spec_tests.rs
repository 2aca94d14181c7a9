use std::path::Path;

use http::Method;
use portico_model::{OperationMatch, Routing};

use crate::{Compiled, compile_in};

const PETS: &str = "openapi: 3.0.3\ninfo: { title: pets, version: '1' }\nservers: [{ url: 'https://api.example.com/pets/v2/' }]\npaths:\n  /pets:\n    get: { operationId: listPets, responses: { 200: { description: ok } } }\n    post: { operationId: createPet, responses: { 201: { description: ok } } }\n  /pets/{id}:\n    parameters: [{ name: id, in: path, required: true, schema: { type: integer } }]\n    get: { operationId: showPet, responses: { 200: { description: ok } } }\n";

fn api(extra: &str) -> String {
    format!("apis:\n  - name: pets\n{extra}    upstream:\n      targets: [\"http://h\"]\n")
}

fn compile_at(dir: &Path, yaml: &str) -> Result<Compiled, Vec<String>> {
    compile_in(yaml, dir).map_err(|d| d.iter().map(ToString::to_string).collect())
}

#[test]
fn spec_file_relative_to_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("specs")).unwrap();
    std::fs::write(dir.path().join("specs/pets.yaml"), PETS).unwrap();
    let c = compile_at(dir.path(), &api("    spec: specs/pets.yaml\n")).unwrap();
    let a = &c.snapshot.apis[0];
    assert_eq!(a.base_path, "/pets/v2", "from servers[0]");
    assert_eq!(a.routing, Routing::Spec, "the default with a spec");
    let ops = a.operations.as_ref().unwrap();
    assert_eq!(ops.len(), 3);
    match ops.lookup(&Method::GET, "/pets/7") {
        OperationMatch::Found(op) => assert_eq!(op.id.as_deref(), Some("showPet")),
        other => panic!("{other:?}"),
    }
    assert!(c.snapshot.routes.lookup(None, "/pets/v2/pets").is_some());

    // A written base path wins over the servers; passthrough is kept.
    let c = compile_at(
        dir.path(),
        &api("    base_path: /p\n    spec: specs/pets.yaml\n    routing: passthrough\n"),
    )
    .unwrap();
    assert_eq!(c.snapshot.apis[0].base_path, "/p");
    assert_eq!(c.snapshot.apis[0].routing, Routing::Passthrough);
    assert!(c.snapshot.apis[0].operations.is_some());
}

#[test]
fn inline_spec() {
    let indented: String = PETS.lines().map(|l| format!("      {l}\n")).collect();
    let yaml = api(&format!("    base_path: /x\n    spec:\n{indented}"));
    let c = compile_at(Path::new("."), &yaml).unwrap();
    let ops = c.snapshot.apis[0].operations.as_ref().unwrap();
    assert!(matches!(
        ops.lookup(&Method::DELETE, "/pets"),
        OperationMatch::NoMethod { allow } if allow == "GET, HEAD, POST"
    ));
}

#[test]
fn inline_spec_text_without_a_directory() {
    // `portico serve` without `-c` compiles with an empty directory.
    let indented: String = PETS.lines().map(|l| format!("      {l}\n")).collect();
    let yaml = api(&format!("    base_path: /x\n    spec: |\n{indented}"));
    let c = compile_at(Path::new(""), &yaml).unwrap();
    assert_eq!(c.snapshot.apis[0].operations.as_ref().unwrap().len(), 3);
}

#[test]
fn spec_errors_name_the_key_the_file_and_the_pointer() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        PETS.replace(
            "{ type: integer }",
            "{ $ref: 'https://example.com/s.yaml' }",
        ),
    )
    .unwrap();
    let errs = compile_at(dir.path(), &api("    spec: bad.yaml\n")).unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].starts_with("apis[0].spec: spec `bad.yaml`: #/paths/~1pets~1{id}/parameters/0/schema/$ref: remote reference"),
        "{errs:?}"
    );
    assert!(errs[0].ends_with("at line 3 column 11"), "{errs:?}");

    let errs = compile_at(dir.path(), &api("    spec: missing.yaml\n")).unwrap_err();
    assert!(errs[0].contains("cannot read the spec"), "{errs:?}");

    let errs = compile_at(dir.path(), &api("    spec: [1]\n")).unwrap_err();
    assert!(
        errs[0].contains("file path or an OpenAPI document"),
        "{errs:?}"
    );
}

#[test]
fn base_path_is_optional_only_with_servers() {
    let errs = compile_at(Path::new("."), &api("")).unwrap_err();
    assert!(
        errs[0].starts_with("apis[0].base_path: missing field `base_path`"),
        "{errs:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let no_servers: String = PETS
        .lines()
        .filter(|l| !l.starts_with("servers"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(dir.path().join("s.yaml"), no_servers).unwrap();
    let errs = compile_at(dir.path(), &api("    spec: s.yaml\n")).unwrap_err();
    assert!(errs[0].contains("lists no `servers`"), "{errs:?}");
    compile_at(dir.path(), &api("    base_path: /s\n    spec: s.yaml\n")).unwrap();
}

#[test]
fn routing_needs_a_spec_and_unroutable_templates_are_refused() {
    let errs = compile_at(
        Path::new("."),
        &api("    base_path: /a\n    routing: spec\n"),
    )
    .unwrap_err();
    assert!(
        errs[0].contains("`routing` applies to an API with a `spec`"),
        "{errs:?}"
    );
    let errs = compile_at(
        Path::new("."),
        &api("    base_path: /a\n    routing: sometimes\n"),
    )
    .unwrap_err();
    assert!(errs[0].contains("unknown variant `sometimes`"), "{errs:?}");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("two.yaml"),
        "openapi: 3.1.0\ninfo: { title: t, version: '1' }\npaths:\n  /f/{name}.{ext}:\n    get:\n      parameters: [{ name: name, in: path, required: true }, { name: ext, in: path, required: true }]\n      responses: {}\n",
    )
    .unwrap();
    let errs = compile_at(dir.path(), &api("    base_path: /a\n    spec: two.yaml\n")).unwrap_err();
    assert!(errs[0].contains("more than one variable"), "{errs:?}");
}
