//! The access-phase policies: request_size, ip_filter, cors.

use bytes::Bytes;
use portico_test::{RecordedRequest, TestNode, Upstream};

use crate::support::{client, problem};

async fn node_with(up: &portico_test::UpstreamHandle, policies: &str) -> TestNode {
    let yaml = format!(
        "apis:\n  - name: a\n    base_path: /a\n    upstream: {{ targets: [\"{}\"] }}\n    policies:\n{policies}",
        up.url()
    );
    TestNode::new().config(&yaml).run().await
}

#[tokio::test]
async fn request_size_refuses_a_declared_length_up_front() {
    let up = Upstream::echo().run().await;
    let node = node_with(&up, "      - request_size: { max: 1KiB }\n").await;
    let c = client();
    let ok = c
        .post(node.proxy_url("/a"))
        .body(vec![1u8; 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let resp = c
        .post(node.proxy_url("/a"))
        .body(vec![1u8; 1025])
        .send()
        .await
        .unwrap();
    problem(resp, 413, "payload-too-large").await;
    assert_eq!(
        up.connections(),
        1,
        "only the accepted request went upstream"
    );
}

#[tokio::test]
async fn request_size_counts_a_streamed_body() {
    let up = Upstream::echo().run().await;
    let node = node_with(&up, "      - request_size: { max: 64KiB }\n").await;
    let chunks = |n: usize| {
        futures_util::stream::iter(
            (0..n).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![7u8; 16 * 1024]))),
        )
    };
    let c = client();
    let resp = c
        .post(node.proxy_url("/a"))
        .body(reqwest::Body::wrap_stream(chunks(4)))
        .send()
        .await
        .unwrap();
    let seen = RecordedRequest::from_json(&resp.json().await.unwrap());
    assert_eq!(seen.body_len, 64 * 1024);
    let resp = c
        .post(node.proxy_url("/a"))
        .body(reqwest::Body::wrap_stream(chunks(64)))
        .send()
        .await
        .unwrap();
    problem(resp, 413, "payload-too-large").await;
}

#[tokio::test]
async fn ip_filter_denies_and_allows_by_block() {
    let up = Upstream::echo().run().await;
    let deny = node_with(&up, "      - ip_filter: { deny: [127.0.0.0/8] }\n").await;
    let resp = client().get(deny.proxy_url("/a")).send().await.unwrap();
    let doc = problem(resp, 403, "address-denied").await;
    assert!(
        doc["detail"].as_str().unwrap().contains("127.0.0.1"),
        "{doc}"
    );

    let allow_other = node_with(
        &up,
        "      - ip_filter: { allow: [\"10.0.0.0/8\", \"2001:db8::/32\"] }\n",
    )
    .await;
    let resp = client()
        .get(allow_other.proxy_url("/a"))
        .send()
        .await
        .unwrap();
    problem(resp, 403, "address-denied").await;

    let allow_local = node_with(&up, "      - ip_filter: { allow: [127.0.0.1] }\n").await;
    let resp = client()
        .get(allow_local.proxy_url("/a"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(up.connections(), 1);
}

#[tokio::test]
async fn ip_filter_reads_forwarded_for_only_from_trusted_proxies() {
    let up = Upstream::echo().run().await;
    let trusted = node_with(
        &up,
        "      - ip_filter: { allow: [192.0.2.0/24], trusted_proxies: [127.0.0.1, 203.0.113.0/24] }\n",
    )
    .await;
    let c = client();
    let get = |xff: &'static str| {
        c.get(trusted.proxy_url("/a"))
            .header("x-forwarded-for", xff)
            .send()
    };
    assert_eq!(get("192.0.2.9").await.unwrap().status(), 200);
    // A trusted hop between the client and us is skipped.
    assert_eq!(get("192.0.2.9, 203.0.113.5").await.unwrap().status(), 200);
    // The nearest untrusted address counts, not what the client put first.
    assert_eq!(get("192.0.2.9, 198.51.100.1").await.unwrap().status(), 403);
    assert_eq!(get("garbage").await.unwrap().status(), 403);

    // Without trust, the header is ignored and the socket address decides.
    let untrusted = node_with(&up, "      - ip_filter: { allow: [192.0.2.0/24] }\n").await;
    let resp = c
        .get(untrusted.proxy_url("/a"))
        .header("x-forwarded-for", "192.0.2.9")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
}

const CORS: &str = "      - cors: { origins: [\"https://app.example.com\"], methods: [GET, PUT], headers: [content-type, x-api-key], expose_headers: [x-request-id], credentials: true, max_age: 10m }\n";

#[tokio::test]
async fn cors_preflight_is_answered_at_the_edge() {
    let up = Upstream::echo().run().await;
    let node = node_with(&up, &format!("{CORS}      - api_key: {{}}\n")).await;
    let resp = client()
        .request(reqwest::Method::OPTIONS, node.proxy_url("/a/items"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "PUT")
        .header("access-control-request-headers", "Content-Type, X-Api-Key")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let h = resp.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(h["access-control-allow-methods"], "GET, PUT");
    assert_eq!(h["access-control-allow-headers"], "content-type, x-api-key");
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert_eq!(h["access-control-max-age"], "600");
    assert!(h["vary"].to_str().unwrap().contains("Origin"));
    assert!(h.contains_key("x-request-id"));
    assert_eq!(up.connections(), 0, "a preflight reached the upstream");
}

#[tokio::test]
async fn cors_preflight_outside_the_policy_is_refused() {
    let up = Upstream::echo().run().await;
    let node = node_with(&up, CORS).await;
    let c = client();
    let preflight = |origin: &'static str, method: &'static str, headers: &'static str| {
        c.request(reqwest::Method::OPTIONS, node.proxy_url("/a"))
            .header("origin", origin)
            .header("access-control-request-method", method)
            .header("access-control-request-headers", headers)
            .send()
    };
    for (origin, method, headers) in [
        ("https://evil.example.com", "GET", ""),
        ("https://app.example.com", "DELETE", ""),
        ("https://app.example.com", "GET", "x-secret"),
    ] {
        let resp = preflight(origin, method, headers).await.unwrap();
        assert!(!resp.headers().contains_key("access-control-allow-origin"));
        problem(resp, 403, "cors-denied").await;
    }
}

#[tokio::test]
async fn cors_headers_are_added_for_allowed_origins_only() {
    let up = Upstream::echo().run().await;
    let node = node_with(&up, CORS).await;
    let c = client();
    let resp = c
        .get(node.proxy_url("/a"))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert_eq!(h["access-control-expose-headers"], "x-request-id");
    assert_eq!(h["vary"], "Origin");

    let resp = c
        .get(node.proxy_url("/a"))
        .header("origin", "https://evil.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(!resp.headers().contains_key("access-control-allow-origin"));
    assert_eq!(resp.headers()["vary"], "Origin");
}

#[tokio::test]
async fn cors_with_any_origin_and_no_credentials_answers_star() {
    let up = Upstream::echo().run().await;
    let node = node_with(&up, "      - cors: { origins: [\"*\"] }\n").await;
    let resp = client()
        .get(node.proxy_url("/a"))
        .header("origin", "https://anything.example")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["access-control-allow-origin"], "*");
}

#[tokio::test]
async fn refusals_carry_cors_headers_so_browsers_can_read_them() {
    let up = Upstream::echo().run().await;
    let node = node_with(&up, &format!("{CORS}      - api_key: {{}}\n")).await;
    let resp = client()
        .get(node.proxy_url("/a"))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    problem(resp, 401, "missing-credential").await;
}
