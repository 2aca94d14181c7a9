//! The response cache (`cache` policy): hits and misses with `Age` and
//! `Cache-Status`, what is never stored, `Vary`, query normalisation, app
//! isolation, expiry, single flight, purge, the size limit, both backends
//! (Redis from `PORTICO_TEST_REDIS`, default `redis://127.0.0.1:6379`,
//! with a key prefix per test), and Redis down.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use portico_test::{ADMIN_TOKEN, TestNode, Upstream, UpstreamHandle, assert_eventually};

use crate::support::client;

/// An upstream whose answer the path chooses:
/// `/cc/<value>` sends `Cache-Control: <value>` (`_` for spaces),
/// `/cookie` a `Set-Cookie`, `/vary` varies on `accept-language` and
/// answers it, `/app` answers the `x-portico-app` it got, `/age` sends
/// `Age: 5`, `/big/<n>` a body of n bytes, `/chunked/<n>` one of n bytes
/// in 1 KiB chunks without a length, `/status/<n>` that status. Every
/// body but those starts with a serial number, so a test can tell a
/// stored answer from a fresh one.
async fn origin() -> UpstreamHandle {
    let serial = Arc::new(AtomicU64::new(0));
    Upstream::from_fn(move |req| {
        let n = serial.fetch_add(1, Ordering::SeqCst);
        async move {
            let path = req.uri().path().to_owned();
            let rest = path.trim_start_matches('/');
            let (kind, arg) = rest.split_once('/').unwrap_or((rest, ""));
            let header = |name: &str| {
                req.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-")
                    .to_owned()
            };
            let mut builder = http::Response::builder().status(200);
            let body: Bytes = match kind {
                "cc" => {
                    builder = builder.header("cache-control", arg.replace('_', " "));
                    format!("{n}").into()
                }
                "cookie" => {
                    builder = builder.header("set-cookie", "session=1");
                    format!("{n}").into()
                }
                "vary" => {
                    builder = builder.header("vary", "Accept-Language");
                    format!("{n} {}", header("accept-language")).into()
                }
                "app" => format!("{n} {}", header("x-portico-app")).into(),
                "age" => {
                    builder = builder
                        .header("age", "5")
                        .header("cache-control", "max-age=60");
                    format!("{n}").into()
                }
                "big" => vec![b'x'; arg.parse().unwrap()].into(),
                "status" => {
                    builder = builder.status(arg.parse::<u16>().unwrap());
                    format!("{n}").into()
                }
                "chunked" => {
                    let size: usize = arg.parse().unwrap();
                    let chunks: Vec<Result<hyper::body::Frame<Bytes>, std::convert::Infallible>> =
                        (0..size / 1024)
                            .map(|_| Ok(hyper::body::Frame::data(Bytes::from(vec![b'y'; 1024]))))
                            .collect();
                    let stream = futures_util_stream(chunks);
                    return builder.body(stream).unwrap();
                }
                _ => {
                    builder = builder.header("etag", "\"v1\"");
                    format!("{n} {}", req.uri()).into()
                }
            };
            builder
                .body(
                    http_body_util::Full::new(body)
                        .map_err(|e| match e {})
                        .boxed(),
                )
                .unwrap()
        }
    })
    .run()
    .await
}

/// A body of `frames` with no declared length (sent chunked).
fn futures_util_stream(
    frames: Vec<Result<hyper::body::Frame<Bytes>, std::convert::Infallible>>,
) -> portico_test::TestBody {
    http_body_util::StreamBody::new(futures_util::stream::iter(frames))
        .map_err(|e| match e {})
        .boxed()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Memory,
    Redis,
}

/// The shared Redis of the test run; fails with the way out when absent.
async fn shared_redis() -> String {
    let url =
        std::env::var("PORTICO_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let addr = url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let reachable = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect(&addr),
    )
    .await
    .is_ok_and(|c| c.is_ok());
    assert!(
        reachable,
        "Redis is not reachable at {url}. The cache tests need a real Redis: run \
         `scripts/test.sh`, which starts a throwaway redis-server, or set PORTICO_TEST_REDIS."
    );
    url
}

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

async fn redis_section(backend: Backend, prefix: &str) -> String {
    match backend {
        Backend::Memory => String::new(),
        Backend::Redis => format!(
            "redis: {{ url: \"{}\", key_prefix: \"{prefix}\", timeout: 2s }}\n",
            shared_redis().await
        ),
    }
}

/// One API `c` at `/c` with `cache: {settings}` (and `api_key` first when
/// `keyed`), apps `one` and `two`.
fn config(head: &str, upstream: &str, settings: &str, keyed: bool) -> String {
    let mut y = format!(
        "{head}apis:\n  - name: c\n    base_path: /c\n    upstream: {{ targets: [\"{upstream}\"] }}\n    policies:\n"
    );
    if keyed {
        y.push_str("      - api_key: {}\n");
    }
    y.push_str(&format!("      - cache: {{ {settings} }}\n"));
    if keyed {
        y.push_str("products:\n  - { name: p, apis: [c] }\ndevelopers:\n  - { email: dev@example.com, name: Dev }\napps:\n  - { name: one, developer: dev@example.com, products: [p], api_keys: [\"key-one-0001\"] }\n  - { name: two, developer: dev@example.com, products: [p], api_keys: [\"key-two-0001\"] }\n");
    }
    y
}

async fn node(backend: Backend, test: &str, up: &UpstreamHandle, settings: &str) -> TestNode {
    let head = redis_section(backend, &unique_prefix(test)).await;
    TestNode::new()
        .config(&config(&head, &up.url(), settings, false))
        .run()
        .await
}

struct Answer {
    status: u16,
    cache_status: String,
    age: Option<u64>,
    body: String,
    headers: reqwest::header::HeaderMap,
}

impl Answer {
    fn is_hit(&self) -> bool {
        self.cache_status.contains("; hit")
    }
}

async fn send(req: reqwest::RequestBuilder) -> Answer {
    let resp = req.send().await.unwrap();
    let headers = resp.headers().clone();
    Answer {
        status: resp.status().as_u16(),
        cache_status: headers
            .get("cache-status")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default(),
        age: headers
            .get("age")
            .map(|v| v.to_str().unwrap().parse().unwrap()),
        body: resp.text().await.unwrap(),
        headers,
    }
}

async fn get(node: &TestNode, path: &str) -> Answer {
    send(client().get(node.proxy_url(path))).await
}

/// Asks until an answer is a hit (a store lands asynchronously); returns it.
async fn eventual_hit(node: &TestNode, path: &str) -> Answer {
    for _ in 0..100 {
        let a = get(node, path).await;
        if a.is_hit() {
            return a;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{path} never became a hit");
}

async fn hit_and_miss(backend: Backend) {
    let up = origin().await;
    let node = node(backend, "hit-miss", &up, "ttl: 60s").await;
    let first = get(&node, "/c/x").await;
    assert_eq!(first.status, 200);
    assert_eq!(
        first.cache_status, "Portico; fwd=uri-miss; fwd-status=200; stored",
        "{backend:?}"
    );
    assert!(first.age.is_none(), "a fresh answer has no Age");
    let hit = eventual_hit(&node, "/c/x").await;
    assert_eq!(hit.body, first.body, "the stored answer");
    assert_eq!(hit.status, 200);
    assert_eq!(hit.headers["etag"], "\"v1\"");
    assert!(
        hit.age.is_some_and(|a| a <= 2),
        "Age on a hit: {:?}",
        hit.age
    );
    let ttl: u64 = hit
        .cache_status
        .strip_prefix("Portico; hit; ttl=")
        .unwrap_or_else(|| panic!("{}", hit.cache_status))
        .parse()
        .unwrap();
    assert!((57..=60).contains(&ttl), "ttl={ttl}");
    assert_eq!(up.requests(), 1, "{backend:?}: one upstream request");
    // Every answer keeps its own request id.
    assert_ne!(hit.headers["x-request-id"], first.headers["x-request-id"]);

    // Age counts the upstream's Age.
    let _ = get(&node, "/c/age").await;
    let hit = eventual_hit(&node, "/c/age").await;
    assert!(
        hit.age.is_some_and(|a| (5..=7).contains(&a)),
        "{:?}",
        hit.age
    );
    let ttl: u64 = hit
        .cache_status
        .rsplit('=')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((53..=55).contains(&ttl), "ttl={ttl}");

    // A conditional request is answered 304 from the entry.
    let a = send(
        client()
            .get(node.proxy_url("/c/x"))
            .header("if-none-match", "\"v1\""),
    )
    .await;
    assert_eq!(a.status, 304, "{}", a.cache_status);
    assert!(a.is_hit());
}

#[tokio::test]
async fn hit_after_miss_with_age_and_cache_status_memory() {
    hit_and_miss(Backend::Memory).await;
}

#[tokio::test]
async fn hit_after_miss_with_age_and_cache_status_redis() {
    hit_and_miss(Backend::Redis).await;
}

async fn never_stored(backend: Backend) {
    let up = origin().await;
    let node = node(backend, "never-stored", &up, "").await;
    for (path, detail) in [
        ("/c/cc/no-store", "no-store"),
        ("/c/cc/private,_max-age=60", "private"),
        ("/c/cc/no-cache", "no-cache"),
        ("/c/cookie", "set-cookie"),
        ("/c/status/500", "status"),
        ("/c/status/302", "status"),
    ] {
        let before = up.requests();
        for _ in 0..3 {
            let a = get(&node, path).await;
            assert!(
                a.cache_status.contains(&format!("detail={detail}")) && !a.is_hit(),
                "{path}: {}",
                a.cache_status
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(up.requests() - before, 3, "{path} was stored");
    }
    // A request with Authorization is not stored unless the response says
    // it may be (public).
    let before = up.requests();
    for _ in 0..3 {
        let a = send(
            client()
                .get(node.proxy_url("/c/authorized"))
                .header("authorization", "Bearer abc"),
        )
        .await;
        assert!(
            a.cache_status.contains("detail=authorization"),
            "{}",
            a.cache_status
        );
    }
    assert_eq!(up.requests() - before, 3);
    let _ = send(
        client()
            .get(node.proxy_url("/c/cc/public"))
            .header("authorization", "Bearer abc"),
    )
    .await;
    let _ = eventual_hit(&node, "/c/cc/public").await;
    // Unsafe methods go through.
    let a = send(client().post(node.proxy_url("/c/x"))).await;
    assert_eq!(a.cache_status, "Portico; fwd=method; fwd-status=200");
}

#[tokio::test]
async fn no_store_private_set_cookie_and_authorization_are_not_stored() {
    never_stored(Backend::Memory).await;
}

#[tokio::test]
async fn no_store_private_set_cookie_and_authorization_are_not_stored_redis() {
    never_stored(Backend::Redis).await;
}

#[tokio::test]
async fn cookies_true_stores_set_cookie() {
    let up = origin().await;
    let node = node(Backend::Memory, "cookies", &up, "cookies: true").await;
    let first = get(&node, "/c/cookie").await;
    assert!(
        first.cache_status.ends_with("stored"),
        "{}",
        first.cache_status
    );
    let hit = eventual_hit(&node, "/c/cookie").await;
    assert_eq!(hit.headers["set-cookie"], "session=1");
}

#[tokio::test]
async fn request_no_cache_fetches_fresh_and_refreshes() {
    let up = origin().await;
    let node = node(Backend::Memory, "no-cache", &up, "").await;
    let _ = get(&node, "/c/x").await;
    let _ = eventual_hit(&node, "/c/x").await;
    let fresh = send(
        client()
            .get(node.proxy_url("/c/x"))
            .header("cache-control", "no-cache"),
    )
    .await;
    assert!(
        fresh.cache_status.starts_with("Portico; fwd=request"),
        "{}",
        fresh.cache_status
    );
    assert_eq!(up.requests(), 2);
    // The refreshed answer replaced the entry.
    assert_eventually!(get(&node, "/c/x").await.body == fresh.body);
    let _ = send(
        client()
            .get(node.proxy_url("/c/x"))
            .header("cache-control", "no-store"),
    )
    .await;
    assert_eq!(up.requests(), 3);
}

#[tokio::test]
async fn response_vary_and_configured_vary_split_entries() {
    let up = origin().await;
    let node = node(Backend::Memory, "vary", &up, "vary: [x-tenant]").await;
    let lang = |l: &'static str| {
        client()
            .get(node.proxy_url("/c/vary"))
            .header("accept-language", l)
    };
    let en = send(lang("en")).await;
    assert!(en.body.ends_with(" en"));
    assert_eventually!(send(lang("en")).await.is_hit());
    let fr = send(lang("fr")).await;
    assert!(fr.body.ends_with(" fr"), "{}", fr.body);
    assert!(
        fr.cache_status.contains("fwd=vary-miss"),
        "{}",
        fr.cache_status
    );
    assert_eventually!(send(lang("fr")).await.is_hit());
    let en_again = send(lang("en")).await;
    assert!(en_again.is_hit());
    assert_eq!(en_again.body, en.body);
    assert_eq!(up.requests(), 2);

    // The policy's `vary` header is part of every key.
    let tenant = |t: &'static str| client().get(node.proxy_url("/c/t")).header("x-tenant", t);
    let a = send(tenant("a")).await;
    assert_eventually!(send(tenant("a")).await.is_hit());
    let b = send(tenant("b")).await;
    assert!(!b.is_hit());
    assert_ne!(a.body, b.body);

    // Vary: * is never stored.
    let up2 = Upstream::from_fn(|_| async {
        let mut r = portico_test::text_response(200, "star");
        r.headers_mut().insert("vary", "*".parse().unwrap());
        r
    })
    .run()
    .await;
    let node2 = self::node(Backend::Memory, "vary-star", &up2, "").await;
    for _ in 0..3 {
        let a = get(&node2, "/c/s").await;
        assert!(
            a.cache_status.contains("detail=vary-star"),
            "{}",
            a.cache_status
        );
    }
    assert_eq!(up2.requests(), 3);
}

#[tokio::test]
async fn query_parameters_are_normalised() {
    let up = origin().await;
    let node = node(Backend::Memory, "query", &up, "").await;
    let first = get(&node, "/c/q?a=1&b=2").await;
    let hit = eventual_hit(&node, "/c/q?b=2&a=1").await;
    assert_eq!(hit.body, first.body);
    let other = get(&node, "/c/q?a=1&b=3").await;
    assert!(!other.is_hit());
    assert_eq!(up.requests(), 2);
}

#[tokio::test]
async fn one_app_never_sees_another_apps_answer() {
    let up = origin().await;
    let node = TestNode::new()
        .config(&config("", &up.url(), "", true))
        .run()
        .await;
    let as_app = |key: &'static str| {
        client()
            .get(node.proxy_url("/c/app"))
            .header("x-api-key", key)
    };
    let one = send(as_app("key-one-0001")).await;
    assert!(one.body.ends_with(" one"), "{}", one.body);
    assert_eventually!(send(as_app("key-one-0001")).await.is_hit());
    let two = send(as_app("key-two-0001")).await;
    assert!(!two.is_hit(), "{}", two.cache_status);
    assert!(two.body.ends_with(" two"), "{}", two.body);
    assert_eventually!(send(as_app("key-two-0001")).await.is_hit());
    assert_eq!(send(as_app("key-one-0001")).await.body, one.body);
    assert_eq!(send(as_app("key-two-0001")).await.body, two.body);
    // Without a key: refused before the cache.
    let anon = send(client().get(node.proxy_url("/c/app"))).await;
    assert_eq!(anon.status, 401);
    assert_eq!(up.requests(), 2);
}

#[tokio::test]
async fn entries_expire_with_max_age() {
    let up = origin().await;
    let node = node(Backend::Memory, "expiry", &up, "ttl: 1h").await;
    let first = get(&node, "/c/cc/max-age=1").await;
    let hit = eventual_hit(&node, "/c/cc/max-age=1").await;
    assert_eq!(hit.body, first.body);
    assert_eventually!(
        !get(&node, "/c/cc/max-age=1").await.is_hit(),
        timeout = Duration::from_secs(4)
    );
    // Short default ttl for a response without freshness.
    let node = self::node(Backend::Memory, "expiry-ttl", &up, "ttl: 1s").await;
    let _ = get(&node, "/c/plain").await;
    let _ = eventual_hit(&node, "/c/plain").await;
    assert_eventually!(
        !get(&node, "/c/plain").await.is_hit(),
        timeout = Duration::from_secs(4)
    );
}

async fn single_flight(backend: Backend) {
    let up = Upstream::from_fn(|_| async { portico_test::text_response(200, "slow") })
        .delay(Duration::from_millis(400))
        .run()
        .await;
    let node = node(backend, "single-flight", &up, "").await;
    let url = node.proxy_url("/c/same");
    let calls = (0..10).map(|_| {
        let url = url.clone();
        tokio::spawn(async move { send(client().get(url)).await })
    });
    let answers: Vec<Answer> = futures_join(calls).await;
    assert_eq!(
        up.requests(),
        1,
        "{backend:?}: concurrent misses made one upstream request"
    );
    for a in &answers {
        assert_eq!(a.status, 200);
        assert_eq!(a.body, "slow");
    }
    let collapsed = answers
        .iter()
        .filter(|a| a.cache_status.contains("collapsed"))
        .count();
    assert!(
        collapsed >= 1,
        "{:?}",
        answers.iter().map(|a| &a.cache_status).collect::<Vec<_>>()
    );
}

async fn futures_join(
    handles: impl Iterator<Item = tokio::task::JoinHandle<Answer>>,
) -> Vec<Answer> {
    let mut out = Vec::new();
    for h in handles.collect::<Vec<_>>() {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn concurrent_misses_make_one_upstream_request() {
    single_flight(Backend::Memory).await;
}

#[tokio::test]
async fn concurrent_misses_make_one_upstream_request_redis() {
    single_flight(Backend::Redis).await;
}

async fn purge(backend: Backend) {
    let up = origin().await;
    let node = node(backend, "purge", &up, "").await;
    let _ = get(&node, "/c/x").await;
    let _ = eventual_hit(&node, "/c/x").await;
    let admin = |method: reqwest::Method, path: &str, token: Option<&str>| {
        let mut r = client().request(method, node.admin_url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    let resp = admin(reqwest::Method::DELETE, "/admin/v1/apis/c/cache", None)
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(
        get(&node, "/c/x").await.is_hit(),
        "refused purge kept entries"
    );
    let resp = admin(
        reqwest::Method::DELETE,
        "/admin/v1/apis/c/cache",
        Some(ADMIN_TOKEN),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 204);
    let after = get(&node, "/c/x").await;
    assert!(
        after.cache_status.starts_with("Portico; fwd=uri-miss"),
        "{}",
        after.cache_status
    );
    assert_eq!(up.requests(), 2);
    let _ = eventual_hit(&node, "/c/x").await;
    let resp = admin(
        reqwest::Method::DELETE,
        "/admin/v1/apis/nope/cache",
        Some(ADMIN_TOKEN),
    )
    .await
    .unwrap();
    crate::support::problem(resp, 404, "not-found").await;
}

#[tokio::test]
async fn purge_endpoint_forgets_an_apis_entries() {
    purge(Backend::Memory).await;
}

#[tokio::test]
async fn purge_endpoint_forgets_an_apis_entries_redis() {
    purge(Backend::Redis).await;
}

#[tokio::test]
async fn bodies_over_max_entry_size_pass_through_uncached() {
    let up = origin().await;
    let node = node(Backend::Memory, "size", &up, "max_entry_size: 4KiB").await;
    for path in ["/c/big/10000", "/c/chunked/10240"] {
        for _ in 0..2 {
            let a = get(&node, path).await;
            assert_eq!(a.status, 200);
            assert!(a.body.len() >= 10000, "{path}: the whole body passes");
            assert!(!a.is_hit(), "{path}: {}", a.cache_status);
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }
    assert_eq!(up.requests(), 4);
    let a = get(&node, "/c/big/4096").await;
    assert!(a.cache_status.ends_with("stored"), "{}", a.cache_status);
    let _ = eventual_hit(&node, "/c/big/4096").await;
    let metrics = node.metrics_text().await;
    for line in [
        "portico_cache_stores_total{api=\"c\",result=\"too_large\"} 4",
        "portico_cache_stores_total{api=\"c\",result=\"stored\"} 1",
        "portico_cache_requests_total{api=\"c\",result=\"hit\"} 1",
        "portico_cache_entries{backend=\"memory\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }
}

#[tokio::test]
async fn head_is_answered_from_the_get_entry() {
    let up = origin().await;
    let node = node(Backend::Memory, "head", &up, "").await;
    let first = get(&node, "/c/h").await;
    let _ = eventual_hit(&node, "/c/h").await;
    let resp = client().head(node.proxy_url("/c/h")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let cs = resp.headers()["cache-status"].to_str().unwrap().to_owned();
    assert!(cs.contains("; hit"), "{cs}");
    assert_eq!(
        resp.headers()["content-length"].to_str().unwrap(),
        first.body.len().to_string()
    );
    assert!(resp.bytes().await.unwrap().is_empty());
    assert_eq!(up.requests(), 1);
}

#[tokio::test]
async fn two_nodes_share_redis_entries_and_purges() {
    let up = origin().await;
    let head = redis_section(Backend::Redis, &unique_prefix("shared")).await;
    let yaml = config(&head, &up.url(), "", false);
    let a = TestNode::new().config(&yaml).run().await;
    let b = TestNode::new().config(&yaml).run().await;
    // Nodes behind one load balancer see one public host.
    let get_host = |n: &TestNode| {
        send(
            client()
                .get(n.proxy_url("/c/x"))
                .header("host", "api.example.com"),
        )
    };
    let first = get_host(&a).await;
    // Once node a finds its entry in Redis, node b finds it too.
    assert_eventually!(get_host(&a).await.is_hit());
    let hit = get_host(&b).await;
    assert!(hit.is_hit(), "{}", hit.cache_status);
    assert_eq!(hit.body, first.body);
    assert_eq!(up.requests(), 1);
    let resp = client()
        .delete(b.admin_url("/admin/v1/apis/c/cache"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let after = get_host(&a).await;
    assert!(
        !after.is_hit(),
        "the purge reached node a: {}",
        after.cache_status
    );
}

#[tokio::test]
async fn redis_down_is_a_miss_not_an_error() {
    let up = origin().await;
    // Nothing listens on a port of a closed listener.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let head = format!("redis: {{ url: \"redis://127.0.0.1:{port}\", timeout: 200ms }}\n");
    let node = TestNode::new()
        .config(&config(&head, &up.url(), "", false))
        .run()
        .await;
    for _ in 0..3 {
        let a = get(&node, "/c/x").await;
        assert_eq!(a.status, 200);
        assert!(!a.is_hit());
        assert!(
            a.cache_status.contains("backend-error"),
            "{}",
            a.cache_status
        );
    }
    assert_eq!(up.requests(), 3);
    let metrics = node.metrics_text().await;
    let errors: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("portico_cache_backend_errors_total{backend=\"redis\"} "))
        .expect("the redis error counter")
        .parse()
        .unwrap();
    assert!(errors >= 1, "{metrics}");
    // A purge cannot reach Redis: 503, and it says so.
    let resp = client()
        .delete(node.admin_url("/admin/v1/apis/c/cache"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
}

#[tokio::test]
async fn entries_survive_a_reload_of_an_unchanged_api() {
    let up = origin().await;
    let yaml = config("", &up.url(), "", false);
    let node = TestNode::new().config(&yaml).run().await;
    let _ = get(&node, "/c/x").await;
    let _ = eventual_hit(&node, "/c/x").await;
    node.reload(&yaml).await.unwrap();
    assert!(get(&node, "/c/x").await.is_hit());
    assert_eq!(up.requests(), 1);
}

#[tokio::test]
async fn cache_settings_errors_name_the_key_and_line() {
    let yaml = "apis:\n  - name: c\n    base_path: /c\n    upstream: { targets: [\"http://127.0.0.1:9\"] }\n    policies:\n      - cache: { ttl: 60s, tll: 1s }\n";
    let err = TestNode::new().config(yaml).try_run().await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("tll") && text.contains('6'), "{text}");
    let yaml = "server:\n  cache: { max_size: 1KiB }\napis: []\n";
    let err = TestNode::new().config(yaml).try_run().await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("max_size"), "{text}");
}

#[tokio::test]
async fn not_found_and_no_content_are_cacheable_by_default() {
    let up = origin().await;
    let node = node(Backend::Memory, "statuses", &up, "").await;
    for (path, status) in [("/c/status/404", 404), ("/c/status/204", 204)] {
        let first = get(&node, path).await;
        assert_eq!(first.status, status);
        let hit = eventual_hit(&node, path).await;
        assert_eq!(hit.status, status);
        if status == 204 {
            assert!(
                !hit.headers.contains_key("content-length"),
                "{:?}",
                hit.headers
            );
        }
    }
    assert_eq!(up.requests(), 2);
}

#[tokio::test]
async fn an_upgrade_is_never_answered_from_the_cache() {
    let up = origin().await;
    let node = node(Backend::Memory, "upgrade", &up, "").await;
    let _ = get(&node, "/c/ws").await;
    let _ = eventual_hit(&node, "/c/ws").await;
    let request = b"GET /c/ws HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nConnection: close\r\n\r\n";
    let (head, _) = crate::support::raw(node.proxy_addr(), request).await;
    assert!(
        !head.to_ascii_lowercase().contains("cache-status"),
        "{head}"
    );
    assert_eq!(up.requests(), 2, "the upgrade went upstream");
}
