//! Upstream resilience: passive health (circuit breaker), active health
//! checks, retries and the retry budget, against real sockets.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use portico_test::{
    ADMIN_TOKEN, TestNode, Upstream, UpstreamHandle, assert_eventually, text_response,
};

use crate::support::{client, problem};

/// An upstream answering `name` with 200, or 503 while `down` is set.
async fn named(name: &'static str, down: Arc<AtomicBool>) -> UpstreamHandle {
    Upstream::from_fn(move |_req| {
        let down = down.load(Ordering::Relaxed);
        async move {
            if down {
                text_response(503, "down")
            } else {
                text_response(200, name)
            }
        }
    })
    .run()
    .await
}

/// An upstream answering `name`, whose `/health` answers 200 or 503 as
/// `healthy` says.
async fn checked(name: &'static str, healthy: Arc<AtomicBool>) -> UpstreamHandle {
    Upstream::from_fn(move |req| {
        let healthy = healthy.load(Ordering::Relaxed);
        let is_check = req.uri().path() == "/health";
        async move {
            match (is_check, healthy) {
                (true, true) => text_response(200, "ok"),
                (true, false) => text_response(503, "sick"),
                (false, _) => text_response(200, name),
            }
        }
    })
    .run()
    .await
}

fn config(targets: &[String], upstream_extra: &str) -> String {
    let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
    format!(
        "apis:\n  - name: a\n    base_path: /a\n    upstream:\n      targets: [{}]\n{upstream_extra}",
        targets.join(", ")
    )
}

async fn body_of(c: &reqwest::Client, url: &str) -> (u16, String) {
    let resp = c.get(url).send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

async fn health(node: &TestNode) -> serde_json::Value {
    let resp = client()
        .get(node.admin_url("/admin/v1/apis/a/health"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

#[tokio::test]
async fn consecutive_failures_open_a_targets_circuit_and_a_probe_closes_it() {
    let bad_down = Arc::new(AtomicBool::new(true));
    let good = named("good", Arc::new(AtomicBool::new(false))).await;
    let bad = named("bad", bad_down.clone()).await;
    let node = TestNode::new()
        .config(&config(
            &[good.url(), bad.url()],
            "      circuit_breaker: { failures: 2, cool_down: 300ms }\n",
        ))
        .run()
        .await;
    let c = client();
    let url = node.proxy_url("/a/x");
    let mut failed = 0;
    for _ in 0..20 {
        let (status, _) = body_of(&c, &url).await;
        if status == 503 {
            failed += 1;
        }
    }
    // Two failures open the circuit; the rest go to the good target.
    assert_eq!(failed, 2);
    assert_eq!(bad.requests(), 2);
    let report = health(&node).await;
    assert_eq!(report["circuit_breaker"], true);
    let bad_report = &report["targets"][1];
    assert_eq!(bad_report["url"], bad.url());
    assert_eq!(bad_report["circuit"], "open");
    assert_eq!(bad_report["available"], false);
    assert_eq!(bad_report["circuit_opened"], 1);
    assert!(node.metrics_text().await.contains(&format!(
        "portico_upstream_target_available{{api=\"a\",target=\"{}\"}} 0",
        bad.url()
    )));

    // The target recovers; after the cool-down one probe closes the circuit.
    bad_down.store(false, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(350)).await;
    let mut seen = Vec::new();
    for _ in 0..6 {
        let (status, body) = body_of(&c, &url).await;
        assert_eq!(status, 200);
        seen.push(body);
    }
    assert!(seen.iter().any(|b| b == "bad"), "{seen:?}");
    assert_eq!(health(&node).await["targets"][1]["circuit"], "closed");
}

#[tokio::test]
async fn a_failed_probe_keeps_the_circuit_open_and_all_open_is_503() {
    let up = Upstream::refuse().run().await;
    let node = TestNode::new()
        .config(&config(
            &[up.url()],
            "      circuit_breaker: { failures: 1, cool_down: 200ms }\n",
        ))
        .run()
        .await;
    let c = client();
    let url = node.proxy_url("/a/x");
    problem(c.get(&url).send().await.unwrap(), 502, "upstream-connect").await;
    let doc = problem(c.get(&url).send().await.unwrap(), 503, "circuit-open").await;
    assert!(doc["detail"].as_str().unwrap().contains("open circuit"));
    // After the cool-down the probe goes out, fails, and the circuit opens
    // again for twice as long.
    tokio::time::sleep(Duration::from_millis(250)).await;
    problem(c.get(&url).send().await.unwrap(), 502, "upstream-connect").await;
    problem(c.get(&url).send().await.unwrap(), 503, "circuit-open").await;
    tokio::time::sleep(Duration::from_millis(250)).await;
    problem(c.get(&url).send().await.unwrap(), 503, "circuit-open").await;
    let report = health(&node).await;
    assert_eq!(report["targets"][0]["circuit_opened"], 2);
    assert!(report["targets"][0]["reopens_in_ms"].as_u64().unwrap() <= 400);
}

#[tokio::test]
async fn garbage_and_resets_count_as_failures() {
    let garbage = Upstream::garbage().run().await;
    let reset = Upstream::reset().run().await;
    let good = named("good", Arc::new(AtomicBool::new(false))).await;
    let node = TestNode::new()
        .config(&config(
            &[garbage.url(), reset.url(), good.url()],
            "      circuit_breaker: { failures: 1, cool_down: 1m }\n",
        ))
        .run()
        .await;
    let c = client();
    for _ in 0..12 {
        c.get(node.proxy_url("/a/x")).send().await.unwrap();
    }
    assert_eq!(garbage.requests(), 1);
    assert_eq!(reset.requests(), 1);
    let report = health(&node).await;
    assert_eq!(report["targets"][0]["circuit"], "open");
    assert_eq!(report["targets"][1]["circuit"], "open");
    assert_eq!(report["targets"][2]["circuit"], "closed");
}

#[tokio::test]
async fn active_checks_take_a_target_out_and_bring_it_back() {
    let a_healthy = Arc::new(AtomicBool::new(true));
    let b_healthy = Arc::new(AtomicBool::new(true));
    let a = checked("a", a_healthy.clone()).await;
    let b = checked("b", b_healthy.clone()).await;
    let node = TestNode::new()
        .config(&config(
            &[a.url(), b.url()],
            "      health_check: { path: /health, interval: 50ms, healthy_threshold: 2, unhealthy_threshold: 2 }\n",
        ))
        .run()
        .await;
    let c = client();
    let url = node.proxy_url("/a/x");
    let bodies = |n: usize| {
        let c = c.clone();
        let url = url.clone();
        async move {
            let mut out = Vec::new();
            for _ in 0..n {
                out.push(body_of(&c, &url).await);
            }
            out
        }
    };
    assert!(bodies(4).await.iter().any(|(_, b)| b == "a"));

    a_healthy.store(false, Ordering::Relaxed);
    assert_eventually!(health(&node).await["targets"][0]["healthy"] == false);
    assert!(bodies(6).await.iter().all(|(s, b)| *s == 200 && b == "b"));
    assert!(node.metrics_text().await.contains(&format!(
        "portico_upstream_target_healthy{{api=\"a\",target=\"{}\"}} 0",
        a.url()
    )));

    // Nothing healthy: 503, and the upstream sees no request.
    b_healthy.store(false, Ordering::Relaxed);
    assert_eventually!(health(&node).await["targets"][1]["healthy"] == false);
    let before = (a.requests(), b.requests());
    let doc = problem(c.get(&url).send().await.unwrap(), 503, "no-healthy-target").await;
    assert!(doc["detail"].as_str().unwrap().contains("health checks"));
    // Only health checks reached the targets meanwhile.
    assert!(a.requests() - before.0 <= 2 && b.requests() - before.1 <= 2);

    a_healthy.store(true, Ordering::Relaxed);
    assert_eventually!(health(&node).await["targets"][0]["healthy"] == true);
    assert!(bodies(4).await.iter().all(|(s, b)| *s == 200 && b == "a"));
}

#[tokio::test]
async fn idempotent_requests_are_retried_on_another_target() {
    let bad = named("bad", Arc::new(AtomicBool::new(true))).await;
    let good = named("good", Arc::new(AtomicBool::new(false))).await;
    let node = TestNode::new()
        .config(&config(
            &[bad.url(), good.url()],
            "      retries: { attempts: 1, backoff: 1ms }\n",
        ))
        .run()
        .await;
    let c = client();
    let url = node.proxy_url("/a/x");
    for _ in 0..10 {
        assert_eq!(body_of(&c, &url).await, (200, "good".to_owned()));
    }
    // Round-robin sent five first tries to the bad target; each was retried.
    assert_eq!(bad.requests(), 5);
    assert_eq!(good.requests(), 10);
    assert!(
        node.metrics_text()
            .await
            .contains("portico_upstream_retries_total{api=\"a\"} 5")
    );

    // POST is not idempotent: the bad target's answer goes to the client.
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(
            c.post(&url)
                .body("x")
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses.iter().filter(|&&s| s == 503).count(), 5);
    assert_eq!(bad.requests(), 10);
}

#[tokio::test]
async fn a_body_is_resent_when_the_connection_never_opened() {
    let refused = Upstream::refuse().run().await;
    let echo = Upstream::echo().run().await;
    let node = TestNode::new()
        .config(&config(
            &[refused.url(), echo.url()],
            "      retries: { attempts: 2, backoff: 1ms }\n",
        ))
        .run()
        .await;
    let c = client();
    for _ in 0..4 {
        let resp = c
            .put(node.proxy_url("/a/doc"))
            .body(vec![b'x'; 70_000])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let seen = portico_test::RecordedRequest::from_json(&resp.json().await.unwrap());
        assert_eq!(seen.method, "PUT");
        assert_eq!(seen.body_len, 70_000);
    }
}

#[tokio::test]
async fn a_body_already_sent_is_never_resent() {
    // The first target reads the whole request, then resets: the body went
    // out, so even a PUT is not tried again.
    let reset = Upstream::reset().run().await;
    let echo = Upstream::echo().run().await;
    let node = TestNode::new()
        .config(&config(
            &[reset.url(), echo.url()],
            "      retries: { attempts: 1, backoff: 1ms }\n",
        ))
        .run()
        .await;
    let c = client();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let resp = c
            .put(node.proxy_url("/a/doc"))
            .body("payload")
            .send()
            .await
            .unwrap();
        statuses.push(resp.status().as_u16());
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 200, 502, 502]);
    // Without a body the same failure is retried.
    for _ in 0..4 {
        assert_eq!(
            c.get(node.proxy_url("/a/x")).send().await.unwrap().status(),
            200
        );
    }
}

#[tokio::test]
async fn timeouts_are_retried_only_when_asked() {
    let stall = Upstream::stall().run().await;
    let echo = Upstream::echo().run().await;
    let targets = [stall.url(), echo.url()];
    let node = TestNode::new()
        .config(&config(
            &targets,
            "      timeout: 200ms\n      retries: { attempts: 1, backoff: 1ms }\n",
        ))
        .run()
        .await;
    let c = client();
    let statuses: Vec<u16> = {
        let mut v = Vec::new();
        for _ in 0..2 {
            v.push(
                c.get(node.proxy_url("/a/x"))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16(),
            );
        }
        v
    };
    assert!(statuses.contains(&504), "{statuses:?}");
    node.reload(&config(
        &targets,
        "      timeout: 200ms\n      retries: { attempts: 1, backoff: 1ms, on: [timeout] }\n",
    ))
    .await
    .unwrap();
    for _ in 0..2 {
        assert_eq!(
            c.get(node.proxy_url("/a/x")).send().await.unwrap().status(),
            200
        );
    }
}

#[tokio::test]
async fn the_retry_budget_caps_retries() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let up = Upstream::from_fn(move |_req| {
        counter.fetch_add(1, Ordering::Relaxed);
        async { text_response(503, "down") }
    })
    .run()
    .await;
    let node = TestNode::new()
        .config(&config(
            &[up.url()],
            "      retries: { attempts: 1, backoff: 1ms, budget: 0% }\n",
        ))
        .run()
        .await;
    let c = client();
    for _ in 0..30 {
        assert_eq!(
            c.get(node.proxy_url("/a/x")).send().await.unwrap().status(),
            503
        );
    }
    // 30 first tries, and only the budget's floor of 10 retries.
    assert_eq!(calls.load(Ordering::Relaxed), 40);
    let text = node.metrics_text().await;
    assert!(
        text.contains("portico_upstream_retries_total{api=\"a\"} 10"),
        "{text}"
    );
    assert!(text.contains("portico_upstream_retry_budget_exhausted_total{api=\"a\"} 20"));
}

#[tokio::test]
async fn a_target_killed_mid_load_costs_no_request() {
    let a = named("a", Arc::new(AtomicBool::new(false))).await;
    let b = named("b", Arc::new(AtomicBool::new(false))).await;
    let node = TestNode::new()
        .config(&config(
            &[a.url(), b.url()],
            "      retries: { attempts: 2, backoff: 1ms }\n      circuit_breaker: { failures: 3, cool_down: 1m }\n",
        ))
        .run()
        .await;
    let url = node.proxy_url("/a/x");
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (c, url, stop) = (client(), url.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                statuses.push(c.get(&url).send().await.unwrap().status().as_u16());
            }
            statuses
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(b.requests() > 0);
    let b_addr = b.stop().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for task in load {
        let statuses = task.await.unwrap();
        total += statuses.len();
        assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    }
    assert!(total > 40, "only {total} requests ran");
    let report = health(&node).await;
    assert_eq!(report["targets"][1]["url"], format!("http://{b_addr}"));
    assert_eq!(report["targets"][1]["circuit"], "open");
}

#[tokio::test]
async fn health_state_survives_a_reload_that_keeps_the_upstream() {
    let up = Upstream::refuse().run().await;
    let yaml = config(
        &[up.url()],
        "      circuit_breaker: { failures: 1, cool_down: 1m }\n",
    );
    let node = TestNode::new().config(&yaml).run().await;
    let c = client();
    c.get(node.proxy_url("/a/x")).send().await.unwrap();
    assert_eq!(health(&node).await["targets"][0]["circuit"], "open");
    // Another API arrives; this one's upstream is unchanged.
    let more = format!(
        "{yaml}  - name: b\n    base_path: /b\n    upstream:\n      targets: [\"{}\"]\n",
        up.url()
    );
    node.reload(&more).await.unwrap();
    assert_eq!(health(&node).await["targets"][0]["circuit"], "open");
    problem(
        c.get(node.proxy_url("/a/x")).send().await.unwrap(),
        503,
        "circuit-open",
    )
    .await;
    let resp = client()
        .get(node.admin_url("/admin/v1/apis/missing/health"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    // Health is part of the admin API: it needs the token.
    let resp = client()
        .get(node.admin_url("/admin/v1/upstreams"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let all: serde_json::Value = client()
        .get(node.admin_url("/admin/v1/upstreams"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
    assert_eq!(all["items"][1]["api"], "b");
    assert_eq!(all["items"][1]["targets"][0]["circuit"], "closed");
}
