//! Configuration of limits: the traffic policies, product limits and the
//! Redis settings.

use std::time::Duration;

use portico_model::limits::RedisFailure;

use super::*;

fn errors(yaml: &str) -> Vec<String> {
    match compile(yaml) {
        Ok(_) => panic!("configuration was accepted:\n{yaml}"),
        Err(d) => d.iter().map(ToString::to_string).collect(),
    }
}

/// One API with `api_key` and the given policies, a product, an app.
fn keyed(policies: &[&str]) -> String {
    let mut y = String::from(
        "apis:\n  - name: a\n    base_path: /a\n    upstream: { targets: [\"http://h\"] }\n    policies:\n      - api_key: {}\n",
    );
    for p in policies {
        y.push_str(&format!("      - {p}\n"));
    }
    y
}

fn open(policy: &str) -> String {
    format!(
        "apis:\n  - name: a\n    base_path: /a\n    upstream: {{ targets: [\"http://h\"] }}\n    policies:\n      - {policy}\n"
    )
}

#[test]
fn traffic_policies_compile() {
    let c = compile(&keyed(&[
        "rate_limit: { limit: 100, window: 1m, by: app }",
        "rate_limit: { limit: 1000, window: 1h, by: \"header:X-Tenant\", name: tenant-hourly }",
        "spike_arrest: { rate: 10/s, burst: 5 }",
        "quota: { limit: 10000, period: month }",
        "concurrency: { limit: 8, by: credential }",
    ]))
    .unwrap();
    let names: Vec<&str> = c.snapshot.apis[0]
        .policies
        .iter()
        .map(|p| p.name())
        .collect();
    assert_eq!(
        names,
        [
            "api_key",
            "rate_limit",
            "rate_limit",
            "spike_arrest",
            "quota",
            "concurrency"
        ]
    );
    // Limits by address or header need no authentication.
    assert!(compile(&open("rate_limit: { limit: 5, window: 1s, by: ip }")).is_ok());
    assert!(compile(&open("spike_arrest: { rate: 30/m }")).is_ok());
    assert!(compile(&open("concurrency: { limit: 2 }")).is_ok());
}

#[test]
fn traffic_policy_settings_errors_name_their_key() {
    let cases = [
        (
            "rate_limit: { limit: 0, window: 1m }",
            "`limit` must be at least 1",
        ),
        (
            "rate_limit: { limit: 5, window: 500ms, by: ip }",
            "`window` must be at least 1s",
        ),
        (
            "rate_limit: { limit: 5, window: soon, by: ip }",
            "invalid duration `soon`",
        ),
        (
            "rate_limit: { limit: 5, window: 1m, by: cookie }",
            "invalid `by: cookie`",
        ),
        (
            "rate_limit: { limit: 5, window: 1m, by: ip, name: \"a\\\"b\" }",
            "invalid limit name",
        ),
        ("rate_limit: { limit: 5 }", "missing field `window`"),
        (
            "rate_limit: { limit: 5, window: 1m, per: ip }",
            "unknown field `per`",
        ),
        ("spike_arrest: { rate: 10/d }", "invalid rate `10/d`"),
        (
            "spike_arrest: { rate: 10/s, burst: 0 }",
            "`burst` must be between 1",
        ),
        ("quota: { limit: 5, period: week }", "invalid period `week`"),
        ("concurrency: { limit: 0 }", "`limit` must be at least 1"),
    ];
    for (policy, message) in cases {
        let errs = errors(&open(policy));
        assert!(
            errs[0].starts_with("apis[0].policies[0].") && errs[0].contains(message),
            "{policy}: {errs:?}"
        );
    }
}

#[test]
fn per_app_limits_need_authentication() {
    for policy in [
        "rate_limit: { limit: 5, window: 1m }",
        "rate_limit: { limit: 5, window: 1m, by: developer }",
        "quota: { limit: 5, period: day }",
        "concurrency: { limit: 5, by: credential }",
    ] {
        let errs = errors(&open(policy));
        assert!(
            errs[0].starts_with("apis[0].policies[0]:")
                && errs[0].contains("needs an authentication policy"),
            "{policy}: {errs:?}"
        );
        assert!(compile(&keyed(&[policy])).is_ok(), "{policy}");
    }
}

#[test]
fn one_apis_limits_have_distinct_names() {
    // Two limits per app: the second needs a name of its own.
    let errs = errors(&keyed(&[
        "rate_limit: { limit: 10, window: 1s }",
        "rate_limit: { limit: 1000, window: 1h }",
    ]));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("apis[0].policies[2]:")
            && errs[0].contains("two limits of this API are named `app`")
            && errs[0].contains("line 8"),
        "{errs:?}"
    );
    let errs = errors(&keyed(&[
        "quota: { limit: 5, period: day, name: daily }",
        "concurrency: { limit: 5, name: daily }",
    ]));
    assert!(errs[0].contains("named `daily`"), "{errs:?}");
    assert!(
        compile(&keyed(&[
            "rate_limit: { limit: 10, window: 1s }",
            "rate_limit: { limit: 1000, window: 1h, name: hourly }",
            "spike_arrest: { rate: 10/s }",
            "quota: { limit: 5, period: day }",
            "concurrency: { limit: 5 }",
        ]))
        .is_ok()
    );
}

#[test]
fn limits_are_no_longer_planned() {
    for name in ["rate_limit", "spike_arrest", "quota", "concurrency"] {
        assert!(portico_policies::BUILT.contains(&name));
        assert!(!portico_policies::PLANNED.contains(&name));
    }
}

#[test]
fn product_limits_reach_the_apps_that_subscribe() {
    let yaml = format!(
        "{}  - name: b\n    base_path: /b\n    upstream: {{ targets: [\"http://h\"] }}\n    policies: [api_key: {{}}]\n{}",
        keyed(&[]),
        r#"products:
  - name: basic
    apis: [a]
    quota: { limit: 10000, window: 30d }
    rate_limit: { limit: 10, window: 1s }
  - name: extra
    apis: [a, b]
    rate_limit: { limit: 50, window: 1m }
developers:
  - { email: dev@example.com, name: Dev }
apps:
  - { name: one, developer: dev@example.com, products: [extra, basic], api_keys: ["key-one-0001"] }
  - { name: two, developer: dev@example.com, products: [basic], api_keys: ["key-two-0001"] }
"#
    );
    let c = compile(&yaml).unwrap();
    let one = &c.snapshot.consumers.apps[0];
    let a = one.access(0).unwrap();
    assert_eq!(
        &*a.product, "extra",
        "the app's first product that has the API"
    );
    let names: Vec<&str> = a.limits.iter().map(|l| &*l.name).collect();
    assert_eq!(
        names,
        ["extra.rate_limit", "basic.rate_limit", "basic.quota"]
    );
    assert!(a.limits[2].quota);
    assert_eq!(a.limits[2].limit.window, Duration::from_secs(30 * 86_400));
    let b = one.access(1).unwrap();
    assert_eq!(b.limits.len(), 1);
    let two = &c.snapshot.consumers.apps[1];
    assert!(two.access(1).is_none(), "not subscribed to b");
    assert_eq!(two.access(0).unwrap().limits.len(), 2);

    let errs = errors(&format!(
        "{}products:\n  - name: p\n    apis: [a]\n    rate_limit: {{ limit: 0, window: 1s }}\n    quota: {{ limit: 5, window: 0s }}\n",
        keyed(&[])
    ));
    assert!(errs[0].contains("a limit must be at least 1"), "{errs:?}");
    assert!(
        errs[1].contains("a window must be greater than zero"),
        "{errs:?}"
    );
}

#[test]
fn redis_as_url_or_mapping() {
    let c = compile("redis: \"redis://10.0.0.5:6380/2\"\n").unwrap();
    let r = c.node.redis.unwrap();
    assert_eq!(r.url, "redis://10.0.0.5:6380/2");
    assert_eq!(r.failure, RedisFailure::Local);
    assert_eq!(r.timeout, portico_model::node::DEFAULT_REDIS_TIMEOUT);

    let c = compile(
        "redis:\n  url: \"redis://127.0.0.1:6379\"\n  failure: deny\n  key_prefix: \"acme:\"\n  timeout: 100ms\n",
    )
    .unwrap();
    let r = c.node.redis.unwrap();
    assert_eq!(r.failure, RedisFailure::Deny);
    assert_eq!(r.key_prefix, "acme:");
    assert_eq!(r.timeout, Duration::from_millis(100));
    assert!(compile("redis:\n").unwrap().node.redis.is_none());
    assert_eq!(
        compile("redis: { url: \"redis://h\", failure: allow }\n")
            .unwrap()
            .node
            .redis
            .unwrap()
            .failure,
        RedisFailure::Allow
    );
}

#[test]
fn redis_errors() {
    let cases = [
        ("redis: \"http://h\"\n", "invalid Redis URL"),
        (
            "redis: \"rediss://h\"\n",
            "TLS to Redis (`rediss://`) is not supported",
        ),
        (
            "redis: { url: \"redis://h\", failure: open }\n",
            "unknown variant `open`",
        ),
        (
            "redis: { url: \"redis://h\", timeout: 0s }\n",
            "greater than zero",
        ),
        (
            "redis: { url: \"redis://h\", prefix: x }\n",
            "unknown field `prefix`",
        ),
        ("redis: { failure: deny }\n", "missing field `url`"),
    ];
    for (yaml, message) in cases {
        let errs = errors(yaml);
        assert!(
            errs[0].starts_with("redis") && errs[0].contains(message),
            "{yaml}: {errs:?}"
        );
    }
}
