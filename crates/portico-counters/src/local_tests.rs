use std::sync::Arc;
use std::time::Duration;

use portico_model::limits::{Algorithm, Decision, LimitPolicy, Limits};

use super::*;

const S: u64 = 1_000_000;

fn batch(checks: &[(&str, Algorithm)]) -> Limits {
    let name: Arc<str> = "t".into();
    let mut l = Limits::default();
    for (key, a) in checks {
        l.push(&name, LimitPolicy::RateLimit, *a, |k| k.push_str(key));
    }
    l
}

fn admitted(d: &Decision) -> bool {
    matches!(d, Decision::Admitted { .. })
}

fn outcomes(d: &Decision) -> &[Outcome] {
    match d {
        Decision::Admitted { outcomes, .. } | Decision::Limited { outcomes } => outcomes,
        _ => &[],
    }
}

#[test]
fn window_admits_limit_then_refuses_until_it_ends() {
    let c = LocalCounters::new();
    let w = Algorithm::Window {
        limit: 3,
        window: Duration::from_secs(60),
    };
    let b = batch(&[("k", w)]);
    let t0 = 10 * S;
    for left in [2, 1, 0] {
        let d = c.decide(&b, t0);
        assert!(admitted(&d));
        assert_eq!(outcomes(&d)[0].remaining, left);
        assert_eq!(outcomes(&d)[0].reset, Duration::from_secs(60));
    }
    let d = c.decide(&b, t0 + 20 * S);
    assert!(!admitted(&d));
    assert_eq!(outcomes(&d)[0].reset, Duration::from_secs(40));
    // The window opened with the first request: it ends 60 s later.
    assert!(admitted(&c.decide(&b, t0 + 60 * S)));
}

#[test]
fn gcra_spaces_requests_and_allows_the_burst() {
    let c = LocalCounters::new();
    let g = Algorithm::Gcra {
        interval: Duration::from_millis(100),
        burst: 1,
        rate: 10,
        per: Duration::from_secs(1),
    };
    let b = batch(&[("g", g)]);
    let t0 = 10 * S;
    assert!(admitted(&c.decide(&b, t0)));
    let d = c.decide(&b, t0 + 50_000);
    assert!(!admitted(&d));
    assert_eq!(outcomes(&d)[0].reset, Duration::from_millis(50));
    assert!(admitted(&c.decide(&b, t0 + 100_000)));

    let burst = Algorithm::Gcra {
        interval: Duration::from_millis(100),
        burst: 3,
        rate: 10,
        per: Duration::from_secs(1),
    };
    let b = batch(&[("g3", burst)]);
    let got: Vec<bool> = (0..4).map(|_| admitted(&c.decide(&b, t0))).collect();
    assert_eq!(got, [true, true, true, false]);
    assert!(admitted(&c.decide(&b, t0 + 100_000)));
}

#[test]
fn a_refused_batch_counts_nothing() {
    let c = LocalCounters::new();
    let big = Algorithm::Window {
        limit: 10,
        window: Duration::from_secs(60),
    };
    let small = Algorithm::Window {
        limit: 1,
        window: Duration::from_secs(60),
    };
    let t0 = 10 * S;
    assert!(admitted(&c.decide(&batch(&[("small", small)]), t0)));
    let both = batch(&[("big", big), ("small", small)]);
    for _ in 0..5 {
        let d = c.decide(&both, t0);
        assert!(!admitted(&d));
        assert_eq!(outcomes(&d)[0].remaining, 10, "{:?}", outcomes(&d));
        assert!(outcomes(&d)[0].allowed);
        assert!(!outcomes(&d)[1].allowed);
    }
    let d = c.decide(&batch(&[("big", big)]), t0);
    assert_eq!(outcomes(&d)[0].remaining, 9);
}

#[test]
fn concurrency_slots_come_back_when_the_permit_drops() {
    let c = LocalCounters::new();
    let b = batch(&[("c", Algorithm::Concurrency { limit: 2 })]);
    let now = c.now_us();
    let first = c.decide(&b, now);
    let second = c.decide(&b, now);
    assert!(admitted(&first) && admitted(&second));
    assert!(!admitted(&c.decide(&b, now)));
    drop(first);
    let third = c.decide(&b, now);
    assert!(admitted(&third));
    assert_eq!(outcomes(&third)[0].remaining, 0);
    drop((second, third));
    assert_eq!(c.sweep(), 1, "an unused concurrency key is idle");
}

#[test]
fn idle_keys_are_evicted() {
    let c = LocalCounters::new();
    let w = Algorithm::Window {
        limit: 5,
        window: Duration::from_millis(1),
    };
    let now = c.now_us();
    for i in 0..1000 {
        let key = format!("ip-{i}");
        assert!(admitted(&c.decide(&batch(&[(&key, w)]), now)));
    }
    assert_eq!(c.len(), 1000);
    let until = std::time::Instant::now() + Duration::from_millis(5);
    while std::time::Instant::now() < until {
        std::hint::spin_loop();
    }
    assert_eq!(c.sweep(), 1000);
    assert!(c.is_empty());
    assert_eq!(c.evicted(), 1000);
}

#[test]
fn quota_periods_survive_save_and_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("limits").join("quotas.json");
    let p = Algorithm::Period {
        limit: 10,
        period: Duration::from_secs(3600),
        ends_in: Duration::from_secs(600),
    };
    let w = Algorithm::Window {
        limit: 10,
        window: Duration::from_secs(600),
    };
    let c = LocalCounters::new();
    let now = c.now_us();
    for _ in 0..4 {
        c.decide(&batch(&[("q", p), ("r", w)]), now);
    }
    assert_eq!(c.save(&path).unwrap(), 1, "only quota periods are saved");
    let d = LocalCounters::new();
    assert_eq!(d.load(&path).unwrap(), 1);
    let got = d.decide(&batch(&[("q", p)]), d.now_us());
    assert_eq!(outcomes(&got)[0].remaining, 5);
    assert!(outcomes(&got)[0].reset <= Duration::from_secs(600));
    assert_eq!(
        LocalCounters::new().load(&dir.path().join("none")).unwrap(),
        0
    );
}

#[test]
fn exact_under_threads() {
    let c = LocalCounters::new();
    let w = Algorithm::Window {
        limit: 1000,
        window: Duration::from_secs(60),
    };
    let admitted_total = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let b = batch(&[("shared", w)]);
                for _ in 0..500 {
                    if admitted(&c.decide(&b, c.now_us())) {
                        admitted_total.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
    });
    assert_eq!(admitted_total.into_inner(), 1000);
}

#[test]
fn a_batch_is_counted_when_its_request_arrived() {
    let c = LocalCounters::new();
    let w = Algorithm::Window {
        limit: 1,
        window: Duration::from_secs(1),
    };
    let mut b = batch(&[("arrived", w)]);
    // Without an arrival the batch is counted now.
    let before = c.now_us();
    let t = c.time_of(&b);
    assert!(t >= before && t <= c.now_us());
    // An arrival 5 s ahead is counted there: the window it opens has
    // ended by then, where one opened now has not.
    b.arrived = Some(Instant::now() + Duration::from_secs(5));
    assert!(c.time_of(&b) >= before + 5 * S);
    assert!(admitted(&c.decide(&b, c.time_of(&b))));
    assert!(!admitted(&c.decide(&b, c.now_us() + 5 * S + S / 2)));
    // An arrival before the backend was made counts as its first instant.
    b.arrived = Some(Instant::now() - Duration::from_secs(1) - c.inner.base.elapsed());
    assert_eq!(c.time_of(&b), S);
    // `acquire` counts at the arrival: one 7 s ahead finds the window
    // (opened 5 s ahead, for 1 s) over, where now it is still full.
    assert!(!admitted(&c.decide(&b, c.now_us())));
    b.arrived = Some(Instant::now() + Duration::from_secs(7));
    match c.acquire(&b) {
        Acquire::Ready(d) => assert!(admitted(&d)),
        Acquire::Pending(_) => panic!("the local backend answers at once"),
    }
}
