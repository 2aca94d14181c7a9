//! Configuration of the response cache: the `cache` policy and
//! `server.cache`.

use std::time::Duration;

use portico_model::cache::{CacheBackend, DEFAULT_CACHE_MAX_SIZE};

use super::*;

fn api(policy: &str) -> String {
    format!(
        "apis:\n  - name: a\n    base_path: /a\n    upstream: {{ targets: [\"http://h\"] }}\n    policies:\n      - {policy}\n"
    )
}

fn errors(yaml: &str) -> Vec<String> {
    match compile(yaml) {
        Ok(_) => panic!("configuration was accepted:\n{yaml}"),
        Err(d) => d.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn cache_settings_compile() {
    let c = compile(&format!(
        "server:\n  cache: {{ max_size: 16MiB }}\n{}",
        api("cache: { ttl: 5m, max_entry_size: 256KiB, vary: [Accept-Language], cookies: true, backend: memory }")
    ))
    .unwrap();
    assert_eq!(c.node.cache_max_size, 16 << 20);
    let s = c.snapshot.apis[0].policies.cache().unwrap();
    assert_eq!(s.ttl, Duration::from_secs(300));
    assert_eq!(s.max_entry_size, 256 << 10);
    assert_eq!(s.vary[0].as_str(), "accept-language");
    assert!(s.cookies && !s.authorization);
    assert_eq!(s.backend, CacheBackend::Memory);
    let c = compile(&api("cache: {}")).unwrap();
    assert_eq!(c.node.cache_max_size, DEFAULT_CACHE_MAX_SIZE);
    assert_eq!(
        c.snapshot.apis[0].policies.cache().unwrap().backend,
        CacheBackend::Auto
    );
}

#[test]
fn cache_errors_name_key_and_line() {
    for (policy, message) in [
        ("cache: { ttl: 60s, tll: 1s }", "unknown field `tll`"),
        ("cache: { ttl: soon }", "invalid duration `soon`"),
        ("cache: { ttl: 0s }", "`ttl` must be greater than zero"),
        (
            "cache: { max_entry_size: 1GiB }",
            "`max_entry_size` must be between",
        ),
        ("cache: { vary: [\"a b\"] }", "is not a header name"),
        ("cache: { backend: disk }", "unknown variant `disk`"),
        ("cache: { backend: redis }", "needs the node's `redis:`"),
    ] {
        let errs = errors(&api(policy));
        assert!(
            errs[0].starts_with("apis[0].policies[0]")
                && errs[0].contains(message)
                && errs[0].contains("line 6"),
            "{policy}: {errs:?}"
        );
    }
    let ok = format!(
        "redis: \"redis://127.0.0.1:6379\"\n{}",
        api("cache: { backend: redis }")
    );
    assert!(compile(&ok).is_ok());
    let errs = errors("server:\n  cache: { max_size: 1KiB }\n");
    assert!(
        errs[0].contains("server.cache.max_size") && errs[0].contains("line 2"),
        "{errs:?}"
    );
    let errs = errors("server:\n  cache: { size: 1MiB }\n");
    assert!(errs[0].contains("unknown field `size`"), "{errs:?}");
}
