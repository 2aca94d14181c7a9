use portico_test::{RecordedRequest, TestNode, Upstream};

use crate::support::{answering_with, api, apis, client, one_api_before, raw};

#[tokio::test]
async fn hop_by_hop_request_headers_are_removed() {
    let up = Upstream::echo().run().await;
    let node = TestNode::new()
        .config(&apis(&[api("a", "/a", &[up.url()])]))
        .run()
        .await;
    let request = b"GET /a/x HTTP/1.1\r\nHost: example.com\r\nConnection: close, X-Drop-Me\r\nX-Drop-Me: 1\r\nKeep-Alive: timeout=5\r\nProxy-Authorization: Basic eDp5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\nUpgrade: websocket\r\nX-Kept: yes\r\n\r\n";
    let (head, body) = raw(node.proxy_addr(), request).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let seen = RecordedRequest::from_json(&serde_json::from_slice(&body).unwrap());
    for gone in [
        "x-drop-me",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "upgrade",
    ] {
        assert!(
            !seen.headers.contains_key(gone),
            "{gone} reached the upstream: {:?}",
            seen.headers
        );
    }
    // The upstream connection is Portico's own: keep-alive, not the client's close.
    assert_ne!(seen.header("connection"), Some("close"));
    assert_eq!(seen.header("x-kept"), Some("yes"));
}

#[tokio::test]
async fn hop_by_hop_response_headers_are_removed() {
    let up = answering_with(
        200,
        "ok",
        &[
            ("connection", "x-secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=99"),
            ("proxy-authenticate", "Basic"),
            ("x-kept", "1"),
        ],
    )
    .await;
    let node = one_api_before(&up).await;
    let resp = client().get(node.proxy_url("/a")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers();
    for gone in ["x-secret", "keep-alive", "proxy-authenticate"] {
        assert!(!h.contains_key(gone), "{gone} reached the client: {h:?}");
    }
    assert_eq!(h["x-kept"], "1");
}

/// An answer that no response policy, cache or check reads is passed on
/// with its fields as they came, without a field map in between: each of
/// the upstream's own fields arrives once (repeated ones in order), its
/// connection fields and request id do not, and its `Date` is not joined
/// by a second. A client that hyper serves (HTTP/1.0) gets the same.
#[tokio::test]
async fn answer_fields_are_passed_on_as_they_came() {
    let up = answering_with(
        200,
        "hello",
        &[
            ("keep-alive", "timeout=99"),
            ("x-request-id", "upstream's"),
            ("x-kept", "1"),
            ("x-kept", "2"),
            ("cache-control", "no-store"),
        ],
    )
    .await;
    let node = one_api_before(&up).await;
    for request in [
        &b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"[..],
        b"GET /a HTTP/1.0\r\nHost: x\r\n\r\n",
    ] {
        let (head, body) = raw(node.proxy_addr(), request).await;
        assert!(head.contains(" 200 "), "{head}");
        let fields: Vec<(String, String)> = head
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let values = |name: &str| -> Vec<&str> {
            fields
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .collect()
        };
        assert_eq!(values("x-kept"), ["1", "2"], "{head}");
        assert_eq!(values("cache-control"), ["no-store"], "{head}");
        assert_eq!(values("content-length"), ["5"], "{head}");
        assert_eq!(values("date").len(), 1, "{head}");
        assert!(values("keep-alive").is_empty(), "{head}");
        let ids = values("x-request-id");
        assert_eq!(ids.len(), 1, "{head}");
        assert_ne!(ids[0], "upstream's");
        assert_eq!(body, b"hello");
    }
}

#[tokio::test]
async fn forwarding_headers_are_added() {
    let up = Upstream::echo().run().await;
    let node = TestNode::new()
        .config(&apis(&[api("a", "/a", &[up.url()])]))
        .run()
        .await;
    let resp = client()
        .get(node.proxy_url("/a"))
        .header("host", "api.example.com")
        .header("x-forwarded-for", "192.0.2.1")
        .header("forwarded", "for=192.0.2.1")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "spoofed")
        .send()
        .await
        .unwrap();
    let seen = RecordedRequest::from_json(&resp.json().await.unwrap());
    assert_eq!(seen.header("x-forwarded-for"), Some("192.0.2.1, 127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert_eq!(seen.header("x-forwarded-host"), Some("api.example.com"));
    assert_eq!(
        seen.headers["forwarded"],
        vec![
            "for=192.0.2.1".to_owned(),
            "for=127.0.0.1;proto=http;host=\"api.example.com\"".to_owned()
        ]
    );
    // The upstream is addressed by its own authority.
    assert_eq!(seen.header("host"), Some(up.addr().to_string().as_str()));
}

#[tokio::test]
async fn request_ids_are_kept_or_made_and_always_returned() {
    let up = Upstream::echo().run().await;
    let node = TestNode::new()
        .config(&apis(&[api("a", "/a", &[up.url()])]))
        .run()
        .await;
    let c = client();

    let resp = c
        .get(node.proxy_url("/a"))
        .header("x-request-id", "req-42")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "req-42");
    let seen = RecordedRequest::from_json(&resp.json().await.unwrap());
    assert_eq!(seen.header("x-request-id"), Some("req-42"));

    let too_long = "x".repeat(129);
    let resp = c
        .get(node.proxy_url("/a"))
        .header("x-request-id", &too_long)
        .send()
        .await
        .unwrap();
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 32);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    let seen = RecordedRequest::from_json(&resp.json().await.unwrap());
    assert_eq!(seen.header("x-request-id"), Some(id.as_str()));

    // Error answers carry one too.
    let resp = c.get(node.proxy_url("/nowhere")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["x-request-id"].len(), 32);
}

#[tokio::test]
async fn traceparent_is_propagated_or_started() {
    let up = Upstream::echo().run().await;
    let node = TestNode::new()
        .config(&apis(&[api("a", "/a", &[up.url()])]))
        .run()
        .await;
    let c = client();
    let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let resp = c
        .get(node.proxy_url("/a"))
        .header("traceparent", incoming)
        .send()
        .await
        .unwrap();
    let seen = RecordedRequest::from_json(&resp.json().await.unwrap());
    let tp = seen.header("traceparent").unwrap();
    assert!(
        tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{tp}"
    );
    assert!(
        !tp.contains("00f067aa0ba902b7"),
        "parent id was not replaced: {tp}"
    );

    let resp = c.get(node.proxy_url("/a")).send().await.unwrap();
    let seen = RecordedRequest::from_json(&resp.json().await.unwrap());
    let tp = seen.header("traceparent").unwrap();
    let parts: Vec<_> = tp.split('-').collect();
    assert_eq!(parts.len(), 4, "{tp}");
    assert_eq!(
        (parts[0], parts[1].len(), parts[2].len(), parts[3]),
        ("00", 32, 16, "01")
    );
}
