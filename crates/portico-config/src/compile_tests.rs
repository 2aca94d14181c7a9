use super::*;

fn errors(yaml: &str) -> Vec<String> {
    match compile(yaml) {
        Ok(_) => panic!("configuration was accepted:\n{yaml}"),
        Err(d) => d.iter().map(ToString::to_string).collect(),
    }
}

const MINIMAL: &str = "apis:\n  - name: orders\n    base_path: /orders/v1\n    upstream:\n      targets: [\"http://127.0.0.1:9001\"]\n";

#[test]
fn empty_file_is_the_embedded_default() {
    let c = compile("").unwrap();
    assert_eq!(c.node, NodeSettings::default());
    assert!(c.snapshot.apis.is_empty());
    assert_eq!(
        c.node.storage.data_dir(),
        Some(PathBuf::from("portico-data"))
    );
}

#[test]
fn minimal_api_compiles_with_defaults() {
    let c = compile(MINIMAL).unwrap();
    let api = &c.snapshot.apis[0];
    assert_eq!(api.name, "orders");
    assert_eq!(api.base_path, "/orders/v1");
    assert_eq!(api.upstream.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
    assert_eq!(api.upstream.timeout, DEFAULT_TIMEOUT);
    assert_eq!(api.upstream.targets[0].authority.as_str(), "127.0.0.1:9001");
    assert_eq!(
        c.snapshot
            .routes
            .lookup(None, "/orders/v1/x")
            .map(|m| m.api),
        Some(0)
    );
}

#[test]
fn full_example_of_the_design_compiles() {
    let yaml = r#"
server:
  proxy:  { listen: "0.0.0.0:8080" }
  admin:  { listen: "127.0.0.1:8081" }
  portal: { listen: "0.0.0.0:8082", title: "Acme APIs" }
  access_log: off
  workers: 2
storage: "sqlite://data/portico.db"
redis: "redis://127.0.0.1:6379"
apis:
  - name: orders
    base_path: /orders/v1/
    hosts: [API.example.com]
    upstream:
      targets: ["http://127.0.0.1:9001", { url: "http://127.0.0.1:9002/base/", weight: 2 }]
      balance: round_robin
      connect_timeout: 2s
      timeout: 30s
products:
  - name: orders-basic
    apis: [orders]
    quota: { limit: 10000, window: 30d }
    rate_limit: { limit: 10, window: 1s }
    approval: manual
developers:
  - { email: Dev@Example.com, name: Dev One }
apps:
  - name: dev-one-app
    developer: dev@example.com
    products: [orders-basic]
    api_keys: ["test-key-0001"]
    oauth_clients: [{ client_id: dev-one, client_secret: "s3cret-s3cret" }]
"#;
    let c = compile(yaml).unwrap();
    assert_eq!(c.node.portal_title, "Acme APIs");
    assert_eq!(c.node.access_log, AccessLog::Off);
    assert_eq!(c.node.workers, Some(2));
    let redis = c.node.redis.as_ref().unwrap();
    assert_eq!(redis.url, "redis://127.0.0.1:6379");
    assert_eq!(redis.failure, portico_model::limits::RedisFailure::Local);
    assert_eq!(redis.key_prefix, "portico:");
    assert_eq!(c.node.storage.data_dir(), Some(PathBuf::from("data")));
    let api = &c.snapshot.apis[0];
    assert_eq!(api.base_path, "/orders/v1");
    assert_eq!(api.hosts, vec!["api.example.com"]);
    assert_eq!(api.upstream.connect_timeout, Duration::from_secs(2));
    assert_eq!(api.upstream.targets[1].path_prefix, "/base");
    assert_eq!(api.upstream.schedule, vec![1, 0, 1]);
    assert_eq!(c.snapshot.products[0].approval, Approval::Manual);
    assert_eq!(
        c.snapshot.products[0].quota.unwrap().window,
        Duration::from_secs(30 * 86400)
    );
    assert_eq!(c.snapshot.developers[0].email, "dev@example.com");
    let app = &c.snapshot.consumers.apps[0];
    let expected: [u8; 32] = Sha256::digest(b"test-key-0001").into();
    assert_eq!(app.api_key_hashes, vec![expected]);
}

#[test]
fn unknown_field_is_named_with_path_and_place() {
    let yaml = "apis:\n  - name: orders\n    base_path: /o\n    upstreem: {}\n";
    let errs = errors(yaml);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("apis[0].upstreem: unknown field `upstreem`"),
        "{}",
        errs[0]
    );
    assert!(errs[0].ends_with("at line 4 column 5"), "{}", errs[0]);
}

#[test]
fn every_error_is_reported_at_once() {
    let yaml = r#"
bogus: 1
storage: "mysql://x"
server:
  proxy: { listen: "nope" }
apis:
  - name: a
    base_path: /a
    upstream: { targets: ["ftp://x"], timeout: 10 }
  - name: b
    base_path: /b
    upstream: { targets: ["http://127.0.0.1:1"], connect_timeout: 5 seconds }
  - name: c
    base_path: /c
    upstream: { targets: ["http://127.0.0.1:1"] }
  - name: c
    base_path: /c
    upstream: { targets: ["http://127.0.0.1:1"] }
  - name: d
    base_path: /c/
    upstream: { targets: ["http://127.0.0.1:1"] }
  - name: Bad_Name
    base_path: nope
    upstream: { targets: [] }
"#;
    let errs = errors(yaml);
    let has = |needle: &str| errs.iter().any(|e| e.contains(needle));
    assert!(has("bogus: unknown field `bogus`"), "{errs:#?}");
    assert!(has("storage: invalid storage `mysql://x`"), "{errs:#?}");
    assert!(
        has("server.proxy.listen: invalid listen address `nope`"),
        "{errs:#?}"
    );
    assert!(
        has("apis[0].upstream.timeout: invalid duration `10`"),
        "{errs:#?}"
    );
    assert!(
        has("apis[1].upstream.connect_timeout: invalid duration `5 seconds`"),
        "{errs:#?}"
    );
    assert!(has("apis[3].name: duplicate API name `c`"), "{errs:#?}");
    assert!(
        has("apis[4].base_path: base path `/c` on every host is already used by API `c`"),
        "{errs:#?}"
    );
    assert!(has("apis[5].name: invalid name `Bad_Name`"), "{errs:#?}");
    // In file order, and every message has a place.
    let lines: Vec<u64> = errs
        .iter()
        .map(|e| {
            e.rsplit(" at line ")
                .next()
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(lines.windows(2).all(|w| w[0] <= w[1]), "{errs:#?}");
    assert!(errs.iter().all(|e| e.contains(" at line ")), "{errs:#?}");
}

#[test]
fn semantic_errors_point_at_the_value() {
    let yaml = "apis:\n  - name: a\n    base_path: /a\n    upstream:\n      targets:\n        - \"http://h\"\n        - { url: \"http://h2\", weight: 0 }\n";
    let errs = errors(yaml);
    assert_eq!(
        errs,
        vec![
            "apis[0].upstream.targets[1].weight: weight must be between 1 and 1000 at line 7 column 39"
        ]
    );
}

#[test]
fn bad_urls_are_errors() {
    for (url, needle) in [
        ("ftp://h", "the scheme must be http or https"),
        ("127.0.0.1:9000", "invalid target URL"),
        ("http://", "invalid target URL"),
        ("http://u:p@h", "credentials"),
        ("http://h/?q=1", "query"),
    ] {
        let yaml = format!(
            "apis:\n  - name: a\n    base_path: /a\n    upstream: {{ targets: [\"{url}\"] }}\n"
        );
        let errs = errors(&yaml);
        assert!(errs[0].contains(needle), "{url}: {errs:?}");
        assert!(
            errs[0].starts_with("apis[0].upstream.targets[0]: "),
            "{errs:?}"
        );
    }
}

#[test]
fn same_base_path_on_different_hosts_is_fine_but_not_on_the_same() {
    let ok = "apis:\n  - { name: a, base_path: /x, hosts: [a.example], upstream: { targets: [\"http://h\"] } }\n  - { name: b, base_path: /x, hosts: [b.example], upstream: { targets: [\"http://h\"] } }\n  - { name: c, base_path: /x, upstream: { targets: [\"http://h\"] } }\n";
    let c = compile(ok).unwrap();
    assert_eq!(
        c.snapshot
            .routes
            .lookup(Some("b.example"), "/x")
            .map(|m| m.api),
        Some(1)
    );
    assert_eq!(
        c.snapshot
            .routes
            .lookup(Some("z.example"), "/x")
            .map(|m| m.api),
        Some(2)
    );
    let bad = "apis:\n  - { name: a, base_path: /x, hosts: [a.example], upstream: { targets: [\"http://h\"] } }\n  - { name: b, base_path: /x/, hosts: [A.example], upstream: { targets: [\"http://h\"] } }\n";
    let errs = errors(bad);
    assert!(
        errs[0].contains("base path `/x` on host `a.example` is already used by API `a`"),
        "{errs:?}"
    );
}

fn api_with_policy(policy: &str) -> String {
    format!(
        "apis:\n  - name: a\n    base_path: /a\n    upstream: {{ targets: [\"http://h\"] }}\n    policies:\n      - {policy}\n"
    )
}

#[test]
fn policies_are_built_from_the_registry() {
    let c = compile(&api_with_policy("api_key: { header: X-Key, query: key }")).unwrap();
    let chain = &c.snapshot.apis[0].policies;
    assert!(chain.requires_identity());
    assert_eq!(
        chain.iter().map(|p| p.name()).collect::<Vec<_>>(),
        vec!["api_key"]
    );
    // Settings may be left out entirely.
    assert!(compile(&api_with_policy("api_key: {}")).is_ok());
    assert!(compile(&api_with_policy("api_key:")).is_ok());
}

#[test]
fn policies_fail_closed_until_they_exist() {
    let errs = errors(&api_with_policy("oauth2: { scopes: [x] }"));
    assert!(
        errs[0].starts_with("apis[0].policies[0].oauth2: policy `oauth2` is not available"),
        "{errs:?}"
    );
    let errs = errors(&api_with_policy("frobnicate: {}"));
    assert!(
        errs[0].starts_with("apis[0].policies[0].frobnicate: unknown policy `frobnicate`"),
        "{errs:?}"
    );
    let errs = errors(&api_with_policy("{ api_key: {}, cors: {} }"));
    assert!(errs[0].contains("exactly one key"), "{errs:?}");
}

#[test]
fn policy_settings_errors_name_their_key() {
    let errs = errors(&api_with_policy("api_key: { hedaer: x }"));
    assert!(
        errs[0].starts_with("apis[0].policies[0].api_key.hedaer: unknown field `hedaer`"),
        "{errs:?}"
    );
    assert!(errs[0].ends_with("at line 6 column 20"), "{errs:?}");
    let errs = errors(&api_with_policy("api_key: { header: \"bad header\" }"));
    assert!(
        errs[0].contains("invalid header name `bad header`"),
        "{errs:?}"
    );
}

#[test]
fn unsupported_upstream_features_fail_closed() {
    let yaml = "apis:\n  - name: a\n    base_path: /a\n    upstream:\n      targets: [\"http://h\"]\n      mock: true\n";
    let errs = errors(yaml);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].starts_with("apis[0].upstream.targets: `targets` has no effect on a mock upstream"),
        "{errs:?}"
    );
    let yaml = "apis:\n  - name: a\n    base_path: /a\n    upstream:\n      targets: [\"http://h\"]\n      balance: random\n";
    let errs = errors(yaml);
    assert!(errs[0].contains("unknown variant `random`"), "{errs:?}");
}

fn upstream_with(extra: &str) -> String {
    format!(
        "apis:\n  - name: a\n    base_path: /a\n    upstream:\n      targets: [\"http://h\"]\n{extra}"
    )
}

#[test]
fn resilience_settings_compile_with_defaults() {
    let c = compile(&upstream_with(
        "      retries: { attempts: 2 }\n      health_check: { path: /health }\n      circuit_breaker: {}\n",
    ))
    .unwrap();
    let up = &c.snapshot.apis[0].upstream;
    let retries = up.retries.as_ref().unwrap();
    assert_eq!(retries.attempts, 2);
    assert_eq!(retries.on, RetryOn::DEFAULT);
    assert_eq!(retries.backoff, DEFAULT_RETRY_BACKOFF);
    assert_eq!(retries.budget_percent, DEFAULT_RETRY_BUDGET);
    let hc = up.health_check.as_ref().unwrap();
    assert_eq!(hc.path, "/health");
    assert_eq!(hc.interval, DEFAULT_HEALTH_INTERVAL);
    assert_eq!(hc.timeout, DEFAULT_HEALTH_TIMEOUT);
    assert_eq!((hc.healthy_threshold, hc.unhealthy_threshold), (2, 3));
    let cb = up.circuit_breaker.as_ref().unwrap();
    assert_eq!(cb.failures, 5);
    assert_eq!(cb.error_rate, None);
    assert!(cb.max_cool_down >= cb.cool_down);
}

#[test]
fn resilience_settings_are_read() {
    let c = compile(&upstream_with(concat!(
        "      retries: { attempts: 3, on: [connect_error, timeout, 503], backoff: 10ms, budget: 50% }\n",
        "      health_check: { path: \"/status?deep=1\", interval: 1s, healthy_threshold: 1, unhealthy_threshold: 1 }\n",
        "      circuit_breaker: { failures: 2, error_rate: 40%, min_requests: 5, window: 30s, cool_down: 1m }\n",
    )))
    .unwrap();
    let up = &c.snapshot.apis[0].upstream;
    let r = up.retries.as_ref().unwrap();
    assert_eq!(r.attempts, 3);
    assert_eq!(
        r.on,
        RetryOn::CONNECT_ERROR
            .with(RetryOn::TIMEOUT)
            .with(RetryOn::STATUS_503)
    );
    assert_eq!(r.backoff, Duration::from_millis(10));
    assert_eq!(r.budget_percent, 50);
    let hc = up.health_check.as_ref().unwrap();
    assert_eq!(hc.path, "/status?deep=1");
    // Left out, the timeout shrinks to the interval.
    assert_eq!(hc.timeout, Duration::from_secs(1));
    let cb = up.circuit_breaker.as_ref().unwrap();
    assert_eq!(
        (cb.failures, cb.error_rate, cb.min_requests),
        (2, Some(40), 5)
    );
    assert_eq!(cb.window, Duration::from_secs(30));
    // The default maximum rises to meet a long cool-down.
    assert_eq!(cb.max_cool_down, Duration::from_secs(300));
    assert_eq!(cb.cool_down, Duration::from_secs(60));
}

#[test]
fn resilience_errors_name_their_key() {
    let errs = errors(&upstream_with(concat!(
        "      retries: { attempts: 0, on: [reset, 502] }\n",
        "      health_check: { path: health, interval: 1s, timeout: 5s, unhealthy_threshold: 0 }\n",
        "      circuit_breaker: { error_rate: 0%, window: 0s }\n",
    )));
    let all = errs.join("\n");
    for expected in [
        "apis[0].upstream.retries.attempts: `attempts` must be from 1 to 10",
        "apis[0].upstream.health_check.path: invalid health check path `health`",
        "apis[0].upstream.health_check.unhealthy_threshold: the value must be at least 1",
        "apis[0].upstream.circuit_breaker.error_rate: `error_rate` must be above 0%",
        "apis[0].upstream.circuit_breaker.window: the duration must be greater than zero",
    ] {
        assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
    }
    let errs = errors(&upstream_with(
        "      retries: { attempts: 1, on: [500] }\n      health_check: { path: /h, interval: 1s, timeout: 5s }\n      circuit_breaker: { cool_down: 1m, max_cool_down: 10s, window: 0s }\n",
    ));
    let all = errs.join("\n");
    for expected in [
        "apis[0].upstream.retries.on[0]: status 500 cannot be retried",
        "apis[0].upstream.health_check.timeout: the health check timeout (5s) must not be longer than its interval (1s) at line",
        "apis[0].upstream.circuit_breaker.window: the duration must be greater than zero",
    ] {
        assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
    }
    let errs = errors(&upstream_with(
        "      circuit_breaker: { cool_down: 1m, max_cool_down: 10s }\n      retries: { attempts: 1, on: [] }\n",
    ));
    let all = errs.join("\n");
    assert!(
        all.contains("apis[0].upstream.circuit_breaker.max_cool_down: `max_cool_down` (10s) must not be shorter than `cool_down` (60s)"),
        "{all}"
    );
    assert!(
        all.contains("apis[0].upstream.retries.on: `on` is empty"),
        "{all}"
    );
    let errs = errors(&upstream_with(
        "      circuit_breaker: { error_rate: 150% }\n",
    ));
    assert!(
        errs[0]
            .starts_with("apis[0].upstream.circuit_breaker.error_rate: invalid percentage `150%`"),
        "{errs:?}"
    );
    let errs = errors(&upstream_with(
        "      retries: { attempts: 1, on: [reset, bogus] }\n",
    ));
    assert!(
        errs[0].starts_with("apis[0].upstream.retries.on[1]: unknown retry condition `bogus`"),
        "{errs:?}"
    );
}

#[test]
fn entity_references_are_checked() {
    let yaml = r#"
apis:
  - { name: a, base_path: /a, upstream: { targets: ["http://h"] } }
products:
  - { name: p, apis: [a, missing] }
  - { name: p, apis: [a] }
developers:
  - { email: not-an-email, name: X }
  - { email: "dév@example.com", name: Unicode }
  - { email: d@example.com, name: D }
  - { email: D@example.com, name: D2 }
apps:
  - { name: x, developer: nobody@example.com, products: [nope], api_keys: ["short"] }
  - { name: y, developer: d@example.com, api_keys: ["key-0000001", "key-0000001"] }
"#;
    let errs = errors(yaml);
    for needle in [
        "products[0].apis[1]: unknown API `missing`",
        "products[1].name: duplicate product name `p`",
        "developers[0].email: invalid e-mail address",
        "developers[1].email: invalid e-mail address",
        "developers[3].email: duplicate developer",
        "apps[0].developer: unknown developer",
        "apps[0].products[0]: unknown product `nope`",
        "apps[0].api_keys[0]: an API key must be at least 8",
        "apps[1].api_keys[1]: this API key is already used",
    ] {
        assert!(
            errs.iter().any(|e| e.starts_with(needle)),
            "missing {needle}: {errs:#?}"
        );
    }
}

#[test]
fn apps_may_carry_api_key_digests() {
    let plain: [u8; 32] = Sha256::digest(b"test-key-0001").into();
    let hex: String = plain.iter().map(|b| format!("{b:02x}")).collect();
    let other: String = "ab".repeat(32);
    let yaml = format!(
        "developers:\n  - {{ email: d@example.com, name: D }}\napps:\n  - {{ name: a, developer: d@example.com, api_key_hashes: [\"{other}\", \"{}\"] }}\n",
        hex.to_uppercase()
    );
    let c = compile(&yaml).unwrap();
    let app = &c.snapshot.consumers.apps[0];
    assert_eq!(app.api_key_hashes, vec![[0xab; 32], plain]);
    let entry = &c.snapshot.consumers.api_keys[&plain];
    assert_eq!(entry.app, 0);

    // A digest is refused when it collides with a plain key, or is not one.
    let yaml = format!(
        "developers:\n  - {{ email: d@example.com, name: D }}\napps:\n  - {{ name: a, developer: d@example.com, api_keys: [test-key-0001] }}\n  - {{ name: b, developer: d@example.com, api_key_hashes: [\"{hex}\", \"abc\", \"{}\"] }}\n",
        "zz".repeat(32)
    );
    let errs = errors(&yaml);
    for needle in [
        "apps[1].api_key_hashes[0]: this API key is already used",
        "apps[1].api_key_hashes[1]: an API key hash is a SHA-256 digest",
        "apps[1].api_key_hashes[2]: an API key hash is a SHA-256 digest",
    ] {
        assert!(
            errs.iter().any(|e| e.starts_with(needle)),
            "missing {needle}: {errs:#?}"
        );
    }
}

#[test]
fn zero_windows_point_at_the_window() {
    let errs = errors("products:\n  - name: p\n    quota: { limit: 5, window: 0s }\n");
    assert_eq!(
        errs,
        vec!["products[0].quota.window: a window must be greater than zero at line 3 column 32"]
    );
}

#[test]
fn yaml_syntax_error_is_one_located_diagnostic() {
    let errs = errors("apis:\n  - name: [\n");
    assert_eq!(errs.len(), 1);
    assert!(errs[0].contains(" at line "), "{errs:?}");
}

#[test]
fn document_must_be_a_mapping() {
    let errs = errors("- a\n- b\n");
    assert!(errs[0].contains("must be a mapping"), "{errs:?}");
}

#[test]
fn basic_credentials_are_hashed_and_checked() {
    let base = "developers:\n  - { email: d@example.com, name: D }\napps:\n";
    let ok = format!(
        "{base}  - name: a\n    developer: d@example.com\n    basic_auth:\n      - {{ username: u1, password: \"long-enough\" }}\n"
    );
    let c = compile(&ok).unwrap();
    let user = &c.snapshot.consumers.basic_users["u1"];
    assert!(
        user.password_hash.starts_with("$argon2id$"),
        "{}",
        user.password_hash
    );
    assert!(!user.password_hash.contains("long-enough"));

    let hashed = format!(
        "{base}  - name: a\n    developer: d@example.com\n    basic_auth:\n      - {{ username: u1, password_hash: \"{}\" }}\n",
        user.password_hash
    );
    assert!(compile(&hashed).is_ok());

    let bad = format!(
        "{base}  - name: a\n    developer: d@example.com\n    basic_auth:\n      - {{ username: u1, password: short }}\n      - {{ username: \"a:b\", password: \"long-enough\" }}\n      - {{ username: u2 }}\n      - {{ username: u3, password_hash: \"$2b$12$x\" }}\n  - name: b\n    developer: d@example.com\n    basic_auth:\n      - {{ username: u9, password: \"long-enough\" }}\n      - {{ username: u9, password: \"long-enough\" }}\n"
    );
    let errs = errors(&bad);
    for needle in [
        "apps[0].basic_auth[0].password: a password must be at least 8",
        "apps[0].basic_auth[1].username: a user name is not empty and has no `:`",
        "apps[0].basic_auth[2].username: give exactly one of",
        "apps[0].basic_auth[3].password_hash: not a PHC string",
        "apps[1].basic_auth[1].username: user name `u9` is already used",
    ] {
        assert!(
            errs.iter().any(|e| e.starts_with(needle)),
            "missing {needle}: {errs:#?}"
        );
    }
}

#[test]
fn jwt_settings_are_checked() {
    for (policy, needle) in [
        ("jwt: {}", "jwt needs `keys` or a `jwks_uri`"),
        (
            "jwt: { algorithms: [none], keys: [{ secret: \"0123456789abcdef0123456789abcdef\" }] }",
            "algorithm `none` is never accepted",
        ),
        ("jwt: { keys: [{ secret: short }] }", "at least 32 bytes"),
        (
            "jwt: { keys: [{ pem: \"x\" }] }",
            "a `pem` key needs its `alg`",
        ),
        (
            "jwt: { keys: [{ pem: \"not pem\", alg: RS256 }] }",
            "invalid PEM key",
        ),
        (
            "jwt: { keys: [{ secret: \"0123456789abcdef0123456789abcdef\", alg: RS256 }] }",
            "a `secret` is for HS256",
        ),
        (
            "jwt: { jwks_uri: \"ftp://idp.example.com/jwks\" }",
            "expected http://… or https://…",
        ),
        (
            "jwt: { jwks_uri: \"http://idp/jwks\", jwks_ca: ca.pem }",
            "`jwks_ca` applies to an https jwks_uri",
        ),
        (
            "jwt: { jwks_uri: \"https://idp/jwks\", jwks_ca: /nonexistent/ca.pem }",
            "cannot read jwks_ca `/nonexistent/ca.pem`",
        ),
        (
            "jwt: { jwks_uri: \"http://idp/jwks\", leeway: soon }",
            "invalid duration `soon`",
        ),
    ] {
        let errs = errors(&api_with_policy(policy));
        assert!(errs[0].contains(needle), "{policy}: {errs:?}");
        assert!(errs[0].starts_with("apis[0].policies[0].jwt"), "{errs:?}");
    }
    assert!(
        compile(&api_with_policy(
            "jwt: { jwks_uri: \"http://127.0.0.1:9/jwks\" }"
        ))
        .is_ok()
    );
    assert!(
        compile(&api_with_policy(
            "jwt: { jwks_uri: \"https://idp.example.com/jwks\" }"
        ))
        .is_ok()
    );
}

#[test]
fn cors_refuses_any_origin_with_credentials() {
    let errs = errors(&api_with_policy(
        "cors: { origins: [\"*\"], credentials: true }",
    ));
    assert!(
        errs[0].contains("cannot be combined with `credentials: true`"),
        "{errs:?}"
    );
}

#[test]
fn target_ports_must_fit() {
    let errs = errors(
        "apis:\n  - { name: a, base_path: /a, upstream: { targets: [\"http://h:99999\"] } }\n",
    );
    assert!(errs[0].contains("invalid target URL"), "{errs:?}");
}

#[test]
fn consistent_hash_keys_are_checked() {
    let base = "apis:\n  - name: a\n    base_path: /a\n    upstream:\n      targets: [\"http://a\", \"http://b\"]\n";
    for ok in [
        "      balance: consistent_hash\n",
        "      balance: consistent_hash\n      hash_key: header:X-User\n",
        "      balance: consistent_hash\n      hash_key: cookie:session\n",
        "      balance: consistent_hash\n      hash_key: ip\n",
    ] {
        assert!(compile(&format!("{base}{ok}")).is_ok(), "{ok}");
    }
    let errs = errors(&format!(
        "{base}      balance: consistent_hash\n      hash_key: body\n"
    ));
    assert!(errs[0].contains("invalid hash_key `body`"), "{errs:?}");
    let errs = errors(&format!("{base}      hash_key: ip\n"));
    assert!(
        errs[0].contains("applies to `balance: consistent_hash` only"),
        "{errs:?}"
    );
}

#[test]
fn tls_takes_one_certificate_or_several_and_records_where_each_was_named() {
    let c = compile(
        "server:\n  proxy:\n    tls:\n      listen: \"127.0.0.1:8443\"\n      cert: a.pem\n      key: a.key\n      certificates:\n        - { cert: b.pem, key: b.key }\n      client_ca: ca.pem\n      watch_interval: 30s\n",
    )
    .unwrap();
    let tls = c.node.proxy_tls.unwrap();
    let files: Vec<_> = tls
        .certificates
        .iter()
        .map(|p| (p.cert.path.to_str().unwrap(), p.key.path.to_str().unwrap()))
        .collect();
    assert_eq!(files, [("a.pem", "a.key"), ("b.pem", "b.key")]);
    let b = &tls.certificates[1].key.origin;
    assert_eq!(b.key, "server.proxy.tls.certificates[0].key");
    assert_eq!(b.line, Some(8));
    assert_eq!(tls.certificates[0].cert.origin.key, "server.proxy.tls.cert");
    assert_eq!(tls.certificates[0].cert.origin.line, Some(5));
    assert_eq!(
        tls.client_ca.unwrap().origin.key,
        "server.proxy.tls.client_ca"
    );
    assert_eq!(tls.client_auth, ClientAuth::Optional);
    assert_eq!(tls.watch_interval, Some(Duration::from_secs(30)));

    let c = compile(
        "server:\n  proxy:\n    tls: { listen: \"127.0.0.1:0\", certificates: [{ cert: a, key: b }], watch_interval: 0s }\n",
    )
    .unwrap();
    let tls = c.node.proxy_tls.unwrap();
    assert_eq!(tls.certificates.len(), 1);
    assert_eq!(tls.watch_interval, None);
    let c = compile("server:\n  proxy:\n    tls: { listen: \"127.0.0.1:0\", cert: a, key: b }\n")
        .unwrap();
    assert_eq!(
        c.node.proxy_tls.unwrap().watch_interval,
        Some(DEFAULT_TLS_WATCH_INTERVAL)
    );
}

#[test]
fn tls_errors_name_their_key() {
    let e = errors("server:\n  proxy:\n    tls: { listen: \"127.0.0.1:0\" }\n");
    assert_eq!(
        e,
        [
            "server.proxy.tls: a TLS listener needs a certificate: `cert` and `key`, or `certificates` at line 3 column 10"
        ]
    );
    let e = errors("server:\n  proxy:\n    tls: { listen: \"127.0.0.1:0\", cert: a.pem }\n");
    assert_eq!(
        e,
        ["server.proxy.tls.cert: `cert` needs a `key` at line 3 column 41"]
    );
    let e = errors(
        "server:\n  proxy:\n    tls: { listen: \"127.0.0.1:0\", certificates: [{ cert: a.pem }] }\n",
    );
    assert!(
        e[0].starts_with("server.proxy.tls.certificates[0]: missing field `key`"),
        "{e:?}"
    );
    let e = errors(
        "server:\n  proxy:\n    tls: { listen: \"127.0.0.1:0\", cert: a, key: b, watch_interval: 10ms, client_auth: required }\n",
    );
    assert_eq!(
        e,
        [
            "server.proxy.tls.watch_interval: watch_interval must be at least 1s, or 0s to turn it off at line 3 column 68",
            "server.proxy.tls.client_auth: client certificates need a `client_ca` trust store at line 3 column 87",
        ]
    );
}
