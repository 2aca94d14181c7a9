use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use portico_test::{RecordedRequest, TestNode, Upstream, text_response};

use crate::support::{api, apis, client};

async fn echo_json(resp: reqwest::Response) -> RecordedRequest {
    assert_eq!(resp.status(), 200);
    RecordedRequest::from_json(&resp.json().await.unwrap())
}

#[tokio::test]
async fn strips_the_base_path_and_keeps_the_query() {
    let up = Upstream::echo().run().await;
    let node = TestNode::new()
        .config(&apis(&[api("orders", "/orders/v1", &[up.url()])]))
        .run()
        .await;
    let c = client();
    let seen = echo_json(
        c.get(node.proxy_url("/orders/v1/items/7?x=1&y=a%20b"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(seen.method, "GET");
    assert_eq!(seen.uri, "/items/7?x=1&y=a%20b");
    let seen = echo_json(c.get(node.proxy_url("/orders/v1")).send().await.unwrap()).await;
    assert_eq!(seen.uri, "/");
    let seen = echo_json(c.get(node.proxy_url("/orders/v1/?q")).send().await.unwrap()).await;
    assert_eq!(seen.uri, "/?q");
    // The segment boundary is respected.
    let resp = c.get(node.proxy_url("/orders/v10")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn target_path_is_prepended() {
    let up = Upstream::echo().run().await;
    let node = TestNode::new()
        .config(&apis(&[api("a", "/a", &[format!("{}/base/", up.url())])]))
        .run()
        .await;
    let seen = echo_json(
        client()
            .get(node.proxy_url("/a/x?k=v"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(seen.uri, "/base/x?k=v");
}

#[tokio::test]
async fn longest_base_path_wins() {
    let outer = Upstream::from_fn(|_| async { text_response(200, "outer") })
        .run()
        .await;
    let inner = Upstream::from_fn(|_| async { text_response(200, "inner") })
        .run()
        .await;
    let root = Upstream::from_fn(|_| async { text_response(200, "root") })
        .run()
        .await;
    let node = TestNode::new()
        .config(&apis(&[
            api("outer", "/a", &[outer.url()]),
            api("inner", "/a/b", &[inner.url()]),
            api("root", "/", &[root.url()]),
        ]))
        .run()
        .await;
    let c = client();
    for (path, expected) in [
        ("/a", "outer"),
        ("/a/x", "outer"),
        ("/a/b", "inner"),
        ("/a/b/c/d", "inner"),
        ("/a/bc", "outer"),
        ("/ab", "root"),
        ("/", "root"),
    ] {
        let body = c
            .get(node.proxy_url(path))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(body, expected, "{path}");
    }
}

#[tokio::test]
async fn hosts_route_separately() {
    let tenant = Upstream::from_fn(|_| async { text_response(200, "tenant") })
        .run()
        .await;
    let shared = Upstream::from_fn(|_| async { text_response(200, "shared") })
        .run()
        .await;
    let yaml = format!(
        "apis:\n  - {{ name: t, base_path: /x, hosts: [tenant.example.com], upstream: {{ targets: [\"{}\"] }} }}\n  - {{ name: s, base_path: /x, upstream: {{ targets: [\"{}\"] }} }}\n",
        tenant.url(),
        shared.url()
    );
    let node = TestNode::new().config(&yaml).run().await;
    let c = client();
    let get = |host: &'static str| c.get(node.proxy_url("/x/1")).header("host", host).send();
    assert_eq!(
        get("Tenant.Example.com:8080")
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "tenant"
    );
    assert_eq!(
        get("other.example.com")
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "shared"
    );
}

#[tokio::test]
async fn weighted_round_robin_honours_weights() {
    let hits = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    let mut ups = Vec::new();
    for i in 0..2 {
        let hits = hits.clone();
        ups.push(
            Upstream::from_fn(move |_| {
                hits[i].fetch_add(1, Ordering::Relaxed);
                async { text_response(200, "ok") }
            })
            .run()
            .await,
        );
    }
    let yaml = format!(
        "apis:\n  - name: w\n    base_path: /w\n    upstream:\n      targets: [\"{}\", {{ url: \"{}\", weight: 3 }}]\n",
        ups[0].url(),
        ups[1].url()
    );
    let node = TestNode::new().config(&yaml).run().await;
    let c = client();
    for _ in 0..40 {
        assert_eq!(
            c.get(node.proxy_url("/w")).send().await.unwrap().status(),
            200
        );
    }
    assert_eq!(hits[0].load(Ordering::Relaxed), 10);
    assert_eq!(hits[1].load(Ordering::Relaxed), 30);
}

#[tokio::test]
async fn upstream_connections_are_reused() {
    let up = Upstream::echo().run().await;
    let node = TestNode::new()
        .config(&apis(&[api("a", "/a", &[up.url()])]))
        .run()
        .await;
    let c = client();
    for _ in 0..20 {
        assert_eq!(
            c.get(node.proxy_url("/a")).send().await.unwrap().status(),
            200
        );
    }
    assert_eq!(up.connections(), 1);
}

#[tokio::test]
async fn an_idle_connection_the_upstream_closed_is_not_used_again() {
    // Each connection answers one request as if it would stay open (no
    // `Connection: close`), then closes: the idle connection in the pool
    // is dead by the next request, which must go out on a new one.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut sock, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = sock
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
            });
        }
    });
    let node = TestNode::new()
        .config(&apis(&[api("a", "/a", &[format!("http://{addr}")])]))
        .run()
        .await;
    let c = client();
    for _ in 0..5 {
        let resp = c.get(node.proxy_url("/a")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text().await.unwrap(), "ok");
        // Time for the close to reach the gateway.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(accepted.load(Ordering::Relaxed), 5);
}

#[tokio::test]
async fn request_bodies_stream_through() {
    let up = Upstream::echo().run().await;
    let node = TestNode::new()
        .config(&apis(&[api("a", "/a", &[up.url()])]))
        .run()
        .await;
    // 4 MiB sent in 64 KiB chunks with no length: chunked all the way.
    let chunks = futures_util::stream::iter(
        (0..64).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![7u8; 65536]))),
    );
    let resp = client()
        .post(node.proxy_url("/a/upload"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    let seen = echo_json(resp).await;
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.body_len, 4 << 20);
    assert_eq!(seen.header("transfer-encoding"), Some("chunked"));
}

#[tokio::test]
async fn response_bodies_stream_through() {
    // The upstream sends one chunk, then waits for the test to have seen it
    // before sending the rest: a buffering proxy would deadlock here.
    let (release_tx, release_rx) = tokio::sync::watch::channel(false);
    let up = Upstream::from_fn(move |_| {
        let mut release = release_rx.clone();
        async move {
            let stream = async_stream(move |tx| async move {
                let _ = tx.send(Bytes::from_static(b"first;")).await;
                let _ = release.wait_for(|r| *r).await;
                let _ = tx.send(Bytes::from_static(b"second")).await;
            });
            http::Response::new(stream)
        }
    })
    .run()
    .await;
    let node = TestNode::new()
        .config(&apis(&[api("s", "/s", &[up.url()])]))
        .run()
        .await;
    let resp = client().get(node.proxy_url("/s")).send().await.unwrap();
    let mut body = resp.bytes_stream();
    let first = tokio::time::timeout(std::time::Duration::from_secs(5), body.next())
        .await
        .expect("first chunk arrived before the upstream finished")
        .unwrap()
        .unwrap();
    assert_eq!(&first[..], b"first;");
    release_tx.send(true).unwrap();
    let mut rest = Vec::new();
    while let Some(chunk) = body.next().await {
        rest.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(rest, b"second");
}

/// A streaming body fed by `producer` through a channel.
fn async_stream<F, Fut>(producer: F) -> portico_test::TestBody
where
    F: FnOnce(tokio::sync::mpsc::Sender<Bytes>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    tokio::spawn(producer(tx));
    let stream = futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    });
    BodyExt::boxed(StreamBody::new(stream))
}

#[tokio::test]
async fn h2c_clients_are_served() {
    let up = Upstream::echo().run().await;
    let node = TestNode::new()
        .config(&apis(&[api("a", "/a", &[up.url()])]))
        .run()
        .await;
    let c = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let resp = c.get(node.proxy_url("/a/h2?x=1")).send().await.unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert!(resp.headers().contains_key("x-request-id"));
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["uri"], "/h2?x=1");
    assert_eq!(v["version"], "HTTP/1.1");
    // The h2 :authority becomes X-Forwarded-Host.
    let seen = RecordedRequest::from_json(&v);
    assert_eq!(
        seen.header("x-forwarded-host"),
        Some(node.proxy_addr().to_string().as_str())
    );
}

#[tokio::test]
async fn least_requests_steers_traffic_away_from_a_slow_target() {
    let hits = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    let slow_hits = hits.clone();
    let slow = Upstream::from_fn(move |_| {
        slow_hits[0].fetch_add(1, Ordering::Relaxed);
        async { text_response(200, "slow") }
    })
    .delay(std::time::Duration::from_millis(300))
    .run()
    .await;
    let fast_hits = hits.clone();
    let fast = Upstream::from_fn(move |_| {
        fast_hits[1].fetch_add(1, Ordering::Relaxed);
        async { text_response(200, "fast") }
    })
    .run()
    .await;
    let yaml = format!(
        "apis:\n  - name: l\n    base_path: /l\n    upstream:\n      targets: [\"{}\", \"{}\"]\n      balance: least_requests\n",
        slow.url(),
        fast.url()
    );
    let node = TestNode::new().config(&yaml).run().await;
    let url = node.proxy_url("/l");
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(1500);
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                let c = client();
                while std::time::Instant::now() < deadline {
                    assert_eq!(c.get(&url).send().await.unwrap().status(), 200);
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let (slow_n, fast_n) = (
        hits[0].load(Ordering::Relaxed),
        hits[1].load(Ordering::Relaxed),
    );
    assert!(fast_n > 5 * slow_n.max(1), "slow {slow_n}, fast {fast_n}");
}

#[tokio::test]
async fn consistent_hash_keeps_a_key_on_one_target() {
    let mut ups = Vec::new();
    for name in ["one", "two", "three"] {
        ups.push(
            Upstream::from_fn(move |_| async move { text_response(200, name) })
                .run()
                .await,
        );
    }
    let yaml = format!(
        "apis:\n  - name: h\n    base_path: /h\n    upstream:\n      targets: [\"{}\", \"{}\", \"{}\"]\n      balance: consistent_hash\n      hash_key: header:x-user\n",
        ups[0].url(),
        ups[1].url(),
        ups[2].url()
    );
    let node = TestNode::new().config(&yaml).run().await;
    let c = client();
    let mut used = std::collections::HashSet::new();
    for user in 0..30 {
        let mut answers = Vec::new();
        for _ in 0..3 {
            let resp = c
                .get(node.proxy_url("/h"))
                .header("x-user", format!("user-{user}"))
                .send()
                .await
                .unwrap();
            answers.push(resp.text().await.unwrap());
        }
        assert!(
            answers.windows(2).all(|w| w[0] == w[1]),
            "user-{user} moved: {answers:?}"
        );
        used.insert(answers[0].clone());
    }
    assert_eq!(used.len(), 3, "30 keys all landed on {used:?}");
}
