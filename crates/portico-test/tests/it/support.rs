use std::time::Duration;

use portico_test::{TestNode, Upstream, UpstreamHandle, text_response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An upstream answering every request with `status`, `body` and
/// `fields` (appended in order, so a name may come more than once).
pub async fn answering_with(
    status: u16,
    body: &'static str,
    fields: &'static [(&'static str, &'static str)],
) -> UpstreamHandle {
    Upstream::from_fn(move |_| async move {
        let mut resp = text_response(status, body);
        for (name, value) in fields {
            resp.headers_mut().append(*name, value.parse().unwrap());
        }
        resp
    })
    .run()
    .await
}

/// A node with one API, `a` at `/a`, in front of `up`.
pub async fn one_api_before(up: &UpstreamHandle) -> TestNode {
    TestNode::new()
        .config(&apis(&[api("a", "/a", &[up.url()])]))
        .run()
        .await
}

/// One API `name` at `base_path` in front of `targets` (YAML flow items).
pub fn api(name: &str, base_path: &str, targets: &[String]) -> String {
    let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
    format!(
        "  - name: {name}\n    base_path: {base_path}\n    upstream:\n      targets: [{}]\n",
        targets.join(", ")
    )
}

pub fn apis(entries: &[String]) -> String {
    format!("apis:\n{}", entries.concat())
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Sends raw bytes and reads until the server closes; returns (head, body).
pub async fn raw(addr: std::net::SocketAddr, request: &[u8]) -> (String, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buf))
        .await
        .expect("server closed the connection")
        .ok();
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    (head, buf[split + 4..].to_vec())
}

/// Asserts a problem+json answer and returns its document.
pub async fn problem(resp: reqwest::Response, status: u16, code: &str) -> serde_json::Value {
    assert_eq!(resp.status().as_u16(), status);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let doc: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(doc["type"], format!("https://portico.dev/problems/{code}"));
    assert_eq!(doc["status"], status);
    assert!(doc["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(doc["detail"].as_str().is_some_and(|t| !t.is_empty()));
    assert_eq!(doc["request_id"], id.as_str());
    doc
}
