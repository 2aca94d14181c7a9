//! The in-process limiter's hot function: one request's batch decided
//! against the sharded map, for keys that exist (the steady state).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use portico_counters::LocalCounters;
use portico_model::limits::{Algorithm, LimitPolicy, Limits};

fn batch(checks: &[(&str, Algorithm)]) -> Limits {
    let name: Arc<str> = "app".into();
    let mut l = Limits::default();
    for (key, a) in checks {
        l.push(&name, LimitPolicy::RateLimit, *a, |k| k.push_str(key));
    }
    l
}

fn bench(c: &mut Criterion) {
    let counters = LocalCounters::new();
    // Generous: nothing is refused, as in the load benchmark.
    let window = Algorithm::Window {
        limit: u64::MAX / 2,
        window: Duration::from_secs(3600),
    };
    let gcra = Algorithm::Gcra {
        interval: Duration::from_nanos(1000),
        burst: 1_000_000_000,
        rate: 1_000_000,
        per: Duration::from_secs(1),
    };
    let one = batch(&[("rl:bench:app:app-1", window)]);
    c.bench_function("local/window", |b| {
        b.iter(|| black_box(counters.decide(black_box(&one), counters.now_us())))
    });
    let g = batch(&[("sa:bench:spike:", gcra)]);
    c.bench_function("local/gcra", |b| {
        b.iter(|| black_box(counters.decide(black_box(&g), counters.now_us())))
    });
    let three = batch(&[
        ("sa:bench:spike:", gcra),
        ("rl:bench:app:app-1", window),
        ("rl:bench:ip:127.0.0.1", window),
    ]);
    c.bench_function("local/three_limits", |b| {
        b.iter(|| black_box(counters.decide(black_box(&three), counters.now_us())))
    });
    // Building the batch, as a request does (key writes into one buffer).
    let name: Arc<str> = "app".into();
    c.bench_function("local/build_and_decide", |b| {
        b.iter(|| {
            let mut l = Limits::default();
            l.push(&name, LimitPolicy::RateLimit, window, |k| {
                k.push_str("rl:bench:app:");
                k.push_str(black_box("app-1"));
            });
            black_box(counters.decide(&l, counters.now_us()))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
