//! Paths are normalised before routing, so routing and the upstream agree:
//! a protected API cannot be reached around its base path.

use portico_test::{RecordedRequest, TestNode, Upstream};

use crate::support::raw;

async fn node(up: &portico_test::UpstreamHandle) -> TestNode {
    let yaml = format!(
        r#"apis:
  - name: orders
    base_path: /orders/v1
    upstream: {{ targets: ["{up}/svc"] }}
    policies:
      - api_key: {{}}
  - name: public
    base_path: /
    upstream: {{ targets: ["{up}"] }}
"#,
        up = up.url()
    );
    TestNode::new().config(&yaml).run().await
}

async fn status_of(node: &TestNode, target: &str) -> (u16, Vec<u8>) {
    let request = format!("GET {target} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    let (head, body) = raw(node.proxy_addr(), request.as_bytes()).await;
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body)
}

#[tokio::test]
async fn detours_around_a_protected_base_path_still_hit_it() {
    let up = Upstream::echo().run().await;
    let node = node(&up).await;
    for target in [
        "//orders/v1/secret",
        "/x/../orders/v1/secret",
        "/./orders/v1/secret",
        "/orders/v1;jsessionid=1/secret",
        "/orders//v1/secret",
        "/public/%2e%2e/orders/v1/secret",
    ] {
        let (status, _) = status_of(&node, target).await;
        assert_eq!(status, 401, "{target} went around the api_key policy");
    }
    assert_eq!(up.connections(), 0);
}

#[tokio::test]
async fn escapes_and_encoded_separators_are_refused() {
    let up = Upstream::echo().run().await;
    let node = node(&up).await;
    for target in [
        "/orders/v1/../../../admin",
        "/orders%2Fv1/secret",
        "/%2e%2e/etc",
        "/a%5Cb",
    ] {
        let (status, body) = status_of(&node, target).await;
        assert_eq!(status, 400, "{target}");
        let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(doc["type"], "https://portico.dev/problems/bad-request");
    }
    assert_eq!(up.connections(), 0);
}

#[tokio::test]
async fn the_upstream_gets_the_normalised_path() {
    let up = Upstream::echo().run().await;
    let node = node(&up).await;
    let (status, body) = status_of(&node, "/a/./b//c/../d?q=1").await;
    assert_eq!(status, 200);
    let seen = RecordedRequest::from_json(&serde_json::from_slice(&body).unwrap());
    assert_eq!(seen.uri, "/a/b/d?q=1");
    // Leaving a base path by `..` lands on the API the result names, and
    // the upstream gets that path, never one outside its target prefix.
    let (status, body) = status_of(&node, "/orders/v1/../../admin").await;
    assert_eq!(status, 200);
    let seen = RecordedRequest::from_json(&serde_json::from_slice(&body).unwrap());
    assert_eq!(seen.uri, "/admin");
}

#[tokio::test]
async fn two_authorization_headers_are_refused() {
    let up = Upstream::echo().run().await;
    let node = node(&up).await;
    let request = b"GET /x HTTP/1.1\r\nHost: a\r\nAuthorization: Basic eDp5\r\nAuthorization: Bearer t\r\nConnection: close\r\n\r\n";
    let (head, _) = raw(node.proxy_addr(), request).await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
}

#[tokio::test]
async fn connection_tokens_cannot_strip_identity_headers() {
    let up = Upstream::echo().run().await;
    let yaml = format!(
        "apis:\n  - {{ name: a, base_path: /a, upstream: {{ targets: [\"{}\"] }}, policies: [{{ api_key: {{}} }}] }}\nproducts:\n  - {{ name: p, apis: [a] }}\ndevelopers:\n  - {{ email: d@example.com, name: D }}\napps:\n  - {{ name: app, developer: d@example.com, products: [p], api_keys: [\"key-00000001\"] }}\n",
        up.url()
    );
    let node = TestNode::new().config(&yaml).run().await;
    let request = b"GET /a HTTP/1.1\r\nHost: a\r\nX-Api-Key: key-00000001\r\nConnection: close, x-portico-app, x-portico-developer\r\n\r\n";
    let (head, body) = raw(node.proxy_addr(), request).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let seen = RecordedRequest::from_json(&serde_json::from_slice(&body).unwrap());
    assert_eq!(seen.header("x-portico-app"), Some("app"));
    assert_eq!(seen.header("x-portico-developer"), Some("d@example.com"));
}
