//! Security from the spec: an API without authentication policies of its
//! own is protected by its spec's `security` requirements, per operation.

use portico_test::{RecordedRequest, TestNode, Upstream, UpstreamHandle};
use serde_json::json;

use crate::jwt::{SECRET, claims, hs256};
use crate::support::{client, problem};

/// The spec of both APIs: a header key by default, an open operation, an
/// OR of Basic and a query key, an optional key, and an OAuth 2.0 scope.
const SPEC: &str = r#"
      openapi: 3.1.0
      info: { title: Shop, version: '1' }
      components:
        securitySchemes:
          key: { type: apiKey, in: header, name: x-shop-key }
          qkey: { type: apiKey, in: query, name: key }
          basic: { type: http, scheme: basic }
          oauth:
            type: oauth2
            flows:
              clientCredentials:
                tokenUrl: https://idp.example.com/token
                scopes: { orders:read: read, orders:admin: admin }
      security: [{ key: [] }]
      paths:
        /items:
          get: { operationId: listItems, responses: { '200': { description: ok } } }
        /health:
          get: { operationId: health, security: [], responses: { '200': { description: ok } } }
        /either:
          get: { security: [{ basic: [] }, { qkey: [] }], responses: { '200': { description: ok } } }
        /optional:
          get: { security: [{}, { key: [] }], responses: { '200': { description: ok } } }
        /admin:
          get: { security: [{ oauth: [orders:admin] }], responses: { '200': { description: ok } } }
"#;

fn config(up: &UpstreamHandle) -> String {
    let spec = SPEC.replace('\n', "\n  ");
    format!(
        r#"apis:
  - name: shop
    base_path: /shop
    spec:{spec}
    security_schemes:
      oauth: {{ jwt: {{ keys: [{{ secret: "{SECRET}", alg: HS256 }}] }} }}
    upstream: {{ targets: ["{url}"] }}
  - name: own
    base_path: /own
    spec:{spec}
    upstream: {{ targets: ["{url}"] }}
    policies:
      - api_key: {{ header: x-own-key }}
products:
  - {{ name: all, apis: [shop, own] }}
developers:
  - {{ email: dev@example.com, name: Dev }}
apps:
  - name: dev-one
    developer: dev@example.com
    products: [all]
    api_keys: ["shop-key-0001"]
    basic_auth: [{{ username: dev, password: "s3cret-pass" }}]
    oauth_clients: [{{ client_id: dev-one, client_secret: "client-s3cret" }}]
"#,
        url = up.url()
    )
}

async fn node(up: &UpstreamHandle) -> TestNode {
    TestNode::new().config(&config(up)).run().await
}

fn challenges(resp: &reqwest::Response) -> Vec<String> {
    resp.headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn an_api_key_scheme_requires_the_key() {
    let up = Upstream::echo().run().await;
    let node = node(&up).await;
    let c = client();
    let resp = c.get(node.proxy_url("/shop/items")).send().await.unwrap();
    assert_eq!(challenges(&resp), ["ApiKey header=\"x-shop-key\""]);
    problem(resp, 401, "missing-credential").await;

    let resp = c
        .get(node.proxy_url("/shop/items"))
        .header("x-shop-key", "wrong-key-0000")
        .send()
        .await
        .unwrap();
    assert_eq!(challenges(&resp), ["ApiKey header=\"x-shop-key\""]);
    problem(resp, 401, "invalid-credential").await;
    assert_eq!(up.requests(), 0);

    let resp = c
        .get(node.proxy_url("/shop/items"))
        .header("x-shop-key", "shop-key-0001")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = RecordedRequest::from_json(&resp.json().await.unwrap());
    assert_eq!(seen.header("x-portico-app"), Some("dev-one"));
    assert!(
        !seen.headers.contains_key("x-shop-key"),
        "the key went upstream"
    );
}

#[tokio::test]
async fn an_operation_with_empty_security_is_open() {
    let up = Upstream::echo().run().await;
    let node = node(&up).await;
    let c = client();
    let resp = c.get(node.proxy_url("/shop/health")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    // A credential sent anyway still never reaches the upstream.
    let resp = c
        .get(node.proxy_url("/shop/health?key=shop-key-0001&x=1"))
        .header("x-shop-key", "shop-key-0001")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = RecordedRequest::from_json(&resp.json().await.unwrap());
    assert_eq!(seen.uri, "/health?x=1");
    assert!(!seen.headers.contains_key("x-shop-key"));
    assert_eq!(seen.header("x-portico-app"), None);
}

#[tokio::test]
async fn alternatives_are_any_of() {
    let up = Upstream::echo().run().await;
    let node = node(&up).await;
    let c = client();
    let resp = c
        .get(node.proxy_url("/shop/either"))
        .basic_auth("dev", Some("s3cret-pass"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "Basic alone");
    let resp = c
        .get(node.proxy_url("/shop/either?key=shop-key-0001"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "the query key alone");
    let seen = RecordedRequest::from_json(&resp.json().await.unwrap());
    assert_eq!(seen.uri, "/either");

    // The header key is not one of this operation's schemes.
    let resp = c
        .get(node.proxy_url("/shop/either"))
        .header("x-shop-key", "shop-key-0001")
        .send()
        .await
        .unwrap();
    let mut got = challenges(&resp);
    got.sort();
    assert_eq!(
        got,
        [
            "ApiKey query=\"key\"",
            "Basic realm=\"portico\", charset=\"UTF-8\""
        ]
    );
    problem(resp, 401, "missing-credential").await;

    let resp = c
        .get(node.proxy_url("/shop/either?key=shop-key-0001"))
        .basic_auth("dev", Some("wrong-password"))
        .send()
        .await
        .unwrap();
    problem(resp, 401, "invalid-credential").await;
}

#[tokio::test]
async fn an_empty_requirement_makes_the_credential_optional() {
    let up = Upstream::echo().run().await;
    let node = node(&up).await;
    let c = client();
    let resp = c
        .get(node.proxy_url("/shop/optional"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = RecordedRequest::from_json(&resp.json().await.unwrap());
    assert_eq!(seen.header("x-portico-app"), None);
    let resp = c
        .get(node.proxy_url("/shop/optional"))
        .header("x-shop-key", "shop-key-0001")
        .send()
        .await
        .unwrap();
    let seen = RecordedRequest::from_json(&resp.json().await.unwrap());
    assert_eq!(seen.header("x-portico-app"), Some("dev-one"));
}

#[tokio::test]
async fn oauth_scopes_are_checked_per_operation() {
    let up = Upstream::echo().run().await;
    let node = node(&up).await;
    let c = client();
    let reader = hs256(&claims(json!({ "scope": "orders:read" })));
    let resp = c
        .get(node.proxy_url("/shop/admin"))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(
        challenges(&resp),
        ["Bearer error=\"insufficient_scope\", scope=\"orders:admin\""]
    );
    problem(resp, 403, "insufficient-scope").await;
    let admin = hs256(&claims(
        json!({ "scp": ["orders:read", "orders:admin"], "scope": null }),
    ));
    let resp = c
        .get(node.proxy_url("/shop/admin"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = RecordedRequest::from_json(&resp.json().await.unwrap());
    assert!(!seen.headers.contains_key("authorization"));
    let resp = c.get(node.proxy_url("/shop/admin")).send().await.unwrap();
    assert_eq!(challenges(&resp), ["Bearer realm=\"portico\""]);
    problem(resp, 401, "missing-credential").await;
}

#[tokio::test]
async fn an_api_with_its_own_authentication_ignores_the_spec() {
    let up = Upstream::echo().run().await;
    let node = node(&up).await;
    let c = client();
    // The spec's key is not what this API checks …
    let resp = c
        .get(node.proxy_url("/own/items"))
        .header("x-shop-key", "shop-key-0001")
        .send()
        .await
        .unwrap();
    assert_eq!(challenges(&resp), ["ApiKey header=\"x-own-key\""]);
    problem(resp, 401, "missing-credential").await;
    // … and its own policy covers operations the spec leaves open.
    let resp = c.get(node.proxy_url("/own/health")).send().await.unwrap();
    problem(resp, 401, "missing-credential").await;
    let resp = c
        .get(node.proxy_url("/own/items"))
        .header("x-own-key", "shop-key-0001")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn a_cookie_key_and_the_document_security_under_passthrough() {
    let up = Upstream::echo().run().await;
    let yaml = format!(
        r#"apis:
  - name: loose
    base_path: /loose
    routing: passthrough
    spec:
      openapi: 3.0.3
      info: {{ title: Loose, version: '1' }}
      components:
        securitySchemes:
          session: {{ type: apiKey, in: cookie, name: sid }}
      security: [{{ session: [] }}]
      paths:
        /open:
          get: {{ security: [], responses: {{ '200': {{ description: ok }} }} }}
    upstream: {{ targets: ["{url}"] }}
products:
  - {{ name: all, apis: [loose] }}
developers:
  - {{ email: dev@example.com, name: Dev }}
apps:
  - {{ name: dev-one, developer: dev@example.com, products: [all], api_keys: ["shop-key-0001"] }}
"#,
        url = up.url()
    );
    let node = TestNode::new().config(&yaml).run().await;
    let c = client();
    // A path the spec does not declare is held to the document's security.
    let resp = c
        .get(node.proxy_url("/loose/undeclared"))
        .send()
        .await
        .unwrap();
    assert_eq!(challenges(&resp), ["ApiKey cookie=\"sid\""]);
    problem(resp, 401, "missing-credential").await;
    let resp = c
        .get(node.proxy_url("/loose/undeclared"))
        .header("cookie", "theme=dark; sid=shop-key-0001; lang=en")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = RecordedRequest::from_json(&resp.json().await.unwrap());
    assert_eq!(seen.header("x-portico-app"), Some("dev-one"));
    assert_eq!(
        seen.header("cookie"),
        Some("theme=dark; lang=en"),
        "the key cookie went upstream"
    );
    let resp = c.get(node.proxy_url("/loose/open")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}
