use std::time::{Duration, Instant};

use portico_test::{TestNode, Upstream, assert_eventually};

use crate::support::{api, apis, client};

#[tokio::test]
async fn shutdown_stops_accepting_and_drains_in_flight_requests() {
    let up = Upstream::echo()
        .delay(Duration::from_millis(500))
        .run()
        .await;
    let node = TestNode::new()
        .config(&apis(&[api("a", "/a", &[up.url()])]))
        .run()
        .await;
    let addr = node.proxy_addr();
    let url = node.proxy_url("/a");
    let in_flight = tokio::spawn(async move { client().get(url).send().await.map(|r| r.status()) });
    assert_eventually!(up.connections() == 1);
    let shutdown = tokio::spawn(node.shutdown());
    assert_eventually!(tokio::net::TcpStream::connect(addr).await.is_err());
    assert_eq!(
        in_flight.await.unwrap().unwrap(),
        200,
        "the in-flight request was cut"
    );
    tokio::time::timeout(Duration::from_secs(5), shutdown)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn the_drain_is_bounded_by_shutdown_timeout() {
    let up = Upstream::stall().run().await;
    let yaml = format!(
        "server:\n  shutdown_timeout: 200ms\n{}",
        apis(&[api("a", "/a", &[up.url()])])
    );
    let node = TestNode::new().config(&yaml).run().await;
    let url = node.proxy_url("/a");
    let in_flight = tokio::spawn(async move { client().get(url).send().await });
    assert_eventually!(up.connections() == 1);
    let start = Instant::now();
    node.shutdown().await;
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert!(
        in_flight.await.unwrap().is_err(),
        "a stalled request outlived the drain"
    );
}

#[tokio::test]
async fn connections_over_the_limit_are_closed_at_once() {
    use tokio::io::AsyncReadExt;
    let up = Upstream::echo().run().await;
    let yaml = format!(
        "server:\n  max_connections: 2\n{}",
        apis(&[api("a", "/a", &[up.url()])])
    );
    let node = TestNode::new().config(&yaml).run().await;
    let first = tokio::net::TcpStream::connect(node.proxy_addr())
        .await
        .unwrap();
    let _second = tokio::net::TcpStream::connect(node.proxy_addr())
        .await
        .unwrap();
    // Give the accept loop time to take both before the third arrives.
    assert_eventually!({
        let mut third = tokio::net::TcpStream::connect(node.proxy_addr())
            .await
            .unwrap();
        let mut buf = [0u8; 1];
        matches!(
            tokio::time::timeout(Duration::from_millis(200), third.read(&mut buf)).await,
            Ok(Ok(0) | Err(_))
        )
    });
    let metrics = node.metrics_text().await;
    assert!(
        !metrics.contains("portico_connections_refused_total 0\n"),
        "{metrics}"
    );
    // A slot frees when a connection closes.
    drop(first);
    assert_eventually!(matches!(
        client()
            .get(node.proxy_url("/a"))
            .send()
            .await
            .map(|r| r.status().as_u16()),
        Ok(200)
    ));
}
