//! The `validate` policy on a typical request: `POST /pets` with a 1,040-byte
//! JSON body (`bench/validate/pet.json`) against the pet store of
//! `bench/validate/petstore.yaml`, a query and a header parameter. Each
//! iteration does what the gateway does per request: the head check
//! (parameters, media type), then the body check (JSON parse and schema).
//! Compare with the proxy's own cost per request in docs/benchmarks.md.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use portico_model::OperationTableBuilder;
use portico_model::validate::{BodyCheck, Validator};

/// The binary's allocator (crates/portico/src/main.rs), so that the
/// allocations of a parsed body cost here what they cost in the node.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SPEC: &str = include_str!("../../../bench/validate/petstore.yaml");
const PET: &str = include_str!("../../../bench/validate/pet.json");

fn validator() -> Arc<dyn Validator> {
    validator_with(serde_json::json!({}))
}

fn validator_with(settings: serde_json::Value) -> Arc<dyn Validator> {
    let spec = portico_spec::load_str(SPEC, portico_spec::LoadOptions::default()).unwrap();
    let policy = portico_policies::build("validate", settings).unwrap();
    let bound = portico_policies::validate::bind(&policy, &spec).unwrap();
    bound.validator().unwrap().clone()
}

fn bench(c: &mut Criterion) {
    let v = validator();
    let spec = portico_spec::load_str(SPEC, portico_spec::LoadOptions::default()).unwrap();
    let mut b = OperationTableBuilder::new();
    for op in &spec.operations {
        b.insert(&op.path, op.method.clone(), op.operation_id.as_deref())
            .unwrap();
    }
    let table = b.build();
    let op = table.operations()[0].clone();
    assert_eq!(op.label.as_ref(), "addPet");
    let parts = http::Request::builder()
        .method("POST")
        .uri("/store/v1/pets?dry_run=false")
        .header("content-type", "application/json")
        .header("x-request-tag", "bench")
        .body(())
        .unwrap()
        .into_parts()
        .0;
    let body = PET.as_bytes();
    assert_eq!(body.len(), 1040);

    let mut group = c.benchmark_group("validate");
    group.bench_function("head", |b| {
        b.iter(|| black_box(v.check_head(&op, "/pets", black_box(&parts), true)))
    });
    let BodyCheck::Json(schema) = v.check_head(&op, "/pets", &parts, true).unwrap() else {
        panic!("the body is checked");
    };
    v.check_body(schema, body).unwrap();
    group.bench_function("body_1KiB", |b| {
        b.iter(|| black_box(v.check_body(schema, black_box(body))))
    });
    let unformatted = validator_with(serde_json::json!({ "formats": false }));
    group.bench_function("request_1KiB_formats_off", |b| {
        b.iter(|| {
            let check = unformatted.check_head(&op, "/pets", black_box(&parts), true);
            if let Ok(BodyCheck::Json(s)) = check {
                black_box(unformatted.check_body(s, black_box(body))).unwrap();
            }
        })
    });
    // What reading the body into a `serde_json::Value` costs, the way the
    // validator read bodies before it validated them in place (ADR 0009).
    group.bench_function("serde_value_parse_1KiB", |b| {
        b.iter(|| {
            let text = std::str::from_utf8(black_box(body)).unwrap();
            black_box(serde_json::from_str::<serde_json::Value>(text))
        })
    });
    group.bench_function("request_1KiB", |b| {
        b.iter(|| {
            let check = v.check_head(&op, "/pets", black_box(&parts), true);
            if let Ok(BodyCheck::Json(s)) = check {
                black_box(v.check_body(s, black_box(body))).unwrap();
            }
        })
    });
    group.finish();
    c.bench_function("validate/compile_petstore", |b| b.iter(validator));
}

criterion_group!(benches, bench);
criterion_main!(benches);
