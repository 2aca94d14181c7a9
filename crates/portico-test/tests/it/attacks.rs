//! Attacks on the HTTP layer while a well-behaved client keeps calling:
//! slowloris, silent connections, request smuggling framings, oversized
//! heads. The attacks are refused or cut off, and the client gets its 200s.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use portico_test::{TestNode, Upstream, UpstreamHandle, text_response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{client, raw};

/// Reads until the server closes; `None` if it is still open at `deadline`.
async fn closed_within(stream: &mut TcpStream, deadline: Duration) -> Option<Vec<u8>> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let end = Instant::now() + deadline;
    loop {
        let left = end.checked_duration_since(Instant::now())?;
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(seen),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
            Err(_) => return None,
        }
    }
}

/// A node with `server.header_timeout` of `timeout` and one API, `/a`,
/// in front of `up`.
async fn node_with_header_timeout(timeout: &str, up: &UpstreamHandle) -> TestNode {
    let yaml = format!(
        "server:\n  header_timeout: {timeout}\napis:\n  - {{ name: a, base_path: /a, upstream: {{ targets: [\"{}\"] }} }}\n",
        up.url()
    );
    TestNode::new().config(&yaml).run().await
}

#[tokio::test]
async fn attacks_are_cut_off_while_a_client_keeps_being_served() {
    let requests = Arc::new(AtomicUsize::new(0));
    let seen = requests.clone();
    let up = Upstream::from_fn(move |req| {
        if req.uri().path().contains("smuggled") {
            seen.fetch_add(1, Ordering::SeqCst);
        }
        async { text_response(200, "ok") }
    })
    .run()
    .await;
    let node = node_with_header_timeout("500ms", &up).await;
    let addr = node.proxy_addr();

    // The well-behaved client, for as long as the attacks last.
    let url = node.proxy_url("/a");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_client = stop.clone();
    let good = tokio::spawn(async move {
        let c = client();
        let mut statuses = Vec::new();
        while !stop_client.load(Ordering::SeqCst) {
            statuses.push(
                c.get(&url)
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0),
            );
        }
        statuses
    });

    // Slowloris: a request head dribbled a byte at a time.
    let slow: Vec<_> = (0..20)
        .map(|_| {
            tokio::spawn(async move {
                let mut s = TcpStream::connect(addr).await.unwrap();
                s.write_all(b"GET /a HTTP/1.1\r\nHost: a\r\nX-Slow: ")
                    .await
                    .unwrap();
                let start = Instant::now();
                for _ in 0..40 {
                    if s.write_all(b"x").await.is_err() {
                        break;
                    }
                    let mut buf = [0u8; 1];
                    if let Ok(Ok(0) | Err(_)) =
                        tokio::time::timeout(Duration::from_millis(100), s.read(&mut buf)).await
                    {
                        break;
                    }
                }
                start.elapsed()
            })
        })
        .collect();
    // Connections that never send a byte.
    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }

    // Smuggling: both framings, a second request hidden behind the body.
    let (head, body) = raw(
        addr,
        b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /a/smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    .await;
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    assert!(
        !String::from_utf8_lossy(&body).contains("HTTP/1.1"),
        "a second response was sent"
    );
    // Two different lengths, and an oversized head.
    let (head, _) = raw(
        addr,
        b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    let mut huge = b"GET /a HTTP/1.1\r\nHost: a\r\n".to_vec();
    for i in 0..20_000 {
        huge.extend_from_slice(format!("X-Filler-{i}: {}\r\n", "y".repeat(20)).as_bytes());
    }
    huge.extend_from_slice(b"\r\n");
    let mut s = TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(&huge).await;
    let answer = closed_within(&mut s, Duration::from_secs(5))
        .await
        .expect("an oversized head was not refused");
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 431") || answer.is_empty(),
        "{answer}"
    );

    for task in slow {
        let held = task.await.unwrap();
        assert!(
            held < Duration::from_secs(3),
            "a slowloris connection was held {held:?}"
        );
    }
    for mut s in silent {
        assert!(
            closed_within(&mut s, Duration::from_secs(3))
                .await
                .is_some(),
            "a silent connection stayed open"
        );
    }
    stop.store(true, Ordering::SeqCst);
    let statuses = good.await.unwrap();
    assert!(
        statuses.len() >= 20,
        "the client made only {} requests",
        statuses.len()
    );
    assert!(
        statuses.iter().all(|&s| s == 200),
        "the client saw {statuses:?}"
    );
    assert_eq!(
        requests.load(Ordering::SeqCst),
        0,
        "the smuggled request reached the upstream"
    );
}

#[tokio::test]
async fn the_header_timeout_spares_slow_exchanges_and_closes_idle_connections() {
    let up = Upstream::from_fn(|_req| async {
        tokio::time::sleep(Duration::from_millis(800)).await;
        text_response(200, "late")
    })
    .run()
    .await;
    let node = node_with_header_timeout("300ms", &up).await;
    let mut s = TcpStream::connect(node.proxy_addr()).await.unwrap();
    s.write_all(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    // The exchange outlasts the header timeout and is answered all the same.
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !seen.windows(4).any(|w| w == b"late") {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("no answer within 5 s")
            .unwrap();
        assert!(
            n > 0,
            "closed before the answer: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(seen.starts_with(b"HTTP/1.1 200"), "{seen:?}");
    // Then nothing more is sent: the connection is closed about the
    // header timeout after the answer, not before.
    let idle = Instant::now();
    let rest = closed_within(&mut s, Duration::from_secs(3))
        .await
        .expect("an idle keep-alive connection stayed open");
    assert!(rest.is_empty(), "{rest:?}");
    let after = idle.elapsed();
    assert!(
        after >= Duration::from_millis(250),
        "closed {after:?} after the answer"
    );
}

/// A small body is read whole before the request goes upstream: a client
/// that stops half-way through it has the header timeout for the rest, as
/// for its head, and the upstream never hears of it.
#[tokio::test]
async fn a_body_that_stops_half_way_is_cut_off_by_the_header_timeout() {
    let requests = Arc::new(AtomicUsize::new(0));
    let seen = requests.clone();
    let up = Upstream::from_fn(move |_req| {
        seen.fetch_add(1, Ordering::SeqCst);
        async { text_response(200, "ok") }
    })
    .run()
    .await;
    let node = node_with_header_timeout("300ms", &up).await;
    let mut s = TcpStream::connect(node.proxy_addr()).await.unwrap();
    s.write_all(b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhello")
        .await
        .unwrap();
    let rest = closed_within(&mut s, Duration::from_secs(3))
        .await
        .expect("a connection with half a body stayed open");
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    assert_eq!(requests.load(Ordering::SeqCst), 0);
    // The same request sent whole is served.
    let (head, body) = raw(
        node.proxy_addr(),
        b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\nConnection: close\r\n\r\nhelloworld",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, b"ok");
    assert_eq!(requests.load(Ordering::SeqCst), 1);
}
