use portico_test::{RecordedRequest, TestNode, Upstream, assert_eventually};

use crate::support::{client, problem};

fn config(upstream: &str, extra_server: &str) -> String {
    format!(
        r#"{extra_server}apis:
  - name: orders
    base_path: /orders
    upstream: {{ targets: ["{upstream}"] }}
    policies:
      - api_key: {{ query: api_key }}
  - name: billing
    base_path: /billing
    upstream: {{ targets: ["{upstream}"] }}
    policies:
      - api_key: {{}}
  - name: open
    base_path: /open
    upstream: {{ targets: ["{upstream}"] }}
products:
  - {{ name: orders-basic, apis: [orders] }}
  - {{ name: billing, apis: [billing] }}
developers:
  - {{ email: dev@example.com, name: Dev }}
apps:
  - {{ name: dev-app, developer: dev@example.com, products: [orders-basic], api_keys: ["key-orders-0001", "key-orders-0002"] }}
"#
    )
}

async fn node(up: &portico_test::UpstreamHandle) -> TestNode {
    TestNode::new().config(&config(&up.url(), "")).run().await
}

#[tokio::test]
async fn a_valid_key_reaches_the_upstream_as_an_identity() {
    let up = Upstream::echo().run().await;
    let node = node(&up).await;
    let resp = client()
        .get(node.proxy_url("/orders/1"))
        .header("x-api-key", "key-orders-0002")
        .header("x-portico-app", "spoofed")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = RecordedRequest::from_json(&resp.json().await.unwrap());
    assert_eq!(seen.header("x-portico-app"), Some("dev-app"));
    assert_eq!(seen.header("x-portico-developer"), Some("dev@example.com"));
    assert!(
        !seen.headers.contains_key("x-api-key"),
        "the key reached the upstream"
    );
}

#[tokio::test]
async fn a_key_in_the_query_is_removed_before_the_upstream() {
    let up = Upstream::echo().run().await;
    let node = node(&up).await;
    let url = node.proxy_url("/orders/1?a=1&api_key=key-orders-0001&b=2");
    let resp = client().get(url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let seen = RecordedRequest::from_json(&resp.json().await.unwrap());
    assert_eq!(seen.uri, "/1?a=1&b=2");
    assert_eq!(seen.header("x-portico-app"), Some("dev-app"));
}

#[tokio::test]
async fn a_missing_key_is_a_401_with_a_challenge() {
    let up = Upstream::echo().run().await;
    let node = node(&up).await;
    let resp = client()
        .get(node.proxy_url("/orders/1"))
        .send()
        .await
        .unwrap();
    let challenge = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(challenge, "ApiKey header=\"x-api-key\", query=\"api_key\"");
    problem(resp, 401, "missing-credential").await;
    assert_eq!(
        up.connections(),
        0,
        "a refused request reached the upstream"
    );
}

#[tokio::test]
async fn a_wrong_key_is_a_401() {
    let up = Upstream::echo().run().await;
    let node = node(&up).await;
    let resp = client()
        .get(node.proxy_url("/orders/1?api_key=not-a-real-key"))
        .send()
        .await
        .unwrap();
    assert!(resp.headers().contains_key("www-authenticate"));
    problem(resp, 401, "invalid-credential").await;
    assert_eq!(up.connections(), 0);
}

/// A key revoked through the admin API is refused from the next request
/// on, on every worker, while the app's other key keeps working.
#[tokio::test]
async fn a_revoked_key_is_refused_at_once() {
    use sha2::{Digest, Sha256};
    let up = Upstream::echo().run().await;
    let node = node(&up).await;
    let send = |key: &'static str| {
        client()
            .get(node.proxy_url("/orders/1"))
            .header("x-api-key", key)
            .send()
    };
    // Enough requests for every worker thread to have served both keys.
    for _ in 0..16 {
        for key in ["key-orders-0001", "key-orders-0002"] {
            assert_eq!(send(key).await.unwrap().status(), 200);
        }
    }
    // A key's id is the first 12 hex digits of its digest.
    let id: String = Sha256::digest(b"key-orders-0002")[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let resp = client()
        .delete(node.admin_url(&format!("/admin/v1/apps/dev-app/keys/{id}")))
        .bearer_auth(portico_test::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    for _ in 0..16 {
        problem(
            send("key-orders-0002").await.unwrap(),
            401,
            "invalid-credential",
        )
        .await;
        assert_eq!(send("key-orders-0001").await.unwrap().status(), 200);
    }
}

#[tokio::test]
async fn a_valid_key_without_a_subscription_is_a_403() {
    let up = Upstream::echo().run().await;
    let node = node(&up).await;
    let resp = client()
        .get(node.proxy_url("/billing/invoices"))
        .header("x-api-key", "key-orders-0001")
        .send()
        .await
        .unwrap();
    let doc = problem(resp, 403, "not-subscribed").await;
    assert!(doc["detail"].as_str().unwrap().contains("dev-app"), "{doc}");
    assert_eq!(up.connections(), 0);
}

#[tokio::test]
async fn open_apis_never_pass_client_identity_headers() {
    let up = Upstream::echo().run().await;
    let node = node(&up).await;
    let resp = client()
        .get(node.proxy_url("/open"))
        .header("x-portico-app", "spoofed")
        .header("x-portico-developer", "evil@example.com")
        .send()
        .await
        .unwrap();
    let seen = RecordedRequest::from_json(&resp.json().await.unwrap());
    assert!(!seen.headers.contains_key("x-portico-app"));
    assert!(!seen.headers.contains_key("x-portico-developer"));
}

#[tokio::test]
async fn the_access_log_names_the_app() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let up = Upstream::echo().run().await;
    let server = format!("server:\n  access_log: \"{}\"\n", log.display());
    let node = TestNode::new()
        .config(&config(&up.url(), &server))
        .run()
        .await;
    let resp = client()
        .get(node.proxy_url("/orders/1"))
        .header("x-api-key", "key-orders-0001")
        .send()
        .await
        .unwrap();
    resp.bytes().await.unwrap();
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    assert_eventually!(read().lines().count() == 1);
    let line: serde_json::Value = serde_json::from_str(read().lines().next().unwrap()).unwrap();
    assert_eq!(line["app"], "dev-app");
    assert_eq!(line["status"], 200);
    assert!(!read().contains("key-orders-0001"), "the key was logged");
}
