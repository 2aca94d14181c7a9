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
