use portico_test::{TestNode, Upstream};

use crate::support::{api, apis, client};

#[tokio::test]
async fn health_and_readiness() {
    let node = TestNode::new().config("").run().await;
    let c = client();
    let resp = c.get(node.admin_url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let resp = c.get(node.admin_url("/readyz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "ready\n");
}

#[tokio::test]
async fn readiness_follows_the_snapshot() {
    let gateway = portico_gateway_for_test();
    assert!(!gateway.is_ready());
    gateway.install(std::sync::Arc::new(
        portico_config::compile("").unwrap().snapshot,
    ));
    assert!(gateway.is_ready());
}

fn portico_gateway_for_test() -> portico_gateway::Gateway {
    portico_gateway::Gateway::new(std::sync::Arc::new(portico_gateway::Metrics::new()), None)
}

#[tokio::test]
async fn metrics_count_requests_by_api_and_status_class() {
    let up = Upstream::echo().run().await;
    let node = TestNode::new()
        .config(&apis(&[api("orders", "/o", &[up.url()])]))
        .run()
        .await;
    let c = client();
    for _ in 0..3 {
        assert_eq!(
            c.get(node.proxy_url("/o/x")).send().await.unwrap().status(),
            200
        );
    }
    assert_eq!(
        c.get(node.proxy_url("/missing"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    // The exchange is recorded when its body ends, just after the client
    // has read it.
    let scrape = || async { c.get(node.admin_url("/metrics")).send().await.unwrap() };
    portico_test::assert_eventually!(
        scrape()
            .await
            .text()
            .await
            .unwrap()
            .contains("portico_requests_total{api=\"orders\",status_class=\"2xx\"} 3")
    );
    let resp = scrape().await;
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("portico_requests_total{api=\"_unmatched\",status_class=\"4xx\"} 1"),
        "{text}"
    );
    assert!(text.contains("# TYPE portico_request_duration_seconds histogram"));
    assert!(
        text.contains("portico_request_duration_seconds_count{api=\"orders\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("portico_upstream_duration_seconds_count{api=\"orders\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("portico_upstream_duration_seconds_bucket{api=\"orders\",le=\"+Inf\"} 3")
    );
    assert!(text.contains("portico_snapshot_apis 1"));
}
