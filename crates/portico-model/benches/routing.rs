//! Route matching cost against the number of APIs. The target is a flat
//! curve: a lookup walks the request path, not the list of APIs.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use portico_model::{RouteTable, RouteTableBuilder};

/// `n` APIs at two depths (`/svc-i` and `/svc-i/v1`) plus a few hosts.
fn table(n: u32) -> RouteTable {
    let mut b = RouteTableBuilder::new();
    for i in 0..n {
        let path = if i % 2 == 0 {
            format!("/svc-{i}")
        } else {
            format!("/svc-{}/v1", i - 1)
        };
        let host = (i % 10 == 3).then(|| format!("tenant-{i}.example.com"));
        b.insert(host.as_deref(), &path, i).unwrap();
    }
    b.build()
}

fn lookup(c: &mut Criterion) {
    let mut group = c.benchmark_group("route_lookup");
    for n in [10u32, 1_000, 10_000] {
        let t = table(n);
        // A path under the deepest API of the last pair, and a miss.
        let hit = format!("/svc-{}/v1/orders/42", (n - 2) / 2 * 2);
        assert!(t.lookup(Some("www.example.com"), &hit).is_some());
        group.bench_with_input(BenchmarkId::new("hit", n), &hit, |b, path| {
            b.iter(|| t.lookup(black_box(Some("www.example.com")), black_box(path)))
        });
        group.bench_with_input(BenchmarkId::new("miss", n), &"/nothing/here", |b, path| {
            b.iter(|| t.lookup(black_box(Some("www.example.com")), black_box(path)))
        });
    }
    group.finish();
}

criterion_group!(benches, lookup);
criterion_main!(benches);
