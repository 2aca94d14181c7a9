//! Limits: rate_limit, spike_arrest, quota, concurrency and product limits,
//! each with the in-process counters and with Redis; exactness across two
//! nodes sharing Redis; a Redis outage under each failure mode; the
//! RateLimit fields and the 429 document.
//!
//! Redis comes from `PORTICO_TEST_REDIS` (default `redis://127.0.0.1:6379`).
//! When it is unreachable these tests fail and say to run `scripts/test.sh`,
//! which starts a throwaway server. The outage tests start their own
//! `redis-server` on a free port.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use portico_test::{TestNode, Upstream, UpstreamHandle, assert_eventually, text_response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{answering_with, client};

const IANA_QUOTA_EXCEEDED: &str = "https://iana.org/assignments/http-problem-types#quota-exceeded";

/// The shared Redis of the test run, as `host:port`; fails the test with
/// the way out when it is not there.
async fn shared_redis() -> String {
    let url =
        std::env::var("PORTICO_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let addr = url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    match command(&addr, &["PING"]).await {
        Ok(reply) if reply.starts_with("+PONG") => url,
        other => panic!(
            "Redis is not reachable at {url} ({other:?}). The limit tests need a real Redis: run \
             `scripts/test.sh`, which starts a throwaway redis-server, or set PORTICO_TEST_REDIS."
        ),
    }
}

/// One RESP command over a fresh connection; the raw reply.
async fn command(addr: &str, args: &[&str]) -> std::io::Result<String> {
    let mut s = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(req.as_bytes()).await?;
    let mut buf = vec![0; 4096];
    let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// A key prefix no other test (or earlier run) uses.
fn unique_prefix(test: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "portico-test:{test}:{nanos}:{}:",
        N.fetch_add(1, Ordering::Relaxed)
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Local,
    Redis,
}

/// The `redis:` section for `backend` (empty for in-process counters).
async fn redis_section(backend: Backend, test: &str, extra: &str) -> String {
    match backend {
        Backend::Local => String::new(),
        Backend::Redis => format!(
            "redis: {{ url: \"{}\", key_prefix: \"{}\", timeout: 2s{extra} }}\n",
            shared_redis().await,
            unique_prefix(test)
        ),
    }
}

/// A keyed API `limited` at `/l` with `policies` after `api_key`, a
/// product `p` (with `product_limits`), and apps `one` and `two`.
fn config(head: &str, upstream: &str, policies: &[&str], product_limits: &str) -> String {
    let mut y = format!(
        "{head}apis:\n  - name: limited\n    base_path: /l\n    upstream: {{ targets: [\"{upstream}\"] }}\n    policies:\n      - api_key: {{}}\n"
    );
    for p in policies {
        y.push_str(&format!("      - {p}\n"));
    }
    y.push_str(&format!(
        "products:\n  - {{ name: p, apis: [limited]{product_limits} }}\ndevelopers:\n  - {{ email: dev@example.com, name: Dev }}\napps:\n  - {{ name: one, developer: dev@example.com, products: [p], api_keys: [\"key-one-0001\"] }}\n  - {{ name: two, developer: dev@example.com, products: [p], api_keys: [\"key-two-0001\"] }}\n"
    ));
    y
}

async fn get(node: &TestNode, key: &str) -> reqwest::Response {
    client()
        .get(node.proxy_url("/l/x"))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap()
}

/// A structured-field list of the RateLimit fields: name → parameters.
fn sf_list(resp: &reqwest::Response, field: &str) -> HashMap<String, HashMap<String, u64>> {
    let value = resp
        .headers()
        .get(field)
        .unwrap_or_else(|| panic!("no {field} field: {:?}", resp.headers()))
        .to_str()
        .unwrap();
    value
        .split(',')
        .map(|member| {
            let mut parts = member.trim().split(';');
            let name = parts.next().unwrap();
            assert!(
                name.len() >= 2 && name.starts_with('"') && name.ends_with('"'),
                "{field}: the policy is an sf-string: {value}"
            );
            let params = parts
                .map(|p| {
                    let (k, v) = p.split_once('=').expect("key=value parameter");
                    (k.to_owned(), v.parse::<u64>().expect("sf-integer"))
                })
                .collect();
            (name.trim_matches('"').to_owned(), params)
        })
        .collect()
}

/// Checks a 429: the IANA type, `violated-policies`, and `Retry-After` no
/// earlier than the `t` of the violated limits. Returns `violated-policies`.
async fn assert_limited(resp: reqwest::Response) -> Vec<String> {
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let retry_after: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in whole seconds");
    let state = sf_list(&resp, "ratelimit");
    let doc: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(doc["type"], IANA_QUOTA_EXCEEDED);
    assert_eq!(doc["status"], 429);
    let violated: Vec<String> = doc["violated-policies"]
        .as_array()
        .expect("violated-policies is an array")
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert!(!violated.is_empty());
    for name in &violated {
        let params = &state[name];
        assert_eq!(params["r"], 0, "{name} has no room");
        if let Some(t) = params.get("t") {
            assert!(retry_after >= *t, "Retry-After {retry_after} < t {t}");
        }
    }
    assert!(retry_after >= 1);
    violated
}

async fn rate_limit_counts_per_app(backend: Backend) {
    let up = Upstream::echo().run().await;
    let head = redis_section(backend, "rate_limit", "").await;
    let node = TestNode::new()
        .config(&config(
            &head,
            &up.url(),
            &["rate_limit: { limit: 3, window: 1m, by: app }"],
            "",
        ))
        .run()
        .await;
    for left in [2, 1, 0] {
        let resp = get(&node, "key-one-0001").await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["ratelimit-policy"], "\"app\";q=3;w=60");
        let state = sf_list(&resp, "ratelimit");
        assert_eq!(state["app"]["r"], left);
        assert!((59..=60).contains(&state["app"]["t"]), "{state:?}");
    }
    let resp = get(&node, "key-one-0001").await;
    assert_eq!(resp.headers()["ratelimit-policy"], "\"app\";q=3;w=60");
    assert_eq!(assert_limited(resp).await, ["app"]);
    assert_eq!(
        up.requests(),
        3,
        "a refused request never reaches the upstream"
    );
    // Another app has its own counter.
    assert_eq!(get(&node, "key-two-0001").await.status(), 200);

    let metrics = node.metrics_text().await;
    assert!(
        metrics.contains("portico_limit_decisions_total{api=\"limited\",policy=\"rate_limit\",outcome=\"limited\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("portico_limit_decisions_total{api=\"limited\",policy=\"rate_limit\",outcome=\"allowed\"} 4"),
        "{metrics}"
    );
    let backend_name = if backend == Backend::Local {
        "local"
    } else {
        "redis"
    };
    assert!(
        metrics.contains(&format!(
            "portico_limit_backend_info{{backend=\"{backend_name}\"}} 1"
        )),
        "{metrics}"
    );
}

/// An upstream's own RateLimit fields give way to the gateway's on a
/// request under a limit; its other fields pass.
#[tokio::test]
async fn upstream_ratelimit_fields_give_way_to_the_gateways() {
    let up = answering_with(
        200,
        "ok",
        &[
            ("ratelimit", "\"up\";r=1;t=1"),
            ("ratelimit-policy", "\"up\";q=1;w=1"),
            ("x-up", "1"),
        ],
    )
    .await;
    let node = TestNode::new()
        .config(&config(
            "",
            &up.url(),
            &["rate_limit: { limit: 3, window: 1m, by: app }"],
            "",
        ))
        .run()
        .await;
    let resp = get(&node, "key-one-0001").await;
    assert_eq!(resp.status(), 200);
    let all = |name: &str| -> Vec<String> {
        resp.headers()
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(all("ratelimit-policy"), ["\"app\";q=3;w=60"]);
    let state = all("ratelimit");
    assert_eq!(state.len(), 1, "{state:?}");
    assert!(state[0].starts_with("\"app\";r=2;"), "{state:?}");
    assert_eq!(all("x-up"), ["1"]);
}

#[tokio::test]
async fn rate_limit_local() {
    rate_limit_counts_per_app(Backend::Local).await;
}

#[tokio::test]
async fn rate_limit_redis() {
    rate_limit_counts_per_app(Backend::Redis).await;
}

async fn several_limits_report_every_member(backend: Backend) {
    let up = Upstream::echo().run().await;
    let head = redis_section(backend, "several", "").await;
    let node = TestNode::new()
        .config(&config(
            &head,
            &up.url(),
            &[
                "rate_limit: { limit: 5, window: 1m, by: app }",
                "rate_limit: { limit: 2, window: 1h, by: ip, name: per-ip }",
            ],
            ", rate_limit: { limit: 10, window: 1s }",
        ))
        .run()
        .await;
    let resp = get(&node, "key-one-0001").await;
    assert_eq!(resp.status(), 200);
    let policy = sf_list(&resp, "ratelimit-policy");
    assert_eq!(policy.len(), 3, "{policy:?}");
    assert_eq!(policy["per-ip"]["q"], 2);
    assert_eq!(policy["per-ip"]["w"], 3600);
    assert_eq!(policy["p.rate_limit"]["w"], 1);
    let state = sf_list(&resp, "ratelimit");
    assert_eq!(state["app"]["r"], 4);
    assert_eq!(state["per-ip"]["r"], 1);
    assert_eq!(get(&node, "key-two-0001").await.status(), 200);
    // The address's limit is spent, whichever app asks.
    let resp = get(&node, "key-one-0001").await;
    assert_eq!(assert_limited(resp).await, ["per-ip"]);
    // The refused request counted against nothing.
    let resp = get(&node, "key-one-0001").await;
    assert_eq!(sf_list(&resp, "ratelimit")["app"]["r"], 4);
}

#[tokio::test]
async fn several_limits_local() {
    several_limits_report_every_member(Backend::Local).await;
}

#[tokio::test]
async fn several_limits_redis() {
    several_limits_report_every_member(Backend::Redis).await;
}

async fn spike_arrest_spaces_requests(backend: Backend) {
    let up = Upstream::echo().run().await;
    let head = redis_section(backend, "spike", "").await;
    let node = TestNode::new()
        .config(&config(
            &head,
            &up.url(),
            &["spike_arrest: { rate: 5/s }"],
            "",
        ))
        .run()
        .await;
    let first = get(&node, "key-one-0001").await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["ratelimit-policy"], "\"spike\";q=5;w=1");
    // 200 ms apart: the next one right away is refused, by any app.
    let resp = get(&node, "key-two-0001").await;
    assert_eq!(assert_limited(resp).await, ["spike"]);
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(get(&node, "key-two-0001").await.status(), 200);
    assert_eq!(up.requests(), 2);

    // With a burst of 3, three pass at once, the fourth waits.
    let head = redis_section(backend, "spike-burst", "").await;
    let node = TestNode::new()
        .config(&config(
            &head,
            &up.url(),
            &["spike_arrest: { rate: 2/s, burst: 3, by: app }"],
            "",
        ))
        .run()
        .await;
    for _ in 0..3 {
        assert_eq!(get(&node, "key-one-0001").await.status(), 200);
    }
    assert_eq!(get(&node, "key-one-0001").await.status(), 429);
    assert_eq!(get(&node, "key-two-0001").await.status(), 200);
}

#[tokio::test]
async fn spike_arrest_local() {
    spike_arrest_spaces_requests(Backend::Local).await;
}

#[tokio::test]
async fn spike_arrest_redis() {
    spike_arrest_spaces_requests(Backend::Redis).await;
}

async fn quotas_per_app_and_product(backend: Backend) {
    let up = Upstream::echo().run().await;
    let head = redis_section(backend, "quota", "").await;
    let node = TestNode::new()
        .config(&config(
            &head,
            &up.url(),
            &["quota: { limit: 2, period: day }"],
            ", quota: { limit: 3, window: 1h }",
        ))
        .run()
        .await;
    let resp = get(&node, "key-one-0001").await;
    assert_eq!(resp.status(), 200);
    let policy = sf_list(&resp, "ratelimit-policy");
    assert_eq!(policy["quota"]["q"], 2);
    assert_eq!(policy["quota"]["w"], 86_400);
    assert_eq!(policy["p.quota"]["w"], 3600);
    let state = sf_list(&resp, "ratelimit");
    assert!(state["quota"]["t"] <= 86_400 && state["quota"]["t"] >= 1);
    assert_eq!(get(&node, "key-one-0001").await.status(), 200);
    let resp = get(&node, "key-one-0001").await;
    assert_eq!(assert_limited(resp).await, ["quota"]);
    // App two: the policy's quota is per app, the product's too.
    assert_eq!(get(&node, "key-two-0001").await.status(), 200);
}

#[tokio::test]
async fn quota_local() {
    quotas_per_app_and_product(Backend::Local).await;
}

#[tokio::test]
async fn quota_redis() {
    quotas_per_app_and_product(Backend::Redis).await;
}

async fn product_rate_limit_applies_to_subscribers(backend: Backend) {
    let up = Upstream::echo().run().await;
    let head = redis_section(backend, "product", "").await;
    let node = TestNode::new()
        .config(&config(
            &head,
            &up.url(),
            &[],
            ", rate_limit: { limit: 2, window: 1m }",
        ))
        .run()
        .await;
    for _ in 0..2 {
        assert_eq!(get(&node, "key-one-0001").await.status(), 200);
    }
    let resp = get(&node, "key-one-0001").await;
    assert_eq!(assert_limited(resp).await, ["p.rate_limit"]);
    assert_eq!(get(&node, "key-two-0001").await.status(), 200);
}

#[tokio::test]
async fn product_rate_limit_local() {
    product_rate_limit_applies_to_subscribers(Backend::Local).await;
}

#[tokio::test]
async fn product_rate_limit_redis() {
    product_rate_limit_applies_to_subscribers(Backend::Redis).await;
}

/// An upstream whose `/hold` answers send a first chunk at once and the
/// rest when `release` is set.
async fn holding_upstream(release: tokio::sync::watch::Receiver<bool>) -> UpstreamHandle {
    Upstream::from_fn(move |req| {
        let mut release = release.clone();
        async move {
            if !req.uri().path().ends_with("/hold") {
                return text_response(200, "quick");
            }
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(2);
            tokio::spawn(async move {
                let _ = tx.send(Bytes::from_static(b"first")).await;
                let _ = release.wait_for(|r| *r).await;
                let _ = tx.send(Bytes::from_static(b"second")).await;
            });
            let stream = futures_util::stream::poll_fn(move |cx| {
                rx.poll_recv(cx)
                    .map(|o| o.map(|b| Ok(hyper::body::Frame::data(b))))
            });
            http::Response::new(http_body_util::BodyExt::boxed(
                http_body_util::StreamBody::new(stream),
            ))
        }
    })
    .run()
    .await
}

async fn concurrency_is_released_when_the_body_ends(backend: Backend) {
    let (release, watch) = tokio::sync::watch::channel(false);
    let up = holding_upstream(watch).await;
    let head = redis_section(backend, "concurrency", "").await;
    let node = TestNode::new()
        .config(&config(
            &head,
            &up.url(),
            &["concurrency: { limit: 1 }"],
            "",
        ))
        .run()
        .await;
    let c = client();
    let hold = || {
        c.get(node.proxy_url("/l/hold"))
            .header("x-api-key", "key-one-0001")
            .send()
    };
    // One exchange in flight (its head arrived, its body has not ended).
    let mut held = hold().await.unwrap();
    assert_eq!(held.status(), 200);
    assert_eq!(
        sf_list(&held, "ratelimit")["concurrency"]["r"],
        0,
        "one of one slot in use"
    );
    assert_eq!(held.headers()["ratelimit-policy"], "\"concurrency\";q=1");
    assert_eq!(held.chunk().await.unwrap().unwrap(), "first");
    let refused = get(&node, "key-two-0001").await;
    assert_eq!(assert_limited(refused).await, ["concurrency"]);
    // The body ends: the slot comes back.
    release.send(true).unwrap();
    assert_eq!(held.bytes().await.unwrap(), "second");
    assert_eventually!(get(&node, "key-two-0001").await.status() == 200);

    // A client that goes away mid-body gives its slot back too.
    release.send(false).unwrap();
    let mut aborted = hold().await.unwrap();
    assert_eq!(aborted.chunk().await.unwrap().unwrap(), "first");
    assert_eq!(get(&node, "key-two-0001").await.status(), 429);
    drop(aborted);
    assert_eventually!(get(&node, "key-two-0001").await.status() == 200);
    release.send(true).unwrap();
}

#[tokio::test]
async fn concurrency_local() {
    concurrency_is_released_when_the_body_ends(Backend::Local).await;
}

#[tokio::test]
async fn concurrency_redis() {
    concurrency_is_released_when_the_body_ends(Backend::Redis).await;
}

/// Two nodes, one Redis, 100 per minute, 8 clients on both nodes at once:
/// exactly 100 are admitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exact_across_nodes_sharing_redis() {
    let up = Upstream::echo().run().await;
    let head = redis_section(Backend::Redis, "exact", "").await;
    let yaml = config(
        &head,
        &up.url(),
        &["rate_limit: { limit: 100, window: 1m, by: app }"],
        "",
    );
    let a = TestNode::new().config(&yaml).run().await;
    let b = TestNode::new().config(&yaml).run().await;
    let urls = [a.proxy_url("/l/x"), b.proxy_url("/l/x")];
    let mut tasks = Vec::new();
    for client_no in 0..8 {
        let urls = urls.clone();
        tasks.push(tokio::spawn(async move {
            let c = client();
            let mut counts = HashMap::<u16, u32>::new();
            for i in 0..40 {
                let url = &urls[(client_no + i) % 2];
                let resp = c
                    .get(url)
                    .header("x-api-key", "key-one-0001")
                    .send()
                    .await
                    .unwrap();
                *counts.entry(resp.status().as_u16()).or_default() += 1;
            }
            counts
        }));
    }
    let mut total = HashMap::<u16, u32>::new();
    for t in tasks {
        for (status, n) in t.await.unwrap() {
            *total.entry(status).or_default() += n;
        }
    }
    assert_eq!(total.get(&200), Some(&100), "{total:?}");
    assert_eq!(total.get(&429), Some(&220), "{total:?}");
    assert_eq!(total.len(), 2, "{total:?}");
    assert_eq!(up.requests(), 100);
}

/// A `redis-server` of the test's own, to stop and start again.
struct OwnRedis {
    port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut r = OwnRedis { port, child: None };
        r.restart().await;
        r
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    async fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on PATH (scripts/test.sh installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if command(&self.addr(), &["PING"])
                .await
                .is_ok_and(|r| r.starts_with("+PONG"))
            {
                return;
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    async fn keys(&self) -> u64 {
        let reply = command(&self.addr(), &["DBSIZE"]).await.unwrap_or_default();
        reply
            .trim()
            .trim_start_matches(':')
            .parse()
            .unwrap_or_default()
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn status(node: &TestNode) -> u16 {
    get(node, "key-one-0001").await.status().as_u16()
}

async fn outage(failure: &str) {
    let mut redis = OwnRedis::start().await;
    let up = Upstream::echo().run().await;
    let head = format!(
        "redis: {{ url: \"redis://{}\", failure: {failure}, timeout: 300ms }}\n",
        redis.addr()
    );
    let node = TestNode::new()
        .config(&config(
            &head,
            &up.url(),
            &["rate_limit: { limit: 1000, window: 1m, by: app }"],
            "",
        ))
        .run()
        .await;
    for _ in 0..5 {
        assert_eq!(status(&node).await, 200);
    }
    assert_eq!(redis.keys().await, 1, "the count is in Redis");
    assert!(
        node.metrics_text()
            .await
            .contains("portico_limit_redis_up 1")
    );

    redis.stop();
    let during = status(&node).await;
    let expected = if failure == "deny" { 503 } else { 200 };
    assert_eq!(during, expected);
    for _ in 0..10 {
        let resp = get(&node, "key-one-0001").await;
        assert_eq!(resp.status().as_u16(), expected);
        if failure == "local" {
            let state = sf_list(&resp, "ratelimit");
            assert!(state["app"]["r"] < 1000, "counted on this node: {state:?}");
        } else if failure == "deny" {
            let doc: serde_json::Value = resp.json().await.unwrap();
            assert_eq!(
                doc["type"],
                "https://portico.dev/problems/limits-unavailable"
            );
        }
    }
    let text = node.metrics_text().await;
    assert!(text.contains("portico_limit_redis_up 0"), "{text}");
    // Every decision is counted, whatever decided it.
    let outcome = match failure {
        "deny" => "unavailable",
        "allow" => "unmetered",
        _ => "allowed",
    };
    assert!(
        text.contains(&format!(
            "portico_limit_decisions_total{{api=\"limited\",policy=\"rate_limit\",outcome=\"{outcome}\"}}"
        )),
        "{text}"
    );
    assert!(
        !text.contains(&format!(
            "portico_limit_fallbacks_total{{mode=\"{failure}\"}} 0"
        )),
        "{text}"
    );
    assert!(
        !text.contains("portico_limit_redis_errors_total 0"),
        "{text}"
    );

    // Redis is back on the same port (empty): the node counts there again.
    redis.restart().await;
    assert_eventually!(
        status(&node).await == 200 && redis.keys().await == 1,
        timeout = Duration::from_secs(15),
        "the node never went back to Redis"
    );
    assert_eventually!(
        node.metrics_text()
            .await
            .contains("portico_limit_redis_up 1")
    );
    let resp = get(&node, "key-one-0001").await;
    let r = sf_list(&resp, "ratelimit")["app"]["r"];
    assert!(r >= 990, "counted in the new, empty Redis: r={r}");
}

#[tokio::test]
async fn redis_outage_falls_back_to_local_counters() {
    outage("local").await;
}

#[tokio::test]
async fn redis_outage_denies_when_configured() {
    outage("deny").await;
}

#[tokio::test]
async fn redis_outage_allows_when_configured() {
    outage("allow").await;
}

/// Quota periods survive a restart: in the data directory for in-process
/// counters, in Redis for shared ones.
async fn quota_survives_restart(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let up = Upstream::echo().run().await;
    let head = format!(
        "storage: \"sqlite://{}/portico.db\"\n{}",
        dir.path().display(),
        redis_section(backend, "restart", "").await
    );
    let yaml = config(
        &head,
        &up.url(),
        &["quota: { limit: 3, period: month }"],
        "",
    );
    let node = TestNode::new().config(&yaml).run().await;
    assert_eq!(status(&node).await, 200);
    assert_eq!(status(&node).await, 200);
    node.shutdown().await;
    if backend == Backend::Local {
        assert!(dir.path().join("quotas.json").exists());
    }
    let node = TestNode::new().config(&yaml).run().await;
    let resp = get(&node, "key-one-0001").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(sf_list(&resp, "ratelimit")["quota"]["r"], 0);
    assert_eq!(
        assert_limited(get(&node, "key-one-0001").await).await,
        ["quota"]
    );
}

#[tokio::test]
async fn quota_survives_restart_local() {
    quota_survives_restart(Backend::Local).await;
}

#[tokio::test]
async fn quota_survives_restart_redis() {
    quota_survives_restart(Backend::Redis).await;
}

/// Limits keyed by address count each client, and the gauge of keys held
/// in memory follows them.
#[tokio::test]
async fn limits_by_ip_count_in_memory() {
    let up = Upstream::echo().run().await;
    let yaml = format!(
        "apis:\n  - name: open\n    base_path: /o\n    upstream: {{ targets: [\"{}\"] }}\n    policies:\n      - rate_limit: {{ limit: 1, window: 1s, by: ip }}\n",
        up.url()
    );
    let node = TestNode::new().config(&yaml).run().await;
    let c = client();
    assert_eq!(
        c.get(node.proxy_url("/o/x")).send().await.unwrap().status(),
        200
    );
    let resp = c.get(node.proxy_url("/o/x")).send().await.unwrap();
    assert_eq!(resp.headers()["ratelimit-policy"], "\"ip\";q=1;w=1");
    assert_eq!(assert_limited(resp).await, ["ip"]);
    assert!(
        node.metrics_text()
            .await
            .contains("portico_limit_local_keys 1")
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        c.get(node.proxy_url("/o/x")).send().await.unwrap().status(),
        200
    );
}

/// `by: ip` counts the client the trusted proxies report in
/// `X-Forwarded-For`; without `trusted_proxies` the header is ignored, so
/// a client cannot pick a fresh counter by sending it.
#[tokio::test]
async fn by_ip_believes_forwarded_for_only_from_trusted_proxies() {
    let up = Upstream::echo().run().await;
    let yaml = |trusted: &str| {
        format!(
            "apis:\n  - name: a\n    base_path: /a\n    upstream: {{ targets: [\"{}\"] }}\n    policies:\n      - rate_limit: {{ limit: 1, window: 1m, by: ip{trusted} }}\n",
            up.url()
        )
    };
    let call = |node: &TestNode, xff: &'static str| {
        let url = node.proxy_url("/a");
        async move {
            client()
                .get(url)
                .header("x-forwarded-for", xff)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };

    // The test client is 127.0.0.1, trusted here: each forwarded address
    // has its own counter, and a spoofed entry left of it changes nothing.
    let node = TestNode::new()
        .config(&yaml(", trusted_proxies: [127.0.0.0/8]"))
        .run()
        .await;
    assert_eq!(call(&node, "203.0.113.1").await, 200);
    assert_eq!(call(&node, "203.0.113.1").await, 429);
    assert_eq!(call(&node, "198.51.100.7, 203.0.113.1").await, 429);
    assert_eq!(call(&node, "203.0.113.2").await, 200);

    // Not trusted: everyone behind 127.0.0.1 is one client.
    let node = TestNode::new().config(&yaml("")).run().await;
    assert_eq!(call(&node, "203.0.113.1").await, 200);
    assert_eq!(call(&node, "203.0.113.2").await, 429);

    // trusted_proxies with another `by` is a configuration error.
    let err = TestNode::new()
        .config(&yaml(", trusted_proxies: [127.0.0.0/8]").replace("by: ip", "by: api"))
        .try_run()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("trusted_proxies"), "{err}");
}
