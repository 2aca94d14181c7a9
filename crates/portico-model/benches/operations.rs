//! Operation routing cost against the number of operations in a spec: the
//! base-path lookup plus the operation lookup a `routing: spec` API makes
//! per request. The target is a flat curve (1,000 operations within 2× of
//! 10).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use http::Method;
use portico_model::{OperationMatch, OperationTable, OperationTableBuilder, RouteTableBuilder};

const METHODS: [Method; 4] = [Method::GET, Method::PUT, Method::DELETE, Method::PATCH];

/// `n` operations: for every fourth one a new resource, as a collection
/// (`/things-i`) or an item (`/things-i/{id}`), with up to four methods.
fn table(n: usize) -> OperationTable {
    let mut b = OperationTableBuilder::new();
    for i in 0..n {
        let resource = i / 4;
        let path = if resource % 2 == 0 {
            format!("/things-{resource}")
        } else {
            format!("/things-{}/{{id}}", resource - 1)
        };
        b.insert(&path, METHODS[i % 4].clone(), Some(&format!("op{i}")))
            .unwrap();
    }
    b.build()
}

fn lookup(c: &mut Criterion) {
    let mut routes = RouteTableBuilder::new();
    routes.insert(None, "/shop/v1", 0).unwrap();
    let routes = routes.build();
    let mut group = c.benchmark_group("operation_lookup");
    for n in [10usize, 1_000] {
        let t = table(n);
        // An item of the last resource pair, and a path no template has.
        let last = (n / 4 - 1) / 2 * 2;
        let hit = format!("/shop/v1/things-{last}/42");
        let found = |path: &str| {
            let api = routes.lookup(None, path).map(|m| m.api);
            let rest = &path["/shop/v1".len()..];
            (api, t.lookup(&Method::GET, rest))
        };
        assert!(matches!(found(&hit).1, OperationMatch::Found(_)), "{hit}");
        group.bench_with_input(BenchmarkId::new("hit", n), &hit, |b, path| {
            b.iter(|| {
                let (api, m) = found(black_box(path));
                black_box(api);
                matches!(m, OperationMatch::Found(_))
            })
        });
        let miss = "/shop/v1/nothing/here".to_owned();
        group.bench_with_input(BenchmarkId::new("miss", n), &miss, |b, path| {
            b.iter(|| matches!(found(black_box(path)).1, OperationMatch::NoPath))
        });
    }
    group.finish();
}

criterion_group!(benches, lookup);
criterion_main!(benches);
