use portico_test::{TestNode, Upstream};

use crate::support::{api, apis, client, problem};

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

/// A node started from a file in a temporary directory, with `yaml`.
async fn node_from_file(yaml: &str) -> (TestNode, tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("portico.yaml");
    std::fs::write(&file, yaml).unwrap();
    let node = TestNode::new().config_file(&file).run().await;
    (node, dir, file)
}

const QUIET: &str = "server:\n  access_log: \"off\"\n";

#[tokio::test]
async fn admin_reload_publishes_the_file() {
    let up = Upstream::echo().run().await;
    let (node, _dir, file) =
        node_from_file(&format!("{QUIET}{}", apis(&[api("a", "/a", &[up.url()])]))).await;
    let c = client();
    assert_eq!(
        c.get(node.proxy_url("/b/x")).send().await.unwrap().status(),
        404
    );

    std::fs::write(
        &file,
        format!(
            "{QUIET}{}",
            apis(&[api("a", "/a", &[up.url()]), api("b", "/b", &[up.url()])])
        ),
    )
    .unwrap();
    let (status, summary) = node.reload_via_admin().await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["apis"], 2);
    assert_eq!(summary["tls_reloaded"], false);
    assert_eq!(summary["restart_required"], serde_json::json!([]));
    assert_eq!(summary["file"], file.display().to_string());
    assert_eq!(
        c.get(node.proxy_url("/b/x")).send().await.unwrap().status(),
        200
    );

    // A node setting that cannot change live is named, and the rest applies.
    std::fs::write(
        &file,
        format!(
            "{QUIET}  workers: 3\n{}",
            apis(&[api("c", "/c", &[up.url()])])
        ),
    )
    .unwrap();
    let (status, summary) = node.reload_via_admin().await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(
        summary["restart_required"],
        serde_json::json!(["server.workers"])
    );
    assert_eq!(
        c.get(node.proxy_url("/c")).send().await.unwrap().status(),
        200
    );
    assert_eq!(
        c.get(node.proxy_url("/a")).send().await.unwrap().status(),
        404
    );
}

#[tokio::test]
async fn admin_reload_of_a_broken_file_is_a_422_listing_every_error() {
    let up = Upstream::echo().run().await;
    let (node, _dir, file) =
        node_from_file(&format!("{QUIET}{}", apis(&[api("a", "/a", &[up.url()])]))).await;
    std::fs::write(
        &file,
        format!(
            "{QUIET}apis:\n  - name: a\n    base_path: /x\n    upstreem: {{}}\n  - name: b\n    base_path: b\n    upstream: {{ targets: [\"{}\"] }}\n",
            up.url()
        ),
    )
    .unwrap();
    let resp = client()
        .post(node.admin_url("/admin/v1/reload"))
        .bearer_auth(portico_test::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    let doc = problem(resp, 422, "invalid-configuration").await;
    let errors = doc["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{doc}");
    assert_eq!(errors[0]["path"], "apis[0].upstreem");
    assert_eq!(errors[0]["line"], 6);
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("unknown field")
    );
    assert_eq!(errors[1]["path"], "apis[1].base_path");
    assert!(
        doc["detail"].as_str().unwrap().contains("2 errors"),
        "{doc}"
    );
    // Nothing of it was applied.
    let c = client();
    assert_eq!(
        c.get(node.proxy_url("/a")).send().await.unwrap().status(),
        200
    );
    assert_eq!(
        c.get(node.proxy_url("/x")).send().await.unwrap().status(),
        404
    );

    // A file that cannot be read is refused the same way.
    std::fs::remove_file(&file).unwrap();
    let (status, doc) = node.reload_via_admin().await;
    assert_eq!(status, 422, "{doc}");
    assert!(
        doc["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("cannot read")
    );
    assert_eq!(
        c.get(node.proxy_url("/a")).send().await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn the_admin_api_needs_the_bearer_token() {
    let (node, _dir, _file) = node_from_file(QUIET).await;
    let c = client();
    let url = node.admin_url("/admin/v1/reload");
    let resp = c.post(&url).send().await.unwrap();
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Bearer realm=\"portico-admin\""
    );
    problem(resp, 401, "missing-credential").await;
    for wrong in [
        c.post(&url).bearer_auth("not-the-admin-token"),
        c.post(&url)
            .basic_auth("admin", Some(portico_test::ADMIN_TOKEN)),
        c.post(&url)
            .header(
                "authorization",
                format!("Bearer {}", portico_test::ADMIN_TOKEN),
            )
            .header(
                "authorization",
                format!("Bearer {}", portico_test::ADMIN_TOKEN),
            ),
    ] {
        let resp = wrong.send().await.unwrap();
        assert_eq!(
            resp.headers()["www-authenticate"],
            "Bearer realm=\"portico-admin\", error=\"invalid_token\""
        );
        problem(resp, 401, "invalid-credential").await;
    }
    // Unknown admin paths do not tell an anonymous caller what exists.
    let resp = c
        .get(node.admin_url("/admin/v1/nothing"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    // The probes stay open.
    assert_eq!(
        c.get(node.admin_url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        c.get(node.admin_url("/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let (status, _) = node.reload_via_admin().await;
    assert_eq!(status, 200);
    let resp = c
        .get(node.admin_url("/admin/v1/nothing"))
        .bearer_auth(portico_test::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    problem(resp, 404, "not-found").await;
}

#[tokio::test]
async fn admin_reload_without_a_file_is_a_409() {
    let node = TestNode::new().config("").run().await;
    let resp = client()
        .post(node.admin_url("/admin/v1/reload"))
        .bearer_auth(portico_test::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    problem(resp, 409, "reload-unavailable").await;
}
