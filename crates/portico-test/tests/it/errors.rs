use std::time::{Duration, Instant};

use portico_test::{TestNode, Upstream};

use crate::support::{api, apis, client, problem, raw};

async fn node_for(up: &portico_test::UpstreamHandle, extra: &str) -> TestNode {
    let yaml = format!(
        "apis:\n  - name: a\n    base_path: /a\n    upstream:\n      targets: [\"{}\"]\n{extra}",
        up.url()
    );
    TestNode::new().config(&yaml).run().await
}

#[tokio::test]
async fn no_route_is_a_404_problem() {
    let up = Upstream::echo().run().await;
    let node = TestNode::new()
        .config(&apis(&[api("a", "/a", &[up.url()])]))
        .run()
        .await;
    let resp = client().get(node.proxy_url("/b/c")).send().await.unwrap();
    let doc = problem(resp, 404, "no-route").await;
    assert!(doc["detail"].as_str().unwrap().contains("/b/c"));
}

#[tokio::test]
async fn refused_connection_is_a_502() {
    let up = Upstream::refuse().run().await;
    let node = node_for(&up, "").await;
    problem(
        client().get(node.proxy_url("/a")).send().await.unwrap(),
        502,
        "upstream-connect",
    )
    .await;
}

#[tokio::test]
async fn reset_connection_is_a_502() {
    let up = Upstream::reset().run().await;
    let node = node_for(&up, "").await;
    problem(
        client().get(node.proxy_url("/a")).send().await.unwrap(),
        502,
        "upstream-failed",
    )
    .await;
}

#[tokio::test]
async fn garbage_answer_is_a_502() {
    let up = Upstream::garbage().run().await;
    let node = node_for(&up, "").await;
    problem(
        client().get(node.proxy_url("/a")).send().await.unwrap(),
        502,
        "upstream-failed",
    )
    .await;
}

#[tokio::test]
async fn stalled_upstream_is_a_504_after_the_timeout() {
    let up = Upstream::stall().run().await;
    let node = node_for(&up, "      timeout: 300ms\n").await;
    let start = Instant::now();
    let resp = client().get(node.proxy_url("/a")).send().await.unwrap();
    let elapsed = start.elapsed();
    problem(resp, 504, "upstream-timeout").await;
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

#[tokio::test]
async fn slow_upstream_within_the_timeout_is_served() {
    let up = Upstream::echo()
        .delay(Duration::from_millis(200))
        .run()
        .await;
    let node = node_for(&up, "      timeout: 5s\n").await;
    let resp = client().get(node.proxy_url("/a")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn connect_timeout_is_a_504() {
    let up = Upstream::unreachable().run().await;
    let node = node_for(&up, "      connect_timeout: 300ms\n      timeout: 10s\n").await;
    let start = Instant::now();
    let resp = client().get(node.proxy_url("/a")).send().await.unwrap();
    let elapsed = start.elapsed();
    let doc = problem(resp, 504, "upstream-timeout").await;
    assert!(
        doc["detail"].as_str().unwrap().contains("Connecting"),
        "{doc}"
    );
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}

#[tokio::test]
async fn missing_or_repeated_host_is_a_400_problem() {
    let up = Upstream::echo().run().await;
    let node = node_for(&up, "").await;
    for request in [
        &b"GET /a HTTP/1.1\r\nConnection: close\r\n\r\n"[..],
        &b"GET /a HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n"[..],
    ] {
        let (head, body) = raw(node.proxy_addr(), request).await;
        assert!(head.starts_with("HTTP/1.1 400"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: application/problem+json"),
            "{head}"
        );
        let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(doc["type"], "https://portico.dev/problems/bad-request");
    }
}

#[tokio::test]
async fn unparseable_requests_are_refused_and_the_node_keeps_serving() {
    let up = Upstream::echo().run().await;
    let node = node_for(&up, "").await;
    for request in [
        &b"NOT A REQUEST\r\n\r\n"[..],
        &b"GET /a HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"[..],
    ] {
        let (head, _) = raw(node.proxy_addr(), request).await;
        assert!(
            head.starts_with("HTTP/1.1 400"),
            "{}: {head}",
            String::from_utf8_lossy(request)
        );
    }
    assert_eq!(
        client()
            .get(node.proxy_url("/a"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

/// RFC 9112 §6.1: with both framings, the message is read by
/// Transfer-Encoding alone and the connection is closed after the answer, so
/// nothing can be smuggled behind it; the upstream never sees the conflict.
#[tokio::test]
async fn conflicting_framing_is_read_by_transfer_encoding_and_closed() {
    let up = Upstream::echo().run().await;
    let node = node_for(&up, "").await;
    let request = b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /a/smuggled HTTP/1.1\r\nHost: a\r\n\r\n";
    let (head, body) = raw(node.proxy_addr(), request).await;
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    let seen = portico_test::RecordedRequest::from_json(&serde_json::from_slice(&body).unwrap());
    assert!(
        !seen.headers.contains_key("content-length"),
        "{:?}",
        seen.headers
    );
    assert_eq!(seen.body_len, 0);
    assert_eq!(up.connections(), 1);
}

#[tokio::test]
async fn invalid_configuration_is_refused_with_every_error() {
    let err = TestNode::new()
        .config("apis:\n  - name: a\n    base_path: /a\n    upstreem: {}\n  - name: b\n    base_path: b\n    upstream: { targets: [\"http://h\"] }\n")
        .try_run()
        .await
        .unwrap_err();
    let text = err.to_string();
    assert_eq!(err.len(), 2, "{text}");
    assert!(
        text.contains("apis[0].upstreem: unknown field `upstreem`"),
        "{text}"
    );
    assert!(
        text.contains("apis[1].base_path: invalid base path `b`"),
        "{text}"
    );
}
