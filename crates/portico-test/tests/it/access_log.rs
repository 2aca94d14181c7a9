use portico_test::{TestNode, Upstream, assert_eventually};

use crate::support::{api, client};

#[tokio::test]
async fn one_json_line_per_exchange() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let up = Upstream::echo().run().await;
    let yaml = format!(
        "server:\n  access_log: \"{}\"\napis:\n{}",
        log.display(),
        api("orders", "/orders", &[up.url()])
    );
    let node = TestNode::new().config(&yaml).run().await;
    let c = client();
    let resp = c
        .get(node.proxy_url("/orders/7?q=1"))
        .header("x-request-id", "log-test-1")
        .send()
        .await
        .unwrap();
    let body_len = resp.bytes().await.unwrap().len() as u64;
    let resp = c.post(node.proxy_url("/nope")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let miss_id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();

    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    assert_eventually!(read().lines().count() == 2);
    let lines: Vec<serde_json::Value> = read()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let hit = lines
        .iter()
        .find(|l| l["request_id"] == "log-test-1")
        .expect("line for the hit");
    assert_eq!(hit["api"], "orders");
    assert_eq!(hit["method"], "GET");
    assert_eq!(hit["path"], "/orders/7");
    assert_eq!(hit["status"], 200);
    assert_eq!(hit["bytes"], body_len);
    assert_eq!(hit["client"], "127.0.0.1");
    assert_eq!(hit["upstream"], up.url());
    assert!(hit["duration_ms"].as_f64().unwrap() >= hit["upstream_ms"].as_f64().unwrap());
    let time = hit["time"].as_str().unwrap();
    assert_eq!(time.len(), 24, "{time}");
    assert!(time.ends_with('Z') && time.as_bytes()[10] == b'T', "{time}");

    let miss = lines
        .iter()
        .find(|l| l["request_id"] == miss_id.as_str())
        .expect("line for the miss");
    assert_eq!(miss["api"], serde_json::Value::Null);
    assert_eq!(miss["method"], "POST");
    assert_eq!(miss["status"], 404);
    assert_eq!(miss["upstream_ms"], serde_json::Value::Null);
    assert!(miss["bytes"].as_u64().unwrap() > 0);
}
