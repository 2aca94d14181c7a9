//! `upstream: { mock: true }`: answers made from the spec, chosen by
//! `Prefer` and `Accept`, passing the response policies, the metrics and
//! the access log like an upstream's.

use portico_test::{TestNode, assert_eventually};
use serde_json::{Value, json};

use crate::support::{client, problem};

const SPEC: &str = r#"
      openapi: 3.1.0
      info: { title: Books, version: '1' }
      paths:
        /books:
          get:
            operationId: listBooks
            responses:
              '200':
                description: the books
                content:
                  application/json:
                    schema: { type: array, items: { $ref: '#/components/schemas/Book' } }
                    examples:
                      all: { value: [{ id: 1, title: Dune, status: available }] }
                      empty: { value: [] }
          post:
            responses:
              '201':
                description: made
                content:
                  application/json: { schema: { $ref: '#/components/schemas/Book' } }
        /books/{id}:
          parameters: [{ name: id, in: path, required: true, schema: { type: integer } }]
          get:
            responses:
              '200':
                description: a book
                content:
                  application/json: { schema: { $ref: '#/components/schemas/Book' } }
                  text/plain: { schema: { type: string }, example: Dune }
              4XX:
                description: refused
                content:
                  application/problem+json:
                    example: { title: Not found, status: 404 }
          delete:
            responses:
              '204': { description: gone }
      components:
        schemas:
          Book:
            type: object
            required: [id, title, status, isbn, shelf]
            properties:
              id: { type: integer, minimum: 1 }
              title: { type: string, minLength: 1 }
              status: { type: string, enum: [available, sold] }
              isbn: { type: string, minLength: 10, maxLength: 17 }
              added: { type: string, format: date-time }
              price: { type: number, exclusiveMinimum: 0 }
              tags: { type: array, items: { type: string } }
              shelf: { $ref: '#/components/schemas/Shelf' }
              password: { type: string, writeOnly: true }
          Shelf:
            allOf:
              - { type: object, required: [name], properties: { name: { type: string } } }
              - type: object
                properties:
                  parent: { $ref: '#/components/schemas/Shelf' }
                  floor: { oneOf: [{ type: integer, minimum: 0 }, { type: string }] }
"#;

fn config(extra_server: &str, policies: &str) -> String {
    let spec = SPEC.replace('\n', "\n  ");
    format!(
        "{extra_server}apis:\n  - name: books\n    base_path: /books\n    spec:{spec}\n    upstream: {{ mock: true }}\n{policies}"
    )
}

async fn node() -> TestNode {
    TestNode::new().config(&config("", "")).run().await
}

#[tokio::test]
async fn the_default_answer_is_the_first_example_of_the_lowest_success() {
    let node = node().await;
    let resp = client()
        .get(node.proxy_url("/books/books"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert!(resp.headers().contains_key("x-request-id"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        json!([{ "id": 1, "title": "Dune", "status": "available" }])
    );
}

#[tokio::test]
async fn prefer_selects_an_example_or_a_status() {
    let node = node().await;
    let c = client();
    let resp = c
        .get(node.proxy_url("/books/books"))
        .header("prefer", "example=empty")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["preference-applied"], "example=\"empty\"");
    assert_eq!(resp.json::<Value>().await.unwrap(), json!([]));

    let resp = c
        .get(node.proxy_url("/books/books"))
        .header("prefer", "example=missing")
        .send()
        .await
        .unwrap();
    let doc = problem(resp, 400, "mock-no-response").await;
    assert!(
        doc["detail"].as_str().unwrap().contains("all, empty"),
        "{doc}"
    );

    // 404 is answered by the `4XX` response, with the status asked for.
    let resp = c
        .get(node.proxy_url("/books/books/7"))
        .header("prefer", "code=404")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    assert_eq!(resp.headers()["preference-applied"], "code=404");
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({ "title": "Not found", "status": 404 })
    );

    let resp = c
        .get(node.proxy_url("/books/books/7"))
        .header("prefer", "code=503")
        .send()
        .await
        .unwrap();
    let doc = problem(resp, 400, "mock-no-response").await;
    assert!(
        doc["detail"].as_str().unwrap().contains("200, 4XX"),
        "{doc}"
    );

    let resp = c
        .delete(node.proxy_url("/books/books/7"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert!(!resp.headers().contains_key("content-type"));
    assert!(resp.bytes().await.unwrap().is_empty());
}

/// Checks `value` against the parts of JSON Schema the spec above uses;
/// properties no schema names are refused too (the mock makes none).
fn check(schemas: &Value, schema: &Value, value: &Value, at: &str) {
    check_part(schemas, schema, value, at, true);
}

fn check_part(schemas: &Value, schema: &Value, value: &Value, at: &str, closed: bool) {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap();
        return check_part(schemas, &schemas[name], value, at, closed);
    }
    if let Some(parts) = schema["allOf"].as_array() {
        for p in parts {
            check_part(schemas, p, value, at, false);
        }
        for k in value.as_object().into_iter().flatten().map(|(k, _)| k) {
            assert!(
                parts.iter().any(|p| !p["properties"][k].is_null()),
                "{at}: unknown property {k}"
            );
        }
        return;
    }
    if let Some(alts) = schema["oneOf"].as_array() {
        // The spec's alternatives are an integer and a string: one fits.
        let fits = alts
            .iter()
            .filter(|a| match a["type"].as_str() {
                Some("integer") => value.is_i64(),
                Some("string") => value.is_string(),
                _ => false,
            })
            .count();
        assert_eq!(fits, 1, "{at}: {value} fits one alternative");
        return;
    }
    if let Some(e) = schema["enum"].as_array() {
        assert!(e.contains(value), "{at}: {value} not in {e:?}");
    }
    match schema["type"].as_str() {
        Some("object") => {
            let obj = value
                .as_object()
                .unwrap_or_else(|| panic!("{at}: not an object"));
            for r in schema["required"].as_array().into_iter().flatten() {
                assert!(obj.contains_key(r.as_str().unwrap()), "{at}: {r} missing");
            }
            for (k, v) in obj {
                let prop = &schema["properties"][k];
                if prop.is_null() {
                    assert!(!closed, "{at}: unknown property {k}");
                    continue;
                }
                assert_ne!(
                    prop["writeOnly"],
                    json!(true),
                    "{at}: writeOnly {k} in a response"
                );
                check_part(schemas, prop, v, &format!("{at}/{k}"), true);
            }
        }
        Some("array") => {
            for (i, item) in value.as_array().expect("an array").iter().enumerate() {
                check_part(schemas, &schema["items"], item, &format!("{at}/{i}"), true);
            }
        }
        Some("string") => {
            let s = value
                .as_str()
                .unwrap_or_else(|| panic!("{at}: not a string"));
            let n = s.chars().count() as u64;
            assert!(
                n >= schema["minLength"].as_u64().unwrap_or(0),
                "{at}: short"
            );
            assert!(
                n <= schema["maxLength"].as_u64().unwrap_or(u64::MAX),
                "{at}: long"
            );
            if schema["format"] == "date-time" {
                assert!(s.len() >= 20 && s.as_bytes()[10] == b'T', "{at}: {s}");
            }
        }
        Some("integer") => {
            let n = value
                .as_i64()
                .unwrap_or_else(|| panic!("{at}: not an integer"));
            assert!(
                n >= schema["minimum"].as_i64().unwrap_or(i64::MIN),
                "{at}: {n}"
            );
        }
        Some("number") => {
            let n = value
                .as_f64()
                .unwrap_or_else(|| panic!("{at}: not a number"));
            if let Some(x) = schema["exclusiveMinimum"].as_f64() {
                assert!(n > x, "{at}: {n}");
            }
        }
        _ => {}
    }
}

#[tokio::test]
async fn bodies_are_made_from_the_schema_when_there_is_no_example() {
    let node = node().await;
    let c = client();
    let schemas = &schemas();
    for (method, path, status) in [
        ("GET", "/books/books/7", 200),
        ("POST", "/books/books", 201),
    ] {
        let resp = c
            .request(method.parse().unwrap(), node.proxy_url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{method} {path}");
        let body: Value = resp.json().await.unwrap();
        check(
            schemas,
            &json!({ "$ref": "#/components/schemas/Book" }),
            &body,
            "",
        );
        // Every property but the writeOnly one; the shelf's recursion bounded.
        assert!(
            body["tags"].as_array().is_some_and(|t| t.len() == 1),
            "{body}"
        );
        assert!(body["shelf"]["parent"].is_object(), "{body}");
        assert!(body["shelf"]["parent"].get("parent").is_none(), "{body}");
    }
    // The same request always gets the same body.
    let a = c
        .get(node.proxy_url("/books/books/7"))
        .send()
        .await
        .unwrap();
    let b = c
        .get(node.proxy_url("/books/books/8"))
        .send()
        .await
        .unwrap();
    assert_eq!(a.bytes().await.unwrap(), b.bytes().await.unwrap());
}

/// The schemas of [`SPEC`], written again as JSON for the check (an
/// independent reading, not the gateway's loader).
fn schemas() -> Value {
    json!({
        "Book": {
            "type": "object",
            "required": ["id", "title", "status", "isbn", "shelf"],
            "properties": {
                "id": { "type": "integer", "minimum": 1 },
                "title": { "type": "string", "minLength": 1 },
                "status": { "type": "string", "enum": ["available", "sold"] },
                "isbn": { "type": "string", "minLength": 10, "maxLength": 17 },
                "added": { "type": "string", "format": "date-time" },
                "price": { "type": "number", "exclusiveMinimum": 0 },
                "tags": { "type": "array", "items": { "type": "string" } },
                "shelf": { "$ref": "#/components/schemas/Shelf" },
                "password": { "type": "string", "writeOnly": true }
            }
        },
        "Shelf": {
            "allOf": [
                { "type": "object", "required": ["name"], "properties": { "name": { "type": "string" } } },
                { "type": "object", "properties": {
                    "parent": { "$ref": "#/components/schemas/Shelf" },
                    "floor": { "oneOf": [{ "type": "integer", "minimum": 0 }, { "type": "string" }] }
                } }
            ]
        }
    })
}

#[tokio::test]
async fn accept_chooses_the_media_type() {
    let node = node().await;
    let c = client();
    let resp = c
        .get(node.proxy_url("/books/books/7"))
        .header("accept", "text/plain;q=0.9, application/json;q=0.1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/plain");
    assert_eq!(resp.text().await.unwrap(), "Dune");

    let resp = c
        .get(node.proxy_url("/books/books/7"))
        .header("accept", "image/png, text/html")
        .send()
        .await
        .unwrap();
    let doc = problem(resp, 406, "not-acceptable").await;
    assert!(
        doc["detail"]
            .as_str()
            .unwrap()
            .contains("application/json, text/plain"),
        "{doc}"
    );
}

#[tokio::test]
async fn dynamic_asks_for_the_schema_body_even_with_examples() {
    let node = node().await;
    let resp = client()
        .get(node.proxy_url("/books/books"))
        .header("prefer", "dynamic=true")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body.as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(body[0]["status"], "available", "the first enum value");
    assert_eq!(body[0]["title"], "string");
}

#[tokio::test]
async fn mock_answers_pass_response_policies_metrics_and_the_access_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let yaml = config(
        &format!("server:\n  access_log: \"{}\"\n", log.display()),
        "    policies:\n      - cors: { origins: [\"https://app.example\"] }\n",
    );
    let node = TestNode::new().config(&yaml).run().await;
    let c = client();
    let resp = c
        .get(node.proxy_url("/books/books"))
        .header("origin", "https://app.example")
        .header("x-request-id", "mock-log-1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let len = resp.bytes().await.unwrap().len() as u64;
    let resp = c.head(node.proxy_url("/books/books")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert!(resp.bytes().await.unwrap().is_empty());

    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    assert_eventually!(read().lines().count() == 2);
    let line: Value = read()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|l| l["request_id"] == "mock-log-1")
        .unwrap();
    assert_eq!(line["api"], "books");
    assert_eq!(line["operation"], "listBooks");
    assert_eq!(line["upstream"], "mock");
    assert_eq!(line["status"], 200);
    assert_eq!(line["bytes"], len);

    let metrics = node.metrics_text().await;
    assert!(
        metrics.contains("portico_requests_total{api=\"books\",status_class=\"2xx\"} 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_demo_answers_at_once_and_leaves_with_its_flag() {
    let data = tempfile::tempdir().unwrap();
    let storage = portico_model::node::Storage::Sqlite(data.path().join("portico.db"));
    let node = TestNode::new().storage(storage.clone()).demo().run().await;
    let c = client();
    let resp = c.get(node.proxy_url("/demo/books")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let books: Value = resp.json().await.unwrap();
    assert_eq!(books[0]["title"], "Dune");
    let resp = c
        .get(node.proxy_url("/demo/books/42"))
        .header("prefer", "code=404")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let order = json!({ "items": [{ "bookId": 1, "quantity": 2 }] });
    let resp = c
        .post(node.proxy_url("/demo/orders"))
        .json(&order)
        .send()
        .await
        .unwrap();
    problem(resp, 401, "missing-credential").await;
    let resp = c
        .post(node.proxy_url("/demo/orders"))
        .header("x-api-key", portico_app::demo::KEY)
        .json(&order)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let placed: Value = resp.json().await.unwrap();
    assert_eq!(placed["status"], "placed");
    assert!(
        placed["items"][0]["quantity"].as_i64() >= Some(1),
        "{placed}"
    );
    node.shutdown().await;

    // The same store without the flag: the demo is gone.
    let node = TestNode::new().storage(storage).run().await;
    let resp = c.get(node.proxy_url("/demo/books")).send().await.unwrap();
    problem(resp, 404, "no-route").await;
}
