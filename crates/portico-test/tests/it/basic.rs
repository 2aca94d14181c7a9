use base64::Engine as _;
use portico_test::{RecordedRequest, TestNode, Upstream};

use crate::support::{client, problem};

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

async fn node(up: &portico_test::UpstreamHandle, policies: &str) -> TestNode {
    let yaml = format!(
        r#"apis:
  - name: a
    base_path: /a
    upstream: {{ targets: ["{}"] }}
    policies:
{policies}products:
  - {{ name: p, apis: [a] }}
developers:
  - {{ email: dev@example.com, name: Dev }}
apps:
  - name: dev-app
    developer: dev@example.com
    products: [p]
    api_keys: ["key-0000-0001"]
    basic_auth:
      - {{ username: aladdin, password: "open-sesame-1" }}
"#,
        up.url()
    );
    TestNode::new().config(&yaml).run().await
}

#[tokio::test]
async fn valid_credentials_pass_and_are_remembered() {
    let up = Upstream::echo().run().await;
    let node = node(&up, "      - basic_auth: {}\n").await;
    let c = client();
    for _ in 0..3 {
        let resp = c
            .get(node.proxy_url("/a"))
            .header("authorization", basic("aladdin", "open-sesame-1"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let seen = RecordedRequest::from_json(&resp.json().await.unwrap());
        assert_eq!(seen.header("x-portico-app"), Some("dev-app"));
        assert!(
            !seen.headers.contains_key("authorization"),
            "the credential reached the upstream"
        );
    }
}

#[tokio::test]
async fn wrong_or_unknown_credentials_are_refused() {
    let up = Upstream::echo().run().await;
    let node = node(&up, "      - basic_auth: { realm: orders }\n").await;
    let c = client();
    for (user, password) in [("aladdin", "wrong-password"), ("nobody", "open-sesame-1")] {
        let resp = c
            .get(node.proxy_url("/a"))
            .header("authorization", basic(user, password))
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.headers()["www-authenticate"],
            "Basic realm=\"orders\", charset=\"UTF-8\""
        );
        problem(resp, 401, "invalid-credential").await;
    }
    let resp = c
        .get(node.proxy_url("/a"))
        .header("authorization", "Basic not-base64!")
        .send()
        .await
        .unwrap();
    problem(resp, 401, "invalid-credential").await;
    assert_eq!(up.connections(), 0);
}

#[tokio::test]
async fn several_schemes_mean_any_of_with_every_challenge() {
    let up = Upstream::echo().run().await;
    let node = node(&up, "      - api_key: {}\n      - basic_auth: {}\n").await;
    let c = client();
    let resp = c.get(node.proxy_url("/a")).send().await.unwrap();
    let challenges: Vec<_> = resp
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        challenges,
        vec![
            "ApiKey header=\"x-api-key\"",
            "Basic realm=\"portico\", charset=\"UTF-8\""
        ]
    );
    problem(resp, 401, "missing-credential").await;

    // Either credential is enough; the other never reaches the upstream.
    let resp = c
        .get(node.proxy_url("/a"))
        .header("x-api-key", "key-0000-0001")
        .header("authorization", basic("someone", "else-entirely"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = RecordedRequest::from_json(&resp.json().await.unwrap());
    assert!(!seen.headers.contains_key("authorization"));
    assert!(!seen.headers.contains_key("x-api-key"));
    let resp = c
        .get(node.proxy_url("/a"))
        .header("authorization", basic("aladdin", "open-sesame-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // A wrong first credential decides: no fallback to the second.
    let resp = c
        .get(node.proxy_url("/a"))
        .header("x-api-key", "wrong-key-000")
        .header("authorization", basic("aladdin", "open-sesame-1"))
        .send()
        .await
        .unwrap();
    problem(resp, 401, "invalid-credential").await;
}

#[tokio::test]
async fn other_authorization_schemes_are_not_basic_credentials() {
    let up = Upstream::echo().run().await;
    let node = node(&up, "      - basic_auth: {}\n").await;
    let resp = client()
        .get(node.proxy_url("/a"))
        .header("authorization", "Bearer abc.def.ghi")
        .send()
        .await
        .unwrap();
    problem(resp, 401, "missing-credential").await;
}
