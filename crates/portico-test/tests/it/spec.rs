//! APIs with an OpenAPI spec: only declared operations are routed, the
//! servers' path is the base path, and the operation reaches the log.

use portico_test::{RecordedRequest, TestNode, Upstream, UpstreamHandle, assert_eventually};

use crate::support::{client, problem};

const SPEC: &str = "\
openapi: 3.0.3
info: { title: Pet shop, version: '1' }
servers: [{ url: 'https://shop.example/shop/v1' }]
paths:
  /pets:
    get: { operationId: listPets, responses: { 200: { description: ok } } }
    post: { operationId: createPet, responses: { 201: { description: created } } }
  /pets/{petId}:
    parameters: [{ name: petId, in: path, required: true, schema: { type: integer } }]
    get: { operationId: showPet, responses: { 200: { description: ok } } }
    delete: { responses: { 204: { description: gone } } }
  /pets/mine:
    get: { operationId: myPets, responses: { 200: { description: ok } } }
";

/// A directory holding `specs/pets.yaml` and `portico.yaml` with one API
/// whose extra keys are `api_extra` (indented four spaces).
fn config_dir(up: &UpstreamHandle, api_extra: &str, server_extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("specs")).unwrap();
    std::fs::write(dir.path().join("specs/pets.yaml"), SPEC).unwrap();
    let yaml = format!(
        "{server_extra}apis:\n  - name: pets\n    spec: specs/pets.yaml\n{api_extra}    upstream:\n      targets: [\"{}\"]\n",
        up.url()
    );
    std::fs::write(dir.path().join("portico.yaml"), yaml).unwrap();
    dir
}

async fn node(dir: &tempfile::TempDir) -> TestNode {
    TestNode::new()
        .config_file(dir.path().join("portico.yaml"))
        .run()
        .await
}

#[tokio::test]
async fn declared_operations_reach_the_upstream_under_the_servers_path() {
    let up = Upstream::echo().run().await;
    let dir = config_dir(&up, "", "");
    let node = node(&dir).await;
    let c = client();
    for (method, path, upstream_uri) in [
        ("GET", "/shop/v1/pets?limit=2", "/pets?limit=2"),
        ("POST", "/shop/v1/pets", "/pets"),
        ("GET", "/shop/v1/pets/7", "/pets/7"),
        ("DELETE", "/shop/v1/pets/7", "/pets/7"),
        ("GET", "/shop/v1/pets/mine", "/pets/mine"),
    ] {
        let resp = c
            .request(method.parse().unwrap(), node.proxy_url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{method} {path}");
        let seen = RecordedRequest::from_json(&resp.json().await.unwrap());
        assert_eq!(seen.method, method);
        assert_eq!(seen.uri, upstream_uri);
    }
    let resp = c
        .head(node.proxy_url("/shop/v1/pets"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "HEAD is answered by the GET operation");
    assert_eq!(up.requests(), 6);
}

#[tokio::test]
async fn undeclared_paths_are_404_and_never_reach_the_upstream() {
    let up = Upstream::echo().run().await;
    let dir = config_dir(&up, "", "");
    let node = node(&dir).await;
    let c = client();
    for path in [
        "/shop/v1/owners",
        "/shop/v1/pets/7/toys",
        "/shop/v1/pets/",
        "/shop/v1",
        "/shop/v1/",
    ] {
        let resp = c.get(node.proxy_url(path)).send().await.unwrap();
        let doc = problem(resp, 404, "no-operation").await;
        assert!(
            doc["detail"]
                .as_str()
                .unwrap()
                .contains("declares no operation"),
            "{doc}"
        );
    }
    // Outside the base path it is still the gateway's own no-route.
    let resp = c.get(node.proxy_url("/pets")).send().await.unwrap();
    problem(resp, 404, "no-route").await;
    assert_eq!(up.requests(), 0);
}

#[tokio::test]
async fn undeclared_methods_are_405_with_allow() {
    let up = Upstream::echo().run().await;
    let dir = config_dir(&up, "", "");
    let node = node(&dir).await;
    let c = client();
    let resp = c.put(node.proxy_url("/shop/v1/pets")).send().await.unwrap();
    assert_eq!(resp.headers()["allow"], "GET, HEAD, POST");
    problem(resp, 405, "method-not-allowed").await;
    let resp = c
        .post(node.proxy_url("/shop/v1/pets/3"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["allow"], "GET, HEAD, DELETE");
    problem(resp, 405, "method-not-allowed").await;
    let resp = c
        .request(reqwest::Method::OPTIONS, node.proxy_url("/shop/v1/pets"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["allow"], "GET, HEAD, POST");
    problem(resp, 405, "method-not-allowed").await;
    assert_eq!(up.requests(), 0);
}

#[tokio::test]
async fn a_cors_preflight_on_a_declared_path_is_answered_by_cors() {
    let up = Upstream::echo().run().await;
    let dir = config_dir(
        &up,
        "    policies:\n      - cors: { origins: [\"https://app.example.com\"], methods: [GET, POST] }\n",
        "",
    );
    let node = node(&dir).await;
    let resp = client()
        .request(reqwest::Method::OPTIONS, node.proxy_url("/shop/v1/pets"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert_eq!(up.requests(), 0);
}

#[tokio::test]
async fn passthrough_keeps_prefix_proxying_and_a_written_base_path_wins() {
    let up = Upstream::echo().run().await;
    let dir = config_dir(&up, "    base_path: /p\n    routing: passthrough\n", "");
    let node = node(&dir).await;
    let c = client();
    for path in ["/p/pets", "/p/owners/1", "/p"] {
        let resp = c.put(node.proxy_url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }
    let resp = c.get(node.proxy_url("/shop/v1/pets")).send().await.unwrap();
    problem(resp, 404, "no-route").await;
    assert_eq!(up.requests(), 3);
}

#[tokio::test]
async fn the_operation_is_in_the_access_log() {
    let up = Upstream::echo().run().await;
    let log_dir = tempfile::tempdir().unwrap();
    let log = log_dir.path().join("access.log");
    let dir = config_dir(
        &up,
        "",
        &format!("server:\n  access_log: \"{}\"\n", log.display()),
    );
    let node = node(&dir).await;
    let c = client();
    for (method, path, id) in [
        (reqwest::Method::GET, "/shop/v1/pets/9", "op-1"),
        (reqwest::Method::DELETE, "/shop/v1/pets/9", "op-2"),
        (reqwest::Method::GET, "/shop/v1/nothing", "op-3"),
    ] {
        c.request(method, node.proxy_url(path))
            .header("x-request-id", id)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
    }
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    assert_eventually!(read().lines().count() == 3);
    let lines: Vec<serde_json::Value> = read()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let line = |id: &str| {
        lines
            .iter()
            .find(|l| l["request_id"] == id)
            .unwrap_or_else(|| panic!("no line for {id}"))
            .clone()
    };
    assert_eq!(line("op-1")["operation"], "showPet");
    assert_eq!(line("op-1")["api"], "pets");
    assert_eq!(
        line("op-2")["operation"],
        "DELETE /pets/{petId}",
        "an operation without operationId is named by method and template"
    );
    assert_eq!(line("op-3")["operation"], serde_json::Value::Null);
    assert_eq!(line("op-3")["status"], 404);
}
