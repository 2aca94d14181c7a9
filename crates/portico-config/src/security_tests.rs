//! Security from the spec: what compiles, and every refusal with its key
//! and line.

use crate::compile;

/// An API whose inline spec has `schemes` (YAML flow mappings under
/// `securitySchemes`) and document-wide `security`; `extra` is more keys
/// of the API (indented four spaces).
fn yaml(schemes: &str, security: &str, extra: &str) -> String {
    format!(
        "apis:
  - name: shop
    base_path: /shop
    spec:
      openapi: 3.0.3
      info: {{ title: t, version: '1' }}
      components:
        securitySchemes: {{ {schemes} }}
      security: {security}
      paths:
        /a:
          get: {{ responses: {{ '200': {{ description: ok }} }} }}
        /open:
          get: {{ security: [], responses: {{ '200': {{ description: ok }} }} }}
    upstream: {{ targets: [\"http://h\"] }}
{extra}"
    )
}

fn errors(yaml: &str) -> Vec<String> {
    match compile(yaml) {
        Ok(_) => panic!("configuration was accepted:\n{yaml}"),
        Err(d) => d.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn schemes_map_to_policies_per_operation() {
    let c = compile(&yaml(
        "k: { type: apiKey, in: cookie, name: sid }, b: { type: http, scheme: basic }",
        "[{ k: [] }, { b: [] }]",
        "",
    ))
    .unwrap();
    let s = c.snapshot.apis[0].security.as_ref().unwrap();
    let names: Vec<&str> = s.schemes.iter().map(|s| &*s.name).collect();
    assert_eq!(names, ["k", "b"]);
    assert_eq!(s.schemes[0].policy.name(), "api_key");
    assert_eq!(
        s.schemes[0].policy.challenge().unwrap(),
        "ApiKey cookie=\"sid\""
    );
    assert_eq!(s.schemes[1].policy.name(), "basic_auth");
    assert_eq!(s.operations[0].alternatives.len(), 2);
    assert!(s.operations[1].is_open());
    assert_eq!(s.fallback.needed, vec![0, 1]);
}

#[test]
fn no_requirements_means_no_security() {
    let c = compile(&yaml(
        "k: { type: apiKey, in: header, name: x-k }",
        "[]",
        "",
    ))
    .unwrap();
    assert!(c.snapshot.apis[0].security.is_none());
}

#[test]
fn an_api_with_its_own_authentication_keeps_it() {
    let c = compile(&yaml(
        "k: { type: apiKey, in: header, name: x-k }",
        "[{ k: [] }]",
        "    policies: [{ basic_auth: {} }]\n",
    ))
    .unwrap();
    assert!(c.snapshot.apis[0].security.is_none());
    assert!(c.snapshot.apis[0].policies.requires_identity());
}

#[test]
fn bearer_schemes_need_a_configured_jwt() {
    let errs = errors(&yaml(
        "o: { type: openIdConnect, openIdConnectUrl: 'https://idp/.well-known/openid-configuration' }",
        "[{ o: [] }]",
        "",
    ));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("apis[0].spec: spec security scheme `o`: openIdConnect tokens are checked by a `jwt` policy"),
        "{errs:?}"
    );
    assert!(errs[0].ends_with("at line 5 column 7"), "{errs:?}");
    let c = compile(&yaml(
        "o: { type: http, scheme: bearer, bearerFormat: JWT }",
        "[{ o: [] }]",
        "    security_schemes:\n      o: { jwt: { keys: [{ secret: \"0123456789abcdef0123456789abcdef\", alg: HS256 }] } }\n",
    ))
    .unwrap();
    let s = c.snapshot.apis[0].security.as_ref().unwrap();
    assert_eq!(s.schemes[0].policy.name(), "jwt");
    assert!(s.schemes[0].scoped);
}

#[test]
fn scheme_settings_are_checked() {
    let k = "k: { type: apiKey, in: header, name: x-k }";
    let errs = errors(&yaml(
        k,
        "[{ k: [] }]",
        "    security_schemes:\n      nope: { api_key: {} }\n      k: { request_size: { max: 1KiB } }\n",
    ));
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
        errs[0].starts_with(
            "apis[0].security_schemes.nope: the spec declares no security scheme `nope`"
        ),
        "{errs:?}"
    );
    assert!(errs[0].ends_with("line 17 column 13"), "{errs:?}");
    assert!(
        errs[1].starts_with(
            "apis[0].security_schemes.k: security scheme `k` needs an authentication policy"
        ),
        "{errs:?}"
    );
    let errs = errors(&yaml(
        k,
        "[{ k: [] }]",
        "    policies: [{ api_key: {} }]\n    security_schemes:\n      k: { api_key: {} }\n",
    ));
    assert!(
        errs[0]
            .starts_with("apis[0].security_schemes: `security_schemes` maps the spec's security"),
        "{errs:?}"
    );
    let errs = errors(
        "apis:\n  - name: a\n    base_path: /a\n    upstream: { targets: [\"http://h\"] }\n    security_schemes: {}\n",
    );
    assert!(
        errs[0].contains("applies to an API with a `spec`"),
        "{errs:?}"
    );
}

#[test]
fn spec_security_counts_as_authentication_for_limits() {
    let c = compile(&yaml(
        "k: { type: apiKey, in: query, name: key }",
        "[{ k: [] }]",
        "    policies: [{ rate_limit: { limit: 5, window: 1s, by: app } }]\n",
    ));
    assert!(c.is_ok(), "{:?}", c.err());
}
